/**
 * The Meiduo mall's web side on `node:http`: the page, `GET /sms_codes/<mobile>/` and
 * `POST /sms_codes/verify`. Everything about SMS codes is in `sms.ts`; this file maps HTTP onto it.
 *
 *   const shop = await startShop({ port: 8000 });   // embedded store, ccpSendSmsCode.delay
 *   console.log(shop.url);  ...  await shop.close();
 *
 * The shop is a producer only: it queues `ccp_send_sms_code` on the `tasks` app's broker and never
 * runs it. Someone must consume that queue: the in-process worker of `npm start` on the embedded
 * broker, or `npx ts-celery worker -A tasks` with RabbitMQ.
 */
import { readFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ccpSendSmsCode } from '../../tasks/sms/tasks.js';
import { IpRateLimiter, type RateLimit } from './limiter.js';
import { RETCODE, requestSmsCode, verifySmsCode, type Reply, type SmsDeps } from './sms.js';
import { MemoryStore, RedisStore, type ShopStore } from './store.js';

/** `startShop()` options. All optional: the defaults are the embedded demo on a random port. */
export interface ShopOptions {
  /** Default 127.0.0.1. */
  host?: string;
  /** Default 0: a free port (read it from `url`). */
  port?: number;
  /** A store the caller owns (not closed by `close()`). */
  store?: ShopStore;
  /** Else: keep codes in this Redis (e.g. `redis://127.0.0.1:6379/2`); else in memory. */
  redisUrl?: string;
  /** Prefix for every Redis key (with `redisUrl`), so several shops or test runs can share a DB. */
  redisKeyPrefix?: string;
  /** Queue the SMS task is sent to; default: the app's routing (`task_default_queue`). */
  smsQueue?: string;
  /** Replaces `ccpSendSmsCode.delay(mobile, code)` (and `smsQueue`). */
  sendSmsCode?: (mobile: string, code: string) => Promise<unknown>;
  /** Code requests per client address; default 10 per 60 s. */
  smsRateLimit?: RateLimit;
  /** Verification attempts per client address; default 30 per 60 s. */
  verifyRateLimit?: RateLimit;
  /**
   * The client's address, for the per-IP limits. Default: the TCP peer. Behind a reverse proxy, read
   * the header *your* proxy sets; trusting X-Forwarded-For from anyone would let a client pick its IP.
   */
  clientIp?: (req: IncomingMessage) => string;
  /** One line per request (numbers masked) and per server error. Default: silent. */
  log?: (line: string) => void;
}

/** A running shop. */
export interface Shop {
  /** `http://host:port` (no trailing slash). */
  url: string;
  port: number;
  store: ShopStore;
  /** Stops listening, drops idle connections, closes the store if the shop created it. */
  close(): Promise<void>;
}

const MAX_BODY = 4 * 1024;
const SMS_PATH = /^\/sms_codes\/([^/]*)\/?$/;
const VERIFY_PATH = /^\/sms_codes\/verify\/?$/;
const INDEX_HTML = new URL('./index.html', import.meta.url);

/** Headers on every answer: nothing here may be cached, framed or sniffed. */
const BASE_HEADERS = {
  'Cache-Control': 'no-store',
  'X-Content-Type-Options': 'nosniff',
  'X-Frame-Options': 'DENY',
  'Referrer-Policy': 'no-referrer',
};

class HttpError extends Error {
  constructor(readonly reply: Reply) {
    super(reply.body.errmsg);
  }
}

/** `13812345678` -> `138****5678`: phone numbers are personal data, logs don't need them whole. */
function maskMobiles(text: string): string {
  return text.replace(/(\d{3})\d{4}(\d{4})/g, '$1****$2');
}

function defaultClientIp(req: IncomingMessage): string {
  const ip = req.socket.remoteAddress ?? 'unknown';
  return ip.startsWith('::ffff:') ? ip.slice(7) : ip; // one key per IPv4 client, however it connected
}

function readJsonBody(req: IncomingMessage): Promise<unknown> {
  const fail = (status: number, errmsg: string, headers?: Record<string, string>): HttpError =>
    new HttpError({ status, body: { code: RETCODE.NECESSARYPARAMERR, errmsg }, ...(headers ? { headers } : {}) });
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      // Answer at once and close the connection rather than read an endless body.
      if (size > MAX_BODY) reject(fail(413, `Request body over ${MAX_BODY} bytes`, { Connection: 'close' }));
      else chunks.push(chunk);
    });
    req.on('end', () => {
      try {
        resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')));
      } catch {
        reject(fail(400, 'The request body must be JSON: {"mobile": "...", "sms_code": "..."}'));
      }
    });
    req.on('error', reject);
  });
}

