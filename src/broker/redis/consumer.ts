/**
 * One queue subscription and its deliveries on the Redis transport.
 *
 * Redis has no consumers or channels: a delivery is a message the fetcher
 * popped and recorded in `unacked` on this consumer's behalf. It stays valid
 * across reconnects (its record is in Redis, not tied to a connection) until
 * it is settled here, or until its lease was lost: another worker restored it
 * after the visibility timeout, so settling or running it here would be a
 * second copy.
 */
import type { IncomingMessage } from '../../protocol/message.js';
import type { Consumer, Delivery, DeliveryInfo } from '../types.js';

/** What a consumer needs from its broker. */
export interface ConsumerHost {
  /** A delivery is handed to the worker: renew its lease until it is settled. */
  track(delivery: RedisDelivery): void;
  /** Done with it (ack, or reject without requeue): remove its `unacked` record. */
  ack(delivery: RedisDelivery): void;
  /** Back to the front of its queue, marked redelivered (reject with requeue, or not handed over). */
  requeue(delivery: RedisDelivery): Promise<void>;
  /** It will not be settled here (lease lost): stop renewing it. */
  forget(delivery: RedisDelivery): void;
  /** The consumer's wish for messages changed: the fetcher looks again. */
  poke(): void;
  /** The consumer stopped: the fetcher drops it. */
  detach(consumer: RedisConsumer): void;
  /** Waits until pending acks and requeues reached Redis (or gave up). */
  flush(): Promise<void>;
  /** The consumer closed (after its flush): the broker forgets its queue, or deletes it if auto-delete. */
  closed(consumer: RedisConsumer): Promise<void>;
}

type State = 'held' | 'settled' | 'lost';

export class RedisDelivery implements Delivery {
  private state: State = 'held';

  constructor(
    readonly message: IncomingMessage,
    readonly info: DeliveryInfo,
    /** kombu's delivery tag (the `unacked` key), or null for an envelope without one. */
    readonly tag: string | null,
    /** The envelope exactly as popped. */
    readonly raw: string,
    private readonly consumer: RedisConsumer,
  ) {}

  get live(): boolean {
    return this.state !== 'lost';
  }

  /** True once settled or lost. */
  get done(): boolean {
    return this.state !== 'held';
  }

  ack(): void {
    if (this.state !== 'held') return;
    this.state = 'settled';
    this.consumer.settled(this, 'ack');
  }

  reject(requeue: boolean): void {
    if (this.state !== 'held') return;
    this.state = 'settled';
    // Without requeue the message is dropped: Redis has no dead-lettering, as in kombu.
    this.consumer.settled(this, requeue ? 'requeue' : 'ack');
  }

  /** Settled by the transport itself (returned to the queue at close). */
  settleInternally(): boolean {
    if (this.state !== 'held') return false;
    this.state = 'settled';
    return true;
  }

  /** Another worker owns the message now: settling it here is a no-op. */
  markLost(): void {
    if (this.state !== 'held') return;
    this.state = 'lost';
    this.consumer.lost(this);
  }
}

export class RedisConsumer implements Consumer {
  private readonly unsettled = new Set<RedisDelivery>();
  /** Room promised to fetches in flight. */
  private reserved = 0;
  private cancelled = false;
  readonly consumerTag: string;

  constructor(
    readonly queue: string,
    private prefetch: number,
    private readonly onDelivery: (delivery: Delivery) => void,
    private readonly host: ConsumerHost,
    id: number,
    /** kombu's no_ack: messages are not recorded in `unacked`, and settled once handed over. */
    readonly noAck = false,
  ) {
    this.consumerTag = `ts-celery-redis-${id}`;
  }

  /** True until cancelled. */
  get active(): boolean {
    return !this.cancelled;
  }

  /** How many more messages it may hold now, not counting fetches in flight (Infinity with prefetch 0). */
  room(): number {
    if (this.cancelled) return 0;
    if (this.noAck) return Infinity; // no acks to wait for: the prefetch does not apply
    return this.prefetch === 0 ? Infinity : Math.max(0, this.prefetch - this.unsettled.size - this.reserved);
  }

  /** @internal A fetch in flight will bring up to `n` messages (negative: it came back). */
  reserve(n: number): void {
    this.reserved += n;
  }

  /**
   * Worth a fetch: at least a quarter of its window is free. A saturated
   * worker then takes messages in batches instead of one per round trip,
   * while a small window (`-c 1`) still takes each message as soon as it can.
   */
  wantsMore(): boolean {
    const room = this.room();
    return room === Infinity || (room > 0 && room >= Math.max(1, Math.floor(this.prefetch / 4)));
  }

  /** Hands a fetched message to the worker, or back to the queue if this consumer stopped meanwhile. */
  deliver(delivery: RedisDelivery): void {
    if (this.cancelled) {
      if (delivery.settleInternally()) void this.host.requeue(delivery);
      return;
    }
    if (this.noAck) {
      // Settled as it is handed over (it has no `unacked` record): ack/reject are no-ops, close returns nothing.
      delivery.settleInternally();
      this.onDelivery(delivery);
      return;
    }
    this.unsettled.add(delivery);
    this.host.track(delivery);
    this.onDelivery(delivery);
  }

  /** @internal A delivery was acked or rejected. */
  settled(delivery: RedisDelivery, how: 'ack' | 'requeue'): void {
    const wanted = this.wantsMore();
    this.unsettled.delete(delivery);
    if (how === 'requeue') void this.host.requeue(delivery);
    else this.host.ack(delivery);
    if (!wanted && this.wantsMore()) this.host.poke();
  }

  /** @internal A delivery's lease was lost: it no longer counts against the prefetch. */
  lost(delivery: RedisDelivery): void {
    const wanted = this.wantsMore();
    this.unsettled.delete(delivery);
    this.host.forget(delivery);
    if (!wanted && this.wantsMore()) this.host.poke();
  }

  async setPrefetch(count: number): Promise<void> {
    this.prefetch = count;
    this.host.poke();
  }

  async cancel(): Promise<void> {
    if (this.cancelled) return;
    this.cancelled = true;
    this.host.detach(this);
  }

  /**
   * Stops consuming, returns every unsettled delivery to the front of its
   * queue (kombu's restore at close), and waits for pending acks and requeues.
   */
  async close(): Promise<void> {
    await this.cancel();
    const rest = [...this.unsettled];
    this.unsettled.clear();
    await Promise.all(rest.map((d) => (d.settleInternally() ? this.host.requeue(d) : undefined)));
    await this.host.flush();
    await this.host.closed(this);
  }
}
