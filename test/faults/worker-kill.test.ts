/**
 * Fault: a worker is killed with SIGKILL while it runs tasks and holds more
 * (prefetched) ones. Another worker is running on the same queue.
 *
 * - acks_late: everything the killed worker held, running or prefetched, is
 *   redelivered by RabbitMQ and completes on the other worker. The tasks that
 *   were running at the kill run twice (the first run never finished): they
 *   are the only duplicates.
 * - early ack (Celery's default): the tasks that were running at the kill had
 *   been acked when they started, so they are lost, exactly those and nothing
 *   else; the prefetched ones that had not started are redelivered and run.
 *
 * `task_reject_on_worker_lost` is Celery's answer to a *pool child* dying under
 * a living main process. Here the worker process itself dies (the async pool
 * runs tasks in it): that is the main process dying, where Celery, too, leaves
 * it to the broker to redeliver what was unacked. So the setting changes
 * nothing here; the acks_late case runs with it set to false (Celery's
 * default), and no WorkerLostError is stored. A pool *thread* dying under a
 * living worker (`-P threads`) is handled as Celery handles a lost child:
 * test/threads/.
 */
import { expect } from 'chai';
import type { Celery } from '../../src/index.js';
import {
  entries, type Entry, faultFixture, newRun, produce, producerApp, report, settle, sleep, startFaultWorker, waitFor,
} from './support.js';

const TOTAL = 60;
const TASK_MS = 1500;
const VICTIM_CONCURRENCY = 10;

interface Outcome {
  tags: string[];
  confirmed: Set<string>;
  victim: number;
  /** Tags the victim had started but not finished when it died. */
  runningAtKill: Set<string>;
  started: Entry[];
  done: Entry[];
  /** The stored state of each task, by tag. */
  states: Map<string, string>;
}

describe('fault: worker killed with SIGKILL mid-run', function () {
  this.timeout(90_000);
  const fx = faultFixture();
  const { workers, apps, queues, runs } = fx;

  async function killMidRun(acksLate: boolean, runPrefix: string): Promise<Outcome> {
    const run = newRun(runPrefix);
    runs.push(run);
    const queue = `faults-${run}`;
    queues.push(queue);
    const env: Record<string, string> = { FAULTS_ACKS_LATE: acksLate ? '1' : '0', FAULTS_REJECT_ON_WORKER_LOST: '0' };
    const [victim, survivor] = await Promise.all([
      startFaultWorker({ broker: fx.svc.rabbit.url, queue, concurrency: VICTIM_CONCURRENCY, env, backend: fx.svc.redis.url(3) }),
      startFaultWorker({ broker: fx.svc.rabbit.url, queue, concurrency: TOTAL, env, backend: fx.svc.redis.url(3) }),
    ]);
    workers.push(victim, survivor);
    const app = producerApp({ broker_url: fx.svc.rabbit.url, result_backend: fx.svc.redis.url(3), task_default_queue: queue });
    apps.push(app);
    const tags = Array.from({ length: TOTAL }, (_, i) => `${run}:${i}`);
    const sent = await produce({ app, tags, task: 'faults.slow', args: (t) => [t, TASK_MS], inFlight: 10 });
    expect(sent.confirmed.size).to.equal(TOTAL);

    // Kill once the victim has a full set of tasks running, well before any of them can finish.
    await waitFor(async () => (await entries(run, 'started')).filter((e) => e.pid === victim.pid).length >= VICTIM_CONCURRENCY, 10_000, 'the victim to start its tasks', 50);
    await sleep(300);
    victim.kill('SIGKILL');
    await victim.exited;
    const startedByVictim = (await entries(run, 'started')).filter((e) => e.pid === victim.pid).map((e) => e.tag);
    const doneByVictim = new Set((await entries(run, 'done')).filter((e) => e.pid === victim.pid).map((e) => e.tag));
    const runningAtKill = new Set(startedByVictim.filter((t) => !doneByVictim.has(t)));

    // Everything that can complete does so on the survivor; wait until the queue is empty and settled.
    await settle(async () => {
      const s = await fx.svc.rabbit.queueStats(queue);
      return s !== null && s.ready === 0 && s.unacked === 0;
    }, 30_000, 250);
    await sleep(TASK_MS + 500);
    const states = new Map<string, string>();
    for (const [tag, id] of sent.ids) states.set(tag, await app.asyncResult(id).state());
    return {
      tags, confirmed: sent.confirmed, victim: victim.pid, runningAtKill, states,
      started: await entries(run, 'started'), done: await entries(run, 'done'),
    };
  }

  function count(list: Entry[]): Map<string, number> {
    const m = new Map<string, number>();
    for (const e of list) m.set(e.tag, (m.get(e.tag) ?? 0) + 1);
    return m;
  }

  it('acks_late: every task the killed worker held is redelivered and completes elsewhere', async () => {
    const o = await killMidRun(true, 'killlate');
    const done = count(o.done);
    const started = count(o.started);
    const lost = [...o.confirmed].filter((t) => !done.has(t));
    const duplicated = [...started.values()].reduce((a, n) => a + n - 1, 0);
    report('worker-kill acks_late', {
      sent: o.tags.length, confirmed: o.confirmed.size, completed: done.size, lost: lost.length,
      duplicated, 'running-at-kill': o.runningAtKill.size,
    });
    expect(o.runningAtKill.size, 'tasks running in the victim at the kill').to.equal(VICTIM_CONCURRENCY);
    expect(lost).to.deep.equal([]);
    // Each task completed exactly once; only the ones cut short ran (started) twice.
    expect([...done.values()].every((n) => n === 1), 'no task completed twice').to.equal(true);
    const twice = [...started].filter(([, n]) => n > 1).map(([t]) => t).sort();
    expect(twice).to.deep.equal([...o.runningAtKill].sort());
    for (const t of o.runningAtKill) {
      expect(o.done.find((e) => e.tag === t)!.pid, `${t} completed on the other worker`).to.not.equal(o.victim);
    }
    // No WorkerLostError FAILURE: every task's stored state is SUCCESS.
    expect(new Set(o.states.values())).to.deep.equal(new Set(['SUCCESS']));
  });

  it('early ack (default): exactly the tasks running at the kill are lost, nothing else', async () => {
    const o = await killMidRun(false, 'killearly');
    const done = count(o.done);
    const started = count(o.started);
    const lost = [...o.confirmed].filter((t) => !done.has(t)).sort();
    const duplicated = [...done.values()].reduce((a, n) => a + n - 1, 0);
    report('worker-kill early-ack', {
      sent: o.tags.length, confirmed: o.confirmed.size, completed: done.size, lost: lost.length,
      duplicated, 'running-at-kill': o.runningAtKill.size,
    });
    expect(o.runningAtKill.size, 'tasks running in the victim at the kill').to.equal(VICTIM_CONCURRENCY);
    expect(lost, 'lost = the tasks that were running at the kill').to.deep.equal([...o.runningAtKill].sort());
    expect(duplicated).to.equal(0);
    expect([...started.values()].every((n) => n === 1), 'no task started twice').to.equal(true);
    // What a lost task looks like to its caller: nothing was ever stored (PENDING forever).
    for (const t of lost) expect(o.states.get(t), `state of lost ${t}`).to.equal('PENDING');
    for (const t of o.confirmed) if (!o.runningAtKill.has(t)) expect(o.states.get(t)).to.equal('SUCCESS');
  });
});
