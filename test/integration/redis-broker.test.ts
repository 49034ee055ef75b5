/**
 * The Redis broker against a real Redis (DB 10 = broker, DB 11 = results):
 * what lands in Redis, the ack emulation, restores and leases, routing.
 * Interop with Python is in test/interop/redis-broker-*.test.ts.
 */
import { expect } from 'chai';
import { Redis } from 'ioredis';
import { RedisBroker } from '../../src/broker/redis/index.js';
import type { Delivery } from '../../src/broker/types.js';
import { Bindings } from '../../src/broker/redis/bindings.js';
import { createCommandClient } from '../../src/broker/redis/client.js';
import { Celery, EventReceiver, PublishError, Worker, type CeleryConfig } from '../../src/index.js';
import { setLogSink } from '../../src/support/log.js';
import { REDIS_BROKER_RESULTS_URL, REDIS_BROKER_URL, uniqueName } from '../helpers/services.js';

const SEP = '\x06\x16';
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function until(check: () => Promise<boolean> | boolean, timeoutMs = 5000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

describe('Redis broker (integration, Redis DB 10)', function () {
  this.timeout(30_000);
  let redis: Redis;
  const apps: Celery[] = [];
  const workers: Worker[] = [];
  const keys: string[] = [];
  let logs: string[] = [];
  let restoreSink: (l: string) => void;

  /** An app on the Redis broker whose queues and bindings are deleted after the tests. */
  function makeApp(queue: string, over: CeleryConfig = {}): Celery {
    const app = new Celery('rb', { broker_url: REDIS_BROKER_URL, result_backend: REDIS_BROKER_RESULTS_URL, task_default_queue: queue, ...over });
    const prefix = ((over.broker_transport_options as { global_keyprefix?: string } | undefined)?.global_keyprefix) ?? '';
    keys.push(...['', `${SEP}3`, `${SEP}6`, `${SEP}9`].map((s) => `${prefix}${queue}${s}`), `${prefix}_kombu.binding.${queue}`, `${prefix}_kombu.binding_permanent.${queue}`);
    // A prefixed app's workers bind their pidbox with a deadline (x-expires): its own deadline set.
    if (prefix) keys.push(`${prefix}_kombu.binding_deadlines`);
    app.task({ name: 'rb.add' }, (x: number, y: number) => x + y);
    app.task({ name: 'rb.sleep' }, async (ms: number) => {
      await sleep(ms);
      return ms;
    });
    apps.push(app);
    return app;
  }

  async function startWorker(app: Celery, concurrency = 4, prefetchMultiplier = 4): Promise<Worker> {
    const w = new Worker(app, { hostname: `rb-${workers.length}@test`, concurrency, prefetchMultiplier });
    workers.push(w);
    await w.start();
    return w;
  }

  async function envelopes(key: string): Promise<Array<Record<string, any>>> {
    return (await redis.lrange(key, 0, -1)).map((raw) => JSON.parse(raw) as Record<string, any>);
  }

  before(() => {
    redis = new Redis(REDIS_BROKER_URL);
    restoreSink = setLogSink((l) => logs.push(l));
  });
  beforeEach(() => {
    logs = [];
  });
  after(async () => {
    for (const w of workers) await w.stop();
    await Promise.all(apps.map((a) => a.close()));
    setLogSink(restoreSink);
    if (keys.length) await redis.del(...keys);
    redis.disconnect();
  });

  it("LPUSHes kombu's envelope and binds the queue in _kombu.binding.<exchange>", async () => {
    const queue = uniqueName('rb-pub');
    const app = makeApp(queue);
    const r = await app.sendTask('rb.add', [2, 3], {}, { priority: 0 });
    const [env] = await envelopes(queue);
    expect(env!.headers).to.deep.include({ task: 'rb.add', id: r.id, lang: 'py' });
    expect(env!.properties).to.deep.include({ correlation_id: r.id, delivery_mode: 2, priority: 0, body_encoding: 'base64', delivery_info: { exchange: '', routing_key: queue } });
    expect(env!.properties.delivery_tag).to.match(/^[0-9a-f-]{36}$/);
    expect(JSON.parse(Buffer.from(env!.body, 'base64').toString())).to.deep.equal([[2, 3], {}, { callbacks: null, errbacks: null, chain: null, chord: null }]);
    expect(await redis.smembers(`_kombu.binding.${queue}`)).to.deep.equal([`${queue}${SEP}${SEP}${queue}`]);
    // Priorities go to kombu's sub-queues: 0-2 on the queue, 3-5 on step 3, ...
    await app.sendTask('rb.add', [1, 1], {}, { priority: 7 });
    expect(await redis.llen(`${queue}${SEP}6`)).to.equal(1);
  });

  it('a worker runs the tasks and its acks leave nothing in unacked', async () => {
    const queue = uniqueName('rb-run');
    const app = makeApp(queue);
    await startWorker(app, 20);
    const results = await Promise.all(Array.from({ length: 300 }, (_, i) => app.sendTask<number>('rb.add', [i, 1])));
    const values = await Promise.all(results.map((r) => r.get({ timeout: 10_000 })));
    expect(values).to.deep.equal(Array.from({ length: 300 }, (_, i) => i + 1));
    const ours = async (): Promise<number> => (await redis.hvals('unacked')).filter((v) => v.endsWith(`"${queue}"]`)).length;
    await until(async () => (await ours()) === 0, 3000, 'every ack');
    expect(await redis.llen(queue)).to.equal(0);
  });

  it('acks_late: the running task is in unacked as [envelope, exchange, key] and its lease keeps moving', async () => {
    const queue = uniqueName('rb-late');
    const app = makeApp(queue, { task_acks_late: true, broker_transport_options: { visibility_timeout: 1 } });
    await startWorker(app, 2);
    const r = await app.sendTask('rb.sleep', [1800]);
    let tag = '';
    await until(async () => {
      for (const [t, v] of Object.entries(await redis.hgetall('unacked'))) if (v.includes(r.id)) tag = t;
      return tag !== '';
    }, 3000, 'the unacked record');
    const [envelope, exchange, routingKey] = JSON.parse((await redis.hget('unacked', tag))!) as [Record<string, any>, string, string];
    expect([exchange, routingKey]).to.deep.equal(['', queue]);
    expect(envelope.properties.delivery_tag).to.equal(tag);
    const first = Number(await redis.zscore('unacked_index', tag));
    await sleep(1200);
    const later = Number(await redis.zscore('unacked_index', tag));
    // Renewed every 250 ms: never older than the 1 s visibility timeout, so no restore takes it.
    expect(later).to.be.greaterThan(first + 0.5);
    expect(Date.now() / 1000 - later).to.be.below(1);
    expect(await r.get({ timeout: 5000 })).to.equal(1800);
    await until(async () => (await redis.hexists('unacked', tag)) === 0, 2000, 'the ack');
    expect(await redis.zscore('unacked_index', tag)).to.equal(null);
  });

  it('priority 0 runs first on Redis, as with kombu (lower step lists are popped first)', async () => {
    const queue = uniqueName('rb-prio');
    const app = makeApp(queue);
    const order: number[] = [];
    app.task({ name: 'rb.order' }, (p: number) => {
      order.push(p);
    });
    for (const p of [9, 6, 3, 0, 9, 0]) await app.sendTask('rb.order', [p], {}, { priority: p });
    const w = await startWorker(app, 1, 1);
    await until(() => order.length === 6, 5000, 'six tasks');
    expect(order).to.deep.equal([0, 0, 3, 6, 9, 9]);
    await w.stop();
  });

  it('routes through a topic exchange binding, and refuses a message no queue is bound for', async () => {
    const queue = uniqueName('rb-topic');
    const exchange = uniqueName('rb-tx');
    keys.push(`_kombu.binding.${exchange}`, `_kombu.binding_permanent.${exchange}`);
    const app = makeApp(queue, {
      task_queues: [{ name: queue, exchange, exchange_type: 'topic', routing_key: 'sms.#' }],
      task_routes: { 'rb.add': { queue, routing_key: 'sms.send.cn' } },
    });
    await app.sendTask('rb.add', [1, 2]);
    const [env] = await envelopes(queue);
    expect(env!.properties.delivery_info).to.deep.equal({ exchange, routing_key: 'sms.send.cn' });
    expect(await redis.smembers(`_kombu.binding.${exchange}`)).to.deep.equal([`sms.#${SEP}^sms\\..*?$${SEP}${queue}`]);
    const err = await app.sendTask('rb.add', [1, 2], {}, { exchange, routingKey: 'email.send' }).catch((e: unknown) => e);
    expect(err).to.be.instanceOf(PublishError);
    expect((err as Error).message).to.match(/No queue is bound to exchange .* with key "email.send".*not stored/);
  });

  it('global_keyprefix prefixes the queues, bindings and the ack emulation', async () => {
    const queue = uniqueName('rb-prefix');
    const app = makeApp(queue, { broker_transport_options: { global_keyprefix: 'tsc:' }, task_acks_late: true });
    keys.push('tsc:unacked', 'tsc:unacked_index', 'tsc:unacked_mutex');
    const r1 = await app.sendTask('rb.add', [1, 1]);
    expect(await redis.llen(`tsc:${queue}`)).to.equal(1);
    expect(await redis.exists(`tsc:_kombu.binding.${queue}`)).to.equal(1);
    await startWorker(app, 1);
    const r2 = await app.sendTask('rb.sleep', [400]);
    await until(async () => (await redis.hlen('tsc:unacked')) === 1, 3000, 'tsc:unacked');
    expect(await r1.get({ timeout: 3000 })).to.equal(2);
    expect(await r2.get({ timeout: 3000 })).to.equal(400);
  });

  it('warm shutdown returns held ETA tasks to the front of their queue, marked redelivered', async () => {
    const queue = uniqueName('rb-eta');
    const app = makeApp(queue);
    const w = await startWorker(app, 2);
    const held = await app.sendTask('rb.add', [1, 2], {}, { countdown: 60 });
    await until(async () => (await redis.hlen('unacked')) > 0 && (await redis.llen(queue)) === 0, 3000, 'the ETA task to be held');
    await w.stop();
    const [env] = await envelopes(queue);
    expect(env!.headers).to.deep.include({ id: held.id, redelivered: true });
    expect(env!.properties.delivery_info).to.deep.include({ redelivered: true });
    expect(await redis.hexists('unacked', env!.properties.delivery_tag)).to.equal(0);
  });

  it("restores another worker's overdue message under unacked_mutex, as kombu's restore_visible", async () => {
    const queue = uniqueName('rb-restore');
    const app = makeApp(queue, { broker_transport_options: { visibility_timeout: 5 } });
    await app.sendTask('rb.add', [5, 5]);
    // What a worker that died after fetching leaves behind: kombu's record, delivered 10 s ago.
    const raw = (await redis.rpop(queue))!;
    const tag = (JSON.parse(raw) as Record<string, any>).properties.delivery_tag as string;
    await redis.hset('unacked', tag, `[${raw}, "", "${queue}"]`);
    await redis.zadd('unacked_index', Date.now() / 1000 - 10, tag);
    const broker = app.broker as RedisBroker;
    await redis.set('unacked_mutex', 'someone-else', 'PX', 2000);
    expect(await broker.restoreVisible(), 'another sweeper holds the lock').to.equal(0);
    await redis.del('unacked_mutex');
    expect(await broker.restoreVisible()).to.be.at.least(1);
    const [env] = await envelopes(queue);
    expect(env!.properties.delivery_tag).to.equal(tag);
    expect(env!.properties.delivery_info.redelivered).to.equal(true);
    expect(await redis.hexists('unacked', tag)).to.equal(0);
    expect(await redis.zscore('unacked_index', tag)).to.equal(null);
    expect(await redis.exists('unacked_mutex')).to.equal(0);
  });

  it('a restore leaves alone a message whose lease the holding worker renews (kombu#337)', async () => {
    const queue = uniqueName('rb-lease');
    const app = makeApp(queue, { broker_transport_options: { visibility_timeout: 1 } });
    await startWorker(app, 1);
    const r = await app.sendTask<number>('rb.add', [20, 22], {}, { countdown: 2.5 });
    await until(async () => (await redis.llen(queue)) === 0, 3000, 'the ETA task to be held');
    const sweeper = makeApp(queue, { broker_transport_options: { visibility_timeout: 1 } }).broker as RedisBroker;
    const started = Date.now();
    let restored = 0;
    while (Date.now() - started < 2000) {
      restored += await sweeper.restoreVisible();
      await sleep(200);
    }
    expect(restored).to.equal(0);
    expect(await r.get({ timeout: 5000 })).to.equal(42);
  });

  it('rejects an unreadable entry once, with the reason, and keeps consuming', async () => {
    const queue = uniqueName('rb-bad');
    const app = makeApp(queue);
    const w = await startWorker(app, 2);
    await redis.lpush(queue, 'this is not kombu', '{"properties": {"delivery_tag": "t1", "body_encoding": "base64"}, "body": "!!", "content-type": "application/json", "headers": {}}');
    const r = await app.sendTask<number>('rb.add', [2, 2]);
    expect(await r.get({ timeout: 5000 })).to.equal(4);
    await until(() => w.stats.rejected === 2, 2000, 'two rejections');
    expect(logs.some((l) => /Rejected a message \(invalid task message: unreadable envelope: not JSON/.test(l))).to.equal(true);
    expect(await redis.hexists('unacked', 't1')).to.equal(0);
    expect(await redis.llen(queue)).to.equal(0);
  });

  it("records every envelope shape in unacked exactly as kombu would ([envelope, exchange, routing_key])", async () => {
    const queue = uniqueName('rb-shapes');
    const app = makeApp(queue);
    await app.sendTask('rb.add', [1, 1]);
    const ours = (await redis.rpop(queue))!;
    const base = JSON.parse(ours) as Record<string, any>;
    const variant = (edit: (e: Record<string, any>) => void): Record<string, any> => {
      const e = structuredClone(base);
      e.properties.delivery_tag = crypto.randomUUID();
      edit(e);
      return e;
    };
    const pythonStyle = (e: Record<string, any>): string => JSON.stringify(e).replace(/":/g, '": ').replace(/,"/g, ', "');
    const shapes: string[] = [
      JSON.stringify(variant(() => undefined)), // ts-celery's compact JSON
      pythonStyle(variant(() => undefined)), // kombu's json.dumps spacing
      pythonStyle(variant((e) => { e.properties.delivery_info.redelivered = true; e.headers.redelivered = true; })), // restored by kombu
      JSON.stringify(variant((e) => { e.properties.delivery_info = { exchange: 'ex"q', routing_key: 'rk\\x' }; })), // escapes
      JSON.stringify(variant((e) => { const { delivery_tag, ...rest } = e.properties; e.properties = { delivery_tag, ...rest }; })), // another key order
      JSON.stringify(variant((e) => { delete e.properties.delivery_info; })), // no delivery_info: the consumed queue
      JSON.stringify(variant((e) => { e.headers.delivery_info = { exchange: 'decoy', routing_key: 'decoy' }; e.headers.delivery_tag = 'decoy'; })),
    ];
    for (const raw of shapes) await redis.lpush(queue, raw);
    const got: Delivery[] = [];
    const consumer = await app.broker.consume(
      { name: queue, durable: true, autoDelete: false, arguments: {}, exchange: { name: queue, type: 'direct', durable: true }, routingKey: queue },
      { prefetch: 100, onDelivery: (d) => got.push(d) },
    );
    await until(() => got.length === shapes.length, 3000, 'every shape delivered');
    for (const raw of shapes) {
      const env = JSON.parse(raw) as Record<string, any>;
      const tag = env.properties.delivery_tag as string;
      const record = JSON.parse((await redis.hget('unacked', tag))!) as [Record<string, any>, string, string];
      const info = env.properties.delivery_info ?? { exchange: '', routing_key: queue };
      expect(record, raw.slice(-140)).to.deep.equal([env, info.exchange, info.routing_key]);
      expect(got.find((d) => d.message.headers.id === env.headers.id && (d as unknown as { tag: string }).tag === tag), `delivered with tag ${tag}`).to.not.equal(undefined);
    }
    for (const d of got) d.ack();
    await consumer.close();
    for (const raw of shapes) expect(await redis.hexists('unacked', (JSON.parse(raw) as Record<string, any>).properties.delivery_tag)).to.equal(0);
  });

  it('the consumer API: prefetch bounds what is handed over, and a requeue comes back redelivered', async () => {
    const queue = uniqueName('rb-api');
    const app = makeApp(queue);
    for (let i = 0; i < 5; i++) await app.sendTask('rb.add', [i, 0]);
    const got: Delivery[] = [];
    const consumer = await app.broker.consume(
      { name: queue, durable: true, autoDelete: false, arguments: {}, exchange: { name: queue, type: 'direct', durable: true }, routingKey: queue },
      { prefetch: 2, onDelivery: (d) => got.push(d) },
    );
    await until(() => got.length === 2, 2000, 'two deliveries');
    await sleep(200);
    expect(got.length, 'no more than the prefetch').to.equal(2);
    expect(await redis.llen(queue)).to.equal(3);
    const first = got[0]!;
    first.reject(true);
    const again = (): Delivery | undefined => got.find((d) => d !== first && d.message.headers.id === first.message.headers.id);
    while (!again()) {
      // Settle whatever else arrives, so the prefetch window makes room for the requeued one.
      for (const d of got) if (d !== first) d.ack();
      await sleep(20);
    }
    expect(again()!.info.redelivered).to.equal(true);
    expect(again()!.message.headers.redelivered).to.equal(true);
    await consumer.close();
  });
  it('fanout exchanges go over pub/sub: PUBLISH on <prefix>/10.<exchange>/<key>, one PSUBSCRIBE per binding, no unacked records', async () => {
    const prefix = `${uniqueName('rbfx')}:`;
    const exchange = uniqueName('rb-fx');
    const app = makeApp(uniqueName('rb-fx-q'), { broker_transport_options: { global_keyprefix: prefix } });
    const tap = new Redis(REDIS_BROKER_URL);
    const channels: string[] = [];
    tap.on('pmessage', (_p: string, channel: string) => channels.push(channel));
    await tap.psubscribe(`${prefix}/10.${exchange}*`);
    const decl = (name: string, key: string) => ({ name, durable: false, autoDelete: true, arguments: {}, exchange: { name: exchange, type: 'fanout' as const, durable: false }, routingKey: key });
    const got: Record<string, string[]> = { all: [], a: [] };
    const onDelivery = (q: string) => (d: Delivery) => got[q]!.push(`${d.info.routingKey}:${d.message.body.toString()}`);
    const all = await app.broker.consume(decl(uniqueName('rb-fx-all'), '#'), { prefetch: 0, noAck: true, onDelivery: onDelivery('all') });
    const a = await app.broker.consume(decl(uniqueName('rb-fx-a'), 'a.#'), { prefetch: 0, noAck: true, onDelivery: onDelivery('a') });
    try {
      expect(all.consuming).to.equal(true);
      // Bound as kombu binds: members in the table (and the permanent set: no x-expires here).
      expect((await redis.smembers(`${prefix}_kombu.binding.${exchange}`)).sort()).to.deep.equal([`#${SEP}${SEP}${all.queue}`, `a.#${SEP}${SEP}${a.queue}`].sort());
      const route = { exchange, declareExchange: { name: exchange, type: 'fanout' as const, durable: false } };
      const msg = (text: string) => ({ body: Buffer.from(text), contentType: 'text/plain', contentEncoding: 'utf-8', headers: {}, deliveryMode: 1 as const });
      await app.broker.publish(msg('one'), { ...route, routingKey: 'a.b' });
      await app.broker.publish(msg('two'), { ...route, routingKey: 'c.d' });
      await until(() => got.all!.length === 2 && channels.length === 2, 3000, 'two broadcasts');
      expect(got.all).to.deep.equal(['a.b:one', 'c.d:two']);
      expect(got.a).to.deep.equal(['a.b:one']);
      expect(channels).to.deep.equal([`${prefix}/10.${exchange}/a.b`, `${prefix}/10.${exchange}/c.d`]);
      expect(await redis.hlen(`${prefix}unacked`)).to.equal(0);
    } finally {
      await all.close();
      await a.close();
      tap.disconnect();
    }
    // Auto-delete fanout queues go with their consumer (kombu's close); a broadcast nobody hears is refused unless unconfirmed.
    expect(await redis.exists(`${prefix}_kombu.binding.${exchange}`, `${prefix}_kombu.binding_permanent.${exchange}`)).to.equal(0);
    const route = { exchange, routingKey: 'x', declareExchange: { name: exchange, type: 'fanout' as const, durable: false } };
    const lonely = { body: Buffer.from('x'), contentType: 'text/plain', contentEncoding: 'utf-8', headers: {}, deliveryMode: 1 as const };
    await app.broker.publish(lonely, route, { confirm: false });
    const err = await app.broker.publish(lonely, route).then(() => null, (e: unknown) => e);
    expect(err).to.be.instanceOf(PublishError);
    expect((err as Error).message).to.match(/No consumer is subscribed to fanout exchange/);
  });

  it('a worker answers remote control over its pidbox and sends events over the celeryev fanout exchange', async () => {
    const queue = uniqueName('rb-ctl');
    const app = makeApp(queue);
    const hostname = `${uniqueName('rb-ctl')}@test`;
    const received: string[] = [];
    const receiver = new EventReceiver(app, { handlers: { '*': (e) => received.push(`${e.type}:${String(e.uuid ?? e.hostname)}`) } });
    expect(receiver.queue.exchange.type).to.equal('fanout');
    await receiver.start();
    const w = new Worker(app, { hostname, concurrency: 2, taskEvents: true, heartbeatInterval: null });
    workers.push(w);
    try {
      await w.start();
      expect(await app.control.ping({ destination: [hostname], timeout: 2 })).to.deep.equal([{ [hostname]: { ok: 'pong' } }]);
      const r = await app.sendTask('rb.add', [20, 22]);
      expect(await r.get({ timeout: 5000 })).to.equal(42);
      await until(() => received.includes(`task-succeeded:${r.id}`), 5000, 'task-succeeded');
      expect(received).to.include(`worker-online:${hostname}`).and.to.include(`task-received:${r.id}`).and.to.include(`task-started:${r.id}`);
      // The pidbox and the reply queue have x-expires: bound with a deadline an hour away, not permanently (kombu 5.7).
      const node = `${SEP}${SEP}${hostname}.celery.pidbox`;
      expect(await redis.sismember('_kombu.binding.celery.pidbox', node)).to.equal(1);
      expect(await redis.sismember('_kombu.binding_permanent.celery.pidbox', node)).to.equal(0);
      const deadline = Number(await redis.zscore('_kombu.binding_deadlines', 'celery.pidbox'));
      expect(deadline).to.be.greaterThan(Date.now() + 50 * 60_000);
      // Replies were consumed without acks: no unacked record of the reply queue.
      expect((await redis.hvals('unacked')).some((v) => v.includes(app.control.oid))).to.equal(false);
      await w.stop();
      await until(() => received.includes(`worker-offline:${hostname}`), 5000, 'worker-offline');
      // Its pidbox was auto-delete: its binding went with it, as kombu deletes it.
      expect(await redis.sismember('_kombu.binding.celery.pidbox', node)).to.equal(0);
    } finally {
      await receiver.close();
    }
    expect(await redis.sismember('_kombu.binding.celeryev', `#${SEP}${SEP}${receiver.queue.name}`)).to.equal(0);
  });

  it("sweeps binding tables nobody refreshed in time, as kombu 5.7's consumers do, and keeps those a permanent queue still uses", async () => {
    const prefix = `${uniqueName('rbsw')}:`;
    const client = createCommandClient({ host: '127.0.0.1', port: 6379, db: 10 });
    const bindings = new Bindings(client, { keySpace: { prefix, sep: SEP, steps: [0, 3, 6, 9] }, displayUrl: REDIS_BROKER_URL, reason: (e) => String(e) });
    const q = (name: string, exchange: string, args: Record<string, unknown>) => ({ name, durable: false, autoDelete: true, arguments: args, exchange: { name: exchange, type: 'direct' as const, durable: false }, routingKey: name });
    try {
      await bindings.declare(q('r1', 'gone', { 'x-expires': 10_000 }));
      await bindings.declare(q('r2', 'kept', { 'x-expires': 10_000 }));
      await bindings.declare(q('p1', 'kept', {}));
      expect(await client.smembers(`${prefix}_kombu.binding_permanent.kept`)).to.deep.equal([`p1${SEP}${SEP}p1`]);
      expect(await bindings.sweep()).to.equal(0); // deadlines an hour away
      // Both deadlines passed (no refresh for an hour): the expiring table goes, the one with a permanent queue stays.
      await client.zadd(`${prefix}_kombu.binding_deadlines`, 1, 'gone', 1, 'kept');
      expect(await bindings.sweep()).to.equal(2);
      expect(await client.exists(`${prefix}_kombu.binding.gone`)).to.equal(0);
      expect((await client.smembers(`${prefix}_kombu.binding.kept`)).sort()).to.deep.equal([`p1${SEP}${SEP}p1`, `r2${SEP}${SEP}r2`]);
      expect(await client.zcard(`${prefix}_kombu.binding_deadlines`)).to.equal(0);
    } finally {
      bindings.stop();
      await client.del(...['_kombu.binding.gone', '_kombu.binding.kept', '_kombu.binding_permanent.kept', '_kombu.binding_deadlines'].map((k) => prefix + k));
      client.disconnect();
    }
  });
});
