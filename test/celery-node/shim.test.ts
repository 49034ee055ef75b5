/**
 * ts-celery/celery-node in one process, on real RabbitMQ and Redis: celery-node's API, and where
 * ts-celery's behaviour shows through it (bounded concurrency, errors, sends confirmed before
 * disconnect, bad messages, connection failures).
 */
import { expect } from 'chai';
import amqp from 'amqplib';
import { hostname } from 'node:os';
import { BrokerError, setLogLevel, TaskError, TimeoutError } from 'ts-celery';
import { createClient, createWorker, type Client, type Worker } from 'ts-celery/celery-node';
import { AMQP_URL, REDIS_URL, deleteQueues, uniqueName } from '../helpers/services.js';

const NO_VHOST_URL = 'amqp://guest:guest@127.0.0.1:5672/ts-celery-no-such-vhost';

describe('ts-celery/celery-node: the client and worker API on RabbitMQ and Redis', function () {
  this.timeout(30_000);
  const queue = uniqueName('shim');
  let worker: Worker;
  let client: Client;
  let running = 0;
  let peak = 0;

  before(async () => {
    setLogLevel('warning'); // a level chosen by the program: the worker leaves it
    worker = createWorker(AMQP_URL, REDIS_URL, queue);
    worker.conf.TS_CELERY = { worker_concurrency: 2 };
    worker.register('tasks.add', (a: number, b: number) => a + b);
    worker.register('tasks.kwargs', (a: number, kwargs: Record<string, unknown>) => ({ a, kwargs }));
    worker.register('tasks.fail', (message: string) => {
      throw new TypeError(message);
    });
    worker.register('tasks.slow', async (ms: number) => {
      running++;
      peak = Math.max(peak, running);
      await new Promise((r) => setTimeout(r, ms));
      running--;
      return ms;
    });
    await worker.start();
    client = createClient(AMQP_URL, REDIS_URL, queue);
  });
  after(async () => {
    await client.disconnect();
    await worker.disconnect();
    await deleteQueues(queue);
  });

  it('sends with args and kwargs; the function gets the kwargs object last; get(), status() and result() read the outcome', async () => {
    const sum = client.createTask('tasks.add').delay(2, 3);
    const withKwargs = client.createTask('tasks.kwargs').applyAsync([1], { b: 2 });
    expect(await sum.get(10_000)).to.equal(5);
    expect(await withKwargs.get(10_000)).to.deep.equal({ a: 1, kwargs: { b: 2 } });
    expect(await sum.status()).to.equal('SUCCESS');
    expect(await sum.result()).to.equal(5);
    const byId = uniqueName('id');
    const sent = client.sendTask('tasks.add', [20, 22], {}, byId);
    expect(sent.taskId).to.equal(byId);
    await sent.sent;
    // Another client reads it by id, from the Redis backend.
    const other = createClient(AMQP_URL, REDIS_URL, queue);
    try {
      expect(await other.asyncResult(byId).get(10_000)).to.equal(42);
    } finally {
      await other.disconnect();
    }
  });

  it("a failure rejects get() with a TaskError; status() is FAILURE and result() Celery's exception fields", async () => {
    const failed = client.createTask('tasks.fail').applyAsync(['bad input']);
    const err = await failed.get(10_000).then(() => null, (e: unknown) => e);
    expect(err).to.be.instanceOf(TaskError);
    expect(err).to.deep.include({ excType: 'TypeError', excMessage: 'bad input', excModule: 'builtins', state: 'FAILURE' });
    expect(await failed.status()).to.equal('FAILURE');
    expect(await failed.result()).to.deep.equal({ exc_type: 'TypeError', exc_message: ['bad input'], exc_module: 'builtins' });
  });

  it('get(timeoutMs) rejects with a TimeoutError when nothing runs the task; status() stays null (PENDING)', async () => {
    const idle = uniqueName('shim-idle');
    const lonely = createClient(AMQP_URL, REDIS_URL, idle);
    try {
      const r = lonely.createTask('tasks.add').delay(1, 1);
      const err = await r.get(300).then(() => null, (e: unknown) => e);
      expect(err).to.be.instanceOf(TimeoutError);
      expect(await r.status()).to.equal(null);
      expect(await r.result()).to.equal(null);
    } finally {
      await lonely.disconnect();
      await deleteQueues(idle);
    }
  });

  it('runs at most worker_concurrency tasks at once (celery-node ran every task it received)', async () => {
    peak = 0;
    const results = Array.from({ length: 6 }, () => client.createTask('tasks.slow').delay(150));
    expect(await Promise.all(results.map((r) => r.get(10_000)))).to.deep.equal([150, 150, 150, 150, 150, 150]);
    expect(peak).to.equal(2);
  });

  it('whenCurrentJobsFinished() resolves once the running tasks finished and their results are stored', async () => {
    const results = [client.createTask('tasks.slow').delay(300), client.createTask('tasks.slow').delay(300)];
    while (worker.activeTasks.size < 2) await new Promise((r) => setTimeout(r, 10));
    await worker.whenCurrentJobsFinished();
    expect(worker.activeTasks.size).to.equal(0);
    expect(await Promise.all(results.map((r) => r.status()))).to.deep.equal(['SUCCESS', 'SUCCESS']);
  });

  it('disconnect() waits until every task sent is confirmed by RabbitMQ: none is lost by disconnecting at once', async () => {
    const sender = createClient(AMQP_URL, REDIS_URL, queue);
    const sent = Array.from({ length: 50 }, (_, i) => sender.createTask('tasks.add').delay(i, 1));
    await sender.disconnect();
    const values = await Promise.all(sent.map((r) => client.asyncResult(r.taskId).get(10_000)));
    expect(values).to.deep.equal(Array.from({ length: 50 }, (_, i) => i + 1));
  });

  it('malformed messages are rejected and logged; the worker goes on', async () => {
    const conn = await amqp.connect(AMQP_URL);
    try {
      const ch = await conn.createConfirmChannel();
      const bad: Array<[string, amqp.Options.Publish]> = [
        ['{"not json', { contentType: 'application/json', headers: { task: 'tasks.add', id: 'bad-1' } }],
        ['[1, {}, {}]', { contentType: 'application/json', headers: { task: 'tasks.add', id: 'bad-2' } }],
        ['\x80\x04pickle', { contentType: 'application/x-python-serialize', headers: { task: 'tasks.add', id: 'bad-3' } }],
        ['{"no": "task"}', { contentType: 'application/json' }],
      ];
      for (const [body, options] of bad) ch.publish('', queue, Buffer.from(body), options);
      await ch.waitForConfirms();
    } finally {
      await conn.close();
    }
    expect(await client.createTask('tasks.add').delay(1, 2).get(10_000)).to.equal(3);
  });

  it("a task that cannot be sent rejects its result with the broker's reason, never an unhandled rejection", async () => {
    const unreachable = createClient(NO_VHOST_URL, REDIS_URL, queue);
    unreachable.conf.TS_CELERY = { task_publish_retry_policy: { max_retries: 0, interval_start: 0, interval_step: 0, interval_max: 0 } };
    try {
      const r = unreachable.createTask('tasks.add').delay(1, 1);
      const err = await r.get(5_000).then(() => null, (e: unknown) => e);
      expect(err).to.be.instanceOf(BrokerError);
      expect((err as Error).message).to.match(/Cannot connect to .*ts-celery-no-such-vhost/);
      expect(await r.sent.then(() => 'sent', () => 'not sent')).to.equal('not sent');
    } finally {
      await unreachable.disconnect();
    }
  });

  it('a worker that cannot connect rejects start() with the reason instead of idling', async () => {
    const stranded = createWorker(NO_VHOST_URL, REDIS_URL, queue);
    stranded.conf.TS_CELERY = { broker_connection_retry_on_startup: false };
    stranded.register('tasks.add', (a: number, b: number) => a + b);
    const err = await stranded.start().then(() => null, (e: unknown) => e);
    await stranded.disconnect();
    expect(err).to.be.instanceOf(BrokerError);
    expect((err as Error).message).to.match(/Cannot connect to .*ts-celery-no-such-vhost/);
  });

  it('an amqp:// result backend on the broker works: results come back over the broker connection (rpc://)', async () => {
    const rpcQueue = uniqueName('shim-rpc');
    const rpcWorker = createWorker(AMQP_URL, AMQP_URL, rpcQueue);
    rpcWorker.register('tasks.add', (a: number, b: number) => a + b);
    await rpcWorker.start();
    const rpcClient = createClient(AMQP_URL, AMQP_URL, rpcQueue);
    try {
      rpcClient.conf.TASK_PROTOCOL = 1; // and protocol 1 carries reply_to too
      expect(await Promise.all([rpcClient.createTask('tasks.add').delay(1, 2).get(10_000), rpcClient.sendTask('tasks.add', [3, 4]).get(10_000)])).to.deep.equal([3, 7]);
    } finally {
      await rpcClient.disconnect();
      await rpcWorker.disconnect();
      await deleteQueues(rpcQueue);
    }
  });
  it('each worker answers remote control under a node name of its own, so several start in one process or on one host', async () => {
    const second = createWorker(AMQP_URL, REDIS_URL, uniqueName('shim-second'));
    second.register('tasks.add', (a: number, b: number) => a + b);
    await second.start(); // with one shared name, its exclusive pidbox queue was locked and this never resolved
    try {
      const names = (await client.app.control.ping({ timeout: 1 })).flatMap((r) => Object.keys(r));
      const ours = names.filter((n) => n.startsWith(`celery-node-${process.pid}`));
      expect(ours, names.join(', ')).to.have.length.of.at.least(2);
      expect(new Set(ours).size).to.equal(ours.length);
      for (const n of ours) expect(n).to.match(new RegExp(`^celery-node-${process.pid}(-\\d+)?@${hostname()}$`));
    } finally {
      await second.disconnect();
      await deleteQueues(second.conf.CELERY_QUEUE);
    }
  });
});
