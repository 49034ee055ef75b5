/**
 * `npm run bench:beat`: ts-celery beat against `celery beat` (Celery 5.7, the
 * default PersistentScheduler) with the same schedule, in one run:
 * N entries (default 10,000), each every second, sending to one queue that a
 * raw consumer drains (as workers would).
 *
 *   npm run bench:beat                     10,000 entries, 5 s warm-up + 20 s measured per system
 *   npm run bench:beat -- --quick          1,000 entries, 2 s + 5 s (a smoke run)
 *   npm run bench:beat -- --n 5000 --window 30 --systems ts-lease,celery --phases spread
 *   npm run bench:beat -- --systems raw,ts-lease --phases spread --in-flight 10000   (the cap on runs awaiting confirms)
 *
 * Systems: `ts-lease` (the default with a redis:// result backend: runs recorded in
 * Redis under the fenced lease), `ts-file` (no Redis: the schedule file), `celery`, and
 * `raw` (beat-raw.ts: plain amqplib publishing the message ts-celery's beat sends, captured
 * once at start, on the same schedule with confirms: the ceiling; spread phase only), and
 * `raw-mandatory` (the same, published as ts-celery's broker publishes: `mandatory`, a message id each).
 * A second table says where the time went (beat-diag.ts: socket writes, event loop, GC, RabbitMQ's
 * CPU); `--profile <dir>` writes a V8 CPU profile of each beat process (read it with profile.ts).
 * Phases: `spread` (entry i last ran i/N s into the second, so runs come due evenly:
 * 10,000 a second, steadily) and `aligned` (every entry starts at beat's start, as a
 * fresh schedule does: all 10,000 come due in the same millisecond, every second).
 *
 * Per system: runs sent per second; send lag = when the run was sent minus when it
 * was due (Celery: apply_async returned, i.e. written to the socket; ts-celery: handed
 * to the AMQP client, and also: confirmed by RabbitMQ); CPU (% of one core) and peak
 * RSS of the beat process over the measured window. Vhost ts-celery-beat, Redis DB 12.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import { ROOT, RESULTS_DIR } from './config.js';
import { describeMachine, machineInfo } from './machine.js';
import { ProcSampler, startProc, type Proc } from './procs.js';
import { connectRaw } from './raw.js';
import type { Options } from 'amqplib';
import { Beat, Celery } from '../../src/index.js';
import { normalizeSchedule } from '../../src/beat/entry.js';
import { Scheduler, type Clock } from '../../src/beat/scheduler.js';
import type { ScheduleStore } from '../../src/beat/store.js';
import { getLogger } from '../../src/support/log.js';
import type { Diag } from './beat-diag.js';

const { values: opts } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    n: { type: 'string' },
    warmup: { type: 'string' },
    window: { type: 'string' },
    systems: { type: 'string', default: 'raw,ts-lease,ts-file,celery' },
    /** Runs awaiting their confirm at most, for ts-celery's beat and the raw publisher alike (default 2,000, beat's own). */
    'in-flight': { type: 'string' },
    phases: { type: 'string', default: 'spread,aligned' },
    out: { type: 'string' },
    /** Write a V8 CPU profile of each ts-celery/raw beat process into this folder (summarise with profile.ts). */
    profile: { type: 'string' },
  },
});

const BROKER = 'amqp://guest:guest@127.0.0.1:5672/ts-celery-beat';
const REDIS = 'redis://127.0.0.1:6379/12';
const VENV_PYTHON = join(ROOT, '.venv', 'bin', 'python');
const N = Number(opts.n ?? (opts.quick ? 1_000 : 10_000));
const WARMUP_MS = Number(opts.warmup ?? (opts.quick ? 2 : 5)) * 1000;
const WINDOW_MS = Number(opts.window ?? (opts.quick ? 5 : 20)) * 1000;

