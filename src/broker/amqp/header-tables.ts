/**
 * Header tables handed to amqplib's `publish()`, reused from one publish to the next.
 *
 * Why: amqplib's `publish()` wraps the headers as `Object.create(options.headers)` (to add CC/BCC)
 * and encodes that. Making a fresh object the prototype of another is slow in V8 (the object is
 * turned into a prototype, and the lookups and `for...in` over it cannot use the caches of a
 * stable prototype): with a new header table per message, amqplib's encoding cost `delay()` about
 * 25 µs of CPU per call on a 2-core VM, a third of the call. A table that stays the same object
 * costs nothing of that, which is why a raw amqplib publisher that reuses its properties is fast.
 *
 * Reuse is safe because amqplib encodes the frames synchronously inside `publish()`: once it
 * returns, the table is not read again, so the next publish may overwrite it. Each table belongs to
 * one set of header names in one order (the order is the wire order): the same 16 Celery headers
 * fill the same object every time; a message with other headers gets a table of its own.
 */
import { encodeAmqpTable, encodeAmqpValue, type AmqpTable } from '../../protocol/amqp-headers.js';

/** Distinct header-name lists kept; past this (many different custom headers) the cache starts over. */
const MAX_SHAPES = 64;

export class HeaderTables {
  private readonly byShape = new Map<string, AmqpTable>();
  /** The header names of the last call and their table: nearly every publish has the same ones. */
  private lastKeys: string[] = [];
  private lastTable: AmqpTable | null = null;

  /**
   * `headers` encoded for amqplib (as `encodeAmqpTable` does) into the reusable table for its
   * header names. Valid until the next call: pass it straight to `publish()`.
   */
  fill(headers: Record<string, unknown>): AmqpTable {
    const last = this.lastKeys;
    const table = this.lastTable;
    // Same names in the same order as the last call (compared without building the shape string):
    // overwrite the values in place.
    if (table) {
      let i = 0;
      let same = true;
      for (const key in headers) {
        if (last[i] !== key) {
          same = false;
          break;
        }
        i++;
      }
      if (same && i === last.length) {
        for (const key of last) table[key] = encodeHeaderValue(headers[key]);
        return table;
      }
    }
    const keys = Object.keys(headers);
    const shape = keys.join('\u0000');
    let found = this.byShape.get(shape);
    if (!found) {
      if (this.byShape.size >= MAX_SHAPES) this.byShape.clear();
      found = encodeAmqpTable(headers);
      this.byShape.set(shape, found);
    } else {
      for (const key of keys) found[key] = encodeHeaderValue(headers[key]);
    }
    this.lastKeys = keys;
    this.lastTable = found;
    return found;
  }
}

/** amqplib's typed form of small integers, shared (amqplib only reads them): no object per header. */
const SMALL_INTS: ReadonlyArray<Readonly<{ '!': 'int'; value: number }>> = Array.from({ length: 1024 }, (_, value) =>
  Object.freeze({ '!': 'int' as const, value }),
);

/**
 * {@link encodeAmqpValue}, without allocating for the values a Celery message carries on every
 * publish: strings, null, booleans, small integers (`retries`) and arrays of those (`timelimit`).
 */
function encodeHeaderValue(v: unknown): unknown {
  switch (typeof v) {
    case 'string':
    case 'boolean':
      return v;
    case 'number':
      return Number.isInteger(v) && v >= 0 && v < SMALL_INTS.length ? SMALL_INTS[v] : encodeAmqpValue(v);
    case 'object':
      if (v === null) return null;
      if (Array.isArray(v) && v.every(isPlainScalar)) return v;
      return encodeAmqpValue(v);
    default:
      return encodeAmqpValue(v);
  }
}

/** Needs no typing for amqplib: a string, boolean or null. */
function isPlainScalar(v: unknown): boolean {
  return v === null || typeof v === 'string' || typeof v === 'boolean';
}
