/**
 * The `_kombu.binding.<exchange>` tables, kept as kombu 5.7 keeps them, so
 * Python producers (and restores) route through the bindings TypeScript
 * consumers declare, and the other way round.
 *
 * - A queue without `x-expires` is bound for good: its member goes in the
 *   table and in `_kombu.binding_permanent.<exchange>`.
 * - A queue with `x-expires` (remote control's reply and pidbox queues, event
 *   receivers) is bound with a deadline: the member goes in the table only,
 *   and `_kombu.binding_deadlines` gets the exchange's deadline, at least an
 *   hour away (twice x-expires). While such a queue is consumed here the
 *   deadline is pushed back every third of that, and overdue tables are swept
 *   once a minute, by this process as by every kombu 5.7 consumer: a client
 *   that died leaves nothing behind for long, and a live one is never swept.
 * - Deleting a queue (an auto-delete queue whose consumer closed, see
 *   redis-broker.ts) removes its member from both sets and its lists.
 */
import { BrokerError } from '../../errors.js';
import { getLogger } from '../../support/log.js';
import { safeCause } from '../../support/url.js';
import type { QueueDeclaration } from '../types.js';
import type { ScriptedRedis } from './client.js';
import { bindingKey, bindingMember, bindingPermanentKey, topicPattern, type KeySpace } from './keys.js';

const log = getLogger('MainProcess');

/** kombu's BINDING_EXPIRES_FACTOR: a table lives this many times its queue's x-expires without a refresh. */
export const BINDING_EXPIRES_FACTOR = 2;
/** kombu's MIN_BINDING_TTL: never less than an hour. */
export const MIN_BINDING_TTL_MS = 3_600_000;
/** kombu's BINDING_SWEEP_INTERVAL. */
export const BINDING_SWEEP_INTERVAL_MS = 60_000;
/** Tables swept per call at most (kombu's `sweep_bindings(limit=100)`). */
const SWEEP_LIMIT = 100;

/** kombu's `_get_queue_expire`: the queue's `x-expires` in ms, or null. */
export function queueExpiresMs(q: QueueDeclaration): number | null {
  const v = q.arguments['x-expires'];
  const n = typeof v === 'number' ? v : typeof v === 'string' && v.trim() !== '' ? Number(v) : NaN;
  return Number.isFinite(n) ? Math.trunc(n) : null;
}

/** How long a binding table of a queue with this x-expires lives without a refresh. */
export function bindingTtlMs(expiresMs: number): number {
  return Math.max(expiresMs * BINDING_EXPIRES_FACTOR, MIN_BINDING_TTL_MS);
}

/** The table member of a queue's binding: topic exchanges store their regex, the others none. */
export function memberOf(sep: string, q: QueueDeclaration): string {
  const pattern = q.exchange.type === 'topic' ? topicPattern(q.routingKey) : '';
  return bindingMember(sep, q.routingKey, pattern, q.name);
}

export interface BindingsOptions {
  keySpace: KeySpace;
  displayUrl: string;
  /** An error's message with the connection's last error, when that says more. */
  reason(err: unknown): string;
}

export class Bindings {
  /** Declared on this connection (cleared when it is re-established: Redis may have restarted empty). */
  private readonly declared = new Map<string, Promise<void>>();
  /** Expiring queues consumed here, with how many consumers each. */
  private readonly kept = new Map<string, { decl: QueueDeclaration; count: number }>();
  private refreshTimer: NodeJS.Timeout | null = null;
  private refreshEveryMs = 0;
  private sweepTimer: NodeJS.Timeout | null = null;

  constructor(
    private readonly client: ScriptedRedis,
    private readonly options: BindingsOptions,
  ) {}

  private get deadlinesKey(): string {
    return `${this.options.keySpace.prefix}_kombu.binding_deadlines`;
  }

  /** Records the queue's binding (kombu's `_queue_bind`), once per connection. The default exchange needs none. */
  declare(q: QueueDeclaration): Promise<void> {
    const exchange = q.exchange.name;
    if (exchange === '') return Promise.resolve();
    const cacheKey = JSON.stringify([exchange, q.exchange.type, q.routingKey, q.name]);
    let done = this.declared.get(cacheKey);
    if (!done) {
      done = this.write(q).catch((err: unknown) => {
        this.declared.delete(cacheKey);
        throw new BrokerError(`Declaring the binding of queue ${JSON.stringify(q.name)} on ${this.options.displayUrl} failed: ${this.options.reason(err)}`, {
          cause: safeCause(err),
        });
      });
      this.declared.set(cacheKey, done);
    }
    return done;
  }