interface Lag {
  p50: number | null;
  p99: number | null;
  max: number | null;
  over50: number;
}
interface Report {
  windowFrom: number;
  windowTo: number;
  sends: number;
  lag: Lag;
  confirmedLag: Lag | null;
  /** The most runs awaiting their confirm at once (ts-celery and raw; the cap is 2,000 unless --in-flight). */
  inFlightMax?: number;
  diag?: Diag;
}
interface Row {
  system: string;
  phase: string;
  ok: boolean;
  error?: string;
  sendsPerSecond?: number;
  receivedPerSecond?: number;
  lag?: Lag;
  confirmedLag?: Lag | null;
  inFlightMax?: number | undefined;
  cpuPercent?: number;
  rssPeakMb?: number;
  diag?: Diag | undefined;
  /** RabbitMQ's CPU over the window (% of a core): the broker is the other half of every publish. */
  rabbitCpuPercent?: number;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function runOne(system: string, phase: string, amqp: Awaited<ReturnType<typeof connectRaw>>, redis: Redis, shapeFile: string | null): Promise<Row> {
  const tag = `${system}.${phase}.${process.pid}.${Date.now().toString(36)}`;
  const queue = `bench.beat.${tag}`;
  const file = join(RESULTS_DIR, `beat-${tag}.schedule`);
  const out = join(RESULTS_DIR, `beat-${tag}.json`);
  const key = `bench:beat:${tag}`;
  // Drain the queue as workers would, and count what arrives.
  const ch = await amqp.createChannel();
  await ch.assertQueue(queue, { durable: true, arguments: { 'x-max-length': 1000 } });
  const arrivals: number[] = [];
  await ch.consume(queue, () => void arrivals.push(Date.now()), { noAck: true });

  const env = {
    ...process.env,
    BENCH_BEAT_N: String(N),
    BENCH_BEAT_QUEUE: queue,
    BENCH_BEAT_BROKER: BROKER,
    BENCH_BEAT_REDIS: REDIS,
    BENCH_BEAT_KEY: key,
    BENCH_BEAT_FILE: file,
    BENCH_BEAT_OUT: out,
    BENCH_BEAT_MODE: system === 'ts-lease' ? 'lease' : 'file',
    ...(system === 'raw-mandatory' ? { BENCH_BEAT_RAW_LIKE_TS: '1' } : {}),
    BENCH_BEAT_PHASE: phase,
    BENCH_BEAT_WARMUP_MS: String(WARMUP_MS),
    BENCH_BEAT_WINDOW_MS: String(WINDOW_MS),
    ...(shapeFile ? { BENCH_BEAT_SHAPE: shapeFile } : {}),
    ...(opts['in-flight'] ? { BENCH_BEAT_WINDOW: opts['in-flight'] } : {}),
    PYTHONPATH: join(ROOT, 'scripts', 'bench'),
    PYTHONDONTWRITEBYTECODE: '1',
  };
  let proc: Proc;
  const prof = opts.profile ? ['--cpu-prof', `--cpu-prof-dir=${opts.profile}`, `--cpu-prof-name=${system}.${phase}.${Date.now()}.cpuprofile`] : [];
  if (system === 'celery') {
    proc = startProc(VENV_PYTHON, ['-m', 'celery', '-A', 'pybeat', 'beat', '-S', 'pybeat:LagScheduler', '-s', file, '-l', 'warning'], { cwd: ROOT, env });
  } else if (system.startsWith('raw')) {
    proc = startProc(process.execPath, [...prof, '-e', "require('tsx/cjs'); require('./scripts/bench/beat-raw.ts')"], { cwd: ROOT, env });
  } else {
    // As bin/ts-celery.js starts the CLI: tsx's in-thread require hook.
    proc = startProc(process.execPath, [...prof, '-e', "require('tsx/cjs'); require('./scripts/bench/beat-runner.ts')"], { cwd: ROOT, env });
  }
  const sampler = new ProcSampler(proc.pid, 200).start();
  const rabbit = rabbitPid();
  const rabbitSampler = rabbit ? new ProcSampler(rabbit, 200).start() : null;
  const row: Row = { system, phase, ok: false };
  try {
    const deadline = Date.now() + WARMUP_MS + WINDOW_MS + 15_000;
    let report: Report | null = null;
    while (!report && Date.now() < deadline && !proc.done) {
      await sleep(250);
      if (system === 'celery') {
        if (existsSync(out)) report = JSON.parse(readFileSync(out, 'utf8')) as Report;
      } else {
        const line = proc.log().split('\n').find((l) => l.startsWith('{"windowFrom"'));
        if (line) report = JSON.parse(line) as Report;
      }
    }
    if (!report) throw new Error(`no report within the window; log:\n${proc.log().slice(-2000)}`);
    const seconds = (report.windowTo - report.windowFrom) / 1000;
    row.ok = true;
    row.sendsPerSecond = report.sends / seconds;
    row.receivedPerSecond = arrivals.filter((t) => t >= report.windowFrom && t < report.windowTo).length / seconds;
    row.lag = report.lag;
    row.confirmedLag = report.confirmedLag;
    row.inFlightMax = report.inFlightMax;
    row.cpuPercent = (sampler.cpuBetween(report.windowFrom, report.windowTo) / (report.windowTo - report.windowFrom)) * 100;
    row.rssPeakMb = sampler.peakRss(report.windowFrom, report.windowTo);
    row.diag = report.diag;
    if (rabbitSampler) row.rabbitCpuPercent = (rabbitSampler.cpuBetween(report.windowFrom, report.windowTo) / (report.windowTo - report.windowFrom)) * 100;
  } catch (err) {
    row.error = (err as Error).message;
  } finally {
    sampler.stop();
    rabbitSampler?.stop();
    await proc.stop(5_000);
    await ch.deleteQueue(queue).catch(() => undefined);
    await ch.close().catch(() => undefined);
    await redis.del(key, `${key}:fence`, `${key}:schedule`);
    for (const f of [file, `${file}.db`, `${file}.dat`, `${file}.dir`, `${file}.bak`, out]) rmSync(f, { force: true });
  }
  return row;
}

/** The shared RabbitMQ node's Erlang VM (not the fault tests' own nodes): its home is /var/lib/rabbitmq. */
function rabbitPid(): number | null {
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const cmd = readFileSync(`/proc/${d}/cmdline`, 'utf8');
      if (cmd.includes('beam.smp') && cmd.includes('-home\u0000/var/lib/rabbitmq\u0000')) return Number(d);
    } catch {
      /* gone meanwhile */
    }
  }
  return null;
}

