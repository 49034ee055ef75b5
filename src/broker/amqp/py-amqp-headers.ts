/**
 * Reading py-amqp's header tables with amqplib, without touching amqplib's insides.
 *
 * py-amqp (every Python Celery producer) writes an int beyond 32 bits with the tag `L` and
 * reads `U` as a signed 16-bit int. Neither is in AMQP 0-9-1 as RabbitMQ and amqplib speak
 * it (they use `l` and `s` for the same widths and signedness), and amqplib 2.x throws
 * "Unexpected type tag" on them *while parsing the frame*: the whole connection dies, the
 * message is redelivered, and every TypeScript worker that receives it dies the same way
 * (a poison message at the connection level).
 *
 * So ts-celery rewrites the bytes before amqplib reads them. {@link FrameRewriter} follows the
 * frames arriving on the socket and, in every content-header frame, rewrites the `headers`
 * table in place: `L` becomes `l` and `U` becomes `s`, byte for byte. A tag nobody knows has
 * no known width, so the rest of its table cannot be read: the value becomes an
 * `{'!': 'unknown', value: tag}` table and the rest of that table is dropped, and a table whose
 * lengths run past its end gets an `{'!': 'malformed'}` marker the same way. The frame stays
 * readable, so the message reaches the worker, which runs it or rejects it as malformed;
 * the connection lives. Everything else, `D` decimals included (unsigned digits, as AMQP 0-9-1,
 * RabbitMQ and amqplib have them), amqplib decodes itself.
 *
 * The rewriter sits on the socket's readable side ({@link installHeaderDecoder}): every byte
 * amqplib reads passes through it, whatever way amqplib reads the stream. `decoder-check.ts`
 * proves at start-up that this is so for the installed amqplib.
 */
import { Readable } from 'node:stream';
import type { ChannelModel } from 'amqplib';
import { HeaderDecoderError } from '../../errors.js';

const FRAME_HEADER = 2; // AMQP content-header frame
const FRAME_END = 0xce;
const FRAME_OVERHEAD = 8; // type (1) + channel (2) + size (4) ... frame-end (1)
const BASIC_CLASS = 60;

const code = (c: string): number => c.charCodeAt(0);
const TAG_L = code('L');
const TAG_U = code('U');
const TAG_S = code('S');
const TAG_X = code('x');
const TAG_F = code('F');
const TAG_A = code('A');

/** Bytes after the tag for every fixed-width type amqplib reads (AMQP 0-9-1 with RabbitMQ's errata). */
const WIDTHS = new Int8Array(128).fill(-1);
for (const [tag, width] of Object.entries({ b: 1, B: 1, s: 2, u: 2, I: 4, i: 4, l: 8, f: 4, d: 8, t: 1, V: 0, T: 8, D: 5 })) {
  WIDTHS[code(tag)] = width;
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
}

function shortString(s: string): Buffer {
  return Buffer.concat([Buffer.from([Buffer.byteLength(s)]), Buffer.from(s)]);
}

function longString(s: string): Buffer {
  const bytes = Buffer.from(s, 'latin1');
  return Buffer.concat([Buffer.from('S'), u32(bytes.length), bytes]);
}

/** A field value `F{'!': kind[, value: tag]}`: what amqplib hands back for a value that cannot be read. */
function marker(kind: 'unknown' | 'malformed', tag?: number): Buffer {
  const entries = [shortString('!'), longString(kind)];
  if (tag !== undefined) entries.push(shortString('value'), longString(String.fromCharCode(tag)));
  const table = Buffer.concat(entries);
  return Buffer.concat([Buffer.from('F'), u32(table.length), table]);
}

/**
 * Rewrites a field table (or, with `array`, a field array) in `buf[start, end)` into what
 * amqplib reads. Same-width rewrites happen in place; returns null then, or the new bytes
 * of the whole table when a marker changed its size.
 */
