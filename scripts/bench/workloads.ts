/**
 * The workloads, each measured once per call (index.ts repeats and interleaves them):
 *
 *   drain     queue n tasks first (producer done), then start the worker; time from the
 *             first task start to the last completion (both recorded by the tasks in
 *             Redis, see marker.ts). CPU per task and RSS come from /proc of the worker's
 *             process tree over that window.        workloads 1, 2, 5, 7, 7b, 8, 9, 10
 *   producer  delay() calls per second with many in flight, or single calls one at a
 *             time; every send is then checked to be in the queue.    workloads 3, 7c
 *   e2e       a running worker; stamp tasks sent at a steady rate carry their send time,
 *             the task records start - send.                          workloads 4, 7d
 *   chord     a chord of n no-op header tasks (Redis backend) applied first, then the
 *             worker starts; time from the first header task start to the body's run.
 *             Compared with n plain no-op tasks on the same worker.       workload 6
 *   drain of a quorum queue, and by two worker processes on one queue     workload 10
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import type { ChannelModel, Channel } from 'amqplib';
import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { BENCH_DIR, bullConnection, PYTHON, REDIS_BROKER, ROOT, type Sizes } from './config.js';
import { runKeys, sleep } from './marker.js';
import type { ClientReply, ClientRequest } from './node-client.js';
import { ProcSampler, runJsonClient, type Proc } from './procs.js';
import { fill, openProducer, type TaskKind } from './producers.js';
import type { MessageShape } from './raw.js';
import { latencySummary, percentile } from './stats.js';
import { producerTransport, pythonEnv, startWorker, SYSTEMS, type ProducerId, type SystemId, type Transport } from './systems.js';
import { createBenchApp } from './bench-app.js';
import { chord } from 'ts-celery';

export type WorkloadId =
  | 'noop' | 'noop-redis' | 'sleep100' | 'producer-rate' | 'producer-single' | 'e2e' | 'long' | 'chord'
  // -P threads: CPU-bound tasks, and the CPU of the hop to a worker thread.
  | 'cpu' | 'noop-hop'
  // The same workloads with Redis as the broker (kombu's lists), against BullMQ and Celery on that Redis.
  | 'noop-rb' | 'sleep100-rb' | 'producer-rate-rb' | 'e2e-rb'
  // Classic vs quorum queue, one vs two worker processes (issue #15).
  | 'noop-scale';

/** One measurement of one system in one workload. */
export interface RunRecord {
  workload: WorkloadId;
  /** A SystemId, or a ProducerId for the producer workloads. */
  system: string;
  rep: number;
  n: number;
  /** Tasks that ran (drain, e2e) or sends confirmed and found in the queue (producer). */
  completed: number;
  ok: boolean;
  error?: string;
  /** Tasks (or calls) per second. */
  rate?: number;
  /** Worker processes that drained the queue (workload 10). */
  processes?: number;
  seconds?: number;
  cpuUsPerTask?: number;
  rssStartMb?: number;
  rssPeakMb?: number;
  rssEndMb?: number;
  latency?: { p50: number; p99: number; max: number; n: number };
  /** The long run: RSS after 10 % and 50 % of the tasks. */
  rssAt10Mb?: number;
  rssAt50Mb?: number;
  /** The long run: median RSS while the 2nd and the 4th quarter of the tasks ran (growth = Q4 vs Q2). */
  rssQ2Mb?: number;
  rssQ4Mb?: number;
  /** The long run: [seconds since the first task, RSS MB], about every 250 ms. */
  rssSeries?: Array<[number, number]>;
  /** Epoch ms of the measured window (drain: first start to last completion; e2e: sending). */
  window?: { from: number; to: number };
  /** The worker's pid, when a CPU profile was written for it. */
  profile?: number;
  /** Wall time of each phase (fill, start = worker start to first task, drain, stop, ...), for finding slow set-ups. */
  phasesMs?: Record<string, number>;
}

