/**
 * Worker start/stop races on RabbitMQ (issue #9): stop() during start()
 * (item 5), and a park into the delay queues still waiting for its confirm
 * when stop() runs (item 8).
 */
import amqp, { type ChannelModel } from 'amqplib';
import { expect } from 'chai';
import { Celery, Worker } from '../../src/index.js';
import type { Delivery } from '../../src/broker/types.js';
import { delayQueueDeclaration } from '../../src/broker/amqp/delay-queues.js';
import { AMQP_URL, uniqueName } from '../helpers/services.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('worker lifecycle races on RabbitMQ (integration)', function () {
  this.timeout(30_000);
  let conn: ChannelModel;
  const queues: string[] = [];
  const apps: Celery[] = [];

  const counts = async (queue: string): Promise<{ messageCount: number; consumerCount: number }> => {
    const ch = await conn.createChannel();
    try {
      return await ch.checkQueue(queue);
    } finally {
      await ch.close();
    }
  };

  before(async () => {
    conn = await amqp.connect(AMQP_URL);
  });
  after(async () => {
    await Promise.all(apps.map((a) => a.close().catch(() => undefined)));
    const ch = await conn.createChannel();
    for (const q of queues) await ch.deleteQueue(q).catch(() => undefined);
    await conn.close();
  });

  it('stop() during start() wins at any moment: nothing consumes afterwards', async () => {
    // 0 ms stops before the connection exists; later ones land inside consume()/attach().
    for (const delayMs of [0, 1, 3, 8, 20]) {
      const queue = uniqueName('lifecycle-stop');
      queues.push(queue);
      const app = new Celery('lifecycle', { broker_url: AMQP_URL, task_default_queue: queue });
      apps.push(app);
      let runs = 0;
      app.task({ name: 'lifecycle.count' }, () => ++runs);
      const worker = new Worker(app, { hostname: `${queue}@test`, concurrency: 2 });
      const started = worker.start();
      await sleep(delayMs);
      await worker.stop();
      await started;
      await app.sendTask('lifecycle.count');
      await sleep(300);
      expect(runs, `stopped ${delayMs} ms into start(): a task sent after stop() ran`).to.equal(0);
      expect(await counts(queue), `stopped ${delayMs} ms into start()`).to.deep.equal({ queue, messageCount: 1, consumerCount: 0 });
    }
  });

  it('a park confirmed after stop() began leaves exactly one copy of the task (never requeued and parked)', async () => {
    const queue = uniqueName('lifecycle-park');
    const delayQueue = delayQueueDeclaration(queue, 30).name;
    queues.push(queue, delayQueue);
    // ETAs more than 1 s away are parked; a 60 s eta parks into the 30 s step.
    const app = new Celery('lifecycle', { broker_url: AMQP_URL, task_default_queue: queue, worker_eta_max_hold: 1 });
    apps.push(app);
    app.task({ name: 'lifecycle.later' }, () => 'ran');
    const worker = new Worker(app, { hostname: `${queue}@test`, concurrency: 2 });
    await worker.start();

    // Fault injection on the real broker: the park's publish starts only once stop() is under way,
    // as when its confirm is slow. Everything else (publish, confirm, ack, channel close) is real.
    let stopCalled = false;
    let parkEntered!: () => void;
    const entered = new Promise<void>((r) => (parkEntered = r));
    const broker = app.broker;
    const realPark = broker.park!.bind(broker);
    broker.park = async (delivery: Delivery, delayMs: number) => {
      parkEntered();
      while (!stopCalled) await sleep(5);
      await sleep(200); // stop() has meanwhile cancelled the consumer and, unfixed, closed its channel
      return realPark(delivery, delayMs);
    };

    await app.sendTask('lifecycle.later', [], {}, { countdown: 60 });
    await entered;
    stopCalled = true;
    await worker.stop();
    await sleep(500); // a park confirmed after stop() resolved would land now
    const original = await counts(queue);
    const parked = await counts(delayQueue);
    const copies = { original: original.messageCount, parked: parked.messageCount };
    expect(copies.original + copies.parked, `copies of the one task: ${JSON.stringify(copies)}`).to.equal(1);
  });
});
