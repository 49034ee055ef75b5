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
}

const req = JSON.parse(process.argv[2] ?? '{}') as ClientRequest;
const producer = await openProducer(req.system, req);
const reply: ClientReply = { n: req.n };
if (req.command === 'rate') reply.seconds = await producerRate(producer, req.run, req.n, req.window, req.warmup);
else if (req.command === 'single') reply.samples = await singleLatency(producer, req.run, req.n, req.warmup, req.gapMs);
else {
  for (let i = 0; i < req.warmup; i++) await producer.send('noop', [`${req.run}-warmup`, req.n]);
  reply.seconds = await steadyStamps(producer, req.run, req.n, req.rate);
}
await producer.close();
process.stdout.write(`${JSON.stringify(reply)}\n`);
process.exit(0);
