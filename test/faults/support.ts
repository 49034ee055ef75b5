/**
 * Shared pieces of the fault tests: the services they own (a RabbitMQ node
 * and a Redis server, see test/helpers), exact counting through the
 * counting Redis, producers that record which delay() calls resolved, and
 * the one-line report every test prints.
 */
import { randomBytes } from 'node:crypto';
import { inspect } from 'node:util';
import { Redis } from 'ioredis';
import { expect } from 'chai';
import { Celery, type CeleryConfig } from '../../src/index.js';
import { sharedRabbitNode, type RabbitNode } from '../helpers/rabbit-node.js';
import { sharedRedisNode, type RedisNode } from '../helpers/redis-node.js';
import { startTsWorker, type TsWorker, type TsWorkerOptions } from '../helpers/ts-worker.js';

/** Where tasks count themselves: the shared Redis, DB 12 (never faulted). */
export const COUNTS_URL = 'redis://127.0.0.1:6379/12';
export const FAULT_APP = 'test/faults/fault-app.ts';

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export interface FaultServices {
  rabbit: RabbitNode;
  redis: RedisNode;
}

/** The fault tests' own RabbitMQ node and Redis (started once per run, shared by every file). */
export async function faultServices(): Promise<FaultServices> {
  const rabbit = await sharedRabbitNode();
  const redis = await sharedRedisNode(rabbit.pki);
  return { rabbit, redis };
}

/** A run id: letters and digits only (it prefixes tags, which are split on ':'). */
export function newRun(prefix: string): string {
  return `${prefix}${randomBytes(4).toString('hex')}`;
}

/** One line of a task's own record: which tag, which worker process, when (epoch ms). */
export interface Entry {
  tag: string;
  pid: number;
  at: number;
}

let countsClient: Redis | null = null;
function counts(): Redis {
  countsClient ??= new Redis(COUNTS_URL);
  return countsClient;
}

/** Reads `faults:<run>:done` (or `:started`). */
export async function entries(run: string, list: 'done' | 'started' = 'done'): Promise<Entry[]> {
  const raw = await counts().lrange(`faults:${run}:${list}`, 0, -1);
  return raw.map((line) => {
    const [tag = '', pid = '0', at = '0'] = line.split('|');
    return { tag, pid: Number(pid), at: Number(at) };
  });
}

export async function countEntries(run: string, list: 'done' | 'started' = 'done'): Promise<number> {
  return counts().llen(`faults:${run}:${list}`);
}

export async function dropCounts(run: string): Promise<void> {
  await counts().del(`faults:${run}:done`, `faults:${run}:started`);
}

export async function closeCounts(): Promise<void> {
  if (countsClient) await countsClient.quit().catch(() => undefined);
  countsClient = null;
}

/** Polls `check` every `everyMs` until it returns true; throws `what` after `timeoutMs`. */
export async function waitFor(check: () => Promise<boolean> | boolean, timeoutMs: number, what: string, everyMs = 200): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

/** Like {@link waitFor} but resolves false on timeout (the assertions that follow say what is missing). */
export async function settle(check: () => Promise<boolean> | boolean, timeoutMs: number, everyMs = 200): Promise<boolean> {
  try {
    await waitFor(check, timeoutMs, 'settle', everyMs);
    return true;
  } catch {
    return false;
  }
}

/** The last `lines` lines of a worker's output, for failure messages. */
export function tail(text: string, lines = 40): string {
  return text.split('\n').slice(-lines).join('\n');
}

/** What the producers saw. */
export interface Sent {
  sent: number;
  /** Tags whose delay() resolved. */
  confirmed: Set<string>;
  /** Tags whose delay() rejected, with the error. */
  rejected: Map<string, Error>;
  /** Task ids by tag (confirmed ones). */
  ids: Map<string, string>;
}

export interface ProduceOptions {
  app: Celery;
  tags: string[];
  task: string;
  args: (tag: string) => unknown[];
  /** Sends at once at most this many (default 50). */
  inFlight?: number;
  /** Target sends per second (default: as fast as confirms allow). */
  ratePerSec?: number;
  /** Called after each settled send. */
  onSettled?: (sent: Sent) => void;
  applyOptions?: Record<string, unknown>;
}

/** Sends one task per tag, recording which sends resolved and which rejected. */
export async function produce(opts: ProduceOptions, into?: Sent): Promise<Sent> {
  const out: Sent = into ?? { sent: 0, confirmed: new Set(), rejected: new Map(), ids: new Map() };
  const inFlight = opts.inFlight ?? 50;
  const started = Date.now();
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < opts.tags.length) {
      const index = next++;
      const tag = opts.tags[index]!;
      if (opts.ratePerSec) {
        const due = started + (index / opts.ratePerSec) * 1000;
        if (due > Date.now()) await sleep(due - Date.now());
      }
      out.sent++;
      try {
        const result = await opts.app.sendTask(opts.task, opts.args(tag), {}, opts.applyOptions ?? {});
        out.confirmed.add(tag);
        out.ids.set(tag, result.id);
      } catch (err) {
        out.rejected.set(tag, err as Error);
      }
      opts.onSettled?.(out);
    }
  };
  await Promise.all(Array.from({ length: inFlight }, lane));
  return out;
}

