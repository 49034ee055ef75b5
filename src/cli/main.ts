/**
 * The `ts-celery` command line, shaped like Python's `celery`:
 * `ts-celery worker -A tasks -l info -c 1000`. A wrong flag prints usage
 * and exits with code 1.
 */
import yargs from 'yargs';
import { checkPoolName, type PoolName } from '../app/config.js';
import { parseLogLevel, type LogLevel } from '../support/log.js';
import { closestName, editDistance, looseCase } from '../support/suggest.js';
import { VERSION } from '../support/version.js';
import { EX_USAGE, listCommands, runControl, runInspect, runStatus, UsageError, type RemoteArgs } from './control-command.js';
import { runEventsDump } from './events-command.js';
import { AppLoadError } from './load-app.js';
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

/** Options every remote-control command takes, as Celery's. */
function remoteOptions<T>(y: import('yargs').Argv<T>) {
  return y
    .option('app', { alias: 'A', type: 'string', describe: 'The app (for its broker settings); else -b or CELERY_BROKER_URL' })
    .option('broker', { alias: 'b', type: 'string', describe: 'Broker URL' })
    .option('timeout', { alias: 't', type: 'number', default: 1.0, describe: 'Timeout in seconds waiting for reply.' })
    .option('destination', { alias: 'd', type: 'string', describe: 'Comma separated list of destination node names.' })
    .option('json', { alias: 'j', type: 'boolean', default: false, describe: 'Use json as output format.' })
    .option('quiet', { alias: 'q', type: 'boolean', default: false, describe: "Don't print the node count." });
}

function remoteArgs(a: { app?: string; broker?: string; timeout: number; destination?: string; json: boolean; quiet: boolean }): RemoteArgs {
  return {
    app: a.app,
    broker: a.broker,
    timeout: a.timeout,
    destination: a.destination ? a.destination.split(',').map((d) => d.trim()).filter(Boolean) : undefined,
    json: a.json,
    quiet: a.quiet,
  };
}

/** Runs a client command; usage errors print click-style (exit 2), the rest exit with the command's code. */
async function exitWith(run: () => Promise<number>, usage: string): Promise<never> {
  try {
    process.exitCode = await run();
  } catch (err) {
    if (err instanceof UsageError || err instanceof AppLoadError) {
      process.stderr.write(`Usage: ${usage}\nTry 'ts-celery --help' for help.\n\nError: ${err.message}\n`);
      process.exitCode = EX_USAGE;
    } else {
      process.stderr.write(`Error: ${(err as Error).message}\n`);
      process.exitCode = 1;
    }
  }
  // Flush stdout/stderr, then leave: sockets still closing must not keep the command alive.
  await new Promise<void>((resolve) => process.stdout.write('', () => resolve()));
  process.exit();
}