export interface BenchContext {
  sizes: Sizes;
  broker: string;
  redisUrl: string;
  redis: Redis;
  /** Redis DB 10, the broker of the Redis-broker rows. */
  brokerRedis: Redis;
  amqp: ChannelModel;
  shape: MessageShape;
  /** When set, ts-celery workers write CPU profiles here. */
  profileDir?: string | undefined;
  progress(message: string): void;
}

function names(workload: WorkloadId, system: string): { run: string; queue: string } {
  const tag = randomBytes(3).toString('hex');
  return { run: `${workload}.${system}.${tag}`, queue: `bench.${workload}.${system}.${tag}` };
}

/** Runs `fn` on a fresh channel (a failed passive check closes its channel). */
async function withChannel<T>(ctx: BenchContext, fn: (ch: Channel) => Promise<T>): Promise<T> {
  const ch = await ctx.amqp.createChannel();
  ch.on('error', () => undefined);
  try {
    return await fn(ch);
  } finally {
    await ch.close().catch(() => undefined);
  }
}

/** kombu's lists of a queue: the queue itself and its priority sub-queues. */
function kombuLists(queue: string): string[] {
  return [queue, `${queue}\x06\x163`, `${queue}\x06\x166`, `${queue}\x06\x169`];
}

/** The broker URL a system (or producer) uses. */
function brokerOf(ctx: BenchContext, transport: Transport): string {
  return transport === 'kombu-redis' ? REDIS_BROKER : ctx.broker;
}

/** Messages ready in an AMQP queue / jobs waiting in a BullMQ queue / entries in kombu's lists. */
async function queued(ctx: BenchContext, transport: Transport, queue: string): Promise<{ ready: number; consumers: number }> {
  if (transport === 'kombu-redis') {
    const lengths = await Promise.all(kombuLists(queue).map((k) => ctx.brokerRedis.llen(k)));
    // A consumer of a Redis queue is a connection blocked on its list: CLIENT LIST names the command.
    const clients = (await ctx.brokerRedis.client('LIST')) as string;
    const waiting = clients.split('\n').filter((l) => / db=10 /.test(l) && / cmd=(brpop|blmove) /.test(l)).length;
    return { ready: lengths.reduce((a, b) => a + b, 0), consumers: waiting };
  }
  if (transport === 'amqp') {
    const q = await withChannel(ctx, (ch) => ch.checkQueue(queue));
    return { ready: q.messageCount, consumers: q.consumerCount };
  }
  const bq = new Queue(queue, { connection: bullConnection(ctx.redisUrl) });
  try {
    return { ready: await bq.getWaitingCount(), consumers: 0 };
  } finally {
    await bq.close();
  }
}

/** Polls until the queue holds `expected` messages (Python's delay() is not confirmed: it may lag). */
async function expectQueued(ctx: BenchContext, transport: Transport, queue: string, expected: number): Promise<number> {
  let ready = -1;
  for (const deadline = Date.now() + 10_000; Date.now() < deadline; await sleep(100)) {
    ready = (await queued(ctx, transport, queue)).ready;
    if (ready >= expected) break;
  }
  return ready;
}

async function prepare(ctx: BenchContext, transport: Transport, queue: string, queueType: 'classic' | 'quorum' = 'classic'): Promise<void> {
  // Declared as Celery declares it (durable, no arguments, or x-queue-type quorum), so readiness checks can find it.
  const args = queueType === 'quorum' ? { 'x-queue-type': 'quorum' } : {};
  if (transport === 'amqp') await withChannel(ctx, (ch) => ch.assertQueue(queue, { durable: true, arguments: args }));
}