/** The exact outcome of a run. */
export interface Tally {
  sent: number;
  confirmed: number;
  rejected: number;
  /** Distinct confirmed-or-not tags that ran at least once. */
  completed: number;
  /** Confirmed tags that never ran: must be zero. */
  lost: string[];
  /** Extra runs: total runs minus distinct tags that ran. */
  duplicated: number;
  /** Tags whose delay() rejected but which ran anyway (the broker had stored them). */
  rejectedButRan: number;
  /** Runs of tags nobody sent (must be zero). */
  unknown: number;
}

export function tally(sent: Sent, done: Entry[], allTags: string[]): Tally {
  const known = new Set(allTags);
  const runs = new Map<string, number>();
  let unknown = 0;
  for (const e of done) {
    if (!known.has(e.tag)) unknown++;
    runs.set(e.tag, (runs.get(e.tag) ?? 0) + 1);
  }
  const lost = [...sent.confirmed].filter((t) => !runs.has(t));
  let duplicated = 0;
  for (const n of runs.values()) duplicated += n - 1;
  const rejectedButRan = [...sent.rejected.keys()].filter((t) => runs.has(t)).length;
  return {
    sent: sent.sent,
    confirmed: sent.confirmed.size,
    rejected: sent.rejected.size,
    completed: runs.size,
    lost,
    duplicated,
    rejectedButRan,
    unknown,
  };
}

/** Prints `name: sent=… confirmed=… … lost=0 duplicated=…` (the line CI logs show). */
export function report(name: string, fields: Record<string, number | string>): void {
  const line = Object.entries(fields).map(([k, v]) => `${k}=${v}`).join(' ');
  // eslint-disable-next-line no-console
  console.log(`      ${name}: ${line}`);
}

export function reportTally(name: string, t: Tally, extra: Record<string, number | string> = {}): void {
  report(name, {
    sent: t.sent,
    confirmed: t.confirmed,
    rejected: t.rejected,
    completed: t.completed,
    lost: t.lost.length,
    duplicated: t.duplicated,
    'rejected-but-ran': t.rejectedButRan,
    ...extra,
  });
}

/** A producer app (no worker side). */
export function producerApp(config: CeleryConfig): Celery {
  return new Celery('faults-producer', config);
}

export interface FaultWorkerOptions extends Omit<TsWorkerOptions, 'app' | 'env'> {
  broker: string;
  backend?: string;
  queue: string;
  env?: Record<string, string>;
}

/** `ts-celery worker -A test/faults/fault-app.ts` configured through FAULTS_* variables. */
export function startFaultWorker(opts: FaultWorkerOptions): Promise<TsWorker> {
  const { broker, backend, queue, env, ...rest } = opts;
  return startTsWorker({
    ...rest,
    app: FAULT_APP,
    queues: [queue],
    env: {
      FAULTS_BROKER: broker,
      FAULTS_BACKEND: backend ?? '',
      FAULTS_QUEUE: queue,
      FAULTS_COUNTS: COUNTS_URL,
      ...(env ?? {}),
    },
  });
}

/** Fails when any secret (or a distinctive part of it) appears in `text`. */
export function assertNoSecrets(text: string, secrets: string[], where: string): void {
  for (const secret of secrets) {
    const parts = [secret, encodeURIComponent(secret), ...secret.split(/[^A-Za-z0-9]/).filter((p) => p.length >= 8)];
    for (const p of parts) {
      const at = text.indexOf(p);
      if (at >= 0) {
        const context = text.slice(Math.max(0, at - 80), at + p.length + 40);
        expect.fail(`a password (${JSON.stringify(p)}) appears in ${where}: ...${context}...`);
      }
    }
  }
}

/** Everything an error would show: message, stack, and its cause chain as util.inspect prints it. */
export function errorText(err: unknown): string {
  return `${String(err)}\n${(err as Error)?.stack ?? ''}\n${inspect(err, { depth: 6 })}`;
}

/** What a fault-test file starts and registers for cleanup. */
export interface FaultFixture {
  /** The fault services (RabbitMQ node, Redis); available from the first test on. */
  readonly svc: FaultServices;
  /** Registered here, stopped (warm, 5 s) after the file's tests. */
  readonly workers: TsWorker[];
  /** Registered here, closed after the file's tests. */
  readonly apps: Celery[];
  /** Deleted on the fault node after the file's tests. */
  readonly queues: string[];
  /** Count lists dropped after the file's tests. */
  readonly runs: string[];
}

/**
 * The set-up and cleanup every fault-test file needs: starts (or reuses) the
 * fault services before its tests; after them runs `beforeCleanup` (e.g.
 * bring a stopped service back), then stops the workers, closes the apps,
 * deletes the queues and drops the count lists registered on the fixture.
 */
export function faultFixture(options: { beforeCleanup?: (svc: FaultServices) => Promise<void> } = {}): FaultFixture {
  let services: FaultServices | null = null;
  const fx: FaultFixture = {
    get svc(): FaultServices {
      if (!services) throw new Error('the fault services start in before(); use fx.svc inside hooks and tests');
      return services;
    },
    workers: [],
    apps: [],
    queues: [],
    runs: [],
  };
  before(async () => {
    services = await faultServices();
  });
  after(async () => {
    if (services && options.beforeCleanup) await options.beforeCleanup(services);
    await Promise.all(fx.workers.map((w) => w.stop(5000)));
    await Promise.all(fx.apps.map((a) => a.close().catch(() => undefined)));
    if (services && fx.queues.length) await services.rabbit.deleteQueues(...fx.queues).catch(() => undefined);
    for (const run of fx.runs) await dropCounts(run);
    await closeCounts();
  });
  return fx;
}
