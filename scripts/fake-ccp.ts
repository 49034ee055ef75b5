/**
 * A fake CCP (容联云通讯) template-SMS gateway on node:http, for tests, the demo and people who want
 * to watch SMS codes arrive without a CCP account.
 *
 *   npx tsx scripts/fake-ccp.ts          # then: CCP_BASE_URL=http://127.0.0.1:8883
 *
 * CLI settings (environment): CCP_FAKE_HOST (127.0.0.1), CCP_FAKE_PORT (8883), CCP_FAKE_LATENCY_MS
 * (2000), CCP_FAKE_FAILURE_RATE (0.2), CCP_FAKE_FAILURE_MODE (mixed); it accepts the credentials in
 * CCP_ACCOUNT_SID / CCP_AUTH_TOKEN / CCP_APP_ID, defaulting to the client's demo values, so client
 * and fake agree when both run with the same environment. `startFakeCcp()` defaults to no latency
 * and no failures, for deterministic tests.
 *
 * POST /2013-12-26/Accounts/{sid}/SMS/TemplateSMS?sig=...   the CCP endpoint (checked like CCP does)
 * GET /outbox, DELETE /outbox      delivered SMS: [{to, templateId, datas, at}]
 * GET /requests, DELETE /requests  every SMS request, with the time it arrived (last 10 000)
 * GET /stats                       {requests, delivered, failed, rejected}
 * GET /control, POST /control      behaviour: {latencyMs?, failureRate?, failNext?, failureMode?}
 *
 * Refusals are answered at once with HTTP 200 and a CCP statusCode (as CCP answers them), using
 * CCP's published codes, checked in this order:
 *   111110 API version not 2013-12-26      111101 no Authorization header
 *   111102 Authorization not base64        111103 not "sid:time"        111104/111105 empty sid/time
 *   111113 time not yyyyMMddHHmmss         111106 time more than an hour off the fake's clock
 *   111107 sid in Authorization differs from the one in the URL          111141 unknown account sid
 *   111108 no sig                          111109 sig is not upper-case hex MD5(sid + token + time)
 *   160030 empty body                      160031 body not a JSON object (or not application/json)
 *   111169/111181 appId missing/unknown    160044/160042 `to` missing/malformed
 *   112307/160057 templateId missing/not digits                        160052 datas not all strings
 * Accepted requests wait `latencyMs`, then either fail (`failNext` counts down first, then
 * `failureRate` at random) with statusCode 160050 (短信发送失败) or HTTP 500 as `failureMode` says,
 * or succeed with 000000 and land in the outbox. Like a real gateway, it finishes a request whose
 * client has given up (timed out): that SMS is still delivered, which is how a retry after a
 * timeout can send the same code twice.
 */
import { createHash, randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pathToFileURL } from 'node:url';
import { CCP_DEMO_CREDENTIALS } from '../tasks/sms/ccp.js';

/** How simulated failures look: a CCP statusCode (client returns -1), HTTP 500 (client throws), or either. */
export type FailureMode = 'status' | 'http500' | 'mixed';

/** What the fake does with valid requests; change it at run time with `setBehaviour` or POST /control. */
export interface FakeCcpBehaviour {
  latencyMs: number;
  /** Probability (0..1) that a valid request fails. */
  failureRate: number;
  /** Fail this many valid requests before `failureRate` applies again. */
  failNext: number;
  failureMode: FailureMode;
}

/** `startFakeCcp()` options. */
export interface FakeCcpOptions extends Partial<FakeCcpBehaviour> {
  /** 0 (default) picks a free port. */
  port?: number;
  host?: string;
  accountSid?: string;
  authToken?: string;
  appId?: string;
  /** Called with one line per SMS request (the CLI prints them). */
  log?: (line: string) => void;
}

/** A delivered SMS. `at`: ISO time of delivery. */
export interface OutboxEntry {
  to: string;
  templateId: string;
  datas: string[];
  at: string;
}

