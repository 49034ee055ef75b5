/**
 * Fault: a worker on the Redis broker is killed with SIGKILL (acks_late)
 * while it runs tasks and holds prefetched ones; another worker, TypeScript
 * or Python, is running on the same queue.
 *
 * Redis does not redeliver on a lost connection: the killed worker's messages
 * sit in kombu's `unacked` until their lease is older than the visibility
 * timeout, when a sweep (under `unacked_mutex`) puts them back and the other
 * worker runs them. Checked, in all three pairings:
 * - nothing is lost, and every task completes exactly once;
 * - only the tasks that were running at the kill start twice;
 * - while the victim lived, no sweep took what it held (its leases were
 *   renewed, even for prefetched messages waiting longer than the timeout).
 */
import { expect } from 'chai';
import { RedisNode } from '../helpers/redis-node.js';
import type { PythonWorker } from '../helpers/python.js';
import type { TsWorker } from '../helpers/ts-worker.js';
import { newRun, produce, report, settle, sleep, tail, waitFor, type Sent } from './support.js';
import {
  brokerProducer, closeCounts, dropRuns, killPython, runs, startPyBrokerWorker, startTsBrokerWorker, type Run,
} from './redis-broker-support.js';

const TOTAL = 40;
// Long enough that the survivor's start (~1-2 s under CI load) plus 300 ms ends before the victim's
// first tasks do: the kill must land mid-task. At 1.5 s a loaded run killed the victim just as its
// first batch finished (tasks done but not yet acked, so rightly run again): not the fault under test.
// It must stay well under the visibility timeouts below: kombu (a Python survivor) renews no lease.
const TASK_S = 2.5;
const VICTIM_CONCURRENCY = 10;
/**
 * A TypeScript victim renews its leases, so a short timeout is enough (6 s: over twice TASK_S, since a Python survivor renews nothing). A Python victim does not (kombu):
 * what it prefetched becomes overdue 15 s after its fetch, well after the kill, even when the
 * survivor takes seconds to start on a busy machine; otherwise the survivor's sweep would take
 * messages the living victim still holds, and both would run them (kombu#337).
 */
const VISIBILITY_TIMEOUT: Record<'ts' | 'py', number> = { ts: 6, py: 15 };

type Lang = 'ts' | 'py';

