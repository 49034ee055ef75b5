/**
 * The `ts-celery` command line, shaped like Python's `celery`:
 * `ts-celery worker -A tasks -l info -c 1000`. A wrong flag prints usage
 * and exits with code 1.
 *
 * Parsed with Node's own `util.parseArgs`: yargs, which did this before, took
 * about a sixth of the worker's start-up time for one command with nine options.
 */
import { parseArgs } from 'node:util';
import { parseLogLevel, type LogLevel } from '../support/log.js';
import { VERSION } from '../support/version.js';
import { runWorker } from './worker-command.js';

interface OptionSpec {
  name: string;
  short?: string;
  /** Shown in the help after the flag; absent for switches. */
  value?: string;
  describe: string;
}

const WORKER_OPTIONS: readonly OptionSpec[] = [
  { name: 'app', short: 'A', value: '<app>', describe: 'The app: a folder (its main or index module) or a module path [required]' },
  { name: 'loglevel', short: 'l', value: '<level>', describe: 'debug, info, warning, error or critical [default: warning]' },
  { name: 'concurrency', short: 'c', value: '<n>', describe: 'Tasks running at once (async: awaits in flight). Default: worker_concurrency, else the CPU count' },
  { name: 'queues', short: 'Q', value: '<q1,q2>', describe: 'Comma-separated queues to consume. Default: task_default_queue' },
  { name: 'hostname', short: 'n', value: '<name>', describe: 'Node name; %h, %n and %d expand. Default: celery@%h' },
  { name: 'prefetch-multiplier', value: '<n>', describe: 'Prefetch = concurrency x this (default worker_prefetch_multiplier, 4)' },
  { name: 'broker', short: 'b', value: '<url>', describe: 'Broker URL (overrides broker_url)' },
  { name: 'result-backend', value: '<url>', describe: 'Result backend URL (overrides result_backend)' },
  { name: 'help', short: 'h', describe: 'Show help' },
  { name: 'version', describe: 'Show the version number' },
];

function optionLines(options: readonly OptionSpec[]): string[] {
  const flags = options.map((o) => `${o.short ? `-${o.short}, ` : '    '}--${o.name}${o.value ? ` ${o.value}` : ''}`);
  const width = Math.max(...flags.map((f) => f.length));
  return options.map((o, i) => `  ${flags[i]!.padEnd(width)}  ${o.describe}`);
}

const MAIN_HELP = [
  'ts-celery <command> [options]',
  '',
  'A Celery-compatible task framework for TypeScript.',
  '',
  'Commands:',
  '  ts-celery worker  Start a worker that consumes task queues',
  '',
  'Options:',
  ...optionLines(WORKER_OPTIONS.filter((o) => o.name === 'help' || o.name === 'version')),
].join('\n');

const WORKER_HELP = [
  'ts-celery worker -A <app> [-l info] [-c 1000] [-Q q1,q2] [-n name@%h]',
  '',
  'Start a worker that consumes task queues',
  '',
  'Options:',
  ...optionLines(WORKER_OPTIONS),
].join('\n');

/** Usage, then the error, on stderr; exit code 1. */
function usageError(help: string, message: string): never {
  process.stderr.write(`${help}\n\nError: ${message}\n`);
  process.exit(1);
}

function positiveInt(name: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${name} must be a positive integer, got ${value}`);
  return n;
}

/** parseArgs' wording, in the words this CLI has always used. */
function describeParseError(err: unknown): string {
  const e = err as { code?: string; message?: string };
  const quoted = /'([^']+)'/.exec(e.message ?? '')?.[1] ?? '';
  if (e.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') return `Unknown argument: ${quoted.replace(/^-+/, '')}`;
  if (e.code === 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL') return `Unknown argument: ${quoted}`;
  if (e.code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE' && /argument missing/.test(e.message ?? '')) return `Not enough arguments following: ${quoted.split(',').pop()!.trim().replace(/^-+|\s.*$/g, '')}`;
  return e.message ?? String(err);
}

/** The `worker` command: parse, check, run. */
async function workerCommand(argv: string[]): Promise<void> {
  // yargs also took camelCase spellings; keep them working.
  const args = argv.map((a) => a.replace(/^--(prefetchMultiplier|resultBackend)(?==|$)/, (_, n: string) => `--${n.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`));
  let values: Record<string, string | boolean | undefined>;
  try {
    const options = Object.fromEntries(
      WORKER_OPTIONS.map((o) => [o.name, { type: o.value ? ('string' as const) : ('boolean' as const), ...(o.short ? { short: o.short } : {}) }]),
    );
    ({ values } = parseArgs({ args, options, strict: true, allowPositionals: false }));
  } catch (err) {
    usageError(WORKER_HELP, describeParseError(err));
  }
  if (values.help) {
    process.stdout.write(`${WORKER_HELP}\n`);
    return;
  }
  if (values.version) {
    process.stdout.write(`${VERSION}\n`);
    return;
  }
  const str = (name: string): string | undefined => values[name] as string | undefined;
  let parsed: Parameters<typeof runWorker>[0];
  try {
    const app = str('app');
    if (!app) throw new Error('Missing required argument: app');
    const loglevel = parseLogLevel(str('loglevel') ?? 'warning');
    if (!loglevel) throw new Error(`Invalid log level ${JSON.stringify(str('loglevel'))}: use debug, info, warning, error or critical`);
    const multiplier = str('prefetch-multiplier');
    if (multiplier !== undefined && !(Number.isInteger(Number(multiplier)) && Number(multiplier) >= 0 && multiplier.trim() !== '')) {
      throw new Error('--prefetch-multiplier must be an integer >= 0');
    }
    const queues = str('queues')?.split(',').map((q) => q.trim()).filter(Boolean);
    if (queues && !queues.length) throw new Error('-Q needs at least one queue name');
    parsed = {
      app,
      loglevel: loglevel as LogLevel,
      concurrency: positiveInt('--concurrency', str('concurrency')),
      queues,
      hostname: str('hostname'),
      prefetchMultiplier: multiplier === undefined ? undefined : Number(multiplier),
      broker: str('broker'),
      resultBackend: str('result-backend'),
    };
  } catch (err) {
    usageError(WORKER_HELP, (err as Error).message);
  }
  await runWorker(parsed);
}

/** Runs the command line (`argv` without node and the script). */
export async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  if (command === 'worker') return workerCommand(rest);
  if (command === '--version') {
    process.stdout.write(`${VERSION}\n`);
    return;
  }
  if (command === '--help' || command === '-h') {
    process.stdout.write(`${MAIN_HELP}\n`);
    return;
  }
  if (command === undefined) usageError(MAIN_HELP, 'Choose a command, e.g.: ts-celery worker -A tasks -l info');
  usageError(MAIN_HELP, `Unknown argument: ${command.replace(/^-+/, '')}`);
}
