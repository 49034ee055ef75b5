/**
 * The start-up self-check of the py-amqp header decoder (`py-amqp-headers.ts`).
 *
 * The decoder depends on how amqplib reads its socket, which is not amqplib's API. So before
 * the first connection, ts-celery proves it works with the amqplib that is installed: a
 * loopback AMQP server on 127.0.0.1 (the few frames amqplib needs, nothing more) hands amqplib
 * a message whose headers use every py-amqp tag amqplib cannot read alone, and the check
 * compares what amqplib decoded with what py-amqp meant. Once per process, a few milliseconds.
 * If it fails, connecting fails with a {@link HeaderDecoderError} that says what to install,
 * instead of a worker that dies on the first message from Python.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { dirname, join } from 'node:path';
import type { ChannelModel } from 'amqplib';
import { HeaderDecoderError } from '../../errors.js';
import { installHeaderDecoder } from './py-amqp-headers.js';

type Amqplib = typeof import('amqplib');

/** The amqplib versions the decoder was tested with: keep in step with package.json. */
export const TESTED_AMQPLIB = '~2.3.1';

const PROTOCOL_HEADER = Buffer.from('AMQP\x00\x00\x09\x01', 'latin1');

function frame(type: number, channel: number, payload: Buffer): Buffer {
  const head = Buffer.alloc(7);
  head.writeUInt8(type, 0);
  head.writeUInt16BE(channel, 1);
  head.writeUInt32BE(payload.length, 3);
  return Buffer.concat([head, payload, Buffer.from([0xce])]);
}

function method(channel: number, classId: number, methodId: number, ...args: Buffer[]): Buffer {
  const ids = Buffer.alloc(4);
  ids.writeUInt16BE(classId, 0);
  ids.writeUInt16BE(methodId, 2);
  return frame(1, channel, Buffer.concat([ids, ...args]));
}

const uint = (bytes: number, n: number | bigint): Buffer => {
  const b = Buffer.alloc(bytes);
  if (bytes === 8) b.writeBigUInt64BE(BigInt(n));
  else if (bytes === 4) b.writeUInt32BE(Number(n));
  else if (bytes === 2) b.writeUInt16BE(Number(n));
  else b.writeUInt8(Number(n));
  return b;
};
const shortstr = (s: string): Buffer => Buffer.concat([uint(1, Buffer.byteLength(s)), Buffer.from(s)]);
const longstr = (s: string): Buffer => Buffer.concat([uint(4, Buffer.byteLength(s)), Buffer.from(s)]);

/**
 * Serves one amqplib connection: the handshake, channels, and a `basic.get` answered with
 * one message carrying `headers` (the raw bytes of a field table, without its length).
 */
function serve(socket: Socket, headers: Buffer): void {
  let buffered = Buffer.alloc(0);
  let greeted = false;
  socket.on('error', () => socket.destroy());
  socket.on('data', (data: Buffer) => {
    buffered = Buffer.concat([buffered, data]);
    if (!greeted) {
      if (buffered.length < PROTOCOL_HEADER.length) return;
      buffered = buffered.subarray(PROTOCOL_HEADER.length);
      greeted = true;
      // connection.start: version 0-9, no server properties, PLAIN
      socket.write(method(0, 10, 10, uint(1, 0), uint(1, 9), uint(4, 0), longstr('PLAIN'), longstr('en_US')));
    }
    while (buffered.length >= 7) {
      const size = buffered.readUInt32BE(3);
      if (buffered.length < size + 8) return;
      const type = buffered[0];
      const channel = buffered.readUInt16BE(1);
      const payload = buffered.subarray(7, 7 + size);
      buffered = buffered.subarray(size + 8);
      if (type !== 1) continue;
      const id = `${payload.readUInt16BE(0)}.${payload.readUInt16BE(2)}`;
      if (id === '10.11') socket.write(method(0, 10, 30, uint(2, 0), uint(4, 131072), uint(2, 0))); // tune
      else if (id === '10.40') socket.write(method(0, 10, 41, shortstr(''))); // open-ok
      else if (id === '20.10') socket.write(method(channel, 20, 11, longstr(''))); // channel.open-ok
      else if (id === '20.40') socket.write(method(channel, 20, 41)); // channel.close-ok
      else if (id === '10.50') socket.end(method(0, 10, 51)); // connection.close-ok
      else if (id === '60.70') {
        const body = Buffer.from('[[], {}, {}]');
        socket.write(
          Buffer.concat([
            // basic.get-ok: delivery tag, redelivered, exchange, routing key, message count
            method(channel, 60, 71, uint(8, 1), uint(1, 0), shortstr(''), shortstr('self-check'), uint(4, 0)),
            // content header: class 60, weight 0, body size, flags = headers only, the table
            frame(2, channel, Buffer.concat([uint(2, 60), uint(2, 0), uint(8, body.length), uint(2, 0x2000), uint(4, headers.length), headers])),
            frame(3, channel, body),
          ]),
        );
      }
    }
  });
}

