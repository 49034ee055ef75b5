/**
 * The Meiduo demo, set up for end-to-end tests in either of its two shapes:
 *
 * - `embedded`: what `npm start` runs on a fresh machine. The `tasks` app on the in-memory broker and
 *   results, an in-process `Worker` (-c 1000), the shop with its in-memory store.
 * - `rabbitmq`: production's shape. The shop (in this process) publishes to RabbitMQ and keeps codes
 *   in Redis; a separate `ts-celery worker -A tasks` process runs the task. Queue and Redis keys are
 *   unique per run, so parallel test runs and other suites sharing the vhost/DB are not disturbed.
 *
 * Both use a fake CCP gateway started here, in this process, so tests can read its logs directly.
 *
 * The shop and the `tasks` app are imported lazily, on purpose: `tasks/main.ts` builds its app from
 * the environment when first imported, and other suites (test/interop) rely on importing it first
 * with their own environment. Mocha loads every spec file before running any, so a static import
 * here would construct the app before they run.
 */
import { randomInt } from 'node:crypto';
import http from 'node:http';
import { Redis } from 'ioredis';
import { Worker } from 'ts-celery';
import type { Shop, ShopOptions } from '../../examples/meiduo/server.js';
import { startFakeCcp, type FakeCcp, type FakeCcpOptions, type RequestEntry } from '../../scripts/fake-ccp.js';
import { AMQP_URL, deleteQueues, REDIS_URL, uniqueName } from '../helpers/services.js';
import { startTsWorker, type TsWorker } from '../helpers/ts-worker.js';

export type Mode = 'embedded' | 'rabbitmq';
export const MODES: readonly Mode[] = ['embedded', 'rabbitmq'];

/** A running demo: shop + fake gateway + worker, in the chosen mode. */
export interface MeiduoEnv {
  mode: Mode;
  shop: Shop;
  fake: FakeCcp;
  /** The queue the SMS task goes to (unique per run in rabbitmq mode). */
  queue: string;
  /** What the worker printed (the child process's output in rabbitmq mode), for failure messages. */
  workerOutput(): string;
  stop(): Promise<void>;
}

export interface MeiduoEnvOptions {
  fake?: FakeCcpOptions;
  shop?: Partial<ShopOptions>;
}

/** Runs `fn` with CELERY_* removed from the environment, which would otherwise override the config. */
function withoutCeleryEnv<T>(fn: () => T): T {
  const saved = { broker: process.env.CELERY_BROKER_URL, backend: process.env.CELERY_RESULT_BACKEND };
  delete process.env.CELERY_BROKER_URL;
  delete process.env.CELERY_RESULT_BACKEND;
  try {
    return fn();
  } finally {
    if (saved.broker !== undefined) process.env.CELERY_BROKER_URL = saved.broker;
    if (saved.backend !== undefined) process.env.CELERY_RESULT_BACKEND = saved.backend;
  }
}