describe('fault: a worker killed with SIGKILL on the Redis broker (acks_late)', function () {
  this.timeout(120_000);
  const node = new RedisNode();
  const stops: Array<() => Promise<unknown>> = [];
  const used: string[] = [];

  before(async () => {
    await node.start();
  });
  after(async () => {
    await Promise.all(stops.map((s) => s().catch(() => undefined)));
    await dropRuns(...used);
    await closeCounts();
    await node.destroy();
  });

  let db = 0;

  async function start(lang: Lang, queue: string, concurrency: number, visibilityTimeout: number): Promise<TsWorker | PythonWorker> {
    const o = { broker: node.url(db), queues: [queue], concurrency, acksLate: true, visibilityTimeout };
    const w = lang === 'ts' ? await startTsBrokerWorker(o) : await startPyBrokerWorker(o);
    stops.push(() => w.stop());
    return w;
  }

  async function killMidRun(victimLang: Lang, survivorLang: Lang): Promise<void> {
    // Each pairing on a database of its own: kombu's unacked keys are per database, so no
    // sweeper of another pairing (with another visibility timeout) touches this one's messages.
    db++;
    const run = newRun(`rk${victimLang}${survivorLang}`);
    used.push(run);
    const queue = `rk-${run}`;
    const vt = VISIBILITY_TIMEOUT[victimLang];
    const victim = await start(victimLang, queue, VICTIM_CONCURRENCY, vt);
    const app = brokerProducer(node.url(db), queue);
    stops.push(() => app.close());
    const tags = Array.from({ length: TOTAL }, (_, i) => `${run}:${i}`);
    const sent: Sent = await produce({ app, tags, task: 'shared.slow', args: (t) => [t, TASK_S], inFlight: 10 });
    expect(sent.confirmed.size).to.equal(TOTAL);
    // The victim takes a full window (running + prefetched), then the survivor joins.
    await waitFor(async () => (await runs(run, 'started')).filter((r) => r.pid === victim.pid).length >= VICTIM_CONCURRENCY, 15_000, 'the victim to start its tasks', 50);
    const survivor = await start(survivorLang, queue, TOTAL, vt);
    await sleep(300);
    if (victimLang === 'ts') (victim as TsWorker).kill('SIGKILL');
    else killPython(victim as PythonWorker);
    const killedAt = Date.now();
    const startedByVictim = (await runs(run, 'started')).filter((r) => r.pid === victim.pid).map((r) => r.tag);
    const doneByVictim = new Set((await runs(run, 'done')).filter((r) => r.pid === victim.pid).map((r) => r.tag));
    const runningAtKill = new Set(startedByVictim.filter((t) => !doneByVictim.has(t)));

    await settle(async () => new Set((await runs(run, 'done')).map((r) => r.tag)).size === TOTAL, 45_000, 250);
    const restoredAfterMs = Date.now() - killedAt;
    await sleep(TASK_S * 1000 + 500); // a duplicate would show up now
    const started = await runs(run, 'started');
    const done = await runs(run, 'done');
    const count = (list: Run[]): Map<string, number> => {
      const m = new Map<string, number>();
      for (const r of list) m.set(r.tag, (m.get(r.tag) ?? 0) + 1);
      return m;
    };
    const doneCount = count(done);
    const startedCount = count(started);
    const lost = [...sent.confirmed].filter((t) => !doneCount.has(t));
    const duplicated = [...doneCount.values()].reduce((a, n) => a + n - 1, 0);
    const twice = [...startedCount].filter(([, n]) => n > 1).map(([t]) => t).sort();
    report(`redis-worker-kill ${victimLang}->${survivorLang}`, {
      sent: TOTAL, confirmed: sent.confirmed.size, completed: doneCount.size, lost: lost.length, duplicated,
      'running-at-kill': runningAtKill.size, 'started-twice': twice.length, 'all-done-after-kill-ms': restoredAfterMs,
    });
    if (lost.length || duplicated) {
      console.log(tail('output' in survivor ? survivor.output() : survivor.logs(), 40));
      console.log('--- victim', tail('output' in victim ? victim.output() : victim.logs(), 60));
      console.log('--- started', JSON.stringify(started.map((r) => `${r.lang}:${r.tag.split(':')[1]}:${r.pid}`)));
      console.log('--- done', JSON.stringify(done.map((r) => `${r.lang}:${r.tag.split(':')[1]}:${r.pid}`)));
    }

    expect(runningAtKill.size, 'tasks running in the victim at the kill').to.equal(VICTIM_CONCURRENCY);
    expect(lost, 'confirmed tasks that never completed').to.deep.equal([]);
    expect(duplicated, 'tasks completed twice').to.equal(0);
    // Only the tasks cut short started twice: the victim's prefetched messages were not taken
    // while it lived (leases renewed), and each restored message ran once.
    expect(twice).to.deep.equal([...runningAtKill].sort());
    for (const t of runningAtKill) {
      const finisher = done.find((r) => r.tag === t)!;
      expect(finisher.pid, `${t} completed on the survivor`).to.equal(survivor.pid);
      expect(finisher.lang).to.equal(survivorLang);
    }
    // Restored by a sweep once their lease was older than the visibility timeout (at least 2.25 s
    // after the kill for a TypeScript victim, whose last renewal is at most vt/4 old), then run 1.5 s.
    expect(restoredAfterMs, 'restored only after the visibility timeout').to.be.at.least(2000);
    await Promise.all([survivor.stop(), app.close()]);
  }

  it('a TypeScript worker restores and completes what a killed TypeScript worker held', () => killMidRun('ts', 'ts'));
  it('a Python (Celery 5.7) worker restores and completes what a killed TypeScript worker held', () => killMidRun('ts', 'py'));
  it('a TypeScript worker restores and completes what a killed Python worker held', () => killMidRun('py', 'ts'));
});
