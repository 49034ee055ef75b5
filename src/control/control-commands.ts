/**
 * Control commands: they change something on the worker (revoke, limits,
 * queues, concurrency, events, shutdown), answering in Celery's words
 * (test/fixtures/celery-5.7/pidbox_results.json).
 */
import { constants } from 'node:os';
import { DisabledBackend } from '../backend/disabled.js';
import { InvalidRateLimit, TaskRevokedError } from '../errors.js';
import { pyRepr } from '../protocol/repr.js';
import { buildExceptionMeta, States } from '../protocol/result-meta.js';
import { getLogger } from '../support/log.js';
import { parseRate } from '../support/rate.js';
import { maybeList, NO_REPLY, nok, ok, pyTruthy, requireArgs, type CommandContext, type CommandHandler } from './command-support.js';

const log = getLogger('MainProcess');

/** A signal name or number as a number (`SIGTERM`, `TERM`, `15`); SIGTERM when absent. */
export function signum(signal: unknown): number {
  if (typeof signal === 'number' && Number.isInteger(signal)) return signal;
  if (signal === null || signal === undefined || signal === '') return constants.signals.SIGTERM;
  const s = String(signal).toUpperCase();
  if (/^\d+$/.test(s)) return Number(s);
  const n = (constants.signals as Record<string, number>)[s.startsWith('SIG') ? s : `SIG${s}`];
  if (n === undefined) throw new TypeError(`Unknown signal name: ${JSON.stringify(signal)}`);
  return n;
}

/** Python's `repr()` of a set of strings: `{'a', 'b'}`. */
function pySet(items: Iterable<string>): string {
  return `{${[...items].map((i) => pyRepr(i)).join(', ')}}`;
}

/**
 * Celery 5.7 marks a revoked task REVOKED in the result backend at once when
 * no worker has started it (its state is PENDING, RECEIVED, RETRY or
 * REJECTED), so a revoke of a task still queued anywhere shows at once.
 */
async function markRevoked(ctx: CommandContext, ids: string[]): Promise<void> {
  const backend = ctx.app.backend;
  // rpc:// has no state to read back, and no reply queue without the request.
  if (backend instanceof DisabledBackend || backend.displayUrl === 'rpc://') return;
  for (const id of ids) {
    if (ctx.state.byId(id)?.phase === 'active') continue;
    try {
      const meta = await backend.get(id);
      const status = meta?.status ?? States.PENDING;
      if (![States.PENDING, States.RECEIVED, States.RETRY, 'REJECTED'].includes(status)) continue;
      await backend.store(buildExceptionMeta(id, States.REVOKED, new TaskRevokedError('revoked')));
    } catch (err) {
      log.warning(`Failed to mark task ${id} as revoked in backend: ${(err as Error).message}`);
    }
  }
}

async function revoke(ctx: CommandContext, args: Record<string, unknown>): Promise<unknown> {
  requireArgs('revoke', args, 'task_id');
  const ids = [...new Set(maybeList(args.task_id).map(String))];
  ctx.state.revoke(ids);
  await markRevoked(ctx, ids);
  if (pyTruthy(args.terminate)) {
    const sig = signum(args.signal);
    const terminated: string[] = [];
    for (const id of ids) {
      if (!ctx.state.byId(id)) continue;
      terminated.push(id);
      log.info(`Terminating ${id} (${sig})`);
      // A task not running yet never starts: it is in the revoked set.
      ctx.worker.terminate(id, sig);
    }
    return ok(terminated.length ? `terminate: ${terminated.join(', ')}` : 'terminate: tasks unknown');
  }
  log.info(`Tasks flagged as revoked: ${ids.join(', ')}`);
  return ok(`tasks ${pySet(ids)} flagged as revoked`);
}

function revokeByStampedHeaders(ctx: CommandContext, args: Record<string, unknown>): unknown {
  requireArgs('revoke_by_stamped_headers', args, 'headers');
  let headers = args.headers as Record<string, unknown>;
  if (Array.isArray(headers)) {
    headers = Object.fromEntries(headers.map((h) => String(h).split('=', 2) as [string, string]));
  }
  if (headers === null || typeof headers !== 'object') throw new TypeError('headers must be a mapping of stamp name to value(s)');
  ctx.state.revokeStamps(headers);
  if (!pyTruthy(args.terminate)) return ok(`headers ${pyRepr(headers)} flagged as revoked, but not terminated`);
  const sig = signum(args.signal);
  const terminated = new Map<string, Set<unknown>>();
  for (const r of ctx.state.list('active')) {
    const stamp = ctx.state.revokingStamp(r.message);
    if (!stamp) continue;
    for (const [k, v] of Object.entries(stamp)) {
      if (!terminated.has(k)) terminated.set(k, new Set());
      terminated.get(k)!.add(v);
    }
    ctx.worker.terminate(r.id, sig);
  }
  if (terminated.size === 0) return ok(`headers ${pyRepr(headers)} were not terminated`);
  const mapping = Object.fromEntries([...terminated].map(([k, vs]) => [k, [...vs]]));
  return ok(`headers ${pyRepr(mapping)} revoked`);
}

