import amqp, { type ChannelModel, type GetMessage } from 'amqplib';
import { expect } from 'chai';
import { BrokerError, Celery, EncodeError, PublishError } from '../../src/index.js';
import { AMQP_URL, REDIS_URL, uniqueName } from '../helpers/services.js';

async function getOne(conn: ChannelModel, queue: string): Promise<GetMessage> {
  const ch = await conn.createChannel();
  try {
    for (let i = 0; i < 50; i++) {
      const m = await ch.get(queue, { noAck: true });
      if (m) return m;
      await new Promise((r) => setTimeout(r, 20));
    }
    throw new Error(`no message on ${queue}`);
  } finally {
    await ch.close();
  }
}

describe('producer on RabbitMQ (integration)', () => {
  let conn: ChannelModel;
  const queues: string[] = [];
  const apps: Celery[] = [];

  const makeApp = (over: Record<string, unknown> = {}): Celery => {
    const app = new Celery('it', { broker_url: AMQP_URL, result_backend: REDIS_URL, ...over });
    apps.push(app);
    return app;
  };

  before(async () => {
    conn = await amqp.connect(AMQP_URL);
  });
  after(async () => {
    await Promise.all(apps.map((a) => a.close()));
    const ch = await conn.createChannel();
    for (const q of queues) await ch.deleteQueue(q).catch(() => undefined);
    await conn.close();
  });

  it('publishes a persistent protocol v2 message that RabbitMQ holds once delay() resolves', async () => {
    const queue = uniqueName('prod');
    queues.push(queue);
    const app = makeApp({ task_default_queue: queue });
    const add = app.task({ name: 'tasks.add' }, (x: number, y: number) => x + y);
    const result = await add.delay(2, 3);
    const m = await getOne(conn, queue);
    expect(m.fields.exchange).to.equal('');
    expect(m.fields.routingKey).to.equal(queue);
    expect(m.properties).to.deep.include({
      contentType: 'application/json', contentEncoding: 'utf-8', deliveryMode: 2, priority: 0,
      correlationId: result.id, replyTo: app.oid,
    });
    const h = m.properties.headers!;
    expect(h).to.deep.include({ lang: 'py', task: 'tasks.add', id: result.id, root_id: result.id, retries: 0, argsrepr: '(2, 3)' });
    expect(h.timelimit).to.deep.equal([null, null]);
    expect(JSON.parse(m.content.toString())).to.deep.equal([[2, 3], {}, { callbacks: null, errbacks: null, chain: null, chord: null }]);
  });

  it('declares the queue exactly as Python does (durable, no arguments) and a durable direct exchange', async () => {
    const queue = uniqueName('decl');
    queues.push(queue);
    const app = makeApp({ task_default_queue: queue });
    await app.sendTask('py.add', [1, 1]);
    const ch = await conn.createChannel();
    // A passive-equivalent redeclare with kombu's exact flags succeeds only if they match.
    const ok = await ch.assertQueue(queue, { durable: true, autoDelete: false, exclusive: false, arguments: {} });
    expect(ok.messageCount).to.equal(1);
    await ch.checkExchange(queue);
    await ch.close();
  });

  it('sets eta, expires and the expiration TTL from countdown/expires', async () => {
    const queue = uniqueName('eta');
    queues.push(queue);
    const app = makeApp({ task_default_queue: queue });
    const before = Date.now();
    await app.sendTask('py.add', [1, 2], {}, { countdown: 30, expires: 120, priority: 7 });
    const m = await getOne(conn, queue);
    const h = m.properties.headers!;
    expect(Date.parse(h.eta as string)).to.be.within(before + 30_000 - 5, Date.now() + 30_000);
    expect(Date.parse(h.expires as string)).to.be.within(before + 120_000 - 5, Date.now() + 120_000);
    expect(Number(m.properties.expiration)).to.be.within(119_000, 120_000);
    expect(m.properties.priority).to.equal(7);
  });

  it('rejects delay() with a readable error when RabbitMQ is unreachable, and publishes nothing', async () => {
    const app = makeApp({ broker_url: 'amqp://guest:secret-pw@127.0.0.1:1//', task_publish_retry_policy: { max_retries: 1, interval_start: 0, interval_step: 0.1, interval_max: 0.1 } });
    const err = await app.sendTask('py.add', [1, 2]).then(() => null, (e: unknown) => e);
    expect(err).to.be.instanceOf(BrokerError);
    expect((err as Error).message).to.match(/RabbitMQ refused the connection at amqp:\/\/guest:\*\*@127\.0\.0\.1:1\/\/: is it running\?/);
    expect((err as Error).message).not.to.contain('secret-pw');
  });

  it('rejects unserializable arguments before publishing', async () => {
    const queue = uniqueName('enc');
    queues.push(queue);
    const app = makeApp({ task_default_queue: queue });
    const t = app.task({ name: 'tasks.enc' }, (_x: unknown) => null);
    const err = await t.delay(1n).then(() => null, (e: unknown) => e);
    expect(err).to.be.instanceOf(EncodeError);
    expect((err as Error).message).to.match(/args\[0\] is a BigInt/);
    // checkQueue on a missing queue makes RabbitMQ close the channel (404): use a throwaway one.
    const ch = await conn.createChannel();
    ch.on('error', () => undefined);
    const exists = await ch.checkQueue(queue).then(() => true, () => false);
    await ch.close().catch(() => undefined);
    expect(exists, 'nothing declared or published for an unsendable task').to.equal(false);
  });

  it('explains a queue declared differently elsewhere (406) and keeps publishing to other queues', async () => {
    const queue = uniqueName('conflict');
    const other = uniqueName('fine');
    queues.push(queue, other);
    const ch = await conn.createChannel();
    await ch.assertQueue(queue, { durable: true, arguments: { 'x-max-priority': 10 } });
    await ch.close();
    const app = makeApp();
    const err = await app.sendTask('py.add', [1], {}, { queue }).then(() => null, (e: unknown) => e);
    expect(err).to.be.instanceOf(BrokerError);
    expect((err as Error).message).to.match(/refused to declare queue .*already exists with different settings.*x-max-priority/s);
    await app.sendTask('py.add', [1], {}, { queue: other });
    const m = await getOne(conn, other);
    expect(m.properties.headers!.task).to.equal('py.add');
  });

  it('rejects a message no queue takes instead of reporting it sent', async () => {
    const exchange = uniqueName('unbound');
    const ch = await conn.createChannel();
    await ch.assertExchange(exchange, 'direct', { durable: false, autoDelete: true });
    const app = makeApp();
    try {
      const err = await app.sendTask('py.add', [1], {}, { exchange, routingKey: 'nobody-listens' }).then(() => null, (e: unknown) => e);
      expect(err).to.be.instanceOf(PublishError);
      expect((err as Error).message).to.match(/could not route the message to exchange .* \(NO_ROUTE\).*not stored/s);
    } finally {
      await ch.deleteExchange(exchange).catch(() => undefined);
      await ch.close();
    }
  });

  it('on an open channel too: a queue deleted under the producer is declared again and gets the message; an unbound exchange still rejects', async () => {
    const queue = uniqueName('redeclare');
    queues.push(queue);
    const exchange = uniqueName('unbound-warm');
    const app = makeApp({ task_default_queue: queue });
    await app.sendTask('py.add', [1, 1]); // opens the confirm channel and declares the queue
    const ch = await conn.createChannel();
    await ch.deleteQueue(queue);
    await ch.assertExchange(exchange, 'direct', { durable: false, autoDelete: true });
    try {
      // RabbitMQ returns this publish (NO_ROUTE): it is sent again after declaring the queue.
      const result = await app.sendTask('py.add', [2, 2]);
      const m = await getOne(conn, queue);
      expect(m.properties.correlationId).to.equal(result.id);
      const err = await app.sendTask('py.add', [3], {}, { exchange, routingKey: 'nobody-listens' }).then(() => null, (e: unknown) => e);
      expect(err).to.be.instanceOf(PublishError);
      expect((err as Error).message).to.match(/\(NO_ROUTE\).*not stored/s);
    } finally {
      await ch.deleteExchange(exchange).catch(() => undefined);
      await ch.close();
    }
  });

  it('confirms many concurrent delay() calls', async () => {
    const queue = uniqueName('burst');
    queues.push(queue);
    const app = makeApp({ task_default_queue: queue });
    const results = await Promise.all(Array.from({ length: 500 }, (_, i) => app.sendTask('py.add', [i, i])));
    expect(new Set(results.map((r) => r.id)).size).to.equal(500);
    const ch = await conn.createChannel();
    const q = await ch.checkQueue(queue);
    await ch.close();
    expect(q.messageCount).to.equal(500);
  });
});