function sendReply(res: ServerResponse, reply: Reply): void {
  res.writeHead(reply.status, { ...BASE_HEADERS, 'Content-Type': 'application/json; charset=utf-8', ...(reply.headers ?? {}) });
  res.end(JSON.stringify(reply.body));
}

const notFound = (what: string): Reply => ({ status: 404, body: { code: '404', errmsg: `No route ${what}` } });
const notAllowed = (allow: string): Reply => ({ status: 405, body: { code: '405', errmsg: `Use ${allow}` }, headers: { Allow: allow } });

/** Starts the shop. Resolves once it listens. */
export async function startShop(options: ShopOptions = {}): Promise<Shop> {
  const ownsStore = !options.store;
  const store = options.store ?? (options.redisUrl ? new RedisStore({ url: options.redisUrl, keyPrefix: options.redisKeyPrefix ?? '' }) : new MemoryStore());
  const log = options.log ?? (() => undefined);
  const queue = options.smsQueue;
  const deps: SmsDeps = {
    store,
    smsLimiter: new IpRateLimiter(store, 'sms', options.smsRateLimit ?? { max: 10, windowSec: 60 }),
    verifyLimiter: new IpRateLimiter(store, 'verify', options.verifyRateLimit ?? { max: 30, windowSec: 60 }),
    // As in the tutorial: `ccp_send_sms_code.delay(mobile, sms_code)`.
    sendSmsCode:
      options.sendSmsCode ??
      (queue ? (mobile, code) => ccpSendSmsCode.applyAsync([mobile, code], {}, { queue }) : (mobile, code) => ccpSendSmsCode.delay(mobile, code)),
    log,
  };
  const clientIp = options.clientIp ?? defaultClientIp;
  const html = await readFile(INDEX_HTML);

  async function route(req: IncomingMessage, res: ServerResponse, path: string): Promise<Reply | null> {
    const method = req.method ?? 'GET';
    if (path === '/' || path === '/index.html') {
      if (method !== 'GET' && method !== 'HEAD') return notAllowed('GET');
      res.writeHead(200, { ...BASE_HEADERS, 'Content-Type': 'text/html; charset=utf-8', 'Content-Length': html.length });
      res.end(method === 'HEAD' ? undefined : html);
      return null;
    }
    if (VERIFY_PATH.test(path)) {
      if (method !== 'POST') return notAllowed('POST');
      return verifySmsCode(deps, await readJsonBody(req), clientIp(req));
    }
    const sms = SMS_PATH.exec(path);
    if (sms) {
      if (method !== 'GET') return notAllowed('GET');
      let mobile: string;
      try {
        mobile = decodeURIComponent(sms[1]!);
      } catch {
        mobile = sms[1]!; // malformed %-escape: let validation refuse it
      }
      return requestSmsCode(deps, mobile, clientIp(req));
    }
    return notFound(`${method} ${path}`);
  }

  const server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://shop').pathname;
    route(req, res, path)
      .catch((err: unknown): Reply => {
        if (err instanceof HttpError) return err.reply;
        // The store (Redis) is down, most likely. Say so to the log, not to the client.
        log(`Error on ${req.method} ${maskMobiles(path)}: ${err instanceof Error ? err.message : String(err)}`);
        return { status: 503, body: { code: RETCODE.SERVERERR, errmsg: 'The service is temporarily unavailable: please try again shortly' } };
      })
      .then((reply) => {
        if (reply) {
          sendReply(res, reply);
          log(`${req.method} ${maskMobiles(path)} ${reply.status} ${reply.body.code}`);
        }
      })
      .catch(() => res.destroy());
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, options.host ?? '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  }).catch(async (err: unknown) => {
    if (ownsStore) await store.close();
    throw err;
  });
  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;

  return {
    url: `http://${host}:${address.port}`,
    port: address.port,
    store,
    close: async () => {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
        // Requests still in flight get a moment to finish, then their sockets go too.
        setTimeout(() => server.closeAllConnections(), 1000).unref();
      });
      if (ownsStore) await store.close();
    },
  };
}
