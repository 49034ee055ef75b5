/**
 * `npm run bench`: ts-celery against the raw amqplib ceiling, Python Celery
 * 5.2.6 (eventlet and prefork) and BullMQ, on the same RabbitMQ and Redis,
 * in one run. Systems are interleaved round-robin within each repetition;
 * each figure is the median (and min–max) of the repetitions.
 *
 *   npm run bench                      full run: 3 repetitions, ~20 minutes on 2 cores
 *   npm run bench -- --quick           small N, 1 repetition, under a minute (the smoke test)
 *   npm run bench -- --only noop,e2e --systems ts,raw --reps 5
 *   npm run bench -- --only cpu,noop-hop                -P threads: CPU-bound throughput, the thread hop's CPU
 *   npm run bench -- --profile         also write CPU profiles of the ts-celery workers
 *                                      and print their top self-time functions
 *   npm run bench -- --long 0          skip the 100,000-task RSS run (or give another size)
 *   npm run bench -- --out file.json   where to write the JSON (default bench-results/bench-<time>.json)
 *   npm run bench -- --report file.json   print the tables of an earlier run again (runs nothing)
 *
 * Uses RabbitMQ vhost ts-celery-test (queues bench.<workload>.<system>.<random>,
 * deleted after each run), Redis DB 11 (counters, results, BullMQ; cleaned) and
 * Redis DB 10 (the Redis-broker rows' queues, kombu's lists; cleaned).
 * Exits 1 when a run did not complete every task.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import { calibrateWork, CPU_TASK_MS, createBenchApp } from './bench-app.js';
import { DEFAULT_BROKER, DEFAULT_REDIS, FULL, QUICK, REDIS_BROKER, RESULTS_DIR, type Sizes } from './config.js';
import { describeMachine, machineInfo, type MachineInfo } from './machine.js';
import { ensureJsBuild } from './js-build.js';
import { epochToMonotonicUs, formatHot, hotFunctions, profileOf } from './profile.js';
import { captureShape, connectRaw } from './raw.js';
import { checkTargets, formatTables, groupRecords, labelOf, NOTES } from './report.js';
import type { ProducerId, SystemId } from './systems.js';
import { chordDrain, drain, e2e, producer, type BenchContext, type RunRecord, type WorkloadId } from './workloads.js';

const { values: opts } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    reps: { type: 'string' },
    long: { type: 'string' },
    only: { type: 'string' },
    systems: { type: 'string' },
    out: { type: 'string' },
    profile: { type: 'boolean', default: false },
    report: { type: 'string' },
  },
});

const sizes: Sizes = { ...(opts.quick ? QUICK : FULL) };
if (opts.reps) sizes.repetitions = Number(opts.reps);
if (opts.long) sizes.long = Number(opts.long);
const only = opts.only ? new Set(opts.only.split(',')) : null;
const onlySystems = opts.systems ? new Set(opts.systems.split(',')) : null;
const REDIS_BACKEND = DEFAULT_REDIS;

/** Which systems each workload compares, in the order of the first repetition. */
const PLAN: Array<{ workload: WorkloadId; systems: string[] }> = [
  { workload: 'noop', systems: ['raw', 'ts', 'ts-events', 'raw-js', 'ts-js', 'py-eventlet', 'py-prefork', 'bullmq'] },
  { workload: 'noop-redis', systems: ['ts', 'ts-late', 'py-eventlet', 'py-prefork'] },
  { workload: 'sleep100', systems: ['raw', 'ts', 'py-eventlet', 'bullmq'] },
  { workload: 'cpu', systems: ['ts-threads', 'ts-async2', 'py-prefork'] },
  { workload: 'noop-hop', systems: ['hop-async', 'hop-threads'] },
  { workload: 'producer-rate', systems: ['raw', 'ts', 'python', 'bullmq'] },
  { workload: 'producer-single', systems: ['raw', 'ts', 'python', 'bullmq'] },
  { workload: 'e2e', systems: ['raw', 'ts', 'py-eventlet', 'py-prefork', 'bullmq'] },
  { workload: 'chord', systems: ['ts', 'ts-plain', 'py-prefork'] },
  // Redis as the broker: ts-celery against BullMQ and Celery, all on the same Redis server.
  { workload: 'noop-rb', systems: ['ts-redis', 'py-prefork-redis', 'bullmq'] },
  { workload: 'sleep100-rb', systems: ['ts-redis', 'bullmq'] },
  { workload: 'producer-rate-rb', systems: ['ts-redis', 'python-redis', 'bullmq'] },
  { workload: 'e2e-rb', systems: ['ts-redis', 'py-prefork-redis', 'bullmq'] },
  // Queue types and processes: classic vs quorum, one vs two worker processes on one queue.
  { workload: 'noop-scale', systems: ['ts', 'ts-quorum', 'ts-x2', 'ts-quorum-x2'] },
];

