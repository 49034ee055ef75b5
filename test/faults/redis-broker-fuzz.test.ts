/**
 * Bad input on the Redis broker: malformed list entries (not kombu's
 * envelope, or an envelope that is not a task) mixed with valid tasks on one
 * queue, including entries kombu's own Lua-free code would choke on.
 *
 * Guarantees checked:
 * - the worker stays up, never stalls and never loops: each bad entry is
 *   rejected exactly once, with a logged reason;
 * - every valid task runs exactly once (with or without a delivery tag, on a
 *   priority sub-queue, marked redelivered, utf-8 body encoding);
 * - nothing is left behind in the list or in `unacked`.
 *
 * Reproducible: a seeded PRNG (FUZZ_SEED to replay another run; the seed is printed).
 */
import { randomUUID } from 'node:crypto';
import { expect } from 'chai';
import { Redis } from 'ioredis';
import { buildEnvelope } from '../../src/broker/redis/envelope.js';
import { buildTaskMessage } from '../../src/protocol/message.js';
import { RedisNode } from '../helpers/redis-node.js';
import { REDIS_BROKER_RESULTS_URL } from '../helpers/services.js';
import type { TsWorker } from '../helpers/ts-worker.js';
import { newRun, report, settle, tail } from './support.js';
import { startTsBrokerWorker } from './redis-broker-support.js';
import { mulberry32 } from '../helpers/prng.js';

const BAD = 900;
const GOOD = 300;

interface Entry {
  good: boolean;
  kind: string;
  /** Which list of the queue (priority sub-queue suffix). */
  suffix: string;
  raw: string;
}

function generate(run: string, queue: string, rnd: () => number): { entries: Entry[]; goodTags: string[] } {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;
  const goodTags: string[] = [];
  const task = (body: Record<string, unknown> = {}) => buildTaskMessage({ id: randomUUID(), task: 'shared.record', args: [`${run}:${goodTags.length}`], ...body });
  const envelope = (m = task(), tag: string | null = randomUUID()): Record<string, any> => {
    const env = JSON.parse(buildEnvelope(m, '', queue, tag ?? 'x')) as Record<string, any>;
    if (tag === null) delete env.properties.delivery_tag;
    return env;
  };
  const goodKinds: Array<[string, () => [string, string]]> = [
    ['plain', () => ['', JSON.stringify(envelope())]],
    ['no-delivery-tag', () => ['', JSON.stringify(envelope(task(), null))]],
    ['priority-9', () => { const e = envelope(); e.properties.priority = 9; return ['\x06\x169', JSON.stringify(e)]; }],
    ['redelivered', () => { const e = envelope(); e.headers.redelivered = true; e.properties.delivery_info.redelivered = true; return ['', JSON.stringify(e)]; }],
    ['utf8-body', () => { const m = task(); const e = envelope(m); e.body = m.body.toString('utf8'); e.properties.body_encoding = 'utf-8'; return ['', JSON.stringify(e)]; }],
  ];
  const garbage = (n: number): string => Array.from({ length: n }, () => String.fromCharCode(Math.floor(rnd() * 0xd7ff))).join('');
  const badKinds: Array<[string, () => string]> = [
    ['not-json', () => garbage(1 + Math.floor(rnd() * 200))],
    ['json-scalar', () => pick(['null', '42', '"celery"', 'true', '[]', '[1, {"properties": {}}]'])],
    ['no-properties', () => { const e = envelope(); delete e.properties; return JSON.stringify(e); }],
    ['properties-not-object', () => { const e = envelope(); e.properties = [e.properties]; return JSON.stringify(e); }],
    ['headers-not-object', () => { const e = envelope(); e.headers = 'lang=py'; return JSON.stringify(e); }],
    ['body-not-string', () => { const e = envelope(); e.body = { args: [] }; return JSON.stringify(e); }],
    ['bad-body-encoding', () => { const e = envelope(); e.properties.body_encoding = 'rot13'; return JSON.stringify(e); }],
    ['body-not-json', () => { const e = envelope(); e.body = Buffer.from(garbage(40)).toString('base64'); return JSON.stringify(e); }],
    ['pickle', () => { const e = envelope(); e['content-type'] = 'application/x-python-serialize'; e.body = 'gASVAgAAAAAAAABLAS4='; return JSON.stringify(e); }],
    ['two-element-body', () => { const e = envelope(); e.body = Buffer.from('[[1], {}]').toString('base64'); return JSON.stringify(e); }],
    ['missing-id', () => { const e = envelope(); delete e.headers.id; return JSON.stringify(e); }],
    ['unknown-task', () => { const e = envelope(); e.headers.task = 'nobody.has.this'; return JSON.stringify(e); }],
    ['tag-not-string', () => { const e = envelope(); e.properties.delivery_tag = 12345; e.headers.task = 'nobody.has.this.either'; return JSON.stringify(e); }],
    ['deep-nesting', () => `{"properties": {"delivery_tag": "${randomUUID()}"}, "headers": ${'['.repeat(5000)}${']'.repeat(5000)}}`],
    ['huge', () => `{"properties": {"delivery_tag": "${randomUUID()}", "body_encoding": "base64"}, "body": "${'QUFB'.repeat(250_000)}", "content-type": "application/json", "headers": {}}`],
  ];
  const entries: Entry[] = [];
  let good = 0;
  let bad = 0;
  while (good < GOOD || bad < BAD) {
    if (bad >= BAD || (good < GOOD && rnd() < GOOD / (GOOD + BAD))) {
      const [kind, make] = pick(goodKinds);
      const [suffix, raw] = make();
      goodTags.push(`${run}:${goodTags.length}`);
      entries.push({ good: true, kind, suffix, raw });
      good++;
    } else {
      const [kind, make] = pick(badKinds);
      entries.push({ good: false, kind, suffix: pick(['', '', '\x06\x163', '\x06\x169']), raw: make() });
      bad++;
    }
  }
  return { entries, goodTags };
}

