/**
 * A Node producer in a process of its own, for the timed producer workloads
 * (so each system's client starts fresh and shares nothing with the
 * orchestrator). Prints one JSON line.
 *
 *   tsx scripts/bench/node-client.ts '<json ClientRequest>'
 */
import { openProducer, producerRate, singleLatency, steadyStamps, type NodeSystem } from './producers.js';
import type { MessageShape } from './raw.js';

/** What the orchestrator asks a client to do. */
export interface ClientRequest {
  system: NodeSystem;
  command: 'rate' | 'single' | 'e2e';
  queue: string;
  broker: string;
  redis: string;
  run: string;
  n: number;
  window: number;
  warmup: number;
  gapMs: number;
  rate: number;
  shape?: MessageShape;
}

/** What it prints. */
export interface ClientReply {
  n: number;
  seconds?: number;
  samples?: number[];
  /** `rate`: process CPU time (user + system) over the timed calls, µs per call. */
  cpuUsPerCall?: number;
  /** `rate`: epoch ms of the timed calls (the profile summary's window). */
  window?: { from: number; to: number };
  /** This process (its CPU profile, with --profile, is named after it). */
  pid?: number;
}

const req = JSON.parse(process.argv[2] ?? '{}') as ClientRequest;
const producer = await openProducer(req.system, req);
const reply: ClientReply = { n: req.n };
if (req.command === 'rate') {
  // The warm-up runs inside producerRate; CPU is taken over the whole call and divided by every send.
  const cpu0 = process.cpuUsage();
  const from = performance.timeOrigin + performance.now();
  reply.seconds = await producerRate(producer, req.run, req.n, req.window, req.warmup);
  const cpu = process.cpuUsage(cpu0);
  reply.cpuUsPerCall = (cpu.user + cpu.system) / (req.n + req.warmup);
  reply.window = { from: from, to: performance.timeOrigin + performance.now() };
  reply.pid = process.pid;
}
else if (req.command === 'single') reply.samples = await singleLatency(producer, req.run, req.n, req.warmup, req.gapMs);
else {
  for (let i = 0; i < req.warmup; i++) await producer.send('noop', [`${req.run}-warmup`, req.n]);
  reply.seconds = await steadyStamps(producer, req.run, req.n, req.rate);
}
await producer.close();
process.stdout.write(`${JSON.stringify(reply)}\n`);
process.exit(0);
