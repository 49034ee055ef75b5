/**
 * kombu's `restore_visible`: the sweep that puts back messages whose worker
 * went away. Any worker (TypeScript or Python) may run it; they take turns
 * under kombu's `unacked_mutex` lock (SET NX PX, released only by its
 * holder), so TypeScript and Python workers restore each other's lost
 * messages without both pushing the same one.
 *
 * An entry of `unacked_index` older than `visibility_timeout` goes back to the
 * front of the queue(s) its exchange and routing key lead to, marked
 * redelivered, exactly as kombu pushes it. The push re-checks under the lock
 * that the entry is still overdue and unchanged, so a lease renewed or a
 * message acked after the sweep read it is left alone.
 *
 * Schedule, as kombu's event loop: once when consuming starts, then every
 * `unacked_restore_interval × unacked_restore_throttle` seconds (100 s by
 * default; 5.2's loop also sweeps every 100 s).
 */
import { createHash, randomBytes } from 'node:crypto';
import { getLogger } from '../../support/log.js';
import type { ScriptedRedis } from './client.js';
import { parseUnackedRecord, redeliveredEnvelope } from './envelope.js';
import { queueKey, type KeySpace } from './keys.js';

const log = getLogger('MainProcess');

/** Entries per restore script call. */
const CHUNK = 200;

export interface RestoreOptions {
  keySpace: KeySpace;
  indexKey: string;
  hashKey: string;
  mutexKey: string;
  /** Seconds. */
  visibilityTimeout: number;
  /** Seconds the lock may live (kombu: 300). */
  mutexExpire: number;
  /** Entries per sweep at most (null = all). */
  limit: number | null;
  /** Milliseconds between sweeps. */
  everyMs: number;
}

/** The queues a message published with (exchange, routing key) reaches now, as kombu's `_lookup`. */
export type RouteLookup = (exchange: string, routingKey: string) => Promise<string[]>;

function sha1(data: Buffer): string {
  return createHash('sha1').update(data).digest('hex');
}

export class RestoreSweeper {
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<number> | null = null;

  constructor(
    private readonly client: ScriptedRedis,
    private readonly options: RestoreOptions,
    private readonly lookup: RouteLookup,
  ) {}

  /** Sweeps now, then on kombu's schedule. */
  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => void this.sweep().catch(() => undefined), this.options.everyMs);
    this.timer.unref();
    void this.sweep().catch(() => undefined);
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** One sweep (at most one at a time in this process); resolves with the number of messages restored. */
  sweep(): Promise<number> {
    this.running ??= this.sweepUnderLock().finally(() => {
      this.running = null;
    });
    return this.running;
  }

  private async sweepUnderLock(): Promise<number> {
    const { mutexKey, mutexExpire } = this.options;
    const token = randomBytes(16).toString('hex');
    const got = await this.client.set(mutexKey, token, 'PX', Math.round(mutexExpire * 1000), 'NX');
    // Another worker is sweeping: kombu skips its turn too (MutexHeld). A SET sent again
    // after a reconnect finds our own token: then the lock is ours.
    if (got !== 'OK' && (await this.client.get(mutexKey)) !== token) return 0;
    try {
      return await this.restoreOverdue();
    } finally {
      await this.client.tsReleaseLock(1, mutexKey, token).catch(() => undefined);
    }
  }

  private async restoreOverdue(): Promise<number> {
    const { indexKey, hashKey, keySpace, visibilityTimeout, limit } = this.options;
    const ceil = Date.now() / 1000 - visibilityTimeout;
    const tags = limit === null
      ? await this.client.zrangebyscore(indexKey, '-inf', ceil)
      : await this.client.zrangebyscore(indexKey, '-inf', ceil, 'LIMIT', 0, limit);
    let restored = 0;
    for (let i = 0; i < tags.length; i += CHUNK) {
      const chunk = tags.slice(i, i + CHUNK);
      const values = await this.client.hmgetBuffer(hashKey, ...chunk);
      const keys: string[] = [];
      const args: Array<string | number> = [ceil];
      for (const [j, tag] of chunk.entries()) {
        const value = values[j] ?? null;
        if (value === null) {
          args.push(tag, '', '', 0); // an index entry without a message: dropped, as kombu does
          continue;
        }
        const record = parseUnackedRecord(value.toString('utf8'));
        const again = record ? redeliveredEnvelope(record.envelope) : null;
        if (!record || !again) {
          log.error(`Dropping unacked entry ${tag}: not kombu's [envelope, exchange, routing_key] record: ${value.toString('utf8').slice(0, 200)}`);
          args.push(tag, sha1(value), '', 0);
          continue;
        }
        const queues = await this.lookup(record.exchange, record.routingKey);
        if (queues.length === 0) {
          // kombu would drop it; keeping it lets a binding declared later (or an operator) bring it back.
          log.warning(`Cannot restore message ${tag}: no queue is bound to exchange ${JSON.stringify(record.exchange)} with key ${JSON.stringify(record.routingKey)}`);
          continue;
        }
        keys.push(...queues.map((q) => queueKey(keySpace, q, again.priority)));
        args.push(tag, sha1(value), again.json, queues.length);
      }
      if (args.length > 1) restored += await this.client.tsRestore(2 + keys.length, indexKey, hashKey, ...keys, ...args);
    }
    if (restored > 0) {
      log.warning(`Restored ${restored} unacknowledged message(s) whose worker did not ack them within visibility_timeout=${visibilityTimeout}s`);
    }
    return restored;
  }
}

/** kombu's effective sweep period (event loop): interval × throttle seconds. */
export function sweepIntervalMs(interval: number, throttle: number): number {
  return Math.max(100, Math.round(interval * Math.max(1, throttle) * 1000));
}