function remoteCommand(type: 'inspect' | 'control') {
  return [
    `${type} <command> [args..]`,
    type === 'inspect'
      ? 'Inspect the workers by sending them the COMMAND inspect command (ping, stats, active, registered...)'
      : 'Send the COMMAND control command to the workers (revoke, rate_limit, add_consumer, shutdown...)',
    (y: import('yargs').Argv) =>
      remoteOptions(y)
        .usage(`$0 ${type} [OPTIONS] COMMAND [ARGS]`)
        .positional('command', { type: 'string', describe: `The ${type} command` })
        .positional('args', { type: 'string', array: true, describe: 'Its arguments' })
        .option('list', { type: 'boolean', describe: `List available ${type} commands and exit.` })
        .parserConfiguration({ 'unknown-options-as-args': false }),
    async (a: Record<string, unknown>) => {
      if (a.list) {
        process.stdout.write(`${listCommands(type)}\n`);
        return;
      }
      const words = ((a.args as unknown[]) ?? []).map(String);
      const run = type === 'inspect' ? runInspect : runControl;
      await exitWith(() => run(String(a.command), words, remoteArgs(a as never)), `ts-celery ${type} [OPTIONS] COMMAND`);
    },
  ] as const;
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
          .usage('$0 worker -A <app> [-l info] [-P async|threads] [-c 1000] [-Q q1,q2] [-n name@%h]')
          .option('app', { alias: 'A', type: 'string', demandOption: true, describe: 'The app: a folder (its main.ts or index.ts) or a module path' })
          .option('loglevel', { alias: 'l', type: 'string', default: 'warning', describe: 'debug, info, warning, error or critical' })
          .option('pool', { alias: 'P', type: 'string', describe: 'async (tasks on the event loop, for I/O) or threads (one worker thread per task, for CPU-bound work). Default: worker_pool, else async' })
          .option('concurrency', { alias: 'c', type: 'number', describe: 'Tasks running at once (async: awaits in flight; threads: threads). Default: worker_concurrency, else the CPU count' })
          .option('max-tasks-per-child', { type: 'number', describe: '-P threads: replace a thread after this many tasks (worker_max_tasks_per_child)' })
          .option('max-memory-per-child', { type: 'number', describe: '-P threads: replace a thread after a task that left it holding more than this many KiB (worker_max_memory_per_child)' })
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
          .option('task-events', { alias: 'E', type: 'boolean', describe: 'Send task-related events that can be captured by monitors like Flower and `celery events`' })
          .option('statedb', { alias: 'S', type: 'string', describe: 'File that keeps revoked task ids across restarts (worker_state_db)' })
          .option('without-heartbeat', { type: 'boolean', describe: 'Send no worker-heartbeat events' })
          .option('heartbeat-interval', { type: 'number', describe: 'Seconds between worker-heartbeat events (default 2)' })
          .option('without-gossip', { type: 'boolean', describe: 'Accepted for compatibility: a TypeScript worker never gossips' })
          .option('without-mingle', { type: 'boolean', describe: "Accepted for compatibility: a TypeScript worker does not mingle at start-up (it answers other workers' hello)" })
          .option('metrics-port', { type: 'number', describe: 'Serve Prometheus /metrics and a /healthz check on this port' })
          .option('metrics-host', { type: 'string', default: '0.0.0.0', describe: 'Address for --metrics-port' })
          .option('beat', { alias: 'B', type: 'boolean', describe: 'Also run beat (periodic tasks) in this worker, as Celery\'s -B' })
          .option('schedule', { alias: 's', type: 'string', describe: 'With -B: the beat schedule file (default beat_schedule_filename)' })
          .check((a) => {
            if (!parseLogLevel(String(a.loglevel))) throw new Error(`Invalid log level ${JSON.stringify(a.loglevel)}: use debug, info, warning, error or critical`);
            positiveInt('--concurrency')(a.concurrency);
            positiveInt('--max-tasks-per-child')(a['max-tasks-per-child']);
            positiveInt('--max-memory-per-child')(a['max-memory-per-child']);
            if (a.pool !== undefined) checkPoolName(a.pool, '-P');
            if (a['prefetch-multiplier'] !== undefined && !(Number.isInteger(a['prefetch-multiplier']) && a['prefetch-multiplier'] >= 0)) {
              throw new Error('--prefetch-multiplier must be an integer >= 0');
            }
            if (a.queues !== undefined && !String(a.queues).split(',').some((q) => q.trim())) throw new Error('-Q needs at least one queue name');
            if (a['metrics-port'] !== undefined && !(Number.isInteger(a['metrics-port']) && a['metrics-port'] >= 0 && a['metrics-port'] <= 65535)) {
              throw new Error('--metrics-port must be a port number (0-65535)');
            }
            if (a['heartbeat-interval'] !== undefined && !(a['heartbeat-interval'] > 0)) throw new Error('--heartbeat-interval must be a positive number of seconds');
            return true;
          }),
      async (a) => {
        await runWorker({
          app: a.app,
          loglevel: parseLogLevel(String(a.loglevel)) as LogLevel,
          concurrency: a.concurrency,
          pool: a.pool as PoolName | undefined,
          maxTasksPerChild: a['max-tasks-per-child'],
          maxMemoryPerChild: a['max-memory-per-child'],
          queues: a.queues?.split(',').map((q) => q.trim()).filter(Boolean),
          hostname: a.hostname,
          prefetchMultiplier: a['prefetch-multiplier'],
          broker: a.broker,
          resultBackend: a['result-backend'],
          exitWithParent: a['exit-with-parent'],
          taskEvents: a['task-events'],
          statedb: a.statedb,
          heartbeatInterval: a['without-heartbeat'] ? null : a['heartbeat-interval'],
          metricsPort: a['metrics-port'],
          metricsHost: a['metrics-host'],
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
    .command(...remoteCommand('inspect'))
    .command(...remoteCommand('control'))
    .command(
      'status',
      'Show list of workers that are online.',
      (y) => remoteOptions(y),
      async (a) => {
        await exitWith(() => runStatus(remoteArgs(a)), 'ts-celery status [OPTIONS]');
      },
    )
    .command(
      'events',
      'Event-stream utilities: --dump prints every event as it happens',
      (y) =>
        y
          .option('app', { alias: 'A', type: 'string', describe: 'The app (for its broker settings); else -b or CELERY_BROKER_URL' })
          .option('broker', { alias: 'b', type: 'string', describe: 'Broker URL' })
          .option('dump', { alias: 'd', type: 'boolean', describe: 'Dump events to stdout.' }),
      async (a) => {
        await exitWith(async () => {
          if (!a.dump) throw new UsageError('only --dump is supported (the curses monitor and --camera are not implemented; Flower shows the same events)');
          const stop = new Promise((resolve) => {
            process.once('SIGINT', resolve);
            process.once('SIGTERM', resolve);
          });
          return runEventsDump({ app: a.app, broker: a.broker }, stop, { out: (l) => process.stdout.write(`${l}\n`), err: (l) => process.stderr.write(`${l}\n`) });
        }, 'ts-celery events [OPTIONS]');
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
