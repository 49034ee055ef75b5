/**
 * AMQP field-table typing for Celery headers.
 *
 * amqplib encodes a plain JS integer with the smallest signed type (`b`, `s`),
 * but py-amqp, which every Python Celery process uses, reads `b` as unsigned and
 * `s` as a short *string*: `retries: 200` or `timelimit: [300, 200]` sent as
 * plain numbers makes the frame unparseable and the Python worker loops on it
 * (PROTOCOL.md pitfall 1). So every integer goes out as 32-bit signed `I`, or as
 * 64-bit `l` when it does not fit, which py-amqp reads as unsigned; negative
 * values beyond int32 go as doubles.
 *
 * On the way in, amqplib hands back `T`/`D` values as `{'!': type, value}`;
 * they are turned into a Date and a number.
 */

/** A header value as the transport-neutral message carries it. */
export type HeaderValue =
  | string
  | number
  | boolean
  | null
  | Date
  | HeaderValue[]
  | { [key: string]: HeaderValue };

/** A header table as handed to amqplib (integers carry amqplib's type trapdoor). */
export type AmqpTable = Record<string, unknown>;

const INT32_MIN = -(2 ** 31);
const INT32_MAX = 2 ** 31 - 1;

/** One header value encoded for amqplib (see {@link encodeAmqpTable}). */
export function encodeAmqpValue(v: unknown): unknown {
  if (typeof v === 'number') {
    if (!Number.isInteger(v)) return v; // amqplib sends non-integers as doubles ('d')
    if (v >= INT32_MIN && v <= INT32_MAX) return { '!': 'int', value: v };
    if (v > 0 && Number.isSafeInteger(v)) return { '!': 'long', value: v };
    return { '!': 'double', value: v };
  }
  if (v instanceof Date) return { '!': 'timestamp', value: Math.floor(v.getTime() / 1000) };
  if (Array.isArray(v)) return v.map(encodeAmqpValue);
  if (v !== null && typeof v === 'object') return encodeAmqpTable(v as Record<string, unknown>);
  if (v === undefined) return null;
  return v;
}

/** Encodes headers for amqplib so that py-amqp decodes every value correctly. */
export function encodeAmqpTable(headers: Record<string, unknown>): AmqpTable {
  const out: AmqpTable = {};
  for (const key of Object.keys(headers)) out[key] = encodeAmqpValue(headers[key]);
  return out;
}

function decodeValue(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(decodeValue);
  if (v !== null && typeof v === 'object') {
    if (Buffer.isBuffer(v)) return v.toString('utf8');
    const typed = v as { '!'?: unknown; value?: unknown };
    if (typed['!'] === 'timestamp' && typeof typed.value === 'number') return new Date(typed.value * 1000);
    if (typed['!'] === 'decimal' && typed.value && typeof typed.value === 'object') {
      const { places, digits } = typed.value as { places: number; digits: number };
      return digits / 10 ** places;
    }
    return decodeAmqpTable(v as Record<string, unknown>);
  }
  return v;
}

/** True when a decoded value holds something to convert (a typed marker or bytes). */
function needsDecoding(v: unknown): boolean {
  if (v === null || typeof v !== 'object') return false;
  if (Array.isArray(v)) {
    for (const item of v) if (needsDecoding(item)) return true;
    return false;
  }
  if (Buffer.isBuffer(v) || '!' in v) return true;
  for (const key in v) if (needsDecoding((v as Record<string, unknown>)[key])) return true;
  return false;
}

/**
 * Turns an amqplib-decoded table into plain JS values. Celery's headers
 * rarely hold anything to convert, so the table is returned as it is then
 * (it is a fresh object per message); only tables with markers are copied.
 */
export function decodeAmqpTable(table: Record<string, unknown> | undefined): Record<string, unknown> {
  if (!table) return {};
  for (const key in table) {
    if (needsDecoding(table[key])) {
      const out: Record<string, unknown> = {};
      for (const k of Object.keys(table)) out[k] = decodeValue(table[k]);
      return out;
    }
  }
  return table;
}
