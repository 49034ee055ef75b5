/**
 * The Node producers the benchmark compares, behind one `send()`:
 * ts-celery's `delay()`, a raw amqplib publish awaiting its confirm (the
 * captured Celery message shape), and BullMQ's `add()`. Used in-process to
 * queue tasks before a drain, and by node-client.ts for the timed producer
 * workloads. (Python's producer is pybench.py.)
 */
import type { ChannelModel, ConfirmChannel } from 'amqplib';
import { Queue } from 'bullmq';
import { createBenchApp } from './bench-app.js';
import { bullConnection } from './config.js';
import { nowMs, sleep } from './marker.js';
import { celeryBody, connectRaw, publishOne, withTask, type MessageShape } from './raw.js';

export type NodeSystem = 'raw' | 'ts' | 'bullmq';
export type TaskKind = 'noop' | 'sleep100' | 'stamp' | 'cpu400' | 'nothing';

export interface ProducerOptions {
  queue: string;
  broker: string;
  redis: string;
  /** Needed by the raw producer. */
  shape?: MessageShape | undefined;
  /** ts-celery's `task_default_queue_type` (default classic). */
  queueType?: 'classic' | 'quorum' | undefined;
}

/** Sends one task and resolves once the broker has it (confirm / Redis reply). */
export interface Producer {
  send(task: TaskKind, args: [string, number] | [string, number, number]): Promise<unknown>;
  close(): Promise<void>;
}

export async function openProducer(system: NodeSystem, options: ProducerOptions): Promise<Producer> {
  if (system === 'ts') {
    const { app, tasks } = createBenchApp({ broker: options.broker, queue: options.queue, redis: options.redis, queueType: options.queueType });
    return {
      send: (task, args) =>
        task === 'stamp' ? tasks.stamp.delay(...(args as [string, number, number])) : tasks[task].delay(args[0], args[1]),
      close: () => app.close(),
    };
  }
  if (system === 'raw') {
    const shape = options.shape;
    if (!shape) throw new Error('the raw producer needs the captured message shape');
    const conn: ChannelModel = await connectRaw(options.broker);
    const ch: ConfirmChannel = await conn.createConfirmChannel();
    await ch.assertQueue(options.queue, { durable: true });
    const shapes = {
      noop: withTask(shape, 'bench.noop'),
      sleep100: withTask(shape, 'bench.sleep100'),
      stamp: withTask(shape, 'bench.stamp'),
      cpu400: withTask(shape, 'bench.cpu400'),
      nothing: withTask(shape, 'bench.nothing'),
    };
    return {
      send: (task, args) => publishOne(ch, options.queue, shapes[task], celeryBody(args)),
      close: async () => {
        await ch.close().catch(() => undefined);
        await conn.close().catch(() => undefined);
      },
    };
  }
  const queue = new Queue(options.queue, { connection: bullConnection(options.redis) });
  await queue.waitUntilReady();
  return {
    send: (task, args) =>
      queue.add(task, { run: args[0], n: args[1], sentAt: args[2] }, { removeOnComplete: true, removeOnFail: true }),
    close: () => queue.close(),
  };
}

/** Calls `make(i)` for i < n with at most `window` in flight; resolves when all settled (rejects on the first error). */
export async function windowed(n: number, window: number, make: (i: number) => Promise<unknown>): Promise<void> {
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < n) await make(next++);
  };
  await Promise.all(Array.from({ length: Math.min(window, n) }, lane));
}

/** Queues n tasks of one kind (`args` = [run, n]) as fast as the producer allows. */
export function fill(p: Producer, task: TaskKind, run: string, n: number, window: number): Promise<void> {
  return windowed(n, window, () => p.send(task, [run, n]));
}

/** Producer rate: n no-op sends with `window` in flight, after `warmup` untimed ones; seconds taken. */
export async function producerRate(p: Producer, run: string, n: number, window: number, warmup: number): Promise<number> {
  await windowed(warmup, window, () => p.send('noop', [`${run}-warmup`, n]));
  const t0 = performance.now();
  await windowed(n, window, () => p.send('noop', [run, n]));
  return (performance.now() - t0) / 1000;
}

/** Latency of single sends (ms), one at a time, `gapMs` apart, after `warmup` untimed ones. */
export async function singleLatency(p: Producer, run: string, n: number, warmup: number, gapMs: number): Promise<number[]> {
  for (let i = 0; i < warmup; i++) await p.send('noop', [`${run}-warmup`, n]);
  const samples: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await p.send('noop', [run, n]);
    samples.push(performance.now() - t0);
    if (gapMs > 0) await sleep(gapMs);
  }
  return samples;
}

/**
 * Sends n `stamp` tasks at `rate` per second on a fixed schedule (no drift),
 * each carrying its send time; returns the seconds taken.
 */
export async function steadyStamps(p: Producer, run: string, n: number, rate: number): Promise<number> {
  const start = performance.now();
  const inFlight: Promise<unknown>[] = [];
  for (let i = 0; i < n; i++) {
    const wait = start + (i * 1000) / rate - performance.now();
    if (wait > 0) await sleep(wait);
    inFlight.push(p.send('stamp', [run, n, nowMs()]));
  }
  await Promise.all(inFlight);
  return (performance.now() - start) / 1000;
}
