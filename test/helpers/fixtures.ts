/** Golden fixtures captured from real Python Celery (see test/fixtures/*\/README.md). */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures');

/** A captured AMQP message. */
export interface MessageFixture {
  _note?: string;
  properties: Record<string, unknown>;
  headers: Record<string, unknown>;
  header_amqp_types: Record<string, string>;
  body_raw: string | null;
  body_base64: string | null;
  body_decoded: unknown;
  delivery_info?: { exchange: string; routing_key: string; redelivered: boolean };
}

/** Reads `test/fixtures/<version>/<name>.json`. */
export function fixture<T = MessageFixture>(name: string, version = 'celery-5.2.6'): T {
  return JSON.parse(readFileSync(join(FIXTURES, version, `${name}.json`), 'utf8')) as T;
}

/** The body bytes of a message fixture. */
export function fixtureBody(f: MessageFixture): Buffer {
  if (f.body_base64) return Buffer.from(f.body_base64, 'base64');
  return Buffer.from(f.body_raw ?? '', 'utf8');
}

const require = createRequire(import.meta.url);
const codec = require(join(dirname(require.resolve('amqplib')), 'lib', 'codec.js')) as {
  encodeTable(buffer: Buffer, table: Record<string, unknown>, offset: number): number;
};

function readTag(buf: Buffer, offset: number): [string, number] {
  const tag = String.fromCharCode(buf[offset]!);
  let o = offset + 1;
  const sizes: Record<string, number> = { b: 1, B: 1, s: 2, u: 2, U: 2, I: 4, i: 4, l: 8, L: 8, f: 4, d: 8, t: 1, V: 0, T: 8, D: 5 };
  if (tag in sizes) return [tag, o + sizes[tag]!];
  const len = buf.readUInt32BE(o);
  o += 4;
  if (tag === 'A') {
    const end = o + len;
    const inner: string[] = [];
    while (o < end) {
      const [t, next] = readTag(buf, o);
      inner.push(t);
      o = next;
    }
    return [`A[${inner.join(',')}]`, end];
  }
  return [tag, o + len];
}

/**
 * Encodes a header table with amqplib's own codec and returns the AMQP type
 * tag of each value, in the notation of the fixtures' `header_amqp_types`.
 */
export function amqpTypesOf(table: Record<string, unknown>): Record<string, string> {
  const buf = Buffer.alloc(65536);
  const size = codec.encodeTable(buf, table, 0);
  const out: Record<string, string> = {};
  let o = 4; // table length prefix
  while (o < size) {
    const keyLen = buf.readUInt8(o);
    const key = buf.toString('utf8', o + 1, o + 1 + keyLen);
    o += 1 + keyLen;
    const [tag, next] = readTag(buf, o);
    out[key] = tag;
    o = next;
  }
  return out;
}