const ms = (x: number | null | undefined): string => (x === null || x === undefined ? '–' : x >= 100 ? String(Math.round(x)) : x.toFixed(1));
const lagCell = (l: Lag | null | undefined): string => (l ? `${ms(l.p50)} / ${ms(l.p99)} / ${ms(l.max)}` : '–');

function table(rows: Row[]): string {
  const head = '| phase | beat | runs sent/s (received) | send lag p50 / p99 / max, ms | to RabbitMQ confirm, ms | runs > 50 ms late | most in flight | CPU (% of a core) | peak RSS |';
  const lines = [head, '|---|---|---|---|---|---|---|---|---|'];
  for (const r of rows) {
    if (!r.ok) {
      lines.push(`| ${r.phase} | ${r.system} | FAILED: ${(r.error ?? '').split('\n')[0]} | | | | | | |`);
      continue;
    }
    const late = r.lag && r.sendsPerSecond ? `${((r.lag.over50 / (r.sendsPerSecond * (WINDOW_MS / 1000))) * 100).toFixed(2)} %` : '–';
    lines.push(
      `| ${r.phase} | ${r.system} | ${Math.round(r.sendsPerSecond!).toLocaleString('en-US')} (${Math.round(r.receivedPerSecond!).toLocaleString('en-US')}) | ` +
        `${lagCell(r.lag)} | ${lagCell(r.confirmedLag)} | ${late} | ${r.inFlightMax?.toLocaleString('en-US') ?? '–'} | ${Math.round(r.cpuPercent!)} % | ${Math.round(r.rssPeakMb!)} MB |`,
    );
  }
  return lines.join('\n');
}