  private async write(q: QueueDeclaration): Promise<void> {
    const ks = this.options.keySpace;
    const member = memberOf(ks.sep, q);
    const expires = queueExpiresMs(q);
    if (expires !== null) {
      await this.client.tsRefreshBinding(2, bindingKey(ks, q.exchange.name), this.deadlinesKey, member, q.exchange.name, bindingTtlMs(expires));
      return;
    }
    await Promise.all([this.client.sadd(bindingKey(ks, q.exchange.name), member), this.client.sadd(bindingPermanentKey(ks, q.exchange.name), member)]);
  }

  /** The connection was re-established: declare again on next use. */
  reset(): void {
    this.declared.clear();
  }

  /**
   * A consumer of `q` started: while it runs, an expiring queue's deadline is
   * refreshed and overdue tables are swept. Returns the function that ends it.
   */
  keep(q: QueueDeclaration): () => void {
    const expires = queueExpiresMs(q);
    if (expires === null || q.exchange.name === '') return () => undefined;
    const key = JSON.stringify([q.exchange.name, q.routingKey, q.name]);
    const entry = this.kept.get(key) ?? { decl: q, count: 0 };
    entry.count++;
    this.kept.set(key, entry);
    this.schedule();
    let released = false;
    return () => {
      if (released) return;
      released = true;
      if (--entry.count === 0) this.kept.delete(key);
      this.schedule();
    };
  }

  private schedule(): void {
    if (this.kept.size === 0) {
      this.stop();
      return;
    }
    // kombu refreshes every third of the shortest table lifetime (20 minutes with the 1 h minimum).
    const every = Math.min(...[...this.kept.values()].map((e) => bindingTtlMs(queueExpiresMs(e.decl)!))) / 3;
    if (every !== this.refreshEveryMs) {
      if (this.refreshTimer) clearInterval(this.refreshTimer);
      this.refreshTimer = setInterval(() => void this.refresh(), every).unref();
      this.refreshEveryMs = every;
    }
    this.sweepTimer ??= setInterval(() => void this.sweep(), BINDING_SWEEP_INTERVAL_MS).unref();
  }

  /** Pushes back the deadline of every expiring queue consumed here. */
  async refresh(): Promise<void> {
    const ks = this.options.keySpace;
    try {
      await Promise.all(
        [...this.kept.values()].map(({ decl }) =>
          this.client.tsRefreshBinding(2, bindingKey(ks, decl.exchange.name), this.deadlinesKey, memberOf(ks.sep, decl), decl.exchange.name, bindingTtlMs(queueExpiresMs(decl)!)),
        ),
      );
    } catch (err) {
      log.debug(`Refreshing binding deadlines on ${this.options.displayUrl} failed, will retry: ${this.options.reason(err)}`);
    }
  }

  /** kombu's `sweep_bindings`: deletes binding tables nobody refreshed in time. Returns how many were due. */
  async sweep(): Promise<number> {
    const prefix = this.options.keySpace.prefix;
    try {
      return await this.client.tsSweepBindings(1, this.deadlinesKey, `${prefix}_kombu.binding.`, `${prefix}_kombu.binding_permanent.`, SWEEP_LIMIT);
    } catch (err) {
      log.debug(`Sweeping binding tables on ${this.options.displayUrl} failed, will retry: ${this.options.reason(err)}`);
      return 0;
    }
  }

  /** kombu's `_delete`: the queue's binding leaves both sets and its lists are deleted. */
  async delete(q: QueueDeclaration): Promise<void> {
    const ks = this.options.keySpace;
    const lists = ks.steps.map((step) => (step ? `${ks.prefix}${q.name}${ks.sep}${step}` : `${ks.prefix}${q.name}`));
    const ops: Array<Promise<unknown>> = [this.client.del(...lists)];
    if (q.exchange.name !== '') {
      const member = memberOf(ks.sep, q);
      ops.push(this.client.srem(bindingKey(ks, q.exchange.name), member), this.client.srem(bindingPermanentKey(ks, q.exchange.name), member));
      this.declared.delete(JSON.stringify([q.exchange.name, q.exchange.type, q.routingKey, q.name]));
    }
    await Promise.all(ops);
  }

  /** Stops refreshing and sweeping. */
  stop(): void {
    if (this.refreshTimer) clearInterval(this.refreshTimer);
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    this.refreshTimer = this.sweepTimer = null;
    this.refreshEveryMs = 0;
  }
}