async function cleanup(ctx: BenchContext, transport: Transport, queue: string, run: string): Promise<void> {
  if (transport === 'kombu-redis') {
    await ctx.brokerRedis.del(...kombuLists(queue), `_kombu.binding.${queue}`, `_kombu.binding_permanent.${queue}`);
  } else if (transport === 'amqp') {
    await withChannel(ctx, async (ch) => {
      await ch.deleteQueue(queue);
      await ch.deleteExchange(queue); // Celery declares an exchange named after the queue
    }).catch(() => undefined);
  } else {
    const bq = new Queue(queue, { connection: bullConnection(ctx.redisUrl) });
    await bq.obliterate({ force: true }).catch(() => undefined);
    await bq.close();
  }
  for (const r of [run, `${run}-warmup`]) {
    const k = runKeys(r);
    await ctx.redis.del(k.first, k.count, k.last, k.lat, k.body);
  }
}

/** Deletes the result backend's keys, chords' included (the benchmark owns Redis DB 11). */
export async function deleteResults(redis: Redis): Promise<void> {
  for (const pattern of ['celery-task-meta-*', 'celery-taskset-meta-*']) {
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
      cursor = next;
      if (keys.length) await redis.unlink(...keys);
    } while (cursor !== '0');
  }
}

/** Queues n tasks with the system's own producer: Node in-process, Python's delay() in a Python process. */
async function fillQueue(ctx: BenchContext, producer: ProducerId, queue: string, run: string, task: TaskKind, n: number, backend: string | null, queueType?: 'classic' | 'quorum'): Promise<void> {
  const broker = brokerOf(ctx, producerTransport(producer));
  if (producer === 'python' || producer === 'python-redis') {
    const env = pythonEnv({ queue, broker, redis: ctx.redisUrl, backend });
    await runJsonClient(PYTHON, [join(BENCH_DIR, 'pybench.py'), 'fill', '--task', `bench.${task}`, '--run', run, '--n', String(n)], {
      cwd: BENCH_DIR,
      env,
      timeoutMs: 600_000,
    });
    return;
  }
  const p = await openProducer(producer === 'ts-redis' ? 'ts' : producer, { queue, broker, redis: ctx.redisUrl, shape: ctx.shape, queueType });
  try {
    await fill(p, task, run, n, ctx.sizes.window);
  } finally {
    await p.close();
  }
}

interface Progress {
  completed: number;
  /** (epoch ms, count) each time the count changed. */
  trace: Array<[number, number]>;
  error?: string;
}

/**
 * Waits for bench:<run>:count to reach n (with `withBody`, the count plus the chord body's runs:
 * n header tasks + 1 body); gives up when it stalls or the worker exits.
 */
async function waitForCount(ctx: BenchContext, run: string, n: number, worker: Proc, withBody = false): Promise<Progress> {
  const key = runKeys(run).count;
  const bodyKey = runKeys(run).body;
  const trace: Array<[number, number]> = [];
  let count = 0;
  let changedAt = Date.now();
  for (;;) {
    const now = Date.now();
    const c = Number((await ctx.redis.get(key)) ?? 0) + (withBody ? await ctx.redis.llen(bodyKey) : 0);
    if (c !== count) {
      count = c;
      changedAt = now;
      trace.push([now, c]);
    }
    if (count >= n) return { completed: count, trace };
    if (worker.done) return { completed: count, trace, error: `the worker exited:\n${worker.log().slice(-3000)}` };
    if (now - changedAt > ctx.sizes.stallMs) {
      return { completed: count, trace, error: `stalled at ${count}/${n} for ${ctx.sizes.stallMs} ms:\n${worker.log().slice(-3000)}` };
    }
    await sleep(count === 0 ? 100 : 25);
  }
}

/**
 * RSS over a long run: at 10 % and 50 % of the tasks, and the median over the 2nd and the 4th
 * quarter. Single samples swing by tens of MB with V8's GC cycles; quarter medians do not, and
 * comparing Q4 with Q2 leaves out the warm-up, where the heap grows to its working size.
 */