/** Where the time went, per system: socket writes, the event loop, GC, RabbitMQ's CPU. */
function diagTable(rows: Row[]): string {
  const head = '| phase | beat | AMQP socket writes / run | frames / write | bytes out / run | loop delay p50 / p99 / max, ms | loop busy | GC ms/s | RabbitMQ CPU | CPU µs / run |';
  const lines = [head, '|---|---|---|---|---|---|---|---|---|---|'];
  for (const r of rows) {
    const d = r.diag;
    if (!r.ok || !d) continue;
    const runs = r.sendsPerSecond! * (WINDOW_MS / 1000);
    lines.push(
      `| ${r.phase} | ${r.system} | ${(d.amqpWrites / runs).toFixed(3)} | ${(d.amqpChunks / Math.max(1, d.amqpWrites)).toFixed(1)} | ${Math.round(d.amqpBytesOut / runs)} | ` +
        `${d.loopDelayMs.p50} / ${d.loopDelayMs.p99} / ${d.loopDelayMs.max} | ${Math.round(d.loopUtilization * 100)} % | ${Math.round(d.gcMs / (WINDOW_MS / 1000))} | ` +
        `${r.rabbitCpuPercent === undefined ? '–' : `${Math.round(r.rabbitCpuPercent)} %`} | ${((r.cpuPercent! * 10_000) / r.sendsPerSecond!).toFixed(1)} |`,
    );
  }
  return lines.join('\n');
}

/**
 * ts-celery's scheduler alone: N every-second entries for 20 virtual seconds on a virtual
 * clock, with a store and a send that do nothing. CPU per run, in µs: what beat adds on top
 * of publishing the messages.
 */
async function schedulerCost(): Promise<number> {
  const schedule = Object.fromEntries(Array.from({ length: N }, (_, i) => [`e${i}`, { task: 'bench.beat_tick', schedule: 1, args: [i] }]));
  let t = Date.now();
  const end = t + 20_000;
  let scheduler!: Scheduler;
  const clock: Clock = {
    now: () => t,
    sleep: async (ms) => {
      await Promise.resolve();
      t += Math.max(1, ms);
      if (t > end) scheduler.stop();
    },
  };
  const store: ScheduleStore = { description: 'none', load: async () => null, save: async () => true, record: async () => true, close: async () => undefined };
  let runs = 0;
  scheduler = new Scheduler({
    entries: normalizeSchedule(schedule),
    store,
    timezone: 'UTC',
    utcEnabled: true,
    maxIntervalMs: 300_000,
    cronStartingDeadline: null,
    send: async () => void runs++,
    log: getLogger('bench'),
    clock,
  });
  await scheduler.setup();
  const before = process.cpuUsage();
  await scheduler.run();
  const used = process.cpuUsage(before);
  return (used.user + used.system) / runs;
}

/**
 * One message exactly as ts-celery's beat sends it (properties, headers, expiration, body),
 * for the raw row: a real Beat with one every-second entry sends it to a scratch queue.
 * Returns the file beat-raw.ts reads.
 */
