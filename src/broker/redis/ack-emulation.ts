/**
 * kombu's ack emulation, on this worker's side: settling deliveries and
 * keeping the leases of the ones it still holds.
 *
 * - An ack (or a reject without requeue) removes the message's `unacked`
 *   record and `unacked_index` entry in one script call; acks made in the same
 *   tick go in one call. A failed call is retried until it succeeds or the
 *   broker closes: an ack that never arrives only means the message is
 *   restored and runs again (at least once), never that it is lost.
 * - A requeue moves the message back to the front of its queue, marked
 *   redelivered, in one atomic step that first checks the record is still
 *   there (if another worker restored it already, pushing it again would make
 *   a second copy).
 * - Beyond kombu: every `visibility_timeout / 4` (at most every minute) the
 *   `unacked_index` score of each delivery still held here (running with
 *   acks_late, waiting for a slot, or held until its ETA) is moved to now.
 *   Restores, ours and kombu's alike, only take entries older than the
 *   visibility timeout, so a Python worker sweeping the same Redis leaves
 *   them alone, and long tasks and far ETAs are not run twice (kombu#337).
 *   A delivery whose entry is gone was restored by someone else: it is
 *   marked lost, so the worker does not run it (again) here.
 */
import { getLogger } from '../../support/log.js';
import type { ScriptedRedis } from './client.js';
import type { RedisDelivery } from './consumer.js';
import { redeliveredEnvelope } from './envelope.js';
import { queueKey, type KeySpace } from './keys.js';

const log = getLogger('MainProcess');

/** Tags per script call (Lua's unpack() has a stack limit of a few thousand). */
const CHUNK = 1000;
const RETRY_MS = 1000;

export interface AckEmulationOptions {
  keySpace: KeySpace;
  /** `unacked_index` and `unacked`, prefixed. */
  indexKey: string;
  hashKey: string;
  /** Seconds. */
  visibilityTimeout: number;
}

/** How often held leases are renewed: a quarter of the visibility timeout, between 250 ms and a minute. */
export function renewIntervalMs(visibilityTimeout: number): number {
  return Math.max(250, Math.min(60_000, Math.floor((visibilityTimeout * 1000) / 4)));
}

interface PendingRequeue {
  delivery: RedisDelivery;
  key: string;
  payload: string;
}

export class AckEmulation {
  /** Deliveries held here, by tag: the leases this worker renews. */
  private readonly owned = new Map<string, RedisDelivery>();
  private pendingAcks: string[] = [];
  private pendingRequeues: PendingRequeue[] = [];
  private flushScheduled = false;
  private readonly inflight = new Set<Promise<unknown>>();
  private retryTimer: NodeJS.Timeout | null = null;
  private renewTimer: NodeJS.Timeout | null = null;
  private renewing = false;
  private stopped = false;

  constructor(
    private readonly client: ScriptedRedis,
    private readonly options: AckEmulationOptions,
  ) {}

  /** Deliveries held now (for tests and logs). */
  get held(): number {
    return this.owned.size;
  }

  track(delivery: RedisDelivery): void {
    if (delivery.tag === null) return;
    const previous = this.owned.get(delivery.tag);
    // The same message again: it was restored and fetched anew, so the older copy is not ours any more.
    if (previous && previous !== delivery) previous.markLost();
    this.owned.set(delivery.tag, delivery);
  }

  forget(delivery: RedisDelivery): void {
    if (delivery.tag !== null && this.owned.get(delivery.tag) === delivery) this.owned.delete(delivery.tag);
  }

