/**
 * `ts-celery inspect <command>`, `ts-celery control <command>` and
 * `ts-celery status`, shaped like Celery's (celery/bin/control.py): the same
 * arguments, the same output (`->  node: OK` and the reply), `--json`, and
 * the same exit codes: 0 when at least one node replied, 69 (EX_UNAVAILABLE)
 * when none did or the broker cannot be reached, 2 for usage errors.
 * They work against Python and TypeScript workers alike.
 */
import { Celery } from '../app/celery.js';
import { COMMANDS, commandsOfType, type ArgType, type CommandSpec } from '../control/commands.js';
import { flattenReplies, type NodeReply } from '../control/client.js';
import { BrokerError, CeleryError } from '../errors.js';
import { urlScheme } from '../support/url.js';
import { AppLoadError, loadApp } from './load-app.js';
import { pluralize, pyJsonDumps, sayReply } from './py-format.js';

/** sysexits.h EX_UNAVAILABLE, Celery's exit code when no node replied. */
export const EX_UNAVAILABLE = 69;
/** click's exit code for usage errors. */
export const EX_USAGE = 2;

/** A usage error, printed click-style with exit code 2. */
export class UsageError extends Error {}

export interface RemoteArgs {
  app?: string | undefined;
  broker?: string | undefined;
  /** Seconds to wait for replies. */
  timeout: number;
  destination?: string[] | undefined;
  json: boolean;
  quiet?: boolean;
}

export interface CliIo {
  out(line: string): void;
  err(line: string): void;
}

const stdio: CliIo = {
  out: (line) => process.stdout.write(`${line}\n`),
  err: (line) => process.stderr.write(`${line}\n`),
};

/** The app a client command talks through: `-A`, else a bare app on `-b` / CELERY_BROKER_URL. */
export async function clientApp(args: { app?: string | undefined; broker?: string | undefined }, options: { oneShot?: boolean } = {}): Promise<Celery> {
  // As Python's `celery -b`: the option becomes CELERY_BROKER_URL, so it wins over the environment and the app.
  if (args.broker) process.env.CELERY_BROKER_URL = args.broker;
  let app: Celery;
  if (args.app) {
    ({ app } = await loadApp(args.app));
    await app.ready();
  } else {
    app = new Celery('default');
  }
  // A one-shot command fails at once when the broker is down (exit 69) instead of retrying for minutes.
  if (options.oneShot) app.configFromObject({ broker_connection_max_retries: 0 });
  if (urlScheme(app.conf.broker_url) === 'memory') {
    throw new UsageError('no broker: give the app (-A), a broker URL (-b amqp://...) or set CELERY_BROKER_URL');
  }
  return app;
}

function convert(value: string, type: ArgType, name: string): unknown {
  switch (type) {
    case 'str':
      return value;
    case 'int': {
      const n = Number(value);
      if (!Number.isInteger(n)) throw new UsageError(`Argument ${name} must be an integer, got ${JSON.stringify(value)}`);
      return n;
    }
    case 'float': {
      const n = Number(value);
      if (!Number.isFinite(n)) throw new UsageError(`Argument ${name} must be a number, got ${JSON.stringify(value)}`);
      return n;
    }
    case 'bool':
      return ['1', 'true', 'yes', 'y', 'on'].includes(value.toLowerCase());
  }
}

/** Celery's `_compile_arguments`: positional words to the command's keyword arguments. */
export function compileArguments(command: string, spec: CommandSpec, words: string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const args = spec.args ?? [];
  let i = 0;
  for (; i < words.length; i++) {
    const arg = args[i];
    if (!arg) {
      if (spec.variadic) break;
      throw new UsageError(`Command ${JSON.stringify(command)} takes arguments: ${spec.signature ?? '(none)'}`);
    }
    out[arg[0]] = convert(words[i]!, arg[1], arg[0]);
  }
  if (spec.variadic) out[spec.variadic] = words.slice(i);
  return out;
}

function verifyCommand(type: 'inspect' | 'control', command: string): CommandSpec {
  const choices = commandsOfType(type);
  const spec = choices.find(([name]) => name === command)?.[1];
  if (!spec) throw new UsageError(`Command ${command} not recognized. Available ${type} commands: ${choices.map(([n]) => n).join(', ')}`);
  return spec;
}

