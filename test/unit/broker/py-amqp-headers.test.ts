/**
 * py-amqp's header tables through amqplib: real amqplib, a real loopback TCP connection
 * (decoder-check.ts's server), and bytes captured from py-amqp 5.4.2.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { checkHeaderDecoder, decodeThroughAmqplib, TESTED_AMQPLIB } from '../../../src/broker/amqp/decoder-check.js';
import { FrameRewriter } from '../../../src/broker/amqp/py-amqp-headers.js';
import { decodeAmqpTable } from '../../../src/protocol/amqp-headers.js';

const amqplib = createRequire(import.meta.url)('amqplib') as typeof import('amqplib');
const FIXTURE = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'fixtures', 'celery-5.7', 'py_amqp_header_table.json');
const captured = JSON.parse(readFileSync(FIXTURE, 'utf8')) as { table_hex: string; tags: Record<string, string>; py_amqp_reads: Record<string, unknown> };

const u32 = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
};
const key = (k: string): Buffer => Buffer.concat([Buffer.from([k.length]), Buffer.from(k)]);
const table = (...entries: Buffer[]): Buffer => Buffer.concat(entries);

function frame(type: number, payload: Buffer): Buffer {
  const head = Buffer.alloc(7);
  head[0] = type;
  head.writeUInt16BE(1, 1);
  head.writeUInt32BE(payload.length, 3);
  return Buffer.concat([head, payload, Buffer.from([0xce])]);
}

/** A content-header frame with content-type, headers and delivery-mode, as Celery sends them. */
function contentHeader(headers: Buffer): Buffer {
  const size = Buffer.alloc(12);
  size.writeUInt16BE(60, 0);
  size.writeBigUInt64BE(10n, 4);
  const flags = Buffer.from([0x80 | 0x20 | 0x10, 0]);
  const contentType = Buffer.concat([Buffer.from([16]), Buffer.from('application/json')]);
  return frame(2, Buffer.concat([size, flags, contentType, u32(headers.length), headers, Buffer.from([2])]));
}

describe('py-amqp header tables through amqplib', () => {
  it('reads a table py-amqp 5.4.2 wrote (64-bit ints as L) as py-amqp reads it', async () => {
    expect(captured.tags.big).to.equal('L'); // the fixture holds what amqplib alone cannot read
    const headers = decodeAmqpTable(await decodeThroughAmqplib(amqplib, Buffer.from(captured.table_hex, 'hex')));
    const expected = { ...captured.py_amqp_reads };
    expect(headers.price).to.equal(Number(expected.price));
    expect((headers.when as Date).getTime()).to.equal((expected.when as number) * 1000);
    delete expected.price;
    delete expected.when;
    delete headers.price;
    delete headers.when;
    expect(headers).to.deep.equal(expected);
  });

  it('is what makes it readable: amqplib alone drops the connection on it', async () => {
    let error: unknown;
    try {
      await decodeThroughAmqplib(amqplib, Buffer.from(captured.table_hex, 'hex'), 2_000, { install: false });
    } catch (err) {
      error = err;
    }
    expect(String(error)).to.match(/Unexpected type tag "L"/);
  });

  it("reads D digits unsigned, as AMQP 0-9-1, RabbitMQ and amqplib do, and U as a signed 16-bit int", async () => {
    const d = Buffer.concat([Buffer.from('D'), Buffer.from([2]), u32(3_000_000_000)]);
    const headers = decodeAmqpTable(await decodeThroughAmqplib(amqplib, table(key('d'), d, key('u'), Buffer.from([0x55, 0xff, 0xfe]))));
    expect(headers).to.deep.equal({ d: 30_000_000, u: -2 });
  });

  it('ends a table at a tag nobody knows, keeps what came before it and the rest of the frame', async () => {
    const headers = await decodeThroughAmqplib(
      amqplib,
      table(key('id'), Buffer.from('S'), u32(2), Buffer.from('ok'), key('odd'), Buffer.from('Z\x01\x02\x03', 'latin1'), key('lost'), Buffer.from('t\x01', 'latin1')),
    );
    expect(headers).to.deep.equal({ id: 'ok', odd: { '!': 'unknown', value: 'Z' } });
  });

  it('marks a table whose lengths run past its end instead of dropping the connection', async () => {
    const inner = table(key('s'), Buffer.from('S'), u32(1000), Buffer.from('short'));
    const headers = await decodeThroughAmqplib(amqplib, table(key('a'), Buffer.from('I'), u32(7), key('nested'), Buffer.from('F'), u32(inner.length), inner));
    expect(headers).to.deep.equal({ a: 7, nested: { s: { '!': 'malformed' } } });
  });

  it('passes the start-up self-check with the installed amqplib', async () => {
    await checkHeaderDecoder(amqplib);
  });
});

