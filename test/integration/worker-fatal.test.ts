/**
 * A queue that can no longer be declared as the worker declares it (406
 * PRECONDITION_FAILED on the redeclare after its consumer was cancelled) is
 * fatal: the CLI worker says why and exits non-zero instead of staying up
 * without consuming (issue #9, item 4; the reconnect-budget case is in
 * test/faults/broker-fatal.test.ts).
 */
import amqp from 'amqplib';
import { expect } from 'chai';
import { AMQP_URL, deleteQueues, uniqueName } from '../helpers/services.js';
import { startTsWorker } from '../helpers/ts-worker.js';

describe('ts-celery worker: a queue it cannot redeclare is fatal (integration)', function () {
  this.timeout(30_000);
  const queue = uniqueName('fatal-406');
  after(() => deleteQueues(queue));

  it('exits 1 with the reason when the redeclare after a consumer cancel gets 406', async () => {
    const worker = await startTsWorker({ queues: [queue], concurrency: 2 });
    try {
      // Delete the queue under the worker (RabbitMQ cancels its consumer) and declare it at once with
      // other arguments, as another application might: the worker's redeclare is then refused.
      const conn = await amqp.connect(AMQP_URL);
      const ch = await conn.createChannel();
      await ch.deleteQueue(queue);
      await ch.assertQueue(queue, { durable: true, arguments: { 'x-max-length': 5 } });
      await conn.close();
      const code = await Promise.race([worker.exited, new Promise<string>((r) => setTimeout(() => r('still running'), 15_000))]);
      expect(code, worker.output()).to.equal(1);
      expect(worker.output()).to.match(new RegExp(`CRITICAL/MainProcess\\] consumer: RabbitMQ refused to declare queue "${queue}": it already exists with different settings`));
      expect(worker.output()).to.match(/Nothing is consuming any more: shutting down/);
      expect(worker.output()).not.to.match(/Unhandled promise rejection/);
    } finally {
      worker.kill('SIGKILL');
    }
  });
});
