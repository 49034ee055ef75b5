/**
 * Bad input: thousands of malformed messages mixed with valid tasks on one
 * queue that has a dead-letter route.
 *
 * Guarantees checked:
 * - the worker stays up and never loops (each bad message is seen once: its
 *   dead-lettered copy has one `x-death` with count 1);
 * - every valid task runs, exactly once;
 * - every bad message is rejected (dead-lettered: the set of dead-lettered
 *   message ids equals the set of bad ones) with one logged reason each;
 * - messages that are well-formed but fail (wrong arity) or are expired are
 *   acked like Python does, not dead-lettered.
 *
 * Reproducible: a seeded PRNG (FUZZ_SEED to replay another run; the seed is printed).
 */
import { deflateSync } from 'node:zlib';
import amqp, { type ChannelModel, type ConfirmChannel, type Options } from 'amqplib';
import { expect } from 'chai';
import { encodeAmqpTable } from '../../src/protocol/amqp-headers.js';
import { buildTaskMessage, type WireMessage } from '../../src/protocol/message.js';
import type { TsWorker } from '../helpers/ts-worker.js';
import {
  closeCounts, dropCounts, entries, faultServices, newRun, report, settle, startFaultWorker, tail,
  type FaultServices,
} from './support.js';
import { mulberry32 } from '../helpers/prng.js';

const BAD = 3000;
const GOOD = 600;

/** What the worker must do with a message. */
type Expect = 'run' | 'reject' | 'ack';

interface Case {
  expect: Expect;
  kind: string;
  body: Buffer;
  contentType?: string | undefined;
  contentEncoding?: string | undefined;
  headers?: Record<string, unknown> | undefined;
}