function rssGrowth(sampler: ProcSampler, progress: Progress, n: number, first: number, last: number): Partial<RunRecord> {
  const timeAt = (fraction: number): number => progress.trace.find(([, c]) => c >= n * fraction)?.[0] ?? last;
  const medianRss = (from: number, to: number): number =>
    percentile(sampler.samples.filter((x) => x.t >= from && x.t <= to).map((x) => x.rssMb), 50);
  const series: Array<[number, number]> = [];
  for (const x of sampler.samples) {
    const at = (x.t - first) / 1000;
    if (x.t >= first && x.t <= last && (series.length === 0 || at - series[series.length - 1]![0] >= 0.25)) series.push([Math.round(at * 100) / 100, Math.round(x.rssMb)]);
  }
  return {
    rssAt10Mb: sampler.rssAt(timeAt(0.1)),
    rssAt50Mb: sampler.rssAt(timeAt(0.5)),
    rssQ2Mb: medianRss(timeAt(0.25), timeAt(0.5)),
    rssQ4Mb: medianRss(timeAt(0.75), last),
    rssSeries: series,
  };
}

/** Returns `mark(name)`, which records the ms since the previous mark (or since this call) under `name`. */
function phases(record: RunRecord, reset = true): (name: string) => void {
  if (reset || !record.phasesMs) record.phasesMs = {};
  let t = performance.now();
  return (name) => {
    const now = performance.now();
    record.phasesMs![name] = Math.round(now - t);
    t = now;
  };
}

/**
 * Stops a worker once its run is over. ts-celery gets a warm shutdown (its CPU profile is
 * written at exit); the others have nothing left to do and are killed, which saves the
 * seconds Celery's warm shutdown takes.
 */
async function stopWorker(ctx: BenchContext, system: SystemId, worker: Proc, record: RunRecord): Promise<void> {
  const isTs = ['ts', 'ts-js', 'ts-events', 'ts-redis', 'ts-async2', 'ts-threads', 'hop-async', 'hop-threads', 'ts-quorum', 'ts-x2', 'ts-quorum-x2'].includes(system);
  await worker.stop(isTs ? 15_000 : 0);
  if (ctx.profileDir && isTs) record.profile = worker.pid;
}

/**
 * The first start and last completion of a run (the task that reached n sets `last` just after its
 * INCR). That SET can lag the count by seconds in a busy eventlet worker (each greenlet rebuilds its
 * result backend, celery#7960), so wait up to 15 s before calling the run incomplete.
 */
async function firstAndLast(ctx: BenchContext, run: string): Promise<{ first: number; last: number }> {
  const keys = runKeys(run);
  for (let i = 0; ; i++) {
    const [first, last] = await ctx.redis.mget(keys.first, keys.last);
    if (first && last) return { first: Number(first), last: Number(last) };
    if (i === 750) throw new Error(`${first ? '' : `${keys.first} `}${last ? '' : `${keys.last} `}not set 15 s after the count reached n`);
    await sleep(20);
  }
}

/**
 * Workloads 1, 2, 5, 7, 7b, 8, 9 and 10: queue n tasks, then start the worker (or, for workload
 * 10's `-x2` systems, two worker processes on the queue) and time the drain. With several processes, CPU
 * is summed over them and the RSS is the largest process's.
 */