async function captureBeatMessage(amqp: Awaited<ReturnType<typeof connectRaw>>): Promise<string> {
  const queue = `bench.beat.capture.${process.pid}.${Date.now().toString(36)}`;
  const file = join(RESULTS_DIR, `beat-shape-${process.pid}.json`);
  const schedule = join(RESULTS_DIR, `beat-capture-${process.pid}.schedule`);
  const app = new Celery('beatbench', {
    broker_url: BROKER,
    result_backend: null,
    beat_lease_url: false,
    beat_schedule_filename: schedule,
    task_queues: [{ name: queue, queue_arguments: { 'x-max-length': 1000 } }],
    task_default_queue: queue,
    beat_schedule: { e0: { task: 'bench.beat_tick', schedule: 1, args: [0], options: { queue } } },
  });
  const ch = await amqp.createChannel();
  await ch.assertQueue(queue, { durable: true, arguments: { 'x-max-length': 1000 } });
  const beat = new Beat(app, { loggerName: 'capture' });
  beat.start();
  try {
    for (let i = 0; i < 200; i++) {
      await sleep(25);
      const m = await ch.get(queue, { noAck: true });
      if (!m) continue;
      const p = m.properties;
      const properties: Options.Publish = { headers: p.headers, contentType: p.contentType, contentEncoding: p.contentEncoding, deliveryMode: p.deliveryMode };
      for (const key of ['correlationId', 'replyTo', 'priority', 'expiration', 'messageId'] as const) if (p[key] !== undefined) (properties as Record<string, unknown>)[key] = p[key];
      const embed = JSON.stringify((JSON.parse(m.content.toString()) as unknown[])[2]);
      writeFileSync(file, JSON.stringify({ properties, embed }));
      return file;
    }
    throw new Error('captureBeatMessage: beat sent nothing within 5 s');
  } finally {
    await beat.stop();
    await app.close();
    await ch.deleteQueue(queue).catch(() => undefined);
    await ch.close().catch(() => undefined);
    rmSync(schedule, { force: true });
  }
}

async function main(): Promise<number> {
  mkdirSync(RESULTS_DIR, { recursive: true });
  const amqp = await connectRaw(BROKER);
  amqp.on('error', () => undefined);
  const redis = new Redis(REDIS, { maxRetriesPerRequest: 3 });
  const machine = await machineInfo(amqp, redis);
  process.stdout.write(`beat benchmark: ${N.toLocaleString('en-US')} entries every second, ${WARMUP_MS / 1000} s warm-up + ${WINDOW_MS / 1000} s measured\n${describeMachine(machine)}\n\n`);
  const perRun = await schedulerCost();
  process.stdout.write(`ts-celery's scheduler alone (virtual clock, no broker, no store): ${perRun.toFixed(1)} µs of CPU per run\n\n`);
  const systems = opts.systems!.split(',');
  const shapeFile = systems.some((s) => s.startsWith('raw')) ? await captureBeatMessage(amqp) : null;
  const rows: Row[] = [];
  for (const phase of opts.phases!.split(',')) {
    for (const system of systems) {
      // The raw publisher follows the spread schedule only (an aligned burst is the same publishes sooner).
      if (system.startsWith('raw') && phase !== 'spread') continue;
      const row = await runOne(system, phase, amqp, redis, shapeFile);
      rows.push(row);
      process.stderr.write(`[beat] ${phase} ${system}: ${row.ok ? `${Math.round(row.sendsPerSecond!)}/s, lag p99 ${ms(row.lag?.p99)} ms` : `FAILED ${row.error}`}\n`);
    }
  }
  process.stdout.write(`${table(rows)}\n\n${diagTable(rows)}\n`);
  const file = opts.out ?? join(RESULTS_DIR, `bench-beat-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileSync(file, `${JSON.stringify({ n: N, warmupMs: WARMUP_MS, windowMs: WINDOW_MS, machine, schedulerCpuUsPerRun: perRun, rows }, null, 2)}\n`);
  process.stdout.write(`\nResults: ${file}\n`);
  if (shapeFile) rmSync(shapeFile, { force: true });
  await amqp.close().catch(() => undefined);
  redis.disconnect();
  return rows.every((r) => r.ok) ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`beat benchmark failed: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(2);
  },
);