/**
 * Connects amqplib to a loopback server through the decoder, as real connections are made,
 * and returns the headers amqplib decoded from `headers` (a field table's bytes).
 * `install: false` leaves the decoder out (to show what amqplib does alone).
 */
export async function decodeThroughAmqplib(
  amqplib: Amqplib,
  headers: Buffer,
  timeoutMs = 5_000,
  { install = true }: { install?: boolean } = {},
): Promise<Record<string, unknown>> {
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.setNoDelay(true);
    serve(socket, headers);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  let model: ChannelModel | null = null;
  let timer: NodeJS.Timeout | undefined;
  let lost: (err: Error) => void = () => undefined;
  try {
    const { port } = server.address() as AddressInfo;
    const run = async (): Promise<Record<string, unknown>> => {
      model = await amqplib.connect(`amqp://guest:guest@127.0.0.1:${port}`, { noDelay: true });
      // amqplib reports a frame it cannot parse by closing the connection, not by failing get().
      model.on('error', (err: Error) => lost(err));
      model.on('close', () => lost(new Error('amqplib closed the connection')));
      if (install) installHeaderDecoder(model);
      const channel = await model.createChannel();
      const message = await channel.get('self-check', { noAck: true });
      if (!message) throw new Error('the loopback server sent no message');
      return (message.properties.headers ?? {}) as Record<string, unknown>;
    };
    const timeout = new Promise<never>((_, reject) => {
      lost = reject;
      timer = setTimeout(() => reject(new Error(`amqplib decoded nothing within ${timeoutMs} ms`)), timeoutMs);
    });
    return await Promise.race([run(), timeout]);
  } finally {
    clearTimeout(timer);
    await (model as ChannelModel | null)?.close().catch(() => undefined);
    for (const socket of sockets) socket.destroy();
    server.close();
  }
}

function entry(key: string, value: Buffer): Buffer {
  return Buffer.concat([shortstr(key), value]);
}

/** What py-amqp writes for the check, and what it means in amqplib's terms. */
function checkTable(): { bytes: Buffer; expected: Record<string, unknown> } {
  const L = (n: bigint): Buffer => {
    const b = Buffer.alloc(9);
    b.write('L');
    b.writeBigInt64BE(n, 1);
    return b;
  };
  const U = (n: number): Buffer => {
    const b = Buffer.alloc(3);
    b.write('U');
    b.writeInt16BE(n, 1);
    return b;
  };
  const D = Buffer.concat([Buffer.from('D'), uint(1, 2), uint(4, 3_000_000_000)]);
  const inner = entry('big', L(-(2n ** 40n)));
  const list = Buffer.concat([L(2n ** 40n), U(-2)]);
  const bytes = Buffer.concat([
    entry('big', L(2n ** 40n)),
    entry('short', U(-2)),
    entry('price', D),
    entry('nested', Buffer.concat([Buffer.from('F'), uint(4, inner.length), inner])),
    entry('list', Buffer.concat([Buffer.from('A'), uint(4, list.length), list])),
    entry('odd', Buffer.from('Z\x01\x02', 'latin1')),
  ]);
  const expected = {
    big: 2 ** 40,
    short: -2,
    price: { '!': 'decimal', value: { places: 2, digits: 3_000_000_000 } },
    nested: { big: -(2 ** 40) },
    list: [2 ** 40, -2],
    odd: { '!': 'unknown', value: 'Z' },
  };
  return { bytes, expected };
}

function amqplibVersion(): string {
  try {
    const require = createRequire(import.meta.url);
    const pkg = JSON.parse(readFileSync(join(dirname(require.resolve('amqplib')), 'package.json'), 'utf8')) as { version?: string };
    return pkg.version ?? 'of unknown version';
  } catch {
    return 'of unknown version';
  }
}

let checked: Promise<void> | null = null;

/**
 * Proves, once per process, that amqplib reads py-amqp's header types through the decoder.
 * Rejects with a {@link HeaderDecoderError} otherwise.
 */
export function checkHeaderDecoder(amqplib: Amqplib): Promise<void> {
  checked ??= (async () => {
    const { bytes, expected } = checkTable();
    let detail: string;
    try {
      const got = await decodeThroughAmqplib(amqplib, bytes);
      if (JSON.stringify(got) === JSON.stringify(expected)) return;
      detail = `it decoded ${JSON.stringify(got)} where py-amqp meant ${JSON.stringify(expected)}`;
    } catch (err) {
      if (err instanceof HeaderDecoderError) throw err;
      const code = (err as { code?: string }).code;
      // No loopback interface to test on: nothing is known to be wrong, so do not block the worker.
      if (code === 'EADDRNOTAVAIL' || code === 'EACCES' || code === 'EPERM') return;
      detail = (err as Error).message ?? String(err);
    }
    throw new HeaderDecoderError(
      `ts-celery's py-amqp header decoder does not work with the installed amqplib ${amqplibVersion()} ` +
        `(ts-celery is tested with amqplib ${TESTED_AMQPLIB}): ${detail}. Headers Python Celery sends ` +
        `(64-bit integers) would close the connection. Install a tested version: npm install amqplib@${TESTED_AMQPLIB}`,
    );
  })();
  return checked;
}
