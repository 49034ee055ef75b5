/**
 * Opening one AMQP connection: kombu's URL rules, TCP_NODELAY, heartbeats,
 * TLS, and errors that say what to do.
 */
import { createRequire } from 'node:module';
import type { ChannelModel, Options } from 'amqplib';
import { checkHeaderDecoder } from './decoder-check.js';
import { installHeaderDecoder } from './py-amqp-headers.js';
import { batchSocketWrites } from './write-batching.js';
import { BrokerError } from '../../errors.js';
import type { TlsOptions } from '../../app/config.js';
import { tlsConnectOptions } from '../../support/tls.js';
import { maskUrl, safeCause } from '../../support/url.js';
import { VERSION } from '../../support/version.js';

export interface AmqpConnectOptions {
  url: string;
  /** Seconds between AMQP heartbeats (Celery's `broker_heartbeat`, default 120); 0 disables. */
  heartbeat: number;
  /** Seconds to wait for the TCP/TLS connection and the AMQP handshake. */
  connectTimeout: number;
  /** `broker_use_ssl`: TLS options for `amqps://` (true = system CAs). */
  tls?: TlsOptions | boolean | null;
  /** Shown in RabbitMQ's management UI and `rabbitmqctl list_connections`. */
  connectionName: string;
}

/**
 * Parses an AMQP URL the way kombu does: `amqp://user:pass@host:port/vhost`,
 * where the vhost is the URL-decoded path after the first `/` and an empty
 * path (or `//`) means `/`.
 */
export function parseAmqpUrl(url: string): Options.Connect {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new BrokerError(`Invalid broker URL ${JSON.stringify(maskUrl(url))}: expected amqp://user:password@host:port/vhost`);
  }
  const protocol = parsed.protocol.replace(/:$/, '');
  if (protocol !== 'amqp' && protocol !== 'amqps') {
    throw new BrokerError(`Unsupported broker URL scheme ${protocol}:// in ${maskUrl(url)}: use amqp:// or amqps://`);
  }
  const rawPath = parsed.pathname.replace(/^\//, '');
  const vhost = rawPath === '' ? '/' : decodeURIComponent(rawPath);
  return {
    protocol,
    hostname: parsed.hostname.replace(/^\[|\]$/g, '') || 'localhost',
    port: parsed.port ? Number(parsed.port) : protocol === 'amqps' ? 5671 : 5672,
    username: parsed.username ? decodeURIComponent(parsed.username) : 'guest',
    password: parsed.password ? decodeURIComponent(parsed.password) : parsed.username ? '' : 'guest',
    vhost,
    frameMax: 131_072,
  };
}

/** Turns a low-level connection failure into an error that says what to check. */
export function describeConnectError(err: unknown, url: string): BrokerError {
  const masked = maskUrl(url);
  const e = err as { code?: string | number; message?: string };
  const msg = String(e?.message ?? err);
  let hint: string;
  if (e?.code === 'ECONNREFUSED') hint = `RabbitMQ refused the connection at ${masked}: is it running?`;
  else if (e?.code === 'ENOTFOUND' || e?.code === 'EAI_AGAIN') hint = `Cannot resolve the broker host in ${masked}: check the host name`;
  else if (e?.code === 'ETIMEDOUT' || /ETIMEDOUT|timed? ?out/i.test(msg)) hint = `Timed out connecting to ${masked}: is the host reachable and the port right?`;
  else if (/ACCESS[-_]REFUSED|403/.test(msg)) hint = `RabbitMQ refused the login at ${masked}: check the user name and password`;
  else if (/NOT[-_]ALLOWED|vhost|530/.test(msg)) hint = `RabbitMQ refused access to the virtual host in ${masked}: does it exist, and may this user use it?`;
  else if (/ECONNRESET|socket hang up|closed/i.test(msg)) hint = `The connection to ${masked} was closed during the handshake: is this an AMQP port (and TLS matching amqp/amqps)?`;
  else hint = `Cannot connect to the broker at ${masked}`;
  return new BrokerError(`${hint} (${msg.replace(url, masked)})`, { cause: safeCause(err) });
}

type Amqplib = typeof import('amqplib');
let amqplibModule: Amqplib | null = null;

/** amqplib, loaded on first use: `import 'ts-celery'` stays quick for code that only sends to memory://. */
function amqplib(): Amqplib {
  amqplibModule ??= createRequire(import.meta.url)('amqplib') as Amqplib;
  return amqplibModule;
}

/**
 * Opens one connection (no retries: callers decide their retry policy), with the py-amqp
 * header decoder in front of amqplib (checked once per process before the first connection).
 */
export async function openAmqpConnection(opts: AmqpConnectOptions): Promise<ChannelModel> {
  const lib = amqplib();
  // The check runs beside the first connection attempt: it costs no start-up time.
  const checked = checkHeaderDecoder(lib);
  checked.catch(() => undefined); // awaited below on every path
  const target = parseAmqpUrl(opts.url);
  target.heartbeat = Math.round(opts.heartbeat);
  const socketOptions = {
    // amqplib leaves Nagle's algorithm on: a publish awaiting its confirm then crawls at ~44/s.
    noDelay: true,
    timeout: Math.round(opts.connectTimeout * 1000),
    keepAlive: true,
    clientProperties: { connection_name: opts.connectionName, product: 'ts-celery', version: VERSION },
    ...(target.protocol === 'amqps' ? (tlsConnectOptions(opts.tls) ?? {}) : {}),
  };
  let model: ChannelModel;
  try {
    model = await lib.connect(target, socketOptions);
  } catch (err) {
    await checked; // a broken decoder is the error to report, not this one
    throw describeConnectError(err, opts.url);
  }
  try {
    installHeaderDecoder(model); // before anything else can arrive: no channel is open yet
    batchSocketWrites(model);
    await checked;
  } catch (err) {
    await model.close().catch(() => undefined);
    throw err;
  }
  return model;
}
