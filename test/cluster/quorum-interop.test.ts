/**
 * Quorum queues and native delayed delivery on one RabbitMQ node, with real
 * Celery 5.7 on the other side (issue #15): both apps declare the same quorum
 * queues (with `x-delivery-limit`) and the `celery_delayed_*` topology, so a
 * 406 from either side fails these tests; countdown tasks travel through the
 * delay exchanges both ways and run on time; none waits in a worker.
 */
import { randomUUID } from 'node:crypto';
import { expect } from 'chai';
import { Celery } from '../../src/index.js';
import { buildTaskMessage } from '../../src/protocol/message.js';
import type { PythonWorker } from '../helpers/python.js';
import { uniqueName } from '../helpers/services.js';
import type { TsWorker } from '../helpers/ts-worker.js';
import {
  BACKEND_URL, BROKER_URL, consumersOf, DELAY_EXCHANGE, DELAYED_KEY, delayedMessages, deleteQueuesAndExchanges, listQueues, qappEnv,
  runQapp, startQappWorker, startTsQWorker,
} from './support.js';

interface Ran {
  at: number;
  exchange: string;
  routing_key: string;
  retries: number;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('quorum queues and native delayed delivery: TypeScript <-> Celery 5.7 (one node)', function () {
  this.timeout(90_000);
  const qTs = uniqueName('quorum-ts');
  const qPy = uniqueName('quorum-py');
  const env = qappEnv([qTs, qPy], { QAPP_DELIVERY_LIMIT: '5' });
  const CONCURRENCY = 4;
  let py: PythonWorker;
  let ts: TsWorker;
  let app: Celery;

  before(async () => {
    // The Python worker first: it declares both queues and the delay topology, and the TypeScript
    // worker then declares them again (a difference in any argument would be a 406 here).
    py = await startQappWorker(qPy, env);
    ts = await startTsQWorker(qTs, env, CONCURRENCY);
    // Declared as ts-app/main.ts and qapp.py declare them.
    app = new Celery('quorum-producer', {
      broker_url: BROKER_URL,
      result_backend: BACKEND_URL,
      task_queues: [qTs, qPy].map((name) => ({ name, exchange_type: 'topic' as const, queue_arguments: { 'x-queue-type': 'quorum', 'x-delivery-limit': 5 } })),
      task_default_queue: qTs,
      task_default_exchange_type: 'topic',
    });
  });

  after(async () => {
    await app?.close();
    await Promise.all([ts?.stop(), py?.stop()]);
    await deleteQueuesAndExchanges([qTs, qPy]);
  });

  it('Python 5.7 -> quorum queue -> TypeScript worker, and back: rabbitmqctl lists them as quorum queues', async () => {
    const fromPy = await runQapp<{ result: number }>(['send', 'tsq.add', '--queue', qTs, '--args', '[2, 3]', '--get'], env);
    expect(fromPy.result).to.equal(5);
    const fromTs = await app.sendTask<number>('pyq.add', [20, 22], {}, { queue: qPy });
    expect(await fromTs.get({ timeout: 20_000 })).to.equal(42);

    const rows = await listQueues();
    for (const name of [qTs, qPy, 'celery_delayed_0', 'celery_delayed_27']) {
      expect(rows.find((r) => r.name === name)?.type, name).to.equal('quorum');
    }
    expect(rows.find((r) => r.name === qTs)!.arguments).to.deep.include(['x-delivery-limit', 'signedint', 5]);
  });

  it('consumes quorum queues with per-consumer QoS, and pool_grow replaces the consumer to change it', async () => {
    expect(await consumersOf(qTs)).to.deep.equal([{ ack_required: true, prefetch_count: CONCURRENCY * 4 }]);
    // Celery 5.7's worker does the same on its queue (prefetch -c 2 x 4).
    expect(await consumersOf(qPy)).to.deep.equal([{ ack_required: true, prefetch_count: 8 }]);
    // Both workers answer (limit 2); the Python one grows its thread pool, which changes no prefetch.
    await app.control.broadcast('pool_grow', { arguments: { n: 2 }, reply: true, limit: 2, timeout: 5 });
    let consumers = await consumersOf(qTs);
    for (let i = 0; i < 20 && consumers[0]?.prefetch_count !== (CONCURRENCY + 2) * 4; i++) {
      await sleep(250);
      consumers = await consumersOf(qTs);
    }
    expect(consumers).to.deep.equal([{ ack_required: true, prefetch_count: (CONCURRENCY + 2) * 4 }]);
    expect((await runQapp<{ result: number }>(['send', 'tsq.add', '--queue', qTs, '--args', '[1, 1]', '--get'], env)).result).to.equal(2);
  });

  it('countdown both ways goes through the delay exchanges and runs on time (within a second)', async () => {
    const countdown = 3;
    const [fromPy, fromTs] = await Promise.all([
      runQapp<{ sent_at: number; result: Ran }>(['send', 'tsq.now', '--queue', qTs, '--countdown', String(countdown), '--get'], env),
      (async () => {
        const sentAt = Date.now() / 1000;
        const r = await app.sendTask<Ran>('pyq.now', [], {}, { queue: qPy, countdown });
        return { sent_at: sentAt, result: await r.get({ timeout: 20_000 }) };
      })(),
    ]);
    for (const [label, run, queue] of [['Python -> TypeScript', fromPy, qTs], ['TypeScript -> Python', fromTs, qPy]] as const) {
      const late = run.result.at - (run.sent_at + countdown);
      expect(Math.abs(late), `${label}: ran ${late.toFixed(3)} s after its eta`).to.be.at.most(1);
      expect(late, `${label}: never early`).to.be.at.least(-0.05);
      expect(run.result.exchange, label).to.match(DELAY_EXCHANGE);
      expect(run.result.routing_key, label).to.match(DELAYED_KEY(queue));
    }
  });

  it('a delayed task waits in the broker, not in the worker: nothing unacked meanwhile', async () => {
    const sentAt = Date.now() / 1000;
    const r = await app.sendTask<Ran>('tsq.now', [], {}, { queue: qTs, countdown: 8 });
    let delayed = 0;
    for (const deadline = Date.now() + 6000; delayed < 1 && Date.now() < deadline; ) {
      await sleep(300); // polled: RabbitMQ's queue counts lag on a loaded machine
      delayed = await delayedMessages();
    }
    expect(delayed, 'waiting in celery_delayed_*').to.be.at.least(1);
    const row = (await listQueues()).find((q) => q.name === qTs)!;
    expect({ ready: row.messages_ready, unacked: row.messages_unacknowledged }).to.deep.equal({ ready: 0, unacked: 0 });
    const ran = await r.get({ timeout: 20_000 });
    expect(ran.at - (sentAt + 8)).to.be.within(-0.05, 1);
  });

  it('an ETA task published straight to a quorum queue is moved into the delay exchanges, not held', async () => {
    // What a producer that knows nothing of native delayed delivery sends (Celery < 5.5, a direct publish).
    const id = randomUUID();
    const eta = Date.now() + 8000;
    const wire = buildTaskMessage({ id, task: 'tsq.now', eta }, Date.now(), 'UTC');
    await app.broker.publish(wire, { exchange: qTs, routingKey: qTs });
    // Polled, not one fixed sleep: on a loaded CI machine the worker may take more than a second to
    // receive and move it; the 8-s eta leaves room for that before the task is due.
    let delayed = 0;
    for (const deadline = Date.now() + 6000; delayed < 1 && Date.now() < deadline; ) {
      await sleep(300);
      delayed = await delayedMessages();
    }
    expect(delayed, 'it waits in celery_delayed_*').to.be.at.least(1);
    const row = (await listQueues()).find((q) => q.name === qTs)!;
    expect(row.messages_unacknowledged, 'the worker does not hold it').to.equal(0);
    const ran = await app.asyncResult<Ran>(id).get({ timeout: 20_000 });
    expect(ran.at - eta / 1000).to.be.within(-0.05, 1);
    expect(ran.exchange).to.match(DELAY_EXCHANGE);
  });

  it("a TypeScript task's retry (countdown 2) goes through the delay exchanges, as a 5.7 worker's does", async () => {
    const r = await app.sendTask<{ first_at: number; at: number; exchange: string; routing_key: string }>('tsq.retry_once', [], {}, { queue: qTs });
    const done = await r.get({ timeout: 20_000 });
    expect(done.at - done.first_at).to.be.within(2, 3);
    expect(done.exchange).to.match(DELAY_EXCHANGE);
    expect(done.routing_key).to.match(DELAYED_KEY(qTs));
  });
});
