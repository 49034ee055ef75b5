/**
 * celery-node 0.5.9 (from npm) as an interop peer of ts-celery, on real RabbitMQ and Redis:
 * its client sending to ts-celery workers, ts-celery sending to its worker, and where its worker
 * behaves differently from the same worker program run through ts-celery/celery-node.
 */
import { expect } from 'chai';
import amqp from 'amqplib';
import * as celeryNode from 'celery-node';
import { Redis } from 'ioredis';
import { Celery, TaskError } from 'ts-celery';
import * as shim from 'ts-celery/celery-node';
import { runPythonClient } from '../helpers/python.js';
import { AMQP_URL, RABBIT_VHOST, REDIS_URL, deleteQueues, rabbitmqctl, uniqueName } from '../helpers/services.js';
import { startTsWorker, type TsWorker } from '../helpers/ts-worker.js';
import { recorded, startPeerWorker, waitForRecords, type PeerModule, type PeerWorker } from './peers.js';

/** The queue's ready messages and consumers, as RabbitMQ counts them now. */
async function queueCounts(queue: string): Promise<{ ready: number; consumers: number }> {
  const conn = await amqp.connect(AMQP_URL);
  try {
    const ch = await conn.createChannel();
    const q = await ch.checkQueue(queue);
    return { ready: q.messageCount, consumers: q.consumerCount };
  } finally {
    await conn.close();
  }
}

/** Polls until `test` holds for the queue's counts (RabbitMQ requeues a dead consumer's messages when it notices). */
async function waitForQueue(queue: string, test: (c: { ready: number; consumers: number }) => boolean, timeoutMs = 10_000): Promise<{ ready: number; consumers: number }> {
  const deadline = Date.now() + timeoutMs;
  let counts = await queueCounts(queue);
  while (!test(counts) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 100));
    counts = await queueCounts(queue);
  }
  return counts;
}

/** Closes (as an operator or a broker restart would) the connections consuming `queue`. */
async function closeConsumerConnections(queue: string): Promise<number> {
  const rows = (text: string): string[][] => text.trim().split('\n').filter(Boolean).map((l) => l.split('\t'));
  const channels = rows(await rabbitmqctl(['-q', 'list_consumers', '-p', RABBIT_VHOST, '--no-table-headers', 'queue_name', 'channel_pid']))
    .filter(([name]) => name === queue)
    .map(([, channel]) => channel);
  const connections = new Set(
    rows(await rabbitmqctl(['-q', 'list_channels', '--no-table-headers', 'pid', 'connection']))
      .filter(([channel]) => channels.includes(channel))
      .map(([, connection]) => connection!),
  );
  for (const connection of connections) await rabbitmqctl(['-q', 'close_connection', connection, 'test: the broker connection is lost']);
  return connections.size;
}