function wanted(workload: WorkloadId, system: string): boolean {
  if (only && !only.has(workload)) return false;
  // Producer ids: `python` follows the Python systems, the others share their system's name.
  const asSystem =
    system === 'python' ? ['py-eventlet', 'py-prefork', 'python']
    : system === 'python-redis' ? ['py-prefork-redis', 'python-redis']
    : system === 'ts-plain' ? ['ts']
    : ['ts-quorum', 'ts-x2', 'ts-quorum-x2', 'ts-late'].includes(system) ? ['ts', system]
    : [system];
  // The compiled-JS rows build dist/ first (js-build.ts): not in --quick (npm test) unless named.
  if (opts.quick && system.endsWith('-js') && !onlySystems?.has(system)) return false;
  return !onlySystems || asSystem.some((s) => onlySystems.has(s));
}

function runOne(ctx: BenchContext, workload: WorkloadId, system: string, rep: number): Promise<RunRecord> {
  switch (workload) {
    case 'noop':
      return drain(ctx, workload, system as SystemId, rep, 'noop', sizes.noop, null);
    case 'noop-redis':
      return drain(ctx, workload, system as SystemId, rep, 'noop', sizes.noop, REDIS_BACKEND);
    case 'noop-rb':
      return drain(ctx, workload, system as SystemId, rep, 'noop', sizes.noop, null);
    case 'sleep100':
    case 'sleep100-rb':
      return drain(ctx, workload, system as SystemId, rep, 'sleep100', sizes.sleep, null);
    case 'cpu':
      return drain(ctx, workload, system as SystemId, rep, 'cpu400', sizes.cpu, null);
    case 'noop-hop':
      return drain(ctx, workload, system as SystemId, rep, 'nothing', sizes.hop, null);
    case 'long':
      return drain(ctx, workload, system as SystemId, rep, 'sleep100', sizes.long, REDIS_BACKEND);
    case 'producer-rate':
    case 'producer-single':
    case 'producer-rate-rb':
      return producer(ctx, workload, system as ProducerId, rep);
    case 'e2e':
      return e2e(ctx, system as SystemId, rep);
    case 'e2e-rb':
      return e2e(ctx, system as SystemId, rep, workload);
    case 'chord':
      return chordDrain(ctx, system as 'ts' | 'ts-plain' | 'py-prefork', rep, sizes.chord, REDIS_BACKEND);
    case 'noop-scale':
      return drain(ctx, workload, system as SystemId, rep, 'noop', sizes.noop, null);
  }
}

function describe(r: RunRecord): string {
  if (!r.ok) return `INCOMPLETE ${r.completed}/${r.n}: ${(r.error ?? '').split('\n')[0]}`;
  const parts: string[] = [];
  if (r.rate !== undefined) parts.push(`${Math.round(r.rate).toLocaleString('en-US')}/s`);
  if (r.latency) parts.push(`p50 ${r.latency.p50.toFixed(2)} ms, p99 ${r.latency.p99.toFixed(2)} ms`);
  if (r.cpuUsPerTask !== undefined) parts.push(`CPU ${r.cpuUsPerTask.toFixed(1)} µs/task`);
  if (r.rssPeakMb !== undefined) parts.push(`peak RSS ${Math.round(r.rssPeakMb)} MB`);
  return parts.join(', ');
}

