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

  /**
   * `headers` encoded for amqplib (as `encodeAmqpTable` does) into the reusable table for its
   * header names. Valid until the next call: pass it straight to `publish()`.
   */
  fill(headers: Record<string, unknown>): AmqpTable {
    const keys = Object.keys(headers);
    const shape = keys.join('\u0000');
    let table = this.byShape.get(shape);
    if (!table) {
      if (this.byShape.size >= MAX_SHAPES) this.byShape.clear();
      table = encodeAmqpTable(headers);
      this.byShape.set(shape, table);
      return table;
    }
    for (const key of keys) table[key] = encodeAmqpValue(headers[key]);
    return table;
  }
}