/** One request to the SMS endpoint. `at`: ISO time it arrived; the rest is filled in when answered. */
export interface RequestEntry {
  at: string;
  method: string;
  path: string;
  sig: string | null;
  authorization: string | null;
  accept: string | null;
  contentType: string | null;
  /** Parsed JSON, or the raw text when it is not JSON. */
  body: unknown;
  outcome: 'pending' | 'delivered' | 'failed' | 'rejected';
  httpStatus: number | null;
  statusCode: string | null;
  answeredAt: string | null;
}

/** Counters since start (or the last `reset()`). */
export interface FakeCcpStats {
  requests: number;
  delivered: number;
  failed: number;
  rejected: number;
}

/** A running fake gateway. */
export interface FakeCcp {
  /** `http://host:port`, to use as CCP_BASE_URL. */
  url: string;
  port: number;
  outbox(): OutboxEntry[];
  requests(): RequestEntry[];
  stats(): FakeCcpStats;
  behaviour(): FakeCcpBehaviour;
  setBehaviour(change: Partial<FakeCcpBehaviour>): FakeCcpBehaviour;
  /** Clears the outbox, the request log and the counters. */
  reset(): void;
  /** Stops listening and drops open connections. */
  close(): Promise<void>;
}

const API_PATH = /^\/([^/]+)\/Accounts\/([^/]+)\/SMS\/TemplateSMS$/;
const MAX_LOG = 10_000;
const MAX_BODY = 64 * 1024;
const CLOCK_SKEW_MS = 60 * 60 * 1000;

/** Thrown by the request checks: answered as a CCP refusal, not as an HTTP error. */
class Refusal extends Error {
  override readonly name = 'Refusal';
  constructor(readonly statusCode: string, readonly statusMsg: string) {
    super(`CCP refusal ${statusCode}: ${statusMsg}`);
  }
}