async function main(): Promise<number> {
  const startedAt = new Date();
  const stamp = startedAt.toISOString().replace(/[:.]/g, '-').replace(/-\d{3}Z$/, 'Z');
  const outFile = opts.out ?? join(RESULTS_DIR, `bench-${stamp}${opts.quick ? '-quick' : ''}.json`);
  const profileDir = opts.profile ? join(RESULTS_DIR, `profiles-${stamp}`) : undefined;
  const progress = (m: string): void => void process.stderr.write(`${m}\n`);

  const amqp = await connectRaw(DEFAULT_BROKER);
  amqp.on('error', () => undefined);
  const redis = new Redis(DEFAULT_REDIS, { maxRetriesPerRequest: 3 });
  const brokerRedis = new Redis(REDIS_BROKER, { maxRetriesPerRequest: 3 });
  const machine = await machineInfo(amqp, redis);
  process.stdout.write(`ts-celery benchmark (${opts.quick ? 'quick' : 'full'}: ${sizes.repetitions} repetition(s))\n${describeMachine(machine)}\n\n`);

  // The one message shape the raw ceiling reuses: what ts-celery's delay() sends.
  const captureQueue = `bench.capture.${process.pid}`;
  const capture = createBenchApp({ queue: captureQueue });
  await capture.tasks.noop.delay('capture', 1);
  await capture.app.close();
  const shape = await captureShape(amqp, captureQueue);
  const admin = await amqp.createChannel();
  await admin.deleteQueue(captureQueue);
  await admin.deleteExchange(captureQueue);
  await admin.close();

  if (!only || only.has('cpu')) {
    // bench.cpu400's amount of work: 400 ms of CPU here (Python calibrates its own loop likewise).
    process.env.BENCH_CPU_ITERATIONS = String(calibrateWork(CPU_TASK_MS));
    progress(`bench.cpu400: ${process.env.BENCH_CPU_ITERATIONS} iterations = ${CPU_TASK_MS} ms of CPU`);
  }
  const ctx: BenchContext = { sizes, broker: DEFAULT_BROKER, redisUrl: DEFAULT_REDIS, redis, brokerRedis, amqp, shape, profileDir, progress };
  const records: RunRecord[] = [];
  if (PLAN.some(({ workload, systems }) => systems.some((s) => s.endsWith('-js') && wanted(workload, s)))) ensureJsBuild(progress);
  const measure = async (workload: WorkloadId, system: string, rep: number): Promise<void> => {
    const t0 = performance.now();
    const r = await runOne(ctx, workload, system, rep);
    records.push(r);
    const took = `(${((performance.now() - t0) / 1000).toFixed(1)} s)`;
    const round = workload === 'long' ? 'once' : `${rep}/${sizes.repetitions}`;
    progress(`[${round}] ${workload.padEnd(15)} ${labelOf(workload, system).padEnd(36)} ${describe(r)} ${took}`);
  };
  for (let rep = 1; rep <= sizes.repetitions; rep++) {
    for (const { workload, systems } of PLAN) {
      const chosen = systems.filter((s) => wanted(workload, s));
      // Round-robin: each repetition starts one system further along.
      const shift = (rep - 1) % Math.max(chosen.length, 1);
      for (const system of [...chosen.slice(shift), ...chosen.slice(0, shift)]) await measure(workload, system, rep);
    }
  }
  if (sizes.long > 0 && wanted('long', 'ts')) await measure('long', 'ts', 1);

  const groups = groupRecords(records);
  const targets = checkTargets(records, groups);
  const quickNote = opts.quick ? '(--quick: small N and one repetition; a smoke test, its figures and targets mean little)\n\n' : '';
  const tables = quickNote + formatTables(records, groups, targets);
  process.stdout.write(`${tables}\n\nNotes:\n${NOTES.map((n) => `- ${n}`).join('\n')}\n`);

  const profiles: Record<string, unknown> = {};
  if (profileDir) {
    process.stdout.write('\nWhere the time goes in the ts-celery worker (self time, from node --cpu-prof):\n');
    for (const r of records) {
      const file = r.profile === undefined ? null : profileOf(profileDir, r.profile);
      if (!file) continue;
      const window = r.window ? { fromUs: epochToMonotonicUs(r.window.from), toUs: epochToMonotonicUs(r.window.to) } : undefined;
      profiles[`${r.workload}#${r.rep}`] = { file, ...hotFunctions(file, 40, window) };
      process.stdout.write(`\n${r.workload} (repetition ${r.rep}):\n${formatHot(file, 20, window)}\n`);
    }
  }

  const incomplete = records.filter((r) => !r.ok);
  const result = {
    version: 1,
    command: process.argv.length > 2 ? `npm run bench -- ${process.argv.slice(2).join(' ')}` : 'npm run bench',
    mode: opts.quick ? 'quick' : 'full',
    startedAt: startedAt.toISOString(),
    finishedAt: new Date().toISOString(),
    sizes,
    machine,
    records,
    groups,
    targets,
    notes: NOTES,
    profiles,
    allComplete: incomplete.length === 0,
  };
  mkdirSync(dirname(outFile), { recursive: true });
  writeFileSync(outFile, `${JSON.stringify(result, null, 2)}\n`);
  process.stdout.write(`\nResults: ${outFile}\n`);
  if (incomplete.length) process.stdout.write(`${incomplete.length} run(s) did not complete every task (see "error" in the JSON).\n`);

  await redis.quit();
  await brokerRedis.quit();
  await amqp.close().catch(() => undefined);
  return incomplete.length ? 1 : 0;
}

/** `--report file.json`: the tables and targets of a saved run, recomputed from its records. */
function reprint(file: string): number {
  const saved = JSON.parse(readFileSync(file, 'utf8')) as { machine: MachineInfo; mode: string; command: string; records: RunRecord[] };
  const groups = groupRecords(saved.records);
  process.stdout.write(`${saved.command} (${saved.mode})\n${describeMachine(saved.machine)}\n\n`);
  process.stdout.write(`${formatTables(saved.records, groups, checkTargets(saved.records, groups))}\n`);
  return 0;
}

process.once('SIGINT', () => process.exit(130)); // procs.ts kills the workers on exit
(opts.report ? Promise.resolve(opts.report).then(reprint) : main()).then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`benchmark failed: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(2);
  },
);
