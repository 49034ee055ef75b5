/**
 * Coalesces acks on one channel into as few frames as possible.
 *
 * On a 2-core machine the worker competes with RabbitMQ for CPU, so fewer
 * frames per task is what moves throughput. Acks requested during one turn of
 * the event loop are flushed together: the longest run of settled tags at the
 * front of the channel's outstanding deliveries goes out as a single
 * `basic.ack(multiple=true)`; acks behind a still-held delivery (an ETA task
 * waiting, a task still running under acks_late) go out one by one, because a
 * `multiple` ack would also settle the held ones.
 *
 * Rejects are never batched: they are sent at once, individually.
 */

/** The subset of an amqplib channel the batcher uses. */
export interface AckTarget {
  ack(message: { fields: { deliveryTag: number } }, allUpTo?: boolean): void;
  nack(message: { fields: { deliveryTag: number } }, allUpTo?: boolean, requeue?: boolean): void;
}

const HELD = 0;
const ACK = 1;
const SETTLED = 2;

export class AckBatcher {
  /** Delivery tags in arrival order (tags only grow on a channel); `head` is the first unsettled. */
  private order: number[] = [];
  private head = 0;
  private readonly state = new Map<number, number>();
  private pending: number[] = [];
  private scheduled = false;
  private dead = false;

  constructor(private readonly channel: AckTarget) {}

  /**
   * The channel is gone: forget everything. RabbitMQ has already requeued
   * every delivery that was not acked, so there is nothing left to settle
   * (and amqplib throws on a closed channel).
   */
  discard(): void {
    this.dead = true;
    this.pending = [];
    this.state.clear();
  }

  /** Sends one frame; false if the channel closed under us (then everything is discarded). */
  private send(frame: () => void): boolean {
    try {
      frame();
      return true;
    } catch {
      this.discard();
      return false;
    }
  }

  /** Registers a delivery as outstanding. Call for every delivery, in order. */
  track(tag: number): void {
    if (this.dead) return;
    this.order.push(tag);
    this.state.set(tag, HELD);
  }

  /** Number of deliveries not yet settled (held or waiting for a flush). */
  get outstanding(): number {
    return this.state.size;
  }

  ack(tag: number): void {
    if (this.state.get(tag) !== HELD) return; // already settled: acking twice would close the channel
    this.state.set(tag, ACK);
    this.pending.push(tag);
    this.schedule();
  }

  reject(tag: number, requeue: boolean): void {
    if (this.state.get(tag) !== HELD) return;
    this.state.set(tag, SETTLED);
    if (!this.send(() => this.channel.nack({ fields: { deliveryTag: tag } }, false, requeue))) return;
    this.schedule(); // only flush() advances the prefix, so queued acks are never skipped
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => this.flush());
  }

  /** Sends every pending ack now. */
  flush(): void {
    this.scheduled = false;
    if (this.dead) return;
    const lastInRun = this.advance();
    if (lastInRun >= 0 && !this.send(() => this.channel.ack({ fields: { deliveryTag: lastInRun } }, true))) return;
    for (const tag of this.pending) {
      if (this.state.get(tag) === ACK) {
        if (!this.send(() => this.channel.ack({ fields: { deliveryTag: tag } }, false))) return;
        this.state.set(tag, SETTLED);
      }
    }
    this.pending = [];
    this.advance();
  }

  /**
   * Drops the settled prefix; returns the highest ACK tag in it (to be sent
   * as a multiple ack) or -1.
   */
  private advance(): number {
    let last = -1;
    while (this.head < this.order.length) {
      const tag = this.order[this.head]!;
      const s = this.state.get(tag);
      if (s === HELD) break;
      if (s === ACK) last = tag;
      this.state.delete(tag);
      this.head++;
    }
    if (this.head > 4096 && this.head * 2 > this.order.length) {
      this.order = this.order.slice(this.head);
      this.head = 0;
    }
    return last;
  }
}