/** Starts the fake gateway. */
export async function startFakeCcp(options: FakeCcpOptions = {}): Promise<FakeCcp> {
  const creds = {
    accountSid: options.accountSid ?? CCP_DEMO_CREDENTIALS.accountSid,
    authToken: options.authToken ?? CCP_DEMO_CREDENTIALS.authToken,
    appId: options.appId ?? CCP_DEMO_CREDENTIALS.appId,
  };
  const behaviour = checkBehaviour({ latencyMs: 0, failureRate: 0, failNext: 0, failureMode: 'status' }, options);
  let outbox: OutboxEntry[] = [];
  let requests: RequestEntry[] = [];
  let stats: FakeCcpStats = { requests: 0, delivered: 0, failed: 0, rejected: 0 };
  const timers = new Set<NodeJS.Timeout>();
  const log = options.log ?? (() => undefined);

  const sleep = (ms: number): Promise<void> =>
    new Promise((resolve) => {
      const t = setTimeout(() => (timers.delete(t), resolve()), ms);
      timers.add(t);
    });

  async function handleSms(req: IncomingMessage, res: ServerResponse, url: URL, version: string, sid: string): Promise<void> {
    const entry: RequestEntry = {
      at: new Date().toISOString(), method: req.method ?? '', path: url.pathname, sig: url.searchParams.get('sig'),
      authorization: req.headers.authorization ?? null, accept: req.headers.accept ?? null,
      contentType: req.headers['content-type'] ?? null, body: null, outcome: 'pending', httpStatus: null, statusCode: null, answeredAt: null,
    };
    requests.push(entry);
    if (requests.length > MAX_LOG) requests = requests.slice(-MAX_LOG);
    stats.requests++;
    const answer = (httpStatus: number, payload: unknown, outcome: 'delivered' | 'failed' | 'rejected'): void => {
      Object.assign(entry, { httpStatus, outcome, answeredAt: new Date().toISOString() });
      stats[outcome]++;
      if (typeof payload === 'string') res.writeHead(httpStatus, { 'Content-Type': 'text/html' }).end(payload);
      else sendJson(res, httpStatus, payload);
    };

    let sms: { to: string; templateId: string; datas: string[] };
    try {
      const raw = await readBody(req);
      entry.body = parseOrRaw(raw);
      checkAuth(req, url, version, sid, creds);
      sms = checkBody(raw, req.headers['content-type'], creds.appId);
    } catch (err) {
      if (!(err instanceof Refusal)) throw err;
      entry.statusCode = err.statusCode;
      log(`${entry.at} refused ${err.statusCode} ${err.statusMsg}`);
      return answer(200, { statusCode: err.statusCode, statusMsg: err.statusMsg }, 'rejected');
    }

    // Decide on arrival, so that failNext applies to requests in the order they came.
    let failure: 'status' | 'http500' | null = null;
    if (behaviour.failNext > 0) {
      behaviour.failNext--;
      failure = 'status';
    } else if (Math.random() < behaviour.failureRate) {
      failure = 'status';
    }
    if (failure && behaviour.failureMode !== 'status') {
      failure = behaviour.failureMode === 'http500' || Math.random() < 0.5 ? 'http500' : 'status';
    }
    if (behaviour.latencyMs > 0) await sleep(behaviour.latencyMs);

    const line = `to=${sms.to} templateId=${sms.templateId} datas=${JSON.stringify(sms.datas)}`;
    if (failure === 'http500') {
      entry.statusCode = null;
      log(`${entry.at} failed (HTTP 500) ${line}`);
      return answer(500, '<html><body><h1>500 Internal Server Error</h1></body></html>', 'failed');
    }
    if (failure === 'status') {
      entry.statusCode = '160050';
      log(`${entry.at} failed (160050) ${line}`);
      return answer(200, { statusCode: '160050', statusMsg: '短信发送失败' }, 'failed');
    }
    const now = new Date();
    outbox.push({ ...sms, at: now.toISOString() });
    if (outbox.length > MAX_LOG) outbox = outbox.slice(-MAX_LOG);
    entry.statusCode = '000000';
    log(`${entry.at} delivered ${line}`);
    answer(200, { statusCode: '000000', templateSMS: { smsMessageSid: randomUUID().replace(/-/g, ''), dateCreated: stamp(now) } }, 'delivered');
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://fake-ccp');
    const api = API_PATH.exec(url.pathname);
    if (api) {
      if (req.method !== 'POST') return sendJson(res, 405, { error: 'POST only' });
      return handleSms(req, res, url, api[1]!, decodeURIComponent(api[2]!));
    }
    const route = `${req.method} ${url.pathname}`;
    switch (route) {
      case 'GET /outbox': return sendJson(res, 200, outbox);
      case 'DELETE /outbox': outbox = []; return sendJson(res, 200, outbox);
      case 'GET /requests': return sendJson(res, 200, requests);
      case 'DELETE /requests': requests = []; return sendJson(res, 200, requests);
      case 'GET /stats': return sendJson(res, 200, stats);
      case 'GET /control': return sendJson(res, 200, behaviour);
      case 'POST /control': {
        try {
          const change = JSON.parse(await readBody(req)) as Partial<FakeCcpBehaviour>;
          return sendJson(res, 200, checkBehaviour(behaviour, change));
        } catch (err) {
          return sendJson(res, 400, { error: err instanceof Error ? err.message : String(err) });
        }
      }
      default:
        return sendJson(res, 404, { error: `no route ${route}; see the top of scripts/fake-ccp.ts` });
    }
  }

  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (!res.headersSent) sendJson(res, 500, { error: err instanceof Error ? err.message : String(err) });
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, options.host ?? '127.0.0.1', () => resolve());
  });
  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;

  return {
    url: `http://${host}:${address.port}`,
    port: address.port,
    outbox: () => outbox.map((e) => ({ ...e, datas: [...e.datas] })),
    requests: () => requests.map((e) => ({ ...e })),
    stats: () => ({ ...stats }),
    behaviour: () => ({ ...behaviour }),
    setBehaviour: (change) => ({ ...checkBehaviour(behaviour, change) }),
    reset: () => {
      outbox = [];
      requests = [];
      stats = { requests: 0, delivered: 0, failed: 0, rejected: 0 };
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const t of timers) clearTimeout(t);
        timers.clear();
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** Validates `change` and applies it to `target` (which it returns); throws a TypeError saying what is wrong. */
function checkBehaviour(target: FakeCcpBehaviour, change: Partial<FakeCcpBehaviour>): FakeCcpBehaviour {
  if (typeof change !== 'object' || change === null) throw new TypeError('behaviour must be a JSON object');
  const { latencyMs, failureRate, failNext, failureMode } = change;
  if (latencyMs !== undefined && !(typeof latencyMs === 'number' && latencyMs >= 0)) throw new TypeError('latencyMs must be a number >= 0');
  if (failureRate !== undefined && !(typeof failureRate === 'number' && failureRate >= 0 && failureRate <= 1)) throw new TypeError('failureRate must be a number in [0, 1]');
  if (failNext !== undefined && !(Number.isInteger(failNext) && failNext >= 0)) throw new TypeError('failNext must be an integer >= 0');
  if (failureMode !== undefined && !['status', 'http500', 'mixed'].includes(failureMode)) throw new TypeError("failureMode must be 'status', 'http500' or 'mixed'");
  if (latencyMs !== undefined) target.latencyMs = latencyMs;
  if (failureRate !== undefined) target.failureRate = failureRate;
  if (failNext !== undefined) target.failNext = failNext;
  if (failureMode !== undefined) target.failureMode = failureMode;
  return target;
}

/** The checks CCP makes on the URL and Authorization header, in its order. */
function checkAuth(req: IncomingMessage, url: URL, version: string, sid: string, creds: { accountSid: string; authToken: string }): void {
  if (version !== '2013-12-26') throw new Refusal('111110', '请求地址SoftVersion参数有误');
  const header = req.headers.authorization;
  if (!header) throw new Refusal('111101', '请求包头Authorization参数为空');
  const decoded = Buffer.from(header, 'base64');
  if (decoded.toString('base64') !== header) throw new Refusal('111102', '请求包头Authorization参数Base64解码失败');
  const text = decoded.toString('utf8');
  const colon = text.indexOf(':');
  if (colon < 0) throw new Refusal('111103', '请求包头Authorization参数解码后格式有误');
  const authSid = text.slice(0, colon);
  const time = text.slice(colon + 1);
  if (!authSid) throw new Refusal('111104', '请求包头Authorization参数解码后账户ID为空');
  if (!time) throw new Refusal('111105', '请求包头Authorization参数解码后时间戳为空');
  const when = parseStamp(time);
  if (!when) throw new Refusal('111113', '请求包头Authorization参数中时间戳格式有误，请参考yyyyMMddHHmmss');
  if (Math.abs(Date.now() - when.getTime()) > CLOCK_SKEW_MS) throw new Refusal('111106', '请求包头Authorization参数解码后时间戳过期');
  if (authSid !== sid) throw new Refusal('111107', '请求包头Authorization参数中账户ID跟请求地址中的账户ID不一致');
  if (sid !== creds.accountSid) throw new Refusal('111141', '主账户不存在');
  const sig = url.searchParams.get('sig');
  if (!sig) throw new Refusal('111108', '请求地址Sig参数为空');
  const expected = createHash('md5').update(`${creds.accountSid}${creds.authToken}${time}`).digest('hex').toUpperCase();
  if (sig !== expected) throw new Refusal('111109', '请求地址Sig校验失败');
}

/** The checks on the JSON body; returns the SMS. */
function checkBody(raw: string, contentType: string | undefined, appId: string): { to: string; templateId: string; datas: string[] } {
  if (!raw.trim()) throw new Refusal('160030', '请求包体为空');
  const body = parseOrRaw(raw);
  if (!contentType?.toLowerCase().startsWith('application/json') || typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new Refusal('160031', '参数解析失败');
  }
  const { to, appId: bodyAppId, templateId, datas } = body as Record<string, unknown>;
  if (!bodyAppId) throw new Refusal('111169', '应用ID为空');
  if (bodyAppId !== appId) throw new Refusal('111181', '应用不存在');
  if (!to) throw new Refusal('160044', '发送号码为空');
  if (typeof to !== 'string' || !to.split(',').every((n) => /^\+?\d{6,20}$/.test(n))) throw new Refusal('160042', '号码格式有误');
  if (templateId === undefined || templateId === '') throw new Refusal('112307', '模板短信模板ID为空');
  if (typeof templateId !== 'string' || !/^\d+$/.test(templateId)) throw new Refusal('160057', '短信模板ID要求为数字');
  if (!Array.isArray(datas) || !datas.every((d) => typeof d === 'string')) throw new Refusal('160052', '模板变量格式有误');
  return { to, templateId, datas: datas as string[] };
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size <= MAX_BODY) chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function parseOrRaw(raw: string): unknown {
  try {
    return JSON.parse(raw) as unknown;
  } catch {
    return raw;
  }
}

function sendJson(res: ServerResponse, status: number, payload: unknown): void {
  res.writeHead(status, { 'Content-Type': 'application/json;charset=utf-8' }).end(JSON.stringify(payload));
}

const pad = (n: number): string => String(n).padStart(2, '0');

/** `yyyyMMddHHmmss`, local time (written here, not imported, so the fake checks the client independently). */
function stamp(d: Date): string {
  return `${d.getFullYear()}${pad(d.getMonth() + 1)}${pad(d.getDate())}${pad(d.getHours())}${pad(d.getMinutes())}${pad(d.getSeconds())}`;
}

function parseStamp(s: string): Date | null {
  const m = /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})$/.exec(s);
  if (!m) return null;
  const [y, mo, d, h, mi, se] = m.slice(1).map(Number) as [number, number, number, number, number, number];
  const date = new Date(y, mo - 1, d, h, mi, se);
  return stamp(date) === s ? date : null;
}