  ack(delivery: RedisDelivery): void {
    if (delivery.tag === null) return;
    this.forget(delivery);
    this.pendingAcks.push(delivery.tag);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => {
        this.flushScheduled = false;
        this.flushAcks();
      });
    }
  }

  private inFlight(p: Promise<unknown>): void {
    this.inflight.add(p);
    void p.finally(() => this.inflight.delete(p));
  }

  private flushAcks(): void {
    const { indexKey, hashKey } = this.options;
    while (this.pendingAcks.length > 0) {
      const chunk = this.pendingAcks.splice(0, CHUNK);
      this.inFlight(
        this.client.tsAck(2, indexKey, hashKey, ...chunk).catch(() => {
          this.pendingAcks.push(...chunk);
          this.retryLater();
        }),
      );
    }
  }

  /** Returns a delivery to the front of its queue, marked redelivered (kombu's restore). */
  requeue(delivery: RedisDelivery): Promise<void> {
    this.forget(delivery);
    let payload = delivery.raw;
    let priority = delivery.message.priority ?? 0;
    try {
      const again = redeliveredEnvelope(JSON.parse(delivery.raw));
      if (again) ({ json: payload, priority } = again);
    } catch {
      /* not JSON: pushed back as it came */
    }
    const item: PendingRequeue = { delivery, key: queueKey(this.options.keySpace, delivery.info.queue, priority), payload };
    return this.sendRequeue(item);
  }

  private sendRequeue(item: PendingRequeue): Promise<void> {
    const { indexKey, hashKey } = this.options;
    const p = this.client.tsRequeue(3, indexKey, hashKey, item.key, item.delivery.tag ?? '', item.payload, 'front').then(
      () => undefined,
      () => {
        this.pendingRequeues.push(item);
        this.retryLater();
      },
    );
    this.inFlight(p);
    return p;
  }

  private retryLater(): void {
    if (this.retryTimer || this.stopped) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      this.retryPending();
    }, RETRY_MS);
  }

  /** Sends acks and requeues that failed before (also called when the connection is back). */
  retryPending(): void {
    this.flushAcks();
    for (const item of this.pendingRequeues.splice(0)) void this.sendRequeue(item);
  }

  /** Starts renewing the leases of held deliveries. */
  startRenewing(): void {
    if (this.renewTimer || this.stopped) return;
    this.renewTimer = setInterval(() => void this.renew(), renewIntervalMs(this.options.visibilityTimeout));
    this.renewTimer.unref();
  }

  /** Moves the `unacked_index` score of every held delivery to now; marks the ones gone as lost. */
  async renew(): Promise<void> {
    if (this.renewing || this.owned.size === 0) return;
    this.renewing = true;
    try {
      const tags = [...this.owned.keys()];
      const now = (Date.now() / 1000).toFixed(6);
      for (let i = 0; i < tags.length; i += CHUNK) {
        const missing = await this.client.tsRenew(1, this.options.indexKey, now, ...tags.slice(i, i + CHUNK));
        for (const tag of missing) {
          const delivery = this.owned.get(tag);
          if (!delivery) continue; // settled meanwhile
          log.warning(
            `Message ${tag} from queue ${delivery.info.queue} was restored by another worker while this one held it ` +
              `(its lease is older than visibility_timeout=${this.options.visibilityTimeout}s): not running or settling it here`,
          );
          delivery.markLost();
        }
      }
    } catch {
      /* Redis unreachable: the next tick tries again, well within the visibility timeout */
    } finally {
      this.renewing = false;
    }
  }

  /**
   * Sends what is pending and waits (at most `timeoutMs`) for it. What cannot
   * be sent stays in `unacked` and is restored after the visibility timeout.
   */
  async drain(timeoutMs: number): Promise<number> {
    const deadline = Date.now() + timeoutMs;
    const pause = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, Math.max(1, ms)));
    this.retryPending();
    while (Date.now() < deadline && (this.inflight.size > 0 || this.pendingAcks.length > 0 || this.pendingRequeues.length > 0)) {
      if (this.inflight.size > 0) {
        await Promise.race([Promise.allSettled([...this.inflight]), pause(deadline - Date.now())]);
      } else {
        await pause(Math.min(100, deadline - Date.now()));
        this.retryPending();
      }
    }
    return this.pendingAcks.length + this.pendingRequeues.length;
  }

  stop(): void {
    this.stopped = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    if (this.renewTimer) clearInterval(this.renewTimer);
    this.retryTimer = null;
    this.renewTimer = null;
  }
}
