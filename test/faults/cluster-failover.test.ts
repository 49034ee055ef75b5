/**
 * Fault: on a 3-node RabbitMQ cluster with a quorum queue, the node the
 * workers and producers are connected to is stopped and started again while
 * TypeScript and Python (Celery 5.7) producers send 5,000 tasks (acks late).
 *
 * Guarantees checked:
 * - every task whose send was confirmed runs (lost = 0), from either producer;
 * - the TypeScript producer's sends that the dying connection left unconfirmed
 *   are sent again on another node (task_publish_retry), or reject clearly;
 * - the workers fail over to another node of `broker_url` by themselves and
 *   resume consuming, and stay up; duplicates (acks_late tasks whose ack died
 *   with the connection) are counted and printed;
 * - countdown tasks waiting in the quorum delay queues (native delayed
 *   delivery) when the node stops still run.
 *
 * The cluster (test/helpers/rabbit-cluster.ts) is started once for this file
 * and stopped after it.
 */
import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { BrokerError } from '../../src/index.js';
import { RabbitCluster } from '../helpers/rabbit-cluster.js';
import type { TsWorker } from '../helpers/ts-worker.js';
import { runQapp } from '../cluster/support.js';
import {
  assertNoSecrets, closeCounts, dropCounts, entries, newRun, produce, producerApp, report, reportTally, settle, startFaultWorker, tail, tally, type Sent,
} from './support.js';

const TOTAL = 5000;
const PY_TASKS = 2000;
/** Of the TypeScript producer's tasks, these go with a countdown (through the delay queues). */
const DELAYED = 300;
const COUNTDOWN_S = 3;
const CONCURRENCY = 10;
const TASK_MS = 20;
const RATE = 400; // per producer: ~6 s of sending, so the node stops mid-run