function rateLimit(ctx: CommandContext, args: Record<string, unknown>): unknown {
  requireArgs('rate_limit', args, 'task_name', 'rate_limit');
  const value = args.rate_limit as string | number;
  let rate: number;
  try {
    rate = parseRate(value);
  } catch (err) {
    if (err instanceof InvalidRateLimit) return nok(`Invalid rate limit string: ${err.pythonError}`);
    throw err;
  }
  const name = String(args.task_name);
  if (!ctx.app.tasks.has(name)) {
    log.error(`Rate limit attempt for unknown task ${name}`);
    return nok('unknown task');
  }
  ctx.worker.setRateLimit(name, rate);
  if (!rate) {
    ctx.rateLimits.delete(name);
    log.info(`Rate limits disabled for tasks of type ${name}`);
    return ok('rate limit disabled successfully');
  }
  ctx.rateLimits.set(name, value);
  log.info(`New rate limit for tasks of type ${name}: ${value}.`);
  return ok('new rate limit set successfully');
}

function seconds(v: unknown): number | null {
  if (v === null || v === undefined) return null;
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) throw new TypeError(`time limits are seconds, got ${JSON.stringify(v)}`);
  return n || null;
}

function timeLimit(ctx: CommandContext, args: Record<string, unknown>): unknown {
  const name = String(args.task_name);
  if (!ctx.app.tasks.has(name)) {
    log.error(`Change time limit attempt for unknown task ${name}`);
    return nok('unknown task');
  }
  const soft = seconds(args.soft);
  const hard = seconds(args.hard);
  ctx.worker.setTimeLimits(name, soft, hard);
  log.info(`New time limits for tasks of type ${name}: soft=${soft ?? 'None'} hard=${hard ?? 'None'}`);
  return ok('time limits set successfully');
}

function poolSize(ctx: CommandContext, n: unknown, grow: boolean): unknown {
  const by = n === undefined || n === null ? 1 : Number(n);
  if (!Number.isInteger(by) || by < 0) throw new TypeError(`n must be a whole number, got ${JSON.stringify(n)}`);
  const target = ctx.worker.concurrency + (grow ? by : -by);
  if (target < 1) throw new ValueError(`Can't shrink the pool below 1 (concurrency is ${ctx.worker.concurrency})`);
  ctx.worker.resize(target);
  log.info(`Concurrency now ${target} (remote pool_${grow ? 'grow' : 'shrink'} ${by})`);
  return ok(grow ? 'pool will grow' : 'pool will shrink');
}

/** Python's ValueError, for replies in Python's words. */
class ValueError extends Error {
  override name = 'ValueError';
}

export const CONTROL_HANDLERS: Record<string, CommandHandler> = {
  revoke,
  terminate: (ctx, args) => {
    requireArgs('terminate', args, 'signal', 'task_id');
    return revoke(ctx, { task_id: args.task_id, terminate: true, signal: args.signal });
  },
  revoke_by_stamped_headers: revokeByStampedHeaders,
  rate_limit: rateLimit,
  time_limit: timeLimit,

  enable_events(ctx) {
    if (!ctx.events) return nok('event dispatcher unavailable');
    if (!ctx.events.enableTaskEvents()) return ok('task events already enabled');
    log.info('Events of group {task} enabled by remote.');
    return ok('task events enabled');
  },

  disable_events(ctx) {
    if (!ctx.events) return nok('event dispatcher unavailable');
    if (!ctx.events.disableTaskEvents()) return ok('task events already disabled');
    log.info('Events of group {task} disabled by remote.');
    return ok('task events disabled');
  },

  heartbeat(ctx) {
    log.debug('Heartbeat requested by remote.');
    ctx.events?.heartbeatNow();
    return null;
  },

  // No gossip here: elections are between Python workers.
  election: () => null,

  pool_grow: (ctx, args) => poolSize(ctx, args.n, true),
  pool_shrink: (ctx, args) => poolSize(ctx, args.n, false),

  pool_restart() {
    throw new ValueError('Pool restarts not enabled');
  },

  autoscale() {
    // What a Python worker started without --autoscale answers; there is no autoscaler here.
    throw new ValueError('Autoscale not enabled');
  },

  shutdown(ctx, args) {
    const msg = typeof args.msg === 'string' ? args.msg : 'Got shutdown from remote';
    log.warning(msg);
    // After this handler returned: the warm shutdown stops this very consumer.
    setImmediate(() => ctx.worker.requestShutdown(msg));
    return NO_REPLY;
  },

  add_consumer(ctx, args) {
    requireArgs('add_consumer', args, 'queue');
    const queue = String(args.queue);
    const definition = {
      name: queue,
      exchange: typeof args.exchange === 'string' && args.exchange ? args.exchange : queue,
      exchange_type: (typeof args.exchange_type === 'string' ? args.exchange_type : 'direct') as 'direct' | 'topic' | 'fanout',
      routing_key: typeof args.routing_key === 'string' && args.routing_key ? args.routing_key : queue,
      ...(typeof args.durable === 'boolean' ? { durable: args.durable } : {}),
      ...(typeof args.auto_delete === 'boolean' ? { auto_delete: args.auto_delete } : {}),
      ...(args.queue_arguments && typeof args.queue_arguments === 'object' ? { queue_arguments: args.queue_arguments as Record<string, unknown> } : {}),
    };
    // As Celery's call_soon: answered at once, consuming starts right after.
    ctx.worker.addQueue(definition).catch((err: unknown) => log.error(`add_consumer ${queue} failed: ${(err as Error).message}`));
    return ok(`add consumer ${queue}`);
  },

  cancel_consumer(ctx, args) {
    requireArgs('cancel_consumer', args, 'queue');
    const queue = String(args.queue);
    ctx.worker.cancelQueue(queue).catch((err: unknown) => log.error(`cancel_consumer ${queue} failed: ${(err as Error).message}`));
    return ok(`no longer consuming from ${queue}`);
  },
};