describe('FrameRewriter', () => {
  const withL = table(key('big'), Buffer.from('L'), Buffer.from([0, 0, 1, 0, 0, 0, 0, 0]), key('after'), Buffer.from('S'), u32(2), Buffer.from('ok'));
  const withUnknown = table(key('x'), Buffer.from('Z'), Buffer.from([1, 2, 3]));
  const stream = Buffer.concat([
    frame(1, Buffer.from([0, 60, 0, 60, 1, 2, 3])), // a method frame
    contentHeader(withL),
    frame(3, Buffer.from('0123456789')),
    frame(8, Buffer.alloc(0)), // heartbeat
    contentHeader(withUnknown), // grows: the value becomes a marker table
    frame(3, Buffer.from('0123456789')),
  ]);
  const whole = Buffer.concat(new FrameRewriter().feed(Buffer.from(stream)));

  it('rewrites L in place and an unknown tag into a marker, leaving every other byte alone', () => {
    expect(whole.length).to.be.greaterThan(stream.length);
    expect(whole.includes(Buffer.from('L\x00\x00\x01', 'latin1'))).to.equal(false);
    expect(whole.includes(Buffer.from('l\x00\x00\x01', 'latin1'))).to.equal(true);
    expect(whole.subarray(0, 15)).to.deep.equal(stream.subarray(0, 15));
    expect(whole.subarray(-18)).to.deep.equal(stream.subarray(-18));
  });

  it('gives the same bytes however the socket splits them', () => {
    for (let at = 1; at < stream.length; at++) {
      const rewriter = new FrameRewriter();
      const out = [...rewriter.feed(Buffer.from(stream.subarray(0, at))), ...rewriter.feed(Buffer.from(stream.subarray(at)))];
      expect(Buffer.concat(out), `split at ${at}`).to.deep.equal(whole);
      expect(rewriter.frames).to.equal(6);
    }
    const rewriter = new FrameRewriter();
    const bytewise = [...stream].flatMap((byte) => rewriter.feed(Buffer.from([byte])));
    expect(Buffer.concat(bytewise)).to.deep.equal(whole);
  });
});

describe('FrameRewriter on a stream that is not AMQP frames', () => {
  it('stops rewriting at the first frame without its end octet and passes every byte on', () => {
    const broken = Buffer.from(frame(1, Buffer.from([0, 60, 0, 60])));
    broken[broken.length - 1] = 0x00;
    const after = contentHeader(table(key('big'), Buffer.from('L'), Buffer.alloc(8)));
    const rewriter = new FrameRewriter();
    const out = Buffer.concat([...rewriter.feed(Buffer.from(broken)), ...rewriter.feed(Buffer.from(after))]);
    expect(rewriter.lost).to.equal(true);
    expect(out).to.deep.equal(Buffer.concat([broken, after]));
  });
});

describe('the amqplib range', () => {
  it('package.json pins the range the decoder is tested with', () => {
    const pkg = JSON.parse(readFileSync(join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'package.json'), 'utf8')) as { dependencies: Record<string, string> };
    expect(pkg.dependencies.amqplib).to.equal(TESTED_AMQPLIB);
  });
});