/** Builds the cases: `good` valid ones (several wire shapes) and `bad` malformed ones. */
function generate(run: string, good: number, bad: number, rnd: () => number, mode: 'fuzz' | 'strict' = 'fuzz'): Case[] {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;
  const randomBytes = (n: number): Buffer => Buffer.from(Array.from({ length: n }, () => Math.floor(rnd() * 256)));
  let n = 0;
  const id = (): string => `${run}-${(n++).toString(36)}-${Math.floor(rnd() * 1e9).toString(36)}`;
  const wire = (tag: string, extra: Partial<Parameters<typeof buildTaskMessage>[0]> = {}): WireMessage =>
    buildTaskMessage({ id: id(), task: 'faults.record', args: [tag], ...extra });
  const fromWire = (w: WireMessage, e: Expect, kind: string): Case => ({
    expect: e, kind, body: w.body, contentType: w.contentType, contentEncoding: w.contentEncoding, headers: encodeAmqpTable(w.headers),
  });
  /** A valid message with some headers replaced (raw values, amqplib types them). */
  const withHeaders = (kind: string, e: Expect, patch: Record<string, unknown>, tag = `${run}:bad`): Case => {
    const w = wire(tag);
    const headers: Record<string, unknown> = { ...w.headers };
    for (const [k, v] of Object.entries(patch)) if (v === undefined) delete headers[k]; else headers[k] = v;
    return { expect: e, kind, body: w.body, contentType: w.contentType, contentEncoding: w.contentEncoding, headers };
  };
  const withBody = (kind: string, body: string | Buffer, e: Expect = 'reject'): Case => {
    const w = wire(`${run}:bad`);
    return { expect: e, kind, body: Buffer.isBuffer(body) ? body : Buffer.from(body), contentType: w.contentType, contentEncoding: w.contentEncoding, headers: encodeAmqpTable(w.headers) };
  };

  const goodMakers: Array<(tag: string) => Case> = [
    (tag) => fromWire(wire(tag), 'run', 'v2'),
    (tag) => {
      const w = wire(tag);
      return { ...fromWire(w, 'run', 'v2 zlib'), body: deflateSync(w.body), headers: encodeAmqpTable({ ...w.headers, compression: 'application/x-gzip' }) };
    },
    (tag) => ({
      expect: 'run', kind: 'v1 body', contentType: 'application/json', contentEncoding: 'utf-8', headers: {},
      body: Buffer.from(JSON.stringify({ task: 'faults.record', id: id(), args: [tag], kwargs: {}, retries: 0, eta: null })),
    }),
    (tag) => {
      const c = fromWire(wire(tag), 'run', 'huge header');
      c.headers = { ...c.headers, 'x-padding': 'p'.repeat(60_000) };
      return c;
    },
    (tag) => {
      const w = wire(tag);
      const c = fromWire(w, 'run', 'embed null, kwargs null');
      c.body = Buffer.from(JSON.stringify([[tag], null, null]));
      return c;
    },
    (tag) => withHeaders('informational headers of the wrong type', 'run', { root_id: 5, parent_id: [], origin: {}, group_index: 'x', argsrepr: 7 }, tag),
    (tag) => withHeaders('eta as an AMQP timestamp in the past', 'run', { eta: { '!': 'timestamp', value: Math.floor(Date.now() / 1000) - 60 } }, tag),
  ];

  const deep = (depth: number, inner: string): string => '['.repeat(depth) + inner + ']'.repeat(depth);
  const validBody = (tag: string): string => JSON.stringify([[tag], {}, { callbacks: null, errbacks: null, chain: null, chord: null }]);
  const badMakers: Array<() => Case> = [
    () => withBody('random bytes', randomBytes(1 + Math.floor(rnd() * 200))),
    () => withBody('empty body', Buffer.alloc(0)),
    () => { const b = validBody(`${run}:bad`); return withBody('truncated JSON', b.slice(0, Math.floor(rnd() * (b.length - 1)))); },
    () => withBody('wrong body shape', pick(['{}', '[]', '[1,2]', '"str"', 'null', '42', 'true', '[[],{}]', '[[],{},{},4]', '[{},[],null]',
      '[[1],"x",null]', '[[1],[],null]', '[[],{},5]', '[[],{},{"callbacks":"x"}]', '[[],{},{"chord":7}]', '[null,{},null]'])),
    () => withBody('deep nesting with a kombu tag', deep(50_000, '{"__type__":"uuid","__value__":1}')),
    () => withHeaders('missing task header, v2 body', 'reject', { task: undefined }),
    () => withHeaders('missing id', 'reject', { id: undefined }),
    () => withHeaders('empty id', 'reject', { id: '' }),
    () => withHeaders('task not a string', 'reject', { task: pick([5, null, true, ['faults.record'], { a: 1 }]) }),
    () => withHeaders('no headers at all', 'reject', { task: undefined, id: undefined, lang: undefined }),
    () => withHeaders('retries wrong type', 'reject', { retries: pick(['3', 1.5, -1, true, [1], { n: 1 }]) }),
    () => withHeaders('eta wrong type', 'reject', { eta: pick([12345, true, [2026], { y: 2026 }]) }),
    () => withHeaders('eta not a time', 'reject', { eta: pick(['tomorrow', 'not-a-date', '1e9', '27/11/2026']) }),
    () => withHeaders('expires wrong type', 'reject', { expires: pick([5, false, ['x'], { at: 1 }]) }),
    () => withHeaders('timelimit wrong type', 'reject', { timelimit: pick(['10', 10, [1], [1, 2, 3], ['a', null], [-1, null], [null, 'x'], { hard: 1 }]) }),
    () => withHeaders('huge headers, bad', 'reject', { task: undefined, 'x-junk': 'j'.repeat(40_000 + Math.floor(rnd() * 20_000)) }),
    () => withHeaders('unregistered task', 'reject', { task: `no.such.task.${Math.floor(rnd() * 100)}` }),
    () => { const c = withBody('pickle', Buffer.from('\x80\x04\x95\x1d\x00\x00\x00\x00\x00\x00\x00\x8c\x05posix\x94\x8c\x06system\x94\x93\x94\x8c\x02id\x94\x85\x94R\x94.', 'latin1')); c.contentType = 'application/x-python-serialize'; return c; },
    () => { const c = withBody('yaml', '!!python/object/apply:os.system ["id"]'); c.contentType = 'application/x-yaml'; return c; },
    () => { const c = withBody('msgpack', randomBytes(30)); c.contentType = 'application/x-msgpack'; return c; },
    () => { const c = withBody('JSON body, other content type', validBody(`${run}:bad`)); c.contentType = pick(['text/plain', 'application/data', 'application/octet-stream', 'application/json; charset=utf-8', 'APPLICATION/JSON']); return c; },
    () => { const c = withBody('no content type', validBody(`${run}:bad`)); c.contentType = undefined; return c; },
    () => { const c = withBody('unknown content encoding', validBody(`${run}:bad`)); c.contentEncoding = pick(['latin-1', 'utf-16', 'base64', 'gzip']); return c; },
    () => { const c = withHeaders('bad compression', 'reject', { compression: pick(['application/x-gzip', 'zlib', 'bzip2', 'brotli', 5]) }); c.body = randomBytes(40); return c; },
    () => ({
      expect: 'reject', kind: 'v1 body without id', contentType: 'application/json', contentEncoding: 'utf-8', headers: {},
      body: Buffer.from(JSON.stringify({ task: 'faults.record', args: [`${run}:bad`] })),
    }),
    () => ({
      expect: 'reject', kind: 'v1 body, args not a list', contentType: 'application/json', contentEncoding: 'utf-8', headers: {},
      body: Buffer.from(JSON.stringify({ task: 'faults.record', id: id(), args: 'x', kwargs: {} })),
    }),
    // Well-formed messages that must not be dead-lettered: a task that fails, an expired task.
    () => { const c = fromWire(wire(`${run}:bad`), 'ack', 'wrong arity (task fails)'); c.body = Buffer.from(validBody(`${run}:bad`).replace(/^\[\[[^\]]*\]/, '[[]')); return c; },
    () => fromWire(wire(`${run}:bad`, { expires: Date.now() - 60_000 }), 'ack', 'expired'),
  ];

  // Values Python's worker refuses to decode (datetime.fromisoformat, bytes.decode('utf-8')).
  const strictMakers: Array<() => Case> = [
    () => withBody('invalid UTF-8 in JSON', Buffer.concat([Buffer.from(`[["${run}:bad`), Buffer.from([0xff, 0xfe]), Buffer.from('"], {}, null]')])),
    () => withHeaders('eta impossible date', 'reject', { eta: pick(['2026-13-45T00:00:00+00:00', '2026-02-30T12:00:00+00:00', '2026-11-27T25:99:00']) }),
  ];

  const cases: Case[] = [];
  for (let i = 0; i < good; i++) cases.push(goodMakers[i % goodMakers.length]!(`${run}:ok${i}`));
  const makers = mode === 'strict' ? strictMakers : badMakers;
  for (let i = 0; i < bad; i++) cases.push(pick(makers)());
  // Shuffle (Fisher-Yates) so bad and good messages interleave.
  for (let i = cases.length - 1; i > 0; i--) {
    const j = Math.floor(rnd() * (i + 1));
    [cases[i], cases[j]] = [cases[j]!, cases[i]!];
  }
  return cases;
}