export async function drain(ctx: BenchContext, workload: WorkloadId, system: SystemId, rep: number, task: TaskKind, n: number, backend: string | null): Promise<RunRecord> {
  const def = SYSTEMS[system];
  const { run, queue } = names(workload, system);
  const processes = def.processes ?? 1;
  const record: RunRecord = { workload, system, rep, n, completed: 0, ok: false, processes };
  const workers: Proc[] = [];
  try {
    const phase = phases(record);
    await prepare(ctx, def.transport, queue, def.queueType);
    await fillQueue(ctx, def.producer, queue, run, task, n, backend, def.queueType);
    const ready = await expectQueued(ctx, def.transport, queue, n);
    if (ready !== n) throw new Error(`expected ${n} messages queued before the drain, found ${ready}`);
    phase('fill');
    for (let i = 0; i < processes; i++) {
      workers.push(startWorker(system, { queue, broker: brokerOf(ctx, def.transport), redis: ctx.redisUrl, backend, queueType: def.queueType, profileDir: ctx.profileDir }));
    }
    const worker = workers[0]!;
    const startedAt = Date.now();
    const samplers = workers.map((w) => new ProcSampler(w.pid, 20).start());
    const sampler = samplers[0]!;
    const progress = await waitForCount(ctx, run, n, worker);
    for (const s of samplers) {
      s.sample();
      s.stop();
    }
    phase('run');
    record.completed = progress.completed;
    if (progress.error) throw new Error(progress.error);
    const { first, last } = await firstAndLast(ctx, run);
    record.window = { from: first, to: last };
    record.phasesMs!.start = Math.round(first - startedAt);
    record.seconds = (last - first) / 1000;
    record.rate = n / record.seconds;
    record.cpuUsPerTask = (samplers.reduce((sum, s) => sum + s.cpuBetween(first, last), 0) * 1000) / n;
    record.rssStartMb = sampler.rssAt(first);
    record.rssPeakMb = Math.max(...samplers.map((s) => s.peakRss(first, last)));
    record.rssEndMb = sampler.rssAt(last + 50);
    if (workload === 'long') Object.assign(record, rssGrowth(sampler, progress, n, first, last));
    record.ok = record.completed === n;
  } catch (err) {
    record.error = (err as Error).message;
  } finally {
    const phase = phases(record, false);
    await Promise.all(workers.map((w) => stopWorker(ctx, system, w, record)));
    phase('stop');
    await cleanup(ctx, def.transport, queue, run).catch(() => undefined);
    if (backend) await deleteResults(ctx.redis).catch(() => undefined);
    phase('cleanup');
  }
  return record;
}

function nodeClient(ctx: BenchContext, req: ClientRequest): Promise<ClientReply> {
  // --profile: ts-celery's producer (the timed `rate` run) writes a CPU profile too.
  const prof = ctx.profileDir && req.system === 'ts' && req.command === 'rate' ? ['--cpu-prof', `--cpu-prof-dir=${ctx.profileDir}`] : [];
  return runJsonClient<ClientReply>(process.execPath, [...prof, '--import', 'tsx', join(BENCH_DIR, 'node-client.ts'), JSON.stringify(req)], {
    cwd: ROOT,
    env: process.env,
    timeoutMs: 600_000,
  });
}

function pythonClient(ctx: BenchContext, queue: string, broker: string, args: string[]): Promise<ClientReply> {
  return runJsonClient<ClientReply>(PYTHON, [join(BENCH_DIR, 'pybench.py'), ...args], {
    cwd: BENCH_DIR,
    env: pythonEnv({ queue, broker, redis: ctx.redisUrl, backend: null }),
    timeoutMs: 600_000,
  });
}

const E2E_WARMUP = 20;

/** Runs a producer client (Node or Python) for `command`. */
function client(ctx: BenchContext, producer: ProducerId, command: 'rate' | 'single' | 'e2e', queue: string, run: string, n: number): Promise<ClientReply> {
  const s = ctx.sizes;
  // Before e2e, a few sends (run by the worker, counted under <run>-warmup) open the producer's connection.
  const warmup = command === 'e2e' ? E2E_WARMUP : s.warmup;
  const broker = brokerOf(ctx, producerTransport(producer));
  if (producer === 'python' || producer === 'python-redis') {
    return pythonClient(ctx, queue, broker, [command, '--run', run, '--n', String(n), '--warmup', String(warmup), '--gap-ms', String(s.gapMs), '--rate', String(s.e2eRate)]);
  }
  return nodeClient(ctx, {
    system: producer === 'ts-redis' ? 'ts' : producer, command, queue, broker, redis: ctx.redisUrl, run, n,
    window: s.window, warmup, gapMs: s.gapMs, rate: s.e2eRate, shape: ctx.shape,
  });
}