export function rewriteFields(buf: Buffer, start: number, end: number, array = false): Buffer | null {
  let parts: Buffer[] | null = null; // only once the size changes
  let copied = start; // bytes before this are in `parts` already
  let offset = start;
  // Where the table is cut short, and the marker that replaces its rest. (Plain variables,
  // not a closure: this runs for every header table of every delivery.)
  let cutAt = -1;
  let cutValue: Buffer | null = null;
  while (offset < end) {
    const entry = offset;
    if (!array) offset += 1 + buf[offset]!; // the key: a short string
    if (offset >= end) {
      cutAt = entry;
      cutValue = array ? marker('malformed') : Buffer.concat([shortString('!'), marker('malformed')]);
      break;
    }
    const tagAt = offset;
    const tag = buf[offset++]!;
    // The value's bytes, after the tag:
    let width: number;
    if (tag === TAG_L) {
      buf[tagAt] = code('l'); // py-amqp's signed int64 = AMQP's `l`
      width = 8;
    } else if (tag === TAG_U) {
      buf[tagAt] = code('s'); // py-amqp's signed int16 = RabbitMQ's `s`
      width = 2;
    } else if (tag === TAG_S || tag === TAG_X || tag === TAG_F || tag === TAG_A) {
      if (offset + 4 > end) {
        cutAt = tagAt;
        cutValue = marker('malformed');
        break;
      }
      const length = buf.readUInt32BE(offset);
      if (offset + 4 + length > end) {
        cutAt = tagAt;
        cutValue = marker('malformed');
        break;
      }
      if (tag === TAG_F || tag === TAG_A) {
        const inner = rewriteFields(buf, offset + 4, offset + 4 + length, tag === TAG_A);
        if (inner) {
          parts ??= [];
          parts.push(buf.subarray(copied, offset), u32(inner.length), inner);
          copied = offset + 4 + length;
        }
      }
      width = 4 + length;
    } else {
      width = tag < 128 ? WIDTHS[tag]! : -1;
      if (width < 0) {
        cutAt = tagAt;
        cutValue = marker('unknown', tag);
        break;
      }
    }
    if (offset + width > end) {
      cutAt = tagAt;
      cutValue = marker('malformed');
      break;
    }
    offset += width;
  }
  if (cutValue) {
    parts ??= [];
    parts.push(buf.subarray(copied, cutAt), cutValue);
    copied = end;
  }
  if (!parts) return null;
  const done: Buffer[] = parts;
  if (copied < end) done.push(buf.subarray(copied, end));
  return Buffer.concat(done);
}

/**
 * Rewrites the headers table of a content-header frame's payload (`buf[start, end)`).
 * Returns null when done in place, or the new payload.
 */
function rewriteContentHeader(buf: Buffer, start: number, end: number): Buffer | null {
  // class-id (2), weight (2), body-size (8), property-flags (2), then the properties in order.
  if (end - start < 14 || buf.readUInt16BE(start) !== BASIC_CLASS) return null;
  const flags = buf.readUInt16BE(start + 12);
  if (!(flags & 0x2000)) return null; // no headers
  let offset = start + 14;
  if (flags & 0x8000) offset += 1 + buf[offset]!; // content-type
  if (flags & 0x4000) offset += 1 + buf[offset]!; // content-encoding
  if (offset + 4 > end) return null; // amqplib will report the broken frame itself
  const length = buf.readUInt32BE(offset);
  const tableStart = offset + 4;
  const tableEnd = tableStart + length;
  if (tableEnd > end) return null;
  const table = rewriteFields(buf, tableStart, tableEnd);
  if (!table) return null;
  return Buffer.concat([buf.subarray(start, offset), u32(table.length), table, buf.subarray(tableEnd, end)]);
}

/**
 * Follows the AMQP frames in a byte stream and rewrites the header tables of
 * content-header frames (see the module comment). Feed it the chunks as they arrive;
 * it returns the bytes to hand on. Other frames pass through uncopied; a content-header
 * frame split across chunks is held back until it is complete.
 */
export class FrameRewriter {
  /** Frames seen so far (counted once their 7-byte frame header is in). */
  frames = 0;
  /** The start of a frame whose frame header, or whose content-header payload, is incomplete. */
  private held: Buffer | null = null;
  /** Bytes of the current other frame still to pass through. */
  private passing = 0;
  /**
   * Set when a whole frame did not end in the frame-end octet: the stream is not what it seems
   * (it cannot happen on a connection amqplib parses), so everything passes through untouched
   * from then on and amqplib reports the broken stream itself.
   */
  lost = false;

