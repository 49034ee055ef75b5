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
  /**
   * Delivery tags in arrival order (tags only grow on a channel) and each one's state, side by
   * side; `head` is the first not yet dropped. Two arrays rather than a Map: up to the prefetch
   * count of deliveries are tracked at once, and a Map entry per delivery (set, read, deleted)
   * cost hash-table work and old-generation garbage on every task.
   */
  private tags: number[] = [];
  private states: number[] = [];
  private head = 0;
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
    this.tags = [];
    this.states = [];
    this.head = 0;
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
    this.tags.push(tag);
    this.states.push(HELD);
  }

  /** Number of deliveries not yet settled (held or waiting for a flush). */
  get outstanding(): number {
    return this.tags.length - this.head;
  }

  /** Where `tag` is in `tags` (from `head`), or -1 when it is not tracked (any more). */
  private indexOf(tag: number): number {
    const { tags, head } = this;
    if (head >= tags.length) return -1;
    // RabbitMQ numbers a channel's deliveries 1, 2, 3...: the tag's offset from the first is its place.
    const guess = head + (tag - tags[head]!);
    if (guess >= head && guess < tags.length && tags[guess] === tag) return guess;
    // Gaps (tags are only promised to grow): binary search.
    let lo = head;
    let hi = tags.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      const t = tags[mid]!;
      if (t === tag) return mid;
      if (t < tag) lo = mid + 1;
      else hi = mid - 1;
    }
    return -1;
  }

  ack(tag: number): void {
    const i = this.indexOf(tag);
    if (i < 0 || this.states[i] !== HELD) return; // already settled: acking twice would close the channel
    this.states[i] = ACK;
    this.pending.push(tag);
    this.schedule();
  }

  reject(tag: number, requeue: boolean): void {
    const i = this.indexOf(tag);
    if (i < 0 || this.states[i] !== HELD) return;
    this.states[i] = SETTLED;
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
      const i = this.indexOf(tag);
      if (i >= 0 && this.states[i] === ACK) {
        if (!this.send(() => this.channel.ack({ fields: { deliveryTag: tag } }, false))) return;
        this.states[i] = SETTLED;
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
    const { tags, states } = this;
    while (this.head < tags.length) {
      const s = states[this.head]!;
      if (s === HELD) break;
      if (s === ACK) last = tags[this.head]!;
      this.head++;
    }
    if (this.head > 4096 && this.head * 2 > tags.length) {
      this.tags = tags.slice(this.head);
      this.states = states.slice(this.head);
      this.head = 0;
    }
    return last;
  }
}
