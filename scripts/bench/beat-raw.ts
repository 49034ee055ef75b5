/**
 * The `raw` row of `npm run bench:beat`: the ceiling for beat's sending, in its own
 * process like beat-runner.ts. Plain amqplib, one connection (TCP_NODELAY), one
 * confirm channel, publishing the message ts-celery's beat sends (captured once by
 * beat.ts: properties, the 17 headers, the `expiration`), with each entry's own body
 * (`[[i], {}, embed]`, made once per entry), paced by the same schedule as the
 * `spread` phase: entry i is due at start + 1 s + i/N s and every second after, so
 * N runs come due per second, evenly.
 *
 * What it leaves out, on purpose: everything beat adds per run (a new task id, the
 * expiry times, recording runs in the store, the schedule itself). It keeps what any
 * honest publisher must do: publisher confirms, at most BENCH_BEAT_WINDOW runs
 * unconfirmed (default 2,000: beat's own cap), and no writing while the socket
 * buffer is full. Lag = publish time − due time; confirm lag = confirm time − due time.
 *
 * Env: BENCH_BEAT_N, BENCH_BEAT_QUEUE, BENCH_BEAT_BROKER, BENCH_BEAT_SHAPE (the captured
 * message, JSON), BENCH_BEAT_WARMUP_MS, BENCH_BEAT_WINDOW_MS, BENCH_BEAT_WINDOW (in flight).
 * Prints one JSON line as beat-runner.ts does, then runs until SIGTERM.
 */
import { readFileSync } from 'node:fs';
import amqp, { type Options } from 'amqplib';
import { encodeAmqpTable } from '../../src/protocol/amqp-headers.js';
import { startDiag } from './beat-diag.js';

const env = process.env;
const n = Number(env.BENCH_BEAT_N ?? 10_000);
const queue = env.BENCH_BEAT_QUEUE!;
const warmupMs = Number(env.BENCH_BEAT_WARMUP_MS ?? 5_000);
const windowMs = Number(env.BENCH_BEAT_WINDOW_MS ?? 20_000);
const maxInFlight = Number(env.BENCH_BEAT_WINDOW ?? 2_000);
/** `raw-mandatory`: publish as ts-celery's broker does (`mandatory`, a new message_id per message). */
const likeTs = env.BENCH_BEAT_RAW_LIKE_TS === '1';
/** Runs published per turn of the event loop at most (beat's BATCH), so confirms get their turn. */
const BATCH = 500;

interface Shape {
  properties: Options.Publish;
  embed: string;
}

function summary(xs: number[]): { p50: number | null; p99: number | null; max: number | null; over50: number } {
  xs.sort((a, b) => a - b);
  const q = (p: number): number | null => (xs.length ? xs[Math.min(xs.length - 1, Math.floor(p * xs.length))]! : null);
  return { p50: q(0.5), p99: q(0.99), max: xs.at(-1) ?? null, over50: xs.filter((x) => x > 50).length };
}

async function main(): Promise<void> {
  const shape = JSON.parse(readFileSync(env.BENCH_BEAT_SHAPE!, 'utf8')) as Shape;
  // The same header types beat sends (integers as signed 32-bit), in one reused object.
  const properties: Options.Publish = { ...shape.properties, headers: encodeAmqpTable(shape.properties.headers ?? {}) };
  const bodies = Array.from({ length: n }, (_, i) => Buffer.from(`[[${i}], {}, ${shape.embed}]`));
  const conn = await amqp.connect(env.BENCH_BEAT_BROKER!, { noDelay: true });
  const ch = await conn.createConfirmChannel();

  const started = Date.now();
  const windowFrom = started + warmupMs;
  const windowTo = windowFrom + windowMs;
  const firstDue = started + 1_000;
  const diag = startDiag(windowFrom, windowTo);
  const written: number[] = [];
  const confirmed: number[] = [];
  let k = 0; // the next run: entry k % n of second floor(k / n)
  let inFlight = 0;
  let inFlightMax = 0;
  let full = false;
  let timer: NodeJS.Timeout | null = null;
  let stopped = false;
  const dueOf = (run: number): number => firstDue + Math.floor(run / n) * 1000 + Math.floor(((run % n) * 1000) / n);

  const pump = (): void => {
    timer = null;
    if (stopped || full) return;
    const now = Date.now();
    let sentNow = 0;
    while (inFlight < maxInFlight && sentNow < BATCH && dueOf(k) <= now) {
      const dueAt = dueOf(k);
      const body = bodies[k % n]!;
      k++;
      sentNow++;
      inFlight++;
      const dispatchedAt = Date.now();
      if (dispatchedAt >= windowFrom && dispatchedAt < windowTo && inFlight > inFlightMax) inFlightMax = inFlight;
      if (likeTs) {
        properties.mandatory = true;
        properties.messageId = String(k);
      }
      const ok = ch.publish('', queue, body, properties, (err) => {
        inFlight--;
        if (!err && dispatchedAt >= windowFrom && dispatchedAt < windowTo) {
          written.push(dispatchedAt - dueAt);
          confirmed.push(Date.now() - dueAt);
        }
        if (!timer && !full) timer = setTimeout(pump, 0);
      });
      if (!ok) {
        full = true;
        ch.once('drain', () => {
          full = false;
          pump();
        });
        return;
      }
    }
    if (inFlight >= maxInFlight) return; // a confirm schedules the next pump
    const wait = sentNow === BATCH ? 0 : Math.max(0, dueOf(k) - Date.now());
    timer = setTimeout(pump, wait);
  };
  timer = setTimeout(pump, firstDue - Date.now());

  setTimeout(() => {
    const report = { windowFrom, windowTo, sends: confirmed.length, lag: summary(written), confirmedLag: summary(confirmed), inFlightMax, diag: diag.report() };
    process.stdout.write(`${JSON.stringify(report)}\n`);
  }, windowTo - Date.now() + 3_000);
  process.once('SIGTERM', () => {
    stopped = true;
    if (timer) clearTimeout(timer);
    void ch
      .waitForConfirms()
      .catch(() => undefined)
      .then(() => conn.close())
      .catch(() => undefined)
      .then(() => process.exit(0));
  });
}

main().catch((err: unknown) => {
  process.stderr.write(`beat-raw: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(2);
});