/** `--list`: the commands of a kind, with their signatures and help. */
export function listCommands(type: 'inspect' | 'control'): string {
  const rows = commandsOfType(type).map(([name, spec]) => [spec.signature ? `${name} ${spec.signature}` : name, spec.help] as const);
  const width = Math.min(30, Math.max(...rows.map(([a]) => a.length)));
  const title = `${type[0]!.toUpperCase()}${type.slice(1)} Commands`;
  return [`${title}:`, ...rows.map(([a, h]) => (a.length <= width ? `  ${a.padEnd(width)}  ${h}` : `  ${a}\n  ${''.padEnd(width)}  ${h}`))].join('\n');
}

async function withApp<T>(args: RemoteArgs, fn: (app: Celery) => Promise<T>): Promise<T> {
  const app = await clientApp(args, { oneShot: true });
  try {
    return await fn(app);
  } finally {
    await app.close().catch(() => undefined);
  }
}

function unreachable(command: string, err: unknown): CeleryError {
  const e = err as Error;
  if (err instanceof BrokerError) {
    return new CeleryError(
      `Could not connect to the message broker. Please make sure your broker (e.g., RabbitMQ or Redis) is running and the connection settings are correct. Reason: ${e.message}`,
    );
  }
  return new CeleryError(`Unable to run the \`${command}\` command. Reason: ${e?.message ?? err}`);
}

/** Exit code of a finished command. */
export type ExitCode = number;

/**
 * Broadcasts one inspect/control command and prints each reply as it comes
 * (unless `--json`). The replies, or the exit code when nobody answered or
 * the broker could not be reached.
 */
async function broadcastCommand(
  kind: 'inspect' | 'control',
  command: string,
  words: string[],
  args: RemoteArgs,
  io: CliIo,
): Promise<NodeReply[] | ExitCode> {
  const spec = verifyCommand(kind, command);
  const argumentsOf = compileArguments(command, spec, words);
  let replies: NodeReply[];
  try {
    replies = await withApp(args, (app) =>
      app.control.broadcast(command, {
        arguments: argumentsOf,
        destination: args.destination ?? null,
        timeout: args.timeout,
        reply: true,
        callback: args.json ? undefined : (reply) => io.out(sayReply(reply, true)),
      }),
    );
  } catch (err) {
    if (err instanceof UsageError || err instanceof AppLoadError) throw err;
    io.err(`Error: ${unreachable(`${kind} ${command}`, err).message}`);
    return EX_UNAVAILABLE;
  }
  if (replies.length === 0) {
    io.err('Error: No nodes replied within time constraint');
    return EX_UNAVAILABLE;
  }
  return replies;
}

/** `ts-celery inspect <command> [args...]`. */
export async function runInspect(command: string, words: string[], args: RemoteArgs, io: CliIo = stdio): Promise<ExitCode> {
  const replies = await broadcastCommand('inspect', command, words, args, io);
  if (typeof replies === 'number') return replies;
  const byNode = flattenReplies(replies);
  if (args.json) {
    io.out(pyJsonDumps(byNode));
    return 0;
  }
  const n = Object.keys(byNode).length;
  if (!args.quiet) io.out(`\n${n} ${pluralize(n, 'node')} online.`);
  return 0;
}

/** `ts-celery control <command> [args...]`. */
export async function runControl(command: string, words: string[], args: RemoteArgs, io: CliIo = stdio): Promise<ExitCode> {
  const replies = await broadcastCommand('control', command, words, args, io);
  if (typeof replies === 'number') return replies;
  if (args.json) io.out(pyJsonDumps(replies));
  return 0;
}

/** `ts-celery status`: the workers that answer a ping. */
export async function runStatus(args: RemoteArgs, io: CliIo = stdio): Promise<ExitCode> {
  let replies: NodeReply[];
  try {
    replies = await withApp(args, (app) =>
      app.control.broadcast('ping', {
        destination: args.destination ?? null,
        timeout: args.timeout,
        reply: true,
        callback: args.json ? undefined : (reply) => io.out(sayReply(reply, false)),
      }),
    );
  } catch (err) {
    if (err instanceof UsageError || err instanceof AppLoadError) throw err;
    io.err(`Error: ${unreachable('status', err).message}`);
    return EX_UNAVAILABLE;
  }
  if (replies.length === 0) {
    io.err('Error: No nodes replied within time constraint');
    return EX_UNAVAILABLE;
  }
  const byNode = flattenReplies(replies);
  if (args.json) io.out(pyJsonDumps(byNode));
  const n = Object.keys(byNode).length;
  if (!args.quiet) io.out(`\n${n} ${pluralize(n, 'node')} online.`);
  return 0;
}

/** Every command the CLI accepts, for help texts. */
export const ALL_COMMANDS = Object.keys(COMMANDS);