/** Starts the demo in `mode`. Always pair with `stop()` (in `after`). */
export async function startMeiduo(mode: Mode, options: MeiduoEnvOptions = {}): Promise<MeiduoEnv> {
  const { app } = await import('../../tasks/main.js');
  const { startShop } = await import('../../examples/meiduo/server.js');
  await app.ready();
  await app.close(); // someone may have left it connected; settings can only change while closed
  const previous = { broker_url: app.conf.broker_url, result_backend: app.conf.result_backend };
  const fake = await startFakeCcp(options.fake);
  /** Puts the app back as it was; runs last, whatever else failed. */
  const restore = async (): Promise<void> => {
    await fake.close();
    withoutCeleryEnv(() => app.configFromObject(previous));
  };

  if (mode === 'embedded') {
    withoutCeleryEnv(() => app.configFromObject({ broker_url: 'memory://', result_backend: 'memory://' }));
    const savedCcp = process.env.CCP_BASE_URL;
    process.env.CCP_BASE_URL = fake.url; // the in-process task reads it when it runs
    const worker = new Worker(app, { hostname: 'meiduo-e2e@test', concurrency: 1000 });
    let shop: Shop | null = null;
    const stop = async (): Promise<void> => {
      try {
        await shop?.close(); // no new tasks
        await worker.stop(); // running ones finish (against the gateway)
        await app.close();
      } finally {
        if (savedCcp === undefined) delete process.env.CCP_BASE_URL;
        else process.env.CCP_BASE_URL = savedCcp;
        await restore();
      }
    };
    try {
      await worker.start();
      shop = await startShop(options.shop);
    } catch (err) {
      await stop().catch(() => undefined);
      throw err;
    }
    return { mode, shop, fake, queue: app.conf.task_default_queue, workerOutput: () => '(in-process worker: its log is on stderr)', stop };
  }

  const queue = uniqueName('meiduo-sms');
  const keyPrefix = `${uniqueName('meiduo')}:`;
  withoutCeleryEnv(() => app.configFromObject({ broker_url: AMQP_URL, result_backend: REDIS_URL }));
  let worker: TsWorker | null = null;
  let shop: Shop | null = null;
  const stop = async (): Promise<void> => {
    try {
      await shop?.close();
      await worker?.stop();
      await app.close();
      await deleteQueues(queue);
      await deleteKeys(keyPrefix);
    } finally {
      await restore();
    }
  };
  try {
    worker = await startTsWorker({
      app: 'tasks',
      queues: [queue],
      concurrency: 1000,
      env: { CELERY_BROKER_URL: AMQP_URL, CELERY_RESULT_BACKEND: REDIS_URL, CCP_BASE_URL: fake.url },
    });
    shop = await startShop({ redisUrl: REDIS_URL, redisKeyPrefix: keyPrefix, smsQueue: queue, ...options.shop });
  } catch (err) {
    await stop().catch(() => undefined);
    throw err;
  }
  const w = worker;
  return { mode, shop, fake, queue, workerOutput: () => w.output(), stop };
}

/** Deletes this run's keys from the test Redis DB. */
async function deleteKeys(prefix: string): Promise<void> {
  const redis = new Redis(REDIS_URL);
  try {
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 500);
      cursor = next;
      if (keys.length) await redis.del(...keys);
    } while (cursor !== '0');
  } finally {
    await redis.quit();
  }
}

/** A random mainland mobile number, so tests never share a send flag or a code. */
export function randomMobile(): string {
  return `1${randomInt(3, 10)}${String(randomInt(0, 1e9)).padStart(9, '0')}`;
}

/** An HTTP answer, with the moment its headers arrived. */
export interface ApiResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  /** Parsed JSON (the tests check its shape), or the text when not JSON. */
  body: any;
  /** Date.now() when the response headers arrived. */
  receivedAt: number;
}

/**
 * One request on a fresh connection. `from` picks the source address (any 127.x.y.z is this
 * machine on Linux), which is how tests act as different clients for the per-IP limit.
 */
export function api(baseUrl: string, path: string, init: { method?: string; json?: unknown; rawBody?: string; from?: string } = {}): Promise<ApiResponse> {
  const url = new URL(path, baseUrl);
  const payload = init.rawBody ?? (init.json === undefined ? undefined : JSON.stringify(init.json));
  return new Promise((resolve, reject) => {
    const req = http.request(
      url,
      {
        method: init.method ?? 'GET',
        agent: false,
        ...(init.from ? { localAddress: init.from } : {}),
        headers: payload === undefined ? {} : { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(payload) },
      },
      (res) => {
        const receivedAt = Date.now();
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let body: unknown = text;
          if (/json/.test(res.headers['content-type'] ?? '')) body = JSON.parse(text);
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body, receivedAt });
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}

/** Polls `probe` until it returns something other than undefined/false. */
export async function waitFor<T>(probe: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs: number, what: string): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`Timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** The gateway's request log, read over HTTP (`GET /requests`), as a user of the fake would. */
export async function gatewayRequests(fake: FakeCcp, mobile?: string): Promise<RequestEntry[]> {
  const entries = (await (await fetch(`${fake.url}/requests`)).json()) as RequestEntry[];
  return mobile === undefined ? entries : entries.filter((e) => (e.body as { to?: unknown } | null)?.to === mobile);
}

/** Waits for the SMS to `mobile` in the gateway's outbox and returns it. */
export function waitForSms(fake: FakeCcp, mobile: string, timeoutMs = 15_000): Promise<{ to: string; templateId: string; datas: string[]; at: string }> {
  return waitFor(() => fake.outbox().find((e) => e.to === mobile), timeoutMs, `an SMS to ${mobile} at the fake gateway`);
}