describe('celery-node 0.5.9 as a peer of ts-celery (RabbitMQ, Redis results)', function () {
  this.timeout(60_000);
  const queues: string[] = [];
  const newQueue = (prefix: string): string => {
    const q = uniqueName(prefix);
    queues.push(q);
    return q;
  };
  let redis: Redis;
  let app: Celery;

  before(() => {
    redis = new Redis(REDIS_URL);
    app = new Celery('cn-peers', { broker_url: AMQP_URL, result_backend: REDIS_URL });
  });
  after(async () => {
    await app.close();
    redis.disconnect();
    await deleteQueues(...queues);
  });

  describe("celery-node's client -> ts-celery workers", () => {
    const tsQueue = newQueue('cn-to-ts');
    const shimQueue = newQueue('cn-to-shim');
    let ts: TsWorker;
    let migrated: PeerWorker;
    let toTs: ReturnType<typeof celeryNode.createClient>;
    let toShim: ReturnType<typeof celeryNode.createClient>;

    before(async () => {
      [ts, migrated] = await Promise.all([
        startTsWorker({ queues: [tsQueue], concurrency: 4 }),
        startPeerWorker({ module: 'ts-celery/celery-node', queue: shimQueue }),
      ]);
      toTs = celeryNode.createClient(AMQP_URL, REDIS_URL, tsQueue);
      toShim = celeryNode.createClient(AMQP_URL, REDIS_URL, shimQueue);
    });
    after(async () => {
      await Promise.all([toTs.disconnect(), toShim.disconnect()]);
      await Promise.all([ts.stop(), migrated.stop()]);
    });

    it('a ts-celery worker runs what celery-node sends (protocol 2 and 1, kwargs by parameter name), and celery-node reads the results', async () => {
      const v2 = toTs.createTask('ts.add').applyAsync([2, 3]);
      const byName = toTs.createTask('ts.add').applyAsync([2], { y: 40 });
      const echo = toTs.sendTask('ts.var_args', [1, 'a'], { k: 'v' }, uniqueName('cn-id'));
      expect(await Promise.all([v2.get(20_000), byName.get(20_000), echo.get(20_000)])).to.deep.equal([5, 42, { args: [1, 'a'], kwargs: { k: 'v' } }]);
      toTs.conf.TASK_PROTOCOL = 1;
      try {
        const v1 = toTs.createTask('ts.add').applyAsync([20, 22]);
        expect(await v1.get(20_000)).to.equal(42);
        expect(await v1.status()).to.equal('SUCCESS');
      } finally {
        toTs.conf.TASK_PROTOCOL = 2;
      }
      expect(ts.output()).to.match(new RegExp(`Task ts\\.var_args\\[${echo.taskId}\\] succeeded`));
    });

    it("a task's failure reaches celery-node's get() as its FAILURE error, with Celery's exception fields", async () => {
      const failed = toTs.createTask('ts.fail_type').applyAsync(['not a number']);
      const err = (await failed.get(20_000).then(
        () => null,
        (e: unknown) => e,
      )) as (Error & { exc_type?: string; exc_module?: string; exc_message?: unknown[] }) | null;
      expect(err?.message).to.equal('FAILURE');
      expect(err).to.deep.include({ exc_type: 'TypeError', exc_module: 'builtins', exc_message: ['not a number'] });
    });

    it('the migrated worker (the same program, through ts-celery/celery-node) gets the kwargs object last, as celery-node called it', async () => {
      const echo = toShim.createTask('cn.echo').applyAsync([1, 2], { k: 'v' });
      const add = toShim.createTask('cn.add').delay(2, 3);
      expect(await Promise.all([echo.get(20_000), add.get(20_000)])).to.deep.equal([[1, 2, { k: 'v' }], 5]);
      toShim.conf.TASK_PROTOCOL = 1;
      try {
        expect(await toShim.createTask('cn.echo').applyAsync(['v1'], { p: 1 }).get(20_000)).to.deep.equal(['v1', { p: 1 }]);
      } finally {
        toShim.conf.TASK_PROTOCOL = 2;
      }
    });

    it("Python 5.7 reads the migrated worker's results and raises its errors as Python exceptions", async () => {
      const [echo, failed] = await Promise.all([
        runPythonClient(['send', 'cn.echo', '--args', '[1]', '--kwargs', '{"k": "v"}', '--queue', shimQueue, '--get']),
        runPythonClient(['send', 'cn.fail', '--args', '["bad input"]', '--queue', shimQueue, '--get']),
      ]);
      expect([echo.state, echo.result]).to.deep.equal(['SUCCESS', [1, { k: 'v' }]]);
      expect(failed).to.deep.include({ state: 'FAILURE', exc_type: 'TypeError', exc_module: 'builtins', exc_message: 'bad input' });
    });
  });

  describe("ts-celery -> celery-node's worker", () => {
    const queue = newQueue('ts-to-cn');
    let peer: PeerWorker;
    let client: shim.Client;

    before(async () => {
      peer = await startPeerWorker({ module: 'celery-node', queue });
      client = shim.createClient(AMQP_URL, REDIS_URL, queue);
    });
    after(async () => {
      await client.disconnect();
      await peer.stop();
    });

    it("celery-node's worker runs tasks sent by ts-celery and by the shim's client (protocol 2 and 1); both read the results", async () => {
      const sent = await app.sendTask('cn.echo', [1, 2], { k: 'v' }, { queue });
      const viaShim = client.createTask('cn.add').applyAsync([2, 3]);
      expect(await sent.get({ timeout: 20_000 })).to.deep.equal([1, 2, { k: 'v' }]);
      expect(await viaShim.get(20_000)).to.equal(5);
      client.conf.TASK_PROTOCOL = 1;
      try {
        expect(await client.createTask('cn.echo').applyAsync(['one'], { p: 1 }).get(20_000)).to.deep.equal(['one', { p: 1 }]);
      } finally {
        client.conf.TASK_PROTOCOL = 2;
      }
    });

    it("a celery-node failure reads as a TaskError; celery-node stores no exception details, so it says only that it failed", async () => {
      const failed = await app.sendTask('cn.fail', ['broken'], {}, { queue });
      const err = await failed.get({ timeout: 20_000 }).then(() => null, (e: unknown) => e);
      expect(err).to.be.instanceOf(TaskError);
      // celery-node 0.5.9 stores {status: 'FAILURE', result: null, traceback: {}}: the TypeError is lost.
      expect(err).to.deep.include({ excType: 'Exception', excArgs: [null], state: 'FAILURE', remoteTraceback: null });
    });
  });

  describe("what celery-node 0.5.9's worker does, and the same program through ts-celery/celery-node does not", () => {
    const start = (module: PeerModule, queue: string, tsCelery?: Record<string, unknown>): Promise<PeerWorker> =>
      startPeerWorker({ module, queue, ...(tsCelery ? { tsCelery } : {}) });

    it('eta and expires: celery-node runs a task before its eta, and one whose expiry passed before its eta; the shim waits for the eta and revokes the expired one', async () => {
      const cnQueue = newQueue('cn-eta');
      const shimQueue = newQueue('shim-eta');
      const [cn, migrated] = await Promise.all([start('celery-node', cnQueue), start('ts-celery/celery-node', shimQueue)]);
      try {
        const outcomes = await Promise.all(
          [cnQueue, shimQueue].map(async (queue) => {
            const eta = new Date(Date.now() + 2_000);
            const later = await app.sendTask('cn.add', [1, 1], {}, { queue, eta });
            // Due in 3 s but expired after 1.5 s: Celery's worker revokes it when it is due.
            const expiring = await app.sendTask('cn.add', [2, 2], {}, { queue, eta: new Date(Date.now() + 3_000), expires: new Date(Date.now() + 1_500) });
            await later.get({ timeout: 20_000 });
            const doneAt = Date.parse(String((await later.meta())!.date_done));
            const expired = await expiring.get({ timeout: 20_000 }).then(
              (v) => `ran: ${String(v)}`,
              (e: TaskError) => e.state,
            );
            return { ranBeforeEta: doneAt < eta.getTime(), expired };
          }),
        );
        console.log(`      celery-node: ${JSON.stringify(outcomes[0])}; shim: ${JSON.stringify(outcomes[1])}`);
        expect(outcomes[0]).to.deep.equal({ ranBeforeEta: true, expired: 'ran: 4' });
        expect(outcomes[1]).to.deep.equal({ ranBeforeEta: false, expired: 'REVOKED' });
      } finally {
        await Promise.all([cn.stop(), migrated.stop()]);
      }
    });

    it('an unregistered task or a non-JSON message: celery-node acks it and exits, so nothing consumes; the shim stores NotRegistered and goes on', async () => {
      const cnQueue = newQueue('cn-unknown');
      const shimQueue = newQueue('shim-unknown');
      const [cn, migrated] = await Promise.all([start('celery-node', cnQueue), start('ts-celery/celery-node', shimQueue)]);
      try {
        const cnUnknown = await app.sendTask('no.such.task', [], {}, { queue: cnQueue });
        const { code } = await cn.exited;
        expect(code, cn.output()).to.equal(1);
        expect(cn.output()).to.contain('Missing process handler for task no.such.task');
        expect(await cnUnknown.state(), 'acked before it crashed: gone, no result').to.equal('PENDING');
        expect((await waitForQueue(cnQueue, (c) => c.consumers === 0)).ready).to.equal(0);

        // A message of another content type goes the same way.
        const pickleQueue = newQueue('cn-pickle');
        const cn2 = await start('celery-node', pickleQueue);
        const conn = await amqp.connect(AMQP_URL);
        try {
          const ch = await conn.createConfirmChannel();
          ch.publish('', pickleQueue, Buffer.from('\x80\x04pickle'), { contentType: 'application/x-python-serialize', headers: { task: 'cn.add', id: 'pickle-1' } });
          await ch.waitForConfirms();
        } finally {
          await conn.close();
        }
        expect((await cn2.exited).code, cn2.output()).to.equal(1);
        expect(cn2.output()).to.contain('unsupported content type application/x-python-serialize');

        const shimUnknown = await app.sendTask('no.such.task', [], {}, { queue: shimQueue });
        const err = await shimUnknown.get({ timeout: 20_000 }).then(() => null, (e: unknown) => e);
        expect(err).to.deep.include({ excType: 'NotRegistered' });
        expect(await (await app.sendTask('cn.add', [2, 3], {}, { queue: shimQueue })).get({ timeout: 20_000 })).to.equal(5);
        expect(migrated.child.exitCode).to.equal(null);
      } finally {
        await Promise.all([cn.stop(), migrated.stop()]);
      }
    });

    it('the broker closes its connection: celery-node stays up consuming nothing; the shim reconnects and consumes again', async () => {
      const cnQueue = newQueue('cn-conn-lost');
      const shimQueue = newQueue('shim-conn-lost');
      const [cn, migrated] = await Promise.all([start('celery-node', cnQueue), start('ts-celery/celery-node', shimQueue)]);
      try {
        expect(await closeConsumerConnections(cnQueue)).to.equal(1);
        expect(await closeConsumerConnections(shimQueue)).to.be.at.least(1);
        // Consuming again after the loss (the log says so), not still on the old connection.
        const deadline = Date.now() + 20_000;
        while (!/consuming resumed/.test(migrated.output()) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
        expect((await queueCounts(shimQueue)).consumers, migrated.output()).to.equal(1);
        const [toCn, toShim] = await Promise.all([app.sendTask('cn.add', [1, 2], {}, { queue: cnQueue }), app.sendTask('cn.add', [3, 4], {}, { queue: shimQueue })]);
        expect(await toShim.get({ timeout: 20_000 })).to.equal(7);
        // By now the shim has reconnected and run a task; celery-node is still running, attached to nothing.
        expect(cn.child.exitCode, cn.output()).to.equal(null);
        expect(await queueCounts(cnQueue)).to.deep.equal({ ready: 1, consumers: 0 });
        expect(await toCn.state()).to.equal('PENDING');
        expect(migrated.output()).to.contain('consumer: Connection to broker lost. Trying to re-establish the connection...');
        expect(migrated.output()).to.match(/consumer: Connected to amqp:\/\/guest:\*\*@\S+ again; consuming resumed\./);
      } finally {
        await Promise.all([cn.stop(), migrated.stop()]);
      }
    });

    it("its queue deleted and declared again with other settings: celery-node crashes on the consumer's cancel; the shim, refused the redeclare (406), logs CRITICAL and exits 1", async () => {
      const cnQueue = newQueue('cn-406');
      const shimQueue = newQueue('shim-406');
      const [cn, migrated] = await Promise.all([start('celery-node', cnQueue), start('ts-celery/celery-node', shimQueue)]);
      try {
        const conn = await amqp.connect(AMQP_URL);
        try {
          const ch = await conn.createChannel();
          for (const queue of [cnQueue, shimQueue]) {
            // RabbitMQ cancels the consumers; the redeclare that follows is refused (406).
            await ch.deleteQueue(queue);
            await ch.assertQueue(queue, { durable: true, arguments: { 'x-max-length': 5 } });
          }
        } finally {
          await conn.close();
        }
        const { code } = await migrated.exited;
        expect(code, migrated.output()).to.equal(1);
        expect(migrated.output()).to.match(new RegExp(`CRITICAL/MainProcess\\] consumer: RabbitMQ refused to declare queue "${shimQueue}"`));
        // celery-node acks the null message amqplib hands a cancelled consumer, and throws.
        expect((await cn.exited).code, cn.output()).to.equal(1);
        expect(cn.output()).to.contain("TypeError: Cannot read properties of null (reading 'fields')");
      } finally {
        await Promise.all([cn.stop(), migrated.stop()]);
      }
    });

    it('SIGTERM while a task runs: celery-node dies with it (already acked: lost); the shim lets it finish and store its result, then ends', async () => {
      const base = uniqueName('term');
      const outcome: Record<string, { state: string; signal: string | null; finishedBeforeExit: boolean; backInQueue: number }> = {};
      for (const module of ['celery-node', 'ts-celery/celery-node'] as const) {
        const who = module === 'celery-node' ? 'cn' : 'shim';
        const tag = `${base}-${who}`;
        const queue = newQueue(`${who}-term`);
        const worker = await start(module, queue);
        const r = await app.sendTask('cn.sleep', [`${tag}:0`, 1_000], {}, { queue });
        await waitForRecords(redis, tag, 1);
        worker.kill('SIGTERM');
        const { signal } = await worker.exited;
        const finishedBeforeExit = (await recorded(redis, tag)).includes(`${who}:${tag}:0`);
        const { ready } = await waitForQueue(queue, (c) => c.consumers === 0);
        outcome[who] = { state: await r.state(), signal, finishedBeforeExit, backInQueue: ready };
        await redis.del(`pytasks:record:${tag}`);
      }
      console.log(`      SIGTERM mid-task: ${JSON.stringify(outcome)}`);
      expect(outcome.cn).to.deep.equal({ state: 'PENDING', signal: 'SIGTERM', finishedBeforeExit: false, backInQueue: 0 });
      expect(outcome.shim).to.deep.equal({ state: 'SUCCESS', signal: 'SIGTERM', finishedBeforeExit: true, backInQueue: 0 });
    });

    it('killed while running: celery-node had acked and loses every task it received; the shim loses at most the one running, the others run on the next worker', async () => {
      const base = uniqueName('kill');
      const outcome: Record<string, { sent: number; backInQueue: number; completed: number }> = {};
      for (const module of ['celery-node', 'ts-celery/celery-node'] as const) {
        const who = module === 'celery-node' ? 'cn' : 'shim';
        const tag = `${base}-${who}`;
        const queue = newQueue(`${who}-kill`);
        // One at a time on the shim (as -c 1): the other three wait, prefetched.
        const first = await start(module, queue, { worker_concurrency: 1 });
        await Promise.all([3_000, 1_500, 1_500, 1_500].map((ms, i) => app.sendTask('cn.sleep', [`${tag}:${i}`, ms], {}, { queue })));
        await waitForRecords(redis, tag, module === 'celery-node' ? 4 : 1); // celery-node starts all four at once
        first.kill('SIGKILL');
        await first.exited;
        const counts = await waitForQueue(queue, (c) => c.consumers === 0 && (module === 'celery-node' || c.ready >= 3));
        const before = (await recorded(redis, tag)).length;
        const next = await start(module, queue);
        try {
          // Each task the next worker runs records twice (started, done).
          if (counts.ready > 0) await waitForRecords(redis, tag, before + 2 * counts.ready);
          const done = (await recorded(redis, tag)).filter((e) => !e.endsWith('-started'));
          outcome[who] = { sent: 4, backInQueue: counts.ready, completed: done.length };
        } finally {
          await next.stop();
          await redis.del(`pytasks:record:${tag}`);
        }
      }
      console.log(`      killed mid-run: ${JSON.stringify(outcome)}`);
      expect(outcome.cn).to.deep.equal({ sent: 4, backInQueue: 0, completed: 0 });
      // The running task was acked as it started; acks go out at the end of that event-loop turn,
      // so a kill within those few milliseconds returns it as well (it then runs twice, never zero times).
      expect(outcome.shim!.backInQueue).to.be.oneOf([3, 4]);
      expect(outcome.shim!.completed).to.equal(outcome.shim!.backInQueue);
    });
  });
});
