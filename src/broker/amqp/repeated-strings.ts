/**
 * What a delivery keeps while it waits for a slot, made smaller by sharing the strings that repeat.
 *
 * Why: with the default prefetch (`-c 1000` × 4) a worker holds thousands of deliveries, and each
 * one outlives two young-generation collections, so V8 copies it twice and promotes it to the old
 * generation, where it dies. That copying and the full collections it brings were a quarter of a
 * no-op task's CPU, and the promoted garbage most of a drain's peak RSS (issue #19). amqplib decodes
 * every string of every delivery afresh: the consumer tag, the routing key, `application/json`,
 * `utf-8`, the task name, `lang: 'py'`, the producer's `origin`, `kwargsrepr: '{}'`... A string equal
 * to the one the previous delivery had is replaced with that previous string, so the fresh copy
 * dies young (costing nothing to collect) and thousands of held deliveries share one.
 *
 * Only values are replaced, by equal strings (and `timelimit` by an equal array that takes less room): what a task, `request.properties`, a parked or
 * retried message sees is unchanged. Values that differ per message (ids, `argsrepr`) are not
 * compared, except `root_id` and the correlation id against the task id, which they usually equal.
 */

/** Header values that tend to repeat from one message to the next. */
const REPEATING_HEADERS = ['lang', 'task', 'shadow', 'origin', 'kwargsrepr', 'root_id', 'parent_id', 'group'] as const;

/** Slots for the delivery's own strings, after the headers'. */
const EXCHANGE = REPEATING_HEADERS.length;
const ROUTING_KEY = EXCHANGE + 1;
const CONSUMER_TAG = EXCHANGE + 2;
const CONTENT_TYPE = EXCHANGE + 3;
const CONTENT_ENCODING = EXCHANGE + 4;

/** The last value seen in each slot, per consumer (one delivery stream). */
export class RepeatedStrings {
  private readonly last: Array<string | undefined> = new Array<string | undefined>(CONTENT_ENCODING + 1).fill(undefined);

  /** `value`, or the equal string the previous delivery had in this slot. */
  private share(slot: number, value: string): string {
    const prev = this.last[slot];
    if (prev === value) return prev;
    this.last[slot] = value;
    return value;
  }

  /** Replaces repeating header values with shared equal strings (in place: the table is this delivery's own). */
  headers(h: Record<string, unknown>): void {
    for (let i = 0; i < REPEATING_HEADERS.length; i++) {
      const key = REPEATING_HEADERS[i]!;
      const v = h[key];
      if (typeof v === 'string') h[key] = this.share(i, v);
    }
    // A workflow's first task is its own root: one string for both.
    const id = h.id;
    if (typeof id === 'string' && h.root_id === id) h.root_id = id;
    // amqplib builds a field array by push(), which reserves 17 slots: `timelimit` ([hard, soft])
    // kept 184 bytes instead of 64. An exact-size copy, equal element for element.
    const tl = h.timelimit;
    if (Array.isArray(tl) && tl.length === 2) h.timelimit = [tl[0], tl[1]];
  }

  exchange(v: string): string {
    return this.share(EXCHANGE, v);
  }

  routingKey(v: string): string {
    return this.share(ROUTING_KEY, v);
  }

  consumerTag(v: string): string {
    return this.share(CONSUMER_TAG, v);
  }

  contentType(v: string | undefined): string | undefined {
    return v === undefined ? v : this.share(CONTENT_TYPE, v);
  }

  contentEncoding(v: string | undefined): string | undefined {
    return v === undefined ? v : this.share(CONTENT_ENCODING, v);
  }
}
