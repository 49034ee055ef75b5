/**
 * The `ts-celery` command line, shaped like Python's `celery`:
 * `ts-celery worker -A tasks -l info -c 1000`. A wrong flag prints usage
 * and exits with code 1.
 */
import yargs from 'yargs';
import { parseLogLevel, type LogLevel } from '../support/log.js';
import { closestName, editDistance, looseCase } from '../support/suggest.js';
import { VERSION } from '../support/version.js';
import { runBeat } from './beat-command.js';
import { runWorker } from './worker-command.js';

function positiveInt(name: string) {
  return (value: unknown): number | undefined => {
    if (value === undefined) return undefined;
    const n = Number(value);
    if (!Number.isInteger(n) || n < 1) throw new Error(`${name} must be a positive integer, got ${String(value)}`);
    return n;
  };
}

/**
 * yargs' "Unknown argument: concurency" plus the closest option this command
 * knows ("did you mean --concurrency?"): a typo in a flag costs seconds, not a
 * trip to the docs. The known options are read off the command's own help.
 */
export function withSuggestions(message: string, help: string): string {
  const unknown = /^Unknown arguments?: (.+)$/.exec(message);
  if (!unknown) return message;
  const known = [...new Set([...help.matchAll(/--([a-z][\w-]*)/gi)].map((m) => m[1]!))];
  // yargs names a misspelt kebab-case flag twice (as typed, and camelCased): report it once.
  const byName = new Map<string, string>();
  for (const arg of unknown[1]!.split(', ')) if (!byName.has(looseCase(arg))) byName.set(looseCase(arg), arg);
  const args = [...byName.values()];
  const hints = args.map((arg) => {
    const typed = looseCase(arg.replace(/^-+/, ''));
    const best = closestName(typed, known, { normalize: looseCase });
    // Short names are all within 3 edits of each other: only suggest a plausible typo.
    const plausible = best !== null && editDistance(typed, looseCase(best)) <= Math.max(1, Math.floor(typed.length / 3));
    return plausible ? `${arg} (did you mean --${best}?)` : arg;
  });
  return `Unknown argument${hints.length > 1 ? 's' : ''}: ${hints.join(', ')}`;
}

export async function main(argv: string[]): Promise<void> {
  await yargs(argv)
    .scriptName('ts-celery')
    .usage('$0 <command> [options]\n\nA Celery-compatible task framework for TypeScript.')
    .command(
      'worker',
      'Start a worker that consumes task queues',
      (y) =>
        y
          .usage('$0 worker -A <app> [-l info] [-c 1000] [-Q q1,q2] [-n name@%h]')
          .option('app', { alias: 'A', type: 'string', demandOption: true, describe: 'The app: a folder (its main.ts or index.ts) or a module path' })
          .option('loglevel', { alias: 'l', type: 'string', default: 'warning', describe: 'debug, info, warning, error or critical' })
          .option('concurrency', { alias: 'c', type: 'number', describe: 'Tasks running at once (async: awaits in flight). Default: worker_concurrency, else the CPU count' })
          .option('queues', { alias: 'Q', type: 'string', describe: 'Comma-separated queues to consume. Default: task_default_queue' })
          .option('hostname', { alias: 'n', type: 'string', describe: 'Node name; %h, %n and %d expand. Default: celery@%h' })
          .option('prefetch-multiplier', { type: 'number', describe: 'Prefetch = concurrency x this (default worker_prefetch_multiplier, 4)' })
          .option('broker', { alias: 'b', type: 'string', describe: 'Broker URL (overrides broker_url)' })
          .option('result-backend', { type: 'string', describe: 'Result backend URL (overrides result_backend)' })
          .option('exit-with-parent', {
            type: 'boolean',
            default: true,
            describe: 'Shut down warm when the launching process exits (npx and npm do not pass SIGTERM on); --no-exit-with-parent keeps running',
          })
          .option('beat', { alias: 'B', type: 'boolean', describe: 'Also run beat (periodic tasks) in this worker, as Celery\'s -B' })
          .option('schedule', { alias: 's', type: 'string', describe: 'With -B: the beat schedule file (default beat_schedule_filename)' })
          .check((a) => {
            if (!parseLogLevel(String(a.loglevel))) throw new Error(`Invalid log level ${JSON.stringify(a.loglevel)}: use debug, info, warning, error or critical`);
            positiveInt('--concurrency')(a.concurrency);
            if (a['prefetch-multiplier'] !== undefined && !(Number.isInteger(a['prefetch-multiplier']) && a['prefetch-multiplier'] >= 0)) {
              throw new Error('--prefetch-multiplier must be an integer >= 0');
            }
            if (a.queues !== undefined && !String(a.queues).split(',').some((q) => q.trim())) throw new Error('-Q needs at least one queue name');
            return true;
          }),
      async (a) => {
        await runWorker({
          app: a.app,
          loglevel: parseLogLevel(String(a.loglevel)) as LogLevel,
          concurrency: a.concurrency,
          queues: a.queues?.split(',').map((q) => q.trim()).filter(Boolean),
          hostname: a.hostname,
          prefetchMultiplier: a['prefetch-multiplier'],
          broker: a.broker,
          resultBackend: a['result-backend'],
          exitWithParent: a['exit-with-parent'],
          beat: a.beat,
          schedule: a.schedule,
        });
      },
    )
    .command(
      'beat',
      'Send the periodic tasks of beat_schedule',
      (y) =>
        y
          .usage('$0 beat -A <app> [-l info] [-s schedule-file] [--max-interval seconds]')
          .option('app', { alias: 'A', type: 'string', demandOption: true, describe: 'The app: a folder (its main.ts or index.ts) or a module path' })
          .option('loglevel', { alias: 'l', type: 'string', default: 'warning', describe: 'debug, info, warning, error or critical' })
          .option('schedule', { alias: 's', type: 'string', describe: 'Schedule file for the last run times (default beat_schedule_filename, celerybeat-schedule.json)' })
          .option('max-interval', { type: 'number', describe: 'Longest sleep between schedule checks, seconds (default beat_max_loop_interval, else 300)' })
          .option('exit-with-parent', { type: 'boolean', default: true, describe: 'Stop when the launching process exits (npx and npm do not pass SIGTERM on); --no-exit-with-parent keeps running' })
          .check((a) => {
            if (!parseLogLevel(String(a.loglevel))) throw new Error(`Invalid log level ${JSON.stringify(a.loglevel)}: use debug, info, warning, error or critical`);
            if (a['max-interval'] !== undefined && !(a['max-interval'] > 0)) throw new Error('--max-interval must be a number of seconds > 0');
            return true;
          }),
      async (a) => {
        await runBeat({
          app: a.app,
          loglevel: parseLogLevel(String(a.loglevel)) as LogLevel,
          schedule: a.schedule,
          maxInterval: a['max-interval'],
          exitWithParent: a['exit-with-parent'],
        });
      },
    )
    .demandCommand(1, 'Choose a command, e.g.: ts-celery worker -A tasks -l info')
    .strict()
    .help()
    .alias('h', 'help')
    .version(VERSION)
    .recommendCommands()
    .fail((msg, err, y) => {
      // yargs passes its usage object here: help() is the failing command's help text.
      const help = (y as unknown as { help(): string }).help();
      process.stderr.write(`${help}\n\nError: ${withSuggestions(msg ?? err?.message ?? 'invalid arguments', help)}\n`);
      process.exit(1);
    })
    .parseAsync();
}