  /** Takes the next chunk from the socket; returns what to pass on, in order. */
  feed(chunk: Buffer): Buffer[] {
    if (this.lost) return [chunk];
    const out: Buffer[] = [];
    let buf = chunk;
    if (this.held) {
      const held = this.held;
      this.held = null;
      if (held.length < 7) {
        buf = Buffer.concat([held, chunk]); // the frame header itself was split: rare
      } else {
        // A content-header frame: complete it from the head of the chunk, leave the rest uncopied.
        const need = FRAME_OVERHEAD + held.readUInt32BE(3) - held.length;
        if (chunk.length < need) {
          this.held = Buffer.concat([held, chunk]);
          return out;
        }
        const frame = Buffer.concat([held, chunk.subarray(0, need)]);
        if (frame[frame.length - 1] !== FRAME_END) return this.loseTrack([frame, chunk.subarray(need)]);
        out.push(this.rewriteFrame(frame, 0) ?? frame);
        buf = chunk.subarray(need);
      }
    }
    let offset = 0;
    if (this.passing > 0) {
      offset = Math.min(this.passing, buf.length);
      this.passing -= offset;
    }
    let copied = 0; // bytes of buf before this are in `out`
    while (offset < buf.length) {
      if (buf.length - offset < 7) {
        this.held = Buffer.from(buf.subarray(offset)); // a copy: the socket's chunk is handed on
        break;
      }
      this.frames++;
      const total = FRAME_OVERHEAD + buf.readUInt32BE(offset + 3);
      if (offset + total <= buf.length && buf[offset + total - 1] !== FRAME_END) {
        out.push(buf.subarray(copied));
        return this.loseTrack(out);
      }
      if (buf[offset] !== FRAME_HEADER) {
        // Method, body and heartbeat frames carry nothing to rewrite.
        if (offset + total > buf.length) this.passing = offset + total - buf.length;
        offset = Math.min(offset + total, buf.length);
        continue;
      }
      if (offset + total > buf.length) {
        this.held = Buffer.from(buf.subarray(offset));
        break;
      }
      const rewritten = this.rewriteFrame(buf, offset);
      if (rewritten) {
        if (offset > copied) out.push(buf.subarray(copied, offset));
        out.push(rewritten);
        copied = offset + total;
      }
      offset += total;
    }
    const end = this.held ? buf.length - this.held.length : buf.length;
    if (end > copied) out.push(buf.subarray(copied, end));
    return out;
  }

  private loseTrack(rest: Buffer[]): Buffer[] {
    this.lost = true;
    this.held = null;
    this.passing = 0;
    return rest;
  }

  /** The complete content-header frame at `buf[offset]`: null when rewritten in place, else the new frame. */
  private rewriteFrame(buf: Buffer, offset: number): Buffer | null {
    const size = buf.readUInt32BE(offset + 3);
    const payload = rewriteContentHeader(buf, offset + 7, offset + 7 + size);
    if (!payload) return null;
    const header = Buffer.from(buf.subarray(offset, offset + 7));
    header.writeUInt32BE(payload.length, 3);
    return Buffer.concat([header, payload, Buffer.from([FRAME_END])]);
  }
}

const INSTALLED = Symbol('ts-celery.headerDecoder');

/**
 * Puts a {@link FrameRewriter} in front of amqplib on an open connection. Bytes enter a
 * Node stream through `push()`; the rewriter takes them there, before any reader sees them.
 * Installed right after the handshake, when nothing is buffered (the broker sends nothing
 * unasked between `connection.open-ok` and the first channel).
 */
export function installHeaderDecoder(model: ChannelModel): FrameRewriter {
  const stream = (model.connection as unknown as { stream?: unknown }).stream;
  if (!(stream instanceof Readable)) {
    throw new HeaderDecoderError(
      'ts-celery cannot put its py-amqp header decoder in front of this amqplib: the connection ' +
        'has no readable socket stream where amqplib 2.3 keeps it',
    );
  }
  const existing = (stream as Readable & { [INSTALLED]?: FrameRewriter })[INSTALLED];
  if (existing) return existing;
  const rewriter = new FrameRewriter();
  const push = stream.push;
  stream.push = function pushThroughDecoder(this: Readable, chunk: unknown, encoding?: BufferEncoding): boolean {
    if (!Buffer.isBuffer(chunk)) return push.call(this, chunk, encoding);
    let more = true;
    for (const part of rewriter.feed(chunk)) more = push.call(this, part);
    return more;
  };
  Object.defineProperty(stream, INSTALLED, { value: rewriter });
  return rewriter;
}