describe('fault: malformed entries on the Redis broker', function () {
  this.timeout(120_000);
  const node = new RedisNode();
  let worker: TsWorker | null = null;
  let broker: Redis;
  let counts: Redis;
  const run = newRun('rfz');
  const queue = `rfz-${run}`;

  before(async () => {
    await node.start();
    broker = new Redis(node.url(0));
    counts = new Redis(REDIS_BROKER_RESULTS_URL);
  });
  after(async () => {
    await worker?.stop(5000);
    await counts.del(`pytasks:record:${run}`);
    counts.disconnect();
    broker.disconnect();
    await node.destroy();
  });

  it('rejects each bad entry once with a reason and runs every valid task once', async () => {
    const seed = Number(process.env.FUZZ_SEED ?? Math.floor(Math.random() * 2 ** 31));
    const { entries, goodTags } = generate(run, queue, mulberry32(seed));
    // Half before the worker starts (a backlog), half while it runs.
    const half = Math.floor(entries.length / 2);
    const push = async (list: Entry[]): Promise<void> => {
      for (let i = 0; i < list.length; i += 100) {
        const p = broker.pipeline();
        for (const e of list.slice(i, i + 100)) p.lpush(queue + e.suffix, e.raw);
        await p.exec();
      }
    };
    await push(entries.slice(0, half));
    worker = await startTsBrokerWorker({ broker: node.url(0), queues: [queue], concurrency: 50, visibilityTimeout: 3600 });
    await push(entries.slice(half));

    const key = `pytasks:record:${run}`;
    const rejections = (): number => (worker!.output().match(/Rejected a message \(|Received unregistered task/g) ?? []).length;
    await settle(async () => (await counts.llen(key)) >= GOOD && rejections() >= BAD, 60_000, 200);
    await new Promise((r) => setTimeout(r, 500)); // a loop or a duplicate would show up now
    const ran = await counts.lrange(key, 0, -1);
    const byKind = new Map<string, number>();
    for (const e of entries) if (!e.good) byKind.set(e.kind, (byKind.get(e.kind) ?? 0) + 1);
    const left = (await Promise.all(['', '\x06\x163', '\x06\x166', '\x06\x169'].map((s) => broker.llen(queue + s)))).reduce((a, b) => a + b, 0);
    const unacked = await broker.hlen('unacked');
    report('redis-fuzz', {
      seed, good: GOOD, bad: BAD, ran: ran.length, 'ran-unique': new Set(ran).size, rejected: rejections(), 'left-in-queue': left, 'left-unacked': unacked,
      kinds: [...byKind].map(([k, n]) => `${k}:${n}`).join(','),
    });
    if (ran.length !== GOOD || rejections() !== BAD) console.log(tail(worker.output(), 40));

    expect(worker.child.exitCode, 'the worker is still running').to.equal(null);
    expect(ran.length, 'valid tasks run').to.equal(GOOD);
    expect(new Set(ran)).to.deep.equal(new Set(goodTags.map((t) => `ts:${t}`)));
    expect(rejections(), 'each bad entry rejected exactly once').to.equal(BAD);
    expect(left).to.equal(0);
    expect(unacked, 'nothing left in unacked').to.equal(0);
  });
});
