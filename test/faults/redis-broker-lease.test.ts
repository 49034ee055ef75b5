/**
 * Fault: work held longer than the visibility timeout, on the Redis broker.
 *
 * kombu restores any unacked message older than `visibility_timeout`, even one
 * a live worker is still running (acks_late) or holding until its ETA, so
 * Python Celery runs such tasks twice (kombu#337). ts-celery renews the lease
 * of what it holds. Checked with a 2 s visibility timeout and sweeps every
 * second by both a TypeScript worker and a Python (Celery 5.7) worker on the
 * same Redis:
 * - a 6 s task on a TypeScript worker (acks_late) runs once;
 * - an ETA task held 6 s by a TypeScript worker runs once, on time;
 * - the control: the same 6 s task on the Python worker runs twice, so the
 *   sweeps really were taking overdue messages.
 */
import { expect } from 'chai';
import { RedisNode } from '../helpers/redis-node.js';
import { newRun, report, settle, sleep } from './support.js';
import { brokerProducer, closeCounts, dropRuns, runs, startPyBrokerWorker, startTsBrokerWorker } from './redis-broker-support.js';

const VISIBILITY_TIMEOUT = 2;
const HOLD_S = 6;

describe('fault: tasks held longer than the visibility timeout on the Redis broker', function () {
  this.timeout(90_000);
  const node = new RedisNode();
  const stops: Array<() => Promise<unknown>> = [];
  const run = newRun('rl');
  const tsQueue = `rl-ts-${run}`;
  const pyQueue = `rl-py-${run}`;

  before(async () => {
    await node.start();
    const o = { broker: node.url(0), concurrency: 4, acksLate: true, visibilityTimeout: VISIBILITY_TIMEOUT };
    const [ts, py] = await Promise.all([startTsBrokerWorker({ ...o, queues: [tsQueue] }), startPyBrokerWorker({ ...o, queues: [pyQueue] })]);
    stops.push(() => ts.stop(), () => py.stop());
  });
  after(async () => {
    await Promise.all(stops.map((s) => s().catch(() => undefined)));
    await dropRuns(run);
    await closeCounts();
    await node.destroy();
  });

  it('a long task and a held ETA task run once on a TypeScript worker; kombu alone runs the long one twice', async () => {
    const app = brokerProducer(node.url(0), tsQueue);
    stops.push(() => app.close());
    const sentAt = Date.now();
    await app.sendTask('shared.slow', [`${run}:long-ts`, HOLD_S]);
    await app.sendTask('shared.slow', [`${run}:eta-ts`, 0.1], {}, { countdown: HOLD_S });
    await app.sendTask('shared.slow', [`${run}:long-py`, HOLD_S], {}, { queue: pyQueue });

    await settle(async () => (await runs(run, 'done')).length >= 3, 30_000, 250);
    await sleep(3 * VISIBILITY_TIMEOUT * 1000); // restores of anything still unacked happen now
    const started = await runs(run, 'started');
    const done = await runs(run, 'done');
    const times = (tag: string, list = started): number => list.filter((r) => r.tag === `${run}:${tag}`).length;
    report('redis-lease', {
      'visibility-timeout-s': VISIBILITY_TIMEOUT, 'held-s': HOLD_S,
      'long-ts-runs': times('long-ts'), 'eta-ts-runs': times('eta-ts'), 'long-py-runs (kombu control)': times('long-py'),
      lost: ['long-ts', 'eta-ts', 'long-py'].filter((t) => times(t, done) === 0).length,
    });
    expect(times('long-ts'), 'the 6 s task on the TypeScript worker').to.equal(1);
    expect(times('long-ts', done)).to.equal(1);
    expect(times('eta-ts'), 'the ETA task held 6 s by the TypeScript worker').to.equal(1);
    expect(times('eta-ts', done)).to.equal(1);
    expect(Date.now() - sentAt).to.be.at.least(HOLD_S * 1000);
    expect(times('long-py'), 'without lease renewal the 6 s task is restored and runs again').to.be.at.least(2);
  });
});