/** Workload 3: one producer process; `rate` = calls/s with many in flight, `single` = one call's latency. */
export async function producer(ctx: BenchContext, workload: 'producer-rate' | 'producer-single' | 'producer-rate-rb', producerId: ProducerId, rep: number): Promise<RunRecord> {
  const transport = producerTransport(producerId);
  const { run, queue } = names(workload, producerId);
  const n = workload === 'producer-single' ? ctx.sizes.single : ctx.sizes.producer;
  const record: RunRecord = { workload, system: producerId, rep, n, completed: 0, ok: false };
  try {
    await prepare(ctx, transport, queue);
    const reply = await client(ctx, producerId, workload === 'producer-single' ? 'single' : 'rate', queue, run, n);
    if (reply.seconds !== undefined) {
      record.seconds = reply.seconds;
      record.rate = n / reply.seconds;
    }
    if (reply.samples) record.latency = latencySummary(reply.samples);
    if (reply.cpuUsPerCall !== undefined) record.cpuUsPerTask = reply.cpuUsPerCall;
    if (reply.window) record.window = reply.window;
    if (ctx.profileDir && producerId === 'ts' && reply.pid !== undefined) record.profile = reply.pid;
    const expected = n + ctx.sizes.warmup;
    record.completed = (await expectQueued(ctx, transport, queue, expected)) - ctx.sizes.warmup;
    record.ok = record.completed === n;
  } catch (err) {
    record.error = (err as Error).message;
  } finally {
    await cleanup(ctx, transport, queue, run).catch(() => undefined);
  }
  return record;
}

/** Waits until the worker consumes (AMQP consumer count, or BullMQ's "ready" line). */
async function waitReady(ctx: BenchContext, system: SystemId, queue: string, worker: Proc): Promise<void> {
  for (const deadline = Date.now() + 60_000; Date.now() < deadline; await sleep(100)) {
    if (worker.done) throw new Error(`the worker exited before it was ready:\n${worker.log().slice(-3000)}`);
    const transport = SYSTEMS[system].transport;
    if (transport === 'redis' ? /^ready$/m.test(worker.log()) : (await queued(ctx, transport, queue)).consumers > 0) {
      await sleep(300); // let a pool finish starting
      return;
    }
  }
  throw new Error(`the worker was not consuming after 60 s:\n${worker.log().slice(-3000)}`);
}

/** Workload 4: delay() -> task start latency at a steady rate, with the worker already running. */
export async function e2e(ctx: BenchContext, system: SystemId, rep: number, workload: 'e2e' | 'e2e-rb' = 'e2e'): Promise<RunRecord> {
  const def = SYSTEMS[system];
  const { run, queue } = names(workload, system);
  const n = ctx.sizes.e2e;
  const record: RunRecord = { workload, system, rep, n, completed: 0, ok: false };
  let worker: Proc | null = null;
  try {
    await prepare(ctx, def.transport, queue);
    worker = startWorker(system, { queue, broker: brokerOf(ctx, def.transport), redis: ctx.redisUrl, backend: null, profileDir: ctx.profileDir });
    await waitReady(ctx, system, queue, worker);
    const from = Date.now();
    await client(ctx, def.producer, 'e2e', queue, run, n);
    const progress = await waitForCount(ctx, run, n, worker);
    record.window = { from, to: Date.now() };
    record.completed = progress.completed;
    if (progress.error) throw new Error(progress.error);
    const samples = (await ctx.redis.lrange(runKeys(run).lat, 0, -1)).map(Number);
    record.latency = latencySummary(samples);
    record.ok = record.completed === n && samples.length === n;
  } catch (err) {
    record.error = (err as Error).message;
  } finally {
    if (worker) await stopWorker(ctx, system, worker, record);
    await cleanup(ctx, def.transport, queue, run).catch(() => undefined);
  }
  return record;
}

