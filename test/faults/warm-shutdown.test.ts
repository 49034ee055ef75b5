/**
 * Fault: SIGTERM (warm shutdown) while 1,000 async tasks are in flight and
 * more are prefetched behind them.
 *
 * Guarantees checked, with acks_late and with early ack:
 * - the worker stops taking work, lets every running task finish, settles
 *   them (acks reach RabbitMQ before the connection closes), and exits 0;
 * - the prefetched tasks that had not started go back to the queue, and a
 *   worker started afterwards runs them;
 * - in all, every task runs exactly once: none lost, none run twice.
 */
import { expect } from 'chai';
import {
  countEntries, entries, faultFixture, newRun, produce, producerApp, report, settle, startFaultWorker, tail, waitFor,
} from './support.js';

const IN_FLIGHT = 1000;
const QUEUED_BEHIND = 500;
const TASK_MS = 2500;

describe('fault: warm shutdown with 1,000 tasks in flight', function () {
  this.timeout(120_000);
  const fx = faultFixture();
  const { workers, apps, queues, runs } = fx;

  for (const acksLate of [true, false]) {
    const mode = acksLate ? 'acks_late' : 'early ack';
    it(`${mode}: running tasks finish, the rest go back, each task runs exactly once`, async () => {
      const run = newRun(acksLate ? 'warmlate' : 'warmearly');
      runs.push(run);
      const queue = `faults-${run}`;
      queues.push(queue);
      const env = { FAULTS_ACKS_LATE: acksLate ? '1' : '0' };
      const first = await startFaultWorker({ broker: fx.svc.rabbit.url, queue, concurrency: IN_FLIGHT, env });
      workers.push(first);
      const app = producerApp({ broker_url: fx.svc.rabbit.url, task_default_queue: queue });
      apps.push(app);
      const total = IN_FLIGHT + QUEUED_BEHIND;
      const tags = Array.from({ length: total }, (_, i) => `${run}:${i}`);
      const sent = await produce({ app, tags, task: 'faults.slow', args: (t) => [t, TASK_MS], inFlight: 100 });
      expect(sent.confirmed.size).to.equal(total);

      await waitFor(async () => (await countEntries(run, 'started')) >= IN_FLIGHT, 20_000, `${IN_FLIGHT} tasks running`, 100);
      const runningAtTerm = await countEntries(run, 'started');
      const doneAtTerm = await countEntries(run, 'done');
      const termAt = Date.now();
      first.kill('SIGTERM');
      const code = await first.exited;
      const exitMs = Date.now() - termAt;
      const afterFirst = await entries(run, 'done');

      // What the first worker gave back is consumed by a second one.
      const second = await startFaultWorker({ broker: fx.svc.rabbit.url, queue, concurrency: 200, env });
      workers.push(second);
      await settle(async () => new Set((await entries(run)).map((e) => e.tag)).size >= total, 30_000, 250);
      await settle(async () => {
        const s = await fx.svc.rabbit.queueStats(queue);
        return s !== null && s.ready === 0 && s.unacked === 0;
      }, 10_000, 250);

      const done = await entries(run);
      const started = await entries(run, 'started');
      const runs_ = new Map<string, number>();
      for (const e of done) runs_.set(e.tag, (runs_.get(e.tag) ?? 0) + 1);
      const lost = tags.filter((t) => !runs_.has(t));
      const duplicated = done.length - runs_.size;
      const startedTwice = started.length - new Set(started.map((e) => e.tag)).size;
      report(`warm-shutdown ${mode}`, {
        sent: total, confirmed: sent.confirmed.size, 'in-flight-at-sigterm': runningAtTerm - doneAtTerm,
        'finished-by-first': afterFirst.length, 'run-by-second': done.length - afterFirst.length,
        completed: runs_.size, lost: lost.length, duplicated, 'started-twice': startedTwice, 'exit-ms': exitMs,
      });

      expect(code, `first worker's exit code:\n${tail(first.output(), 15)}`).to.equal(0);
      expect(runningAtTerm - doneAtTerm, 'tasks in flight at SIGTERM').to.be.at.least(IN_FLIGHT);
      // Every task running at SIGTERM finished in the first worker before it exited.
      expect(afterFirst.length).to.be.at.least(runningAtTerm);
      expect(afterFirst.every((e) => e.pid === first.pid)).to.equal(true);
      expect(lost, 'lost tasks').to.deep.equal([]);
      expect(duplicated, 'tasks completed twice').to.equal(0);
      expect(startedTwice, 'tasks started twice').to.equal(0);
      expect(first.output()).to.match(/Warm shutdown/);
    });
  }
});
