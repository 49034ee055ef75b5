/**
 * Fault: the Redis result backend goes down for a while (killed, then started
 * again empty on the same port), while a worker runs tasks.
 *
 * Guarantees checked:
 * - tasks keep running and being acked while the backend is down; the worker
 *   does not crash and says (without the password) that it will retry;
 * - the states it could not store are retried with backoff and land once
 *   Redis is back;
 * - `get()` called while Redis is down rejects with a BackendError that says
 *   what is wrong, instead of hanging; a `get()` already waiting when Redis
 *   goes down does not hang forever either: it rejects, or resolves once Redis
 *   is back, within a bounded time.
 */
import { expect } from 'chai';
import { BackendError, type Celery } from '../../src/index.js';
import {
  assertNoSecrets, entries, errorText, faultFixture, newRun, produce, producerApp, report, settle, sleep, startFaultWorker, tail, waitFor,
} from './support.js';

const DURING = 200;
/** How long Redis stays down. */
const OUTAGE_MS = 12_000;
/**
 * A get() waiting for a result when the backend becomes unreachable must report it within this
 * long (Python Celery's Redis result consumer gives up after its retry policy, ~20 retries 1 s apart).
 */
const WAITING_GET_BOUND_MS = 10_000;

describe('fault: Redis result backend down for a while', function () {
  this.timeout(120_000);
  const fx = faultFixture({ beforeCleanup: async (svc) => { if (!svc.redis.running) await svc.redis.start(); } });
  const { workers, apps } = fx;
  const run = newRun('rdown');
  const queue = `faults-${run}`;
  fx.runs.push(run);
  fx.queues.push(queue);

  it('runs and acks tasks meanwhile, retries the state writes, and get() reports a clear error', async () => {
    const { rabbit, redis } = fx.svc;
    const backend = redis.url(4);
    const worker = await startFaultWorker({ broker: rabbit.url, backend, queue, concurrency: 20 });
    workers.push(worker);
    const app = producerApp({ broker_url: rabbit.url, result_backend: backend, task_default_queue: queue });
    apps.push(app);

    // Baseline: results flow.
    const warm = await app.sendTask('faults.echo', ['warm']);
    expect(await warm.get({ timeout: 10_000 })).to.equal('warm');

    // A get() already waiting when Redis goes down (the task takes 4 s).
    const slowTag = `${run}:slow`;
    const slow = await app.sendTask('faults.slow', [slowTag, 4000]);
    const waitingSince = Date.now();
    let waitingOutcome: { at: number; value?: unknown; error?: unknown } | null = null;
    slow.get().then(
      (value) => (waitingOutcome = { at: Date.now(), value }),
      (error: unknown) => (waitingOutcome = { at: Date.now(), error }),
    );
    await sleep(300);

    await redis.stop();
    const downAt = Date.now();

    // Tasks sent now run and are acked although their states cannot be stored.
    const tags = Array.from({ length: DURING }, (_, i) => `${run}:${i}`);
    const sent = await produce({ app, tags, task: 'faults.record', args: (t) => [t], inFlight: 20 });
    expect(sent.confirmed.size).to.equal(DURING);
    await waitFor(async () => (await entries(run)).length >= DURING, 20_000, 'the tasks to run while Redis is down');
    await waitFor(async () => {
      const s = await rabbit.queueStats(queue);
      return s !== null && s.ready === 0 && s.unacked === 0;
    }, 20_000, 'the queue to drain (tasks acked) while Redis is down');
    expect(redis.running, 'Redis was down all along').to.equal(false);

    // get() while Redis is down: a clear BackendError, soon.
    const askedAt = Date.now();
    let getError: unknown = null;
    try {
      await app.asyncResult(sent.ids.get(tags[0]!)!).get();
    } catch (err) {
      getError = err;
    }
    const getMs = Date.now() - askedAt;
    expect(getError, 'get() while the backend is down').to.be.instanceOf(BackendError);
    expect((getError as Error).message).to.match(/Result backend redis:\/\/:\*\*@127\.0\.0\.1:\d+\/4 failed/);
    expect(getMs, 'ms for get() to report the outage').to.be.below(10_000);
    assertNoSecrets(errorText(getError), [redis.password], 'the get() error');

    // Keep Redis down past the bound a waiting get() gets, then bring it back (empty) on the same port.
    await sleep(Math.max(0, OUTAGE_MS - (Date.now() - downAt)));
    const outcomeWhileDown = waitingOutcome as { at: number; value?: unknown; error?: unknown } | null;
    await redis.start();
    const upAt = Date.now();

    // The worker stored the delayed states once Redis was back.
    const ids = [...sent.ids.values()];
    const stored = await settle(async () => {
      const states = await Promise.all(ids.map((id) => app.asyncResult(id).state()));
      return states.every((s) => s === 'SUCCESS');
    }, 30_000, 500);
    const storedAfterMs = Date.now() - upAt;
    const states = await Promise.all(ids.map((id) => app.asyncResult(id).state()));
    const missing = states.filter((s) => s !== 'SUCCESS').length;
    // The get() that was waiting all along (its task finished during the outage).
    await settle(() => waitingOutcome !== null, 15_000);
    const waited = waitingOutcome as { at: number; value?: unknown; error?: unknown } | null;

    const ran = new Set((await entries(run)).map((e) => e.tag));
    const lost = [...sent.confirmed].filter((t) => !ran.has(t));
    report('redis-down', {
      sent: DURING, confirmed: sent.confirmed.size, completed: ran.size - (ran.has(slowTag) ? 1 : 0), lost: lost.length,
      'states-stored': ids.length - missing, 'states-missing': missing, 'stored-after-ms': stored ? storedAfterMs : -1,
      'get-error-ms': getMs,
      'waiting-get': waited === null ? 'still-pending' : waited.error ? `rejected@${waited.at - waitingSince}ms` : `resolved@${waited.at - waitingSince}ms`,
    });

    expect(lost).to.deep.equal([]);
    expect(worker.child.exitCode, 'worker still running').to.equal(null);
    const out = worker.output();
    expect(out).to.match(/Result backend unavailable, will retry storing results/);
    assertNoSecrets(out, [redis.password, rabbit.password], 'worker output');
    expect(missing, `states not stored 30 s after Redis came back:\n${tail(out, 10)}`).to.equal(0);

    // The get() that was waiting when Redis died must not hang for as long as Redis stays down:
    // it reports the outage with a BackendError within the bound.
    expect(outcomeWhileDown, `a get() waiting when Redis went down settled within ${OUTAGE_MS} ms of the outage`).to.not.equal(null);
    expect(outcomeWhileDown!.error, 'the waiting get() rejected').to.be.instanceOf(BackendError);
    expect(outcomeWhileDown!.at - downAt).to.be.below(WAITING_GET_BOUND_MS);
    assertNoSecrets(errorText(outcomeWhileDown!.error), [redis.password], 'the waiting get() error');
  });
});