/** Applies the chord with the system's own producer: n `bench.noop` header tasks, body `bench.chord_body`. */
async function applyChord(ctx: BenchContext, producer: ProducerId, queue: string, run: string, n: number, backend: string): Promise<void> {
  if (producer === 'python') {
    await runJsonClient(PYTHON, [join(BENCH_DIR, 'pybench.py'), 'chord', '--run', run, '--n', String(n)], {
      cwd: BENCH_DIR,
      env: pythonEnv({ queue, broker: ctx.broker, redis: ctx.redisUrl, backend }),
      timeoutMs: 600_000,
    });
    return;
  }
  const { app, tasks } = createBenchApp({ broker: ctx.broker, queue, redis: ctx.redisUrl, backend });
  try {
    const header = Array.from({ length: n }, () => tasks.noop.s(run, n));
    await chord(header, tasks.chordBody.s(run)).applyAsync();
  } finally {
    await app.close();
  }
}

/**
 * Workload 6: a chord of n no-op tasks with the Redis backend, applied before the worker
 * starts; the time runs from the first header task's start to the body's. `plain` measures
 * the same n no-op tasks without the chord, on the same worker and backend, for comparison.
 */
export async function chordDrain(ctx: BenchContext, system: 'ts' | 'ts-plain' | 'py-prefork', rep: number, n: number, backend: string): Promise<RunRecord> {
  const workerSystem: SystemId = system === 'ts-plain' ? 'ts' : system;
  const def = SYSTEMS[workerSystem];
  const { run, queue } = names('chord', system);
  const record: RunRecord = { workload: 'chord', system, rep, n, completed: 0, ok: false };
  let worker: Proc | null = null;
  try {
    const phase = phases(record);
    await prepare(ctx, def.transport, queue);
    if (system === 'ts-plain') await fillQueue(ctx, def.producer, queue, run, 'noop', n, backend);
    else await applyChord(ctx, def.producer, queue, run, n, backend);
    const ready = await expectQueued(ctx, def.transport, queue, n);
    if (ready !== n) throw new Error(`expected ${n} messages queued before the drain, found ${ready}`);
    phase('fill');
    worker = startWorker(workerSystem, { queue, broker: ctx.broker, redis: ctx.redisUrl, backend, profileDir: ctx.profileDir });
    const sampler = new ProcSampler(worker.pid, 20).start();
    const progress = await waitForCount(ctx, run, system === 'ts-plain' ? n : n + 1, worker, system !== 'ts-plain');
    sampler.sample();
    sampler.stop();
    phase('run');
    record.completed = Math.min(progress.completed, n);
    if (progress.error) throw new Error(progress.error);
    const first = Number(await ctx.redis.get(runKeys(run).first));
    let last: number;
    if (system === 'ts-plain') {
      last = (await firstAndLast(ctx, run)).last;
    } else {
      const bodies = await ctx.redis.lrange(runKeys(run).body, 0, -1);
      const [at = '0', results = '0'] = (bodies[0] ?? '').split('|');
      if (bodies.length !== 1 || Number(results) !== n) throw new Error(`the body ran ${bodies.length} time(s), with ${results} results (expected once, with ${n})`);
      last = Number(at);
    }
    record.window = { from: first, to: last };
    record.seconds = (last - first) / 1000;
    record.rate = n / record.seconds;
    record.cpuUsPerTask = (sampler.cpuBetween(first, last) * 1000) / n;
    record.rssPeakMb = sampler.peakRss(first, last);
    record.ok = record.completed === n;
  } catch (err) {
    record.error = (err as Error).message;
  } finally {
    if (worker) await stopWorker(ctx, workerSystem, worker, record);
    await cleanup(ctx, def.transport, queue, run).catch(() => undefined);
    await deleteResults(ctx.redis).catch(() => undefined);
  }
  return record;
}
