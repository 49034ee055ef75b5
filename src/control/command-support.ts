/** What remote-control command handlers share: their context, replies, argument checks. */
import type { Celery } from '../app/celery.js';
import type { WorkerEvents } from '../events/worker-events.js';
import type { WorkerState } from '../worker/state.js';
import type { Worker } from '../worker/worker.js';

/** What a command handler can reach on the worker. */
export interface CommandContext {
  app: Celery;
  worker: Worker;
  hostname: string;
  state: WorkerState;
  /** Null when the worker sends no events. */
  events: WorkerEvents | null;
  /** Rate limits set with `rate_limit`, as given (for `registered`). */
  rateLimits: Map<string, string | number>;
  /** RSS samples taken by `memsample`, for `memdump`. */
  memSamples: number[];
}

export type CommandHandler = (ctx: CommandContext, args: Record<string, unknown>) => unknown;

/** A handler returns this to send no reply at all (`shutdown`, as Python's raises WorkerShutdown). */
export const NO_REPLY: unique symbol = Symbol('no reply');

/** `{ok: value}`, Celery's `ok()`. */
export const ok = (value: unknown): { ok: unknown } => ({ ok: value });
/** `{error: value}`, Celery's `nok()`. */
export const nok = (value: unknown): { error: unknown } => ({ error: value });

/** Python's TypeError for a handler called without its required arguments. */
export class TypeError_ extends Error {
  override name = 'TypeError';
}

/** Throws Python's "f() missing N required positional argument(s)" when any of `names` is absent. */
export function requireArgs(fn: string, args: Record<string, unknown>, ...names: string[]): void {
  const missing = names.filter((n) => args[n] === undefined);
  if (missing.length === 0) return;
  const quoted = missing.map((n) => `'${n}'`);
  const list = quoted.length === 1 ? quoted[0] : quoted.length === 2 ? quoted.join(' and ') : `${quoted.slice(0, -1).join(', ')}, and ${quoted.at(-1)}`;
  throw new TypeError_(`${fn}() missing ${missing.length} required positional argument${missing.length > 1 ? 's' : ''}: ${list}`);
}

/** A value or a list of values, as a list (Celery's `maybe_list`). */
export function maybeList(v: unknown): unknown[] {
  return Array.isArray(v) ? v : v === undefined || v === null ? [] : [v];
}


/**
 * Python's truthiness, for arguments Python clients send as whatever they
 * hold: Flower sends `terminate` as 1 (its strtobool), the CLI as a string.
 */
export function pyTruthy(v: unknown): boolean {
  if (v === null || v === undefined || v === false || v === 0 || v === '') return false;
  if (Array.isArray(v)) return v.length > 0;
  if (typeof v === 'object') return Object.keys(v).length > 0;
  return true;
}