async function main(): Promise<void> {
  const env = process.env;
  const num = (name: string, fallback: number): number => {
    const v = env[name];
    if (!v) return fallback;
    const n = Number(v);
    if (!Number.isFinite(n)) throw new TypeError(`${name}=${v} is not a number`);
    return n;
  };
  const fake = await startFakeCcp({
    host: env.CCP_FAKE_HOST || '127.0.0.1',
    port: num('CCP_FAKE_PORT', 8883),
    latencyMs: num('CCP_FAKE_LATENCY_MS', 2000),
    failureRate: num('CCP_FAKE_FAILURE_RATE', 0.2),
    failureMode: (env.CCP_FAKE_FAILURE_MODE || 'mixed') as FailureMode,
    accountSid: env.CCP_ACCOUNT_SID || undefined,
    authToken: env.CCP_AUTH_TOKEN || undefined,
    appId: env.CCP_APP_ID || undefined,
    log: (line) => console.log(line),
  });
  const b = fake.behaviour();
  console.log(`Fake CCP gateway on ${fake.url} (latency ${b.latencyMs} ms, failure rate ${b.failureRate}, failure mode ${b.failureMode})`);
  console.log(`Use it with: CCP_BASE_URL=${fake.url}   Outbox: ${fake.url}/outbox   Stats: ${fake.url}/stats`);
  const stop = (): void => void fake.close().then(() => process.exit(0));
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((err: unknown) => {
    console.error(`fake-ccp: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  });
}