describe('bad input: fuzzed messages mixed with valid tasks', function () {
  this.timeout(120_000);
  let svc: FaultServices;
  let worker: TsWorker | null = null;
  let conn: ChannelModel | null = null;
  let ch: ConfirmChannel;
  const run = newRun('fuzz');
  const queue = `faults-${run}`;
  const dlq = `${queue}.dlq`;

  before(async () => {
    svc = await faultServices();
    worker = await startFaultWorker({ broker: svc.rabbit.url, queue, concurrency: 50, env: { FAULTS_DLX: '1' } });
    conn = await amqp.connect(svc.rabbit.url);
    conn.on('error', () => undefined);
    ch = await conn.createConfirmChannel();
    await ch.assertQueue(dlq, { durable: true });
  });

  after(async () => {
    await worker?.stop(5000);
    await conn?.close().catch(() => undefined);
    const delayQueues = [1, 5, 30, 120, 600, 1800, 7200, 21600, 86400].map((s) => `ts-celery.delay.${queue}.${s}s`);
    await svc.rabbit.deleteQueues(queue, dlq, ...delayQueues).catch(() => undefined);
    await dropCounts(run);
    await dropCounts(`${run}s`);
    await closeCounts();
  });

  interface Round {
    cases: Case[];
    ids: string[];
    mustRun: number;
    ran: Map<string, number>;
    doneCount: number;
    mustReject: Set<string>;
    dead: Map<string, { deaths: number; reason: unknown }>;
    logged: number;
    wrongDead: string[];
    notDead: string[];
    kindOf(messageId: string): string;
  }

  /** Publishes the cases, waits until the worker has settled every one, and reads back what happened (tags are `<tagPrefix>:...`). */
  async function round(name: string, cases: Case[], tagPrefix: string): Promise<Round> {
    const loggedBefore = (worker!.output().match(/Rejected a message \(|Received unregistered task/g) ?? []).length;
    const ids = cases.map((_, i) => `${name}-${i}`);
    for (const [i, c] of cases.entries()) {
      const options: Options.Publish = { messageId: ids[i]!, persistent: true, headers: c.headers ?? {} };
      if (c.contentType !== undefined) options.contentType = c.contentType;
      if (c.contentEncoding !== undefined) options.contentEncoding = c.contentEncoding;
      ch.publish('', queue, c.body, options);
      if (i % 200 === 199) await ch.waitForConfirms();
    }
    await ch.waitForConfirms();

    const mustReject = new Set(ids.filter((_, i) => cases[i]!.expect === 'reject'));
    // Settled: nothing ready or unacked on the queue, and the dead-letter count steady.
    let lastDead = -1;
    await settle(async () => {
      const [q, d] = await Promise.all([svc.rabbit.queueStats(queue), svc.rabbit.queueStats(dlq)]);
      const steady = q !== null && q.ready === 0 && q.unacked === 0 && d !== null && d.ready === lastDead;
      lastDead = d?.ready ?? -1;
      return steady;
    }, 60_000, 700);

    const dead = new Map<string, { deaths: number; reason: unknown }>();
    for (;;) {
      const m = await ch.get(dlq, { noAck: true });
      if (!m) break;
      const xdeath = (m.properties.headers?.['x-death'] ?? []) as Array<{ count?: number; reason?: unknown }>;
      dead.set(String(m.properties.messageId), { deaths: xdeath.reduce((a, d) => a + Number(d.count ?? 0), 0), reason: xdeath[0]?.reason });
    }
    const done = (await entries(tagPrefix)).filter((e) => e.tag.startsWith(`${tagPrefix}:ok`));
    const ran = new Map<string, number>();
    for (const e of done) ran.set(e.tag, (ran.get(e.tag) ?? 0) + 1);
    const index = new Map(ids.map((id, i) => [id, i]));
    return {
      cases, ids, mustRun: cases.filter((c) => c.expect === 'run').length, ran, doneCount: done.length, mustReject, dead,
      logged: (worker!.output().match(/Rejected a message \(|Received unregistered task/g) ?? []).length - loggedBefore,
      wrongDead: [...dead.keys()].filter((m) => !mustReject.has(m)),
      notDead: [...mustReject].filter((m) => !dead.has(m)),
      kindOf: (m) => cases[index.get(m) ?? -1]?.kind ?? `unknown message ${m}`,
    };
  }

  function check(r: Round): void {
    const out = worker!.output();
    expect(worker!.child.exitCode, `worker still running:\n${tail(out, 20)}`).to.equal(null);
    expect(r.ran.size, 'valid tasks that ran').to.equal(r.mustRun);
    expect(r.doneCount, 'valid task runs (none twice)').to.equal(r.ran.size);
    expect(r.wrongDead.map(r.kindOf), 'dead-lettered but not bad').to.deep.equal([]);
    expect([...new Set(r.notDead.map(r.kindOf))], 'kinds of bad messages not dead-lettered').to.deep.equal([]);
    expect([...r.dead.values()].every((d) => d.deaths === 1 && d.reason === 'rejected'), 'each bad message rejected once').to.equal(true);
    expect(r.logged, 'one logged reason per rejection').to.equal(r.mustReject.size);
    expect(out).to.not.match(/Unhandled|uncaught|FATAL/i);
  }

  function summary(r: Round): Record<string, number> {
    return {
      'must-run': r.mustRun, ran: r.ran.size, duplicated: r.doneCount - r.ran.size, 'must-reject': r.mustReject.size,
      'dead-lettered': r.dead.size, 'logged-rejections': r.logged, 'wrongly-dead': r.wrongDead.length, 'not-rejected': r.notDead.length,
    };
  }

  it('stays up, runs every valid task once, rejects (dead-letters) every bad one with a logged reason', async () => {
    const seed = Number(process.env.FUZZ_SEED ?? Math.floor(Math.random() * 2 ** 31));
    const tagPrefix = `${run}`;
    const r = await round('fuzz', generate(tagPrefix, GOOD, BAD, mulberry32(seed)), tagPrefix);
    report('fuzz', { seed, bad: BAD, good: GOOD, ...summary(r) });
    check(r);
  });

  it('rejects what Python refuses to decode: impossible ETA dates, invalid UTF-8', async () => {
    const tagPrefix = `${run}s`;
    const r = await round('strict', generate(tagPrefix, 20, 40, mulberry32(7), 'strict'), tagPrefix);
    report('fuzz-strict', summary(r));
    if (r.notDead.length) console.log(`      not rejected (kinds): ${[...new Set(r.notDead.map(r.kindOf))].join('; ')}`);
    check(r);
  });
});
