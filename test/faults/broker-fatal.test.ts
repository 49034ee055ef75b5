/**
 * Fault: RabbitMQ stays down longer than a worker's reconnect budget
 * (issue #9, item 4).
 *
 * Guarantees checked:
 * - a worker whose `broker_connection_max_retries` ran out does not stay up
 *   without consuming: it logs why and exits non-zero, so a supervisor
 *   restarts it;
 * - with `broker_connection_max_retries: null` a worker retries for as long as
 *   it takes, resumes when the broker is back, and runs what it is sent.
 */
import { expect } from 'chai';
import { countEntries, faultFixture, newRun, producerApp, report, sleep, startFaultWorker, tail, waitFor } from './support.js';

describe('fault: broker down longer than the reconnect budget', function () {
  this.timeout(120_000);
  const fx = faultFixture({ beforeCleanup: async (svc) => { if (!svc.rabbit.running) await svc.rabbit.start(); } });
  const run = newRun('bf');
  const queue = `faults-${run}`;
  fx.runs.push(run);
  fx.queues.push(queue);

  it('a worker out of retries exits non-zero with the reason; one with max_retries null waits and resumes', async () => {
    const { rabbit } = fx.svc;
    const budgeted = await startFaultWorker({ broker: rabbit.url, queue, concurrency: 2, env: { FAULTS_MAX_RETRIES: '2' } });
    const forever = await startFaultWorker({ broker: rabbit.url, queue, concurrency: 2, env: { FAULTS_MAX_RETRIES: 'null' } });
    fx.workers.push(budgeted, forever);

    const stoppedAt = Date.now();
    await rabbit.stop();
    // Two retries take about 1-2 s of backoff; 30 s is far beyond it.
    const code = await Promise.race([budgeted.exited, sleep(30_000).then(() => 'still running' as const)]);
    const exitedAfterMs = Date.now() - stoppedAt;
    expect(code, `the budgeted worker did not exit:\n${tail(budgeted.output())}`).to.equal(1);
    expect(budgeted.output()).to.match(/CRITICAL\/MainProcess\] consumer: Gave up connecting to amqp:\/\/faults:\*\*@127\.0\.0\.1:5681\/ after 2 retries \(broker_connection_max_retries; null retries forever\)/);
    expect(budgeted.output()).to.match(/Nothing is consuming any more: shutting down/);
    expect(budgeted.output()).not.to.match(/Unhandled promise rejection/);

    // The unbounded worker is still there, still trying, well past the other's budget.
    await waitFor(() => /Trying again in [\d.]+ seconds\.\.\. \(4\)$/m.test(forever.output()), 30_000, 'a 4th reconnect attempt');
    expect(forever.child.exitCode).to.equal(null);

    await rabbit.start();
    await waitFor(() => /consuming resumed/.test(forever.output()), 60_000, 'the unbounded worker to resume');
    const app = producerApp({ broker_url: rabbit.url, task_default_queue: queue });
    fx.apps.push(app);
    await app.sendTask('faults.record', [`${run}:after`]);
    await waitFor(async () => (await countEntries(run)) === 1, 20_000, 'the task sent after the outage to run');
    expect(await forever.stop(10_000)).to.equal(0);
    report('broker-fatal', { 'budgeted-exit-code': String(code), 'budgeted-exited-after-ms': exitedAfterMs, 'forever-ran-after-outage': 1 });
  });
});