/** `[2026-12-03 12:35:12,273: ...` -> epoch ms (the worker logs local time). */
function logTime(line: string): number {
  const m = /^\[(\d{4})-(\d\d)-(\d\d) (\d\d):(\d\d):(\d\d),(\d{3})/.exec(line);
  if (!m) return NaN;
  const [, y, mo, d, h, mi, s, ms] = m.map(Number) as number[];
  return new Date(y!, mo! - 1, d!, h!, mi!, s!, ms!).getTime();
}

/** ms from the worker's "Connection to broker lost" to its "consuming resumed", per failover. */
function failovers(output: string): number[] {
  const lines = output.split('\n');
  const out: number[] = [];
  let lostAt: number | null = null;
  for (const line of lines) {
    if (/Connection to broker lost/.test(line)) lostAt = logTime(line);
    else if (/consuming resumed/.test(line) && lostAt !== null) {
      out.push(logTime(line) - lostAt);
      lostAt = null;
    }
  }
  return out;
}

describe('fault: a cluster node stops under load (3 nodes, quorum queue, 5,000 tasks from TypeScript and Python)', function () {
  this.timeout(240_000);
  const cluster = new RabbitCluster();
  const run = newRun('cf');
  const queue = `faults-quorum-${run}`;
  const workers: TsWorker[] = [];
  const apps: ReturnType<typeof producerApp>[] = [];
  const onExit = (): void => cluster.killNow();

  before(async function () {
    this.timeout(120_000);
    process.once('exit', onExit);
    await cluster.start();
  });

  after(async function () {
    this.timeout(90_000);
    await Promise.all(workers.map((w) => w.stop(5000)));
    await Promise.all(apps.map((a) => a.close().catch(() => undefined)));
    await cluster.stop();
    process.off('exit', onExit);
    await dropCounts(run);
    await closeCounts();
  });

  it('loses no confirmed task; workers and producers fail over to the other nodes by themselves', async () => {
    const [node1] = cluster.nodes;
    const broker = cluster.failoverUrl(0); // node 1 first: everyone starts there
    const env = { FAULTS_ACKS_LATE: '1', FAULTS_QUORUM: '1' };
    workers.push(...(await Promise.all([
      startFaultWorker({ broker, queue, concurrency: CONCURRENCY, env }),
      startFaultWorker({ broker, queue, concurrency: CONCURRENCY, env }),
    ])));

    const tags = Array.from({ length: TOTAL }, (_, i) => `${run}:${i}`);
    const pyTags = tags.slice(0, PY_TASKS);
    const tsTags = tags.slice(PY_TASKS);
    const tagsFile = join(tmpdir(), `${run}.tags`);
    writeFileSync(tagsFile, `${pyTags.join('\n')}\n`);
    const python = runQapp<{ confirmed: string[]; failed: Record<string, string> }>(
      ['produce', 'faults.slow', '--queue', queue, '--tags-file', tagsFile, '--ms', String(TASK_MS), '--rate', String(RATE)],
      { QAPP_BROKER: broker, QAPP_BACKEND: '', QAPP_QUEUES: queue },
      120_000,
    );

    const app = producerApp({
      broker_url: broker,
      task_queues: [{ name: queue, exchange_type: 'topic', queue_arguments: { 'x-queue-type': 'quorum' } }],
      task_default_queue: queue,
      task_default_exchange_type: 'topic',
    });
    apps.push(app);
    const sent: Sent = { sent: 0, confirmed: new Set(), rejected: new Map(), ids: new Map() };
    let stopped: Promise<void> | null = null;
    let stopAt = 0;
    let downMs = 0;
    const delayedTags = new Set(tsTags.slice(0, DELAYED));
    // Delayed tasks first (they are in the delay queues when the node stops), then the rest.
    const delayed = produce({ app, tags: [...delayedTags], task: 'faults.slow', args: (t) => [t, TASK_MS], applyOptions: { countdown: COUNTDOWN_S }, inFlight: 10 }, sent);
    await delayed;
    await produce({
      app, tags: tsTags.slice(DELAYED), task: 'faults.slow', args: (t) => [t, TASK_MS], inFlight: 25, ratePerSec: RATE,
      onSettled: (s) => {
        // Stop node 1 once a fifth of the TypeScript sends are confirmed: both producers and the
        // workers are mid-flight on it, and countdown tasks wait in its delay queues.
        if (!stopped && s.confirmed.size >= DELAYED + (tsTags.length - DELAYED) / 5) {
          stopAt = Date.now();
          stopped = (async () => {
            await node1!.stop();
            downMs = Date.now() - stopAt;
            await node1!.start();
          })();
        }
      },
    }, sent);
    const py = await python;
    expect(stopped, 'node 1 was stopped mid-run').to.not.equal(null);
    await stopped;

    // Both producers' confirmed tasks together.
    // A Sent of its own (own Map too): Python's failed sends are plain Errors, and the check below
    // that every TypeScript rejection is a BrokerError must not see them.
    const confirmed: Sent = {
      ...sent,
      sent: sent.sent + pyTags.length,
      confirmed: new Set([...sent.confirmed, ...py.confirmed]),
      rejected: new Map(sent.rejected),
    };
    for (const tag of Object.keys(py.failed)) confirmed.rejected.set(tag, new Error(py.failed[tag]));

    await settle(async () => {
      const done = new Set((await entries(run)).map((e) => e.tag));
      return [...confirmed.confirmed].every((t) => done.has(t));
    }, 60_000, 500);
    await settle(async () => {
      const q = (await cluster.nodes[1]!.queueStats(queue)) ?? { ready: -1, unacked: -1 };
      return q.ready === 0 && q.unacked === 0;
    }, 20_000, 500);

    const done = await entries(run);
    const t = tally(confirmed, done, tags);
    const times = workers.flatMap((w) => failovers(w.output()));
    // The longest pause in completions from the stop on (redeliveries and leader elections included).
    const after = done.map((e) => e.at).filter((at) => at >= stopAt).sort((a, b) => a - b);
    let pause = 0;
    for (let i = 1; i < after.length; i++) pause = Math.max(pause, after[i]! - after[i - 1]!);
    reportTally('cluster-failover', t, {
      'python-confirmed': py.confirmed.length,
      'python-failed': Object.keys(py.failed).length,
      'ts-rejected': sent.rejected.size,
      'failover-ms': times.join('/'),
      'longest-pause-ms': pause,
      'node-stop-ms': downMs,
    });
    if (t.lost.length > 0) {
      report('cluster-failover lost', { count: t.lost.length, delayed: t.lost.filter((x) => delayedTags.has(x)).length, first: t.lost.slice(0, 5).join(' ') });
      const stats = await cluster.nodes[1]!.ctl(['list_queues', 'name', 'messages', 'leader', '--formatter', 'json']).catch((e: Error) => e.message);
      console.log(`queues: ${stats}`);
      for (const w of workers) console.log(`--- worker ${w.pid} (exit ${w.child.exitCode}):\n${tail(w.output().replace(/.*Task faults.*\n/g, ''), 30)}`);
    }

    expect(t.lost, 'confirmed tasks that never ran').to.deep.equal([]);
    expect(t.unknown).to.equal(0);
    expect(t.confirmed + t.rejected).to.equal(TOTAL);
    expect(py.confirmed.length, 'the Python producer sent through the outage').to.be.greaterThan(0);
    expect(done.filter((e) => delayedTags.has(e.tag)).length, 'countdown tasks that waited in the delay queues').to.be.at.least(DELAYED);
    // acks_late: only what the workers held when their connection died runs twice.
    expect(t.duplicated).to.be.at.most(2 * CONCURRENCY * 4);
    for (const [tag, err] of sent.rejected) {
      expect(err, `rejection of ${tag}`).to.be.instanceOf(BrokerError);
      assertNoSecrets(String(err), [cluster.password], `the delay() rejection of ${tag}`);
    }

    // Each worker lost node 1, moved to another node by itself and kept consuming.
    for (const w of workers) {
      const out = w.output();
      expect(w.child.exitCode, `worker still running:\n${tail(out.replace(/.*Task faults.*\n/g, ''), 20)}`).to.equal(null);
      expect(out).to.match(/Connection to broker lost[^\n]*127\.0\.0\.1:5691/);
      expect(out).to.match(/Connected to amqp:\/\/cluster:\*\*@127\.0\.0\.1:569[23]\/ again; consuming resumed/);
      assertNoSecrets(out, [cluster.password], 'worker output');
    }
    expect(times.length).to.be.at.least(workers.length);
    // Node 1 is back in the cluster.
    expect((await cluster.runningNodes()).sort()).to.deep.equal(cluster.nodes.map((n) => n.nodename).sort());
  });
});
