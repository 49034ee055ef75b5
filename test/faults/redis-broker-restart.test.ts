/**
 * Fault: the Redis broker is killed (SIGKILL) and started again while
 * producers publish 5,000 tasks and two workers (acks_late) run them.
 *
 * The broker keeps an append-only file fsynced on every write, so every
 * write Redis replied to survives. Checked:
 * - every delay() that resolved ran (lost = 0), including the backlog waiting
 *   in the list and the messages workers held (their `unacked` records
 *   survive; a fetch whose reply died with the connection is restored after
 *   the visibility timeout);
 * - every delay() that did not resolve rejected with a PublishError saying
 *   the message may not be stored (and no password);
 * - the workers log the outage and the backoff, reconnect and resume by
 *   themselves (remote control included: they answer a ping); duplicates (tasks that ran but whose ack, or fetch reply,
 *   was lost) are counted and bounded.
 */
import { expect } from 'chai';
import { Redis } from 'ioredis';
import { PublishError } from '../../src/index.js';
import { RedisNode } from '../helpers/redis-node.js';
import type { TsWorker } from '../helpers/ts-worker.js';
import { assertNoSecrets, errorText, newRun, produce, reportTally, settle, sleep, tail, tally, type Sent } from './support.js';
import { brokerProducer, closeCounts, dropRuns, runs, startTsBrokerWorker } from './redis-broker-support.js';

const TOTAL = 5000;
const CONCURRENCY = 10;
const PREFETCH = CONCURRENCY * 4;
const TASK_S = 0.05;
const RATE_PER_PRODUCER = 400;
const VISIBILITY_TIMEOUT = 8;
const DOWN_MS = 4000;

describe('fault: Redis broker restart under load (5,000 tasks, acks_late)', function () {
  this.timeout(180_000);
  const node = new RedisNode({ persistent: true });
  const run = newRun('rr');
  const queue = `rr-${run}`;
  const workers: TsWorker[] = [];
  const closers: Array<() => Promise<unknown>> = [];

  before(async () => {
    await node.start();
  });
  after(async () => {
    if (!node.running) await node.start().catch(() => undefined);
    await Promise.all(workers.map((w) => w.stop(5000)));
    await Promise.all(closers.map((c) => c().catch(() => undefined)));
    await dropRuns(run);
    await closeCounts();
    await node.destroy();
  });

  it('loses no confirmed task; rejected sends say why; workers resume on their own', async () => {
    const broker = node.url(0);
    workers.push(...(await Promise.all([0, 1].map(() => startTsBrokerWorker({ broker, queues: [queue], concurrency: CONCURRENCY, acksLate: true, visibilityTimeout: VISIBILITY_TIMEOUT })))));
    const tags = Array.from({ length: TOTAL }, (_, i) => `${run}:${i}`);
    const sent: Sent = { sent: 0, confirmed: new Set(), rejected: new Map(), ids: new Map() };
    let restarted: Promise<void> | null = null;
    let backlog = -1;
    let held = -1;
    let downMs = 0;
    const producers = [tags.slice(0, TOTAL / 2), tags.slice(TOTAL / 2)].map((part) => {
      const app = brokerProducer(broker, queue);
      closers.push(() => app.close());
      return produce({
        app, tags: part, task: 'shared.slow', args: (t) => [t, TASK_S], inFlight: 25, ratePerSec: RATE_PER_PRODUCER,
        onSettled: (s) => {
          if (restarted || s.confirmed.size < TOTAL / 3) return;
          restarted = (async () => {
            const probe = new Redis(broker, { lazyConnect: true });
            await probe.connect();
            [backlog, held] = [await probe.llen(queue), await probe.hlen('unacked')];
            probe.disconnect();
            const stoppedAt = Date.now();
            await node.stop('SIGKILL');
            await sleep(DOWN_MS);
            await node.start();
            downMs = Date.now() - stoppedAt;
          })();
        },
      }, sent);
    });
    await Promise.all(producers);
    expect(restarted, 'Redis was restarted mid-run').to.not.equal(null);
    await restarted;

    // Everything confirmed must run; messages whose fetch reply was lost come back after the visibility timeout.
    await settle(async () => {
      const done = new Set((await runs(run, 'done')).map((r) => r.tag));
      return [...sent.confirmed].every((t) => done.has(t));
    }, 60_000, 500);
    await sleep(VISIBILITY_TIMEOUT * 1000 + 1500); // late restores (duplicates) would show up now

    const t = tally(sent, await runs(run, 'done'), tags);
    reportTally('redis-broker-restart', t, { 'backlog-at-stop': backlog, 'unacked-at-stop': held, 'broker-down-ms': downMs });
    if (t.lost.length > 0) {
      console.log(`lost (first 10): ${t.lost.slice(0, 10).join(' ')}`);
      for (const w of workers) console.log(`--- worker ${w.pid}:\n${tail(w.output(), 30)}`);
    }
    expect(t.lost, 'confirmed tasks that never ran').to.deep.equal([]);
    expect(t.unknown).to.equal(0);
    expect(t.confirmed + t.rejected).to.equal(TOTAL);
    expect(t.rejected, 'some sends fell in the outage (otherwise the fault missed)').to.be.greaterThan(0);
    expect(backlog, 'messages waiting in the list when Redis died (durability exercised)').to.be.at.least(200);
    // acks_late: only what the workers held (or had just fetched) when the connection died can run twice.
    expect(t.duplicated).to.be.at.most(2 * 2 * PREFETCH);

    for (const [tag, err] of sent.rejected) {
      expect(err, `rejection of ${tag}`).to.be.instanceOf(PublishError);
      expect(err.message).to.match(/may not have been stored|Redis/);
      assertNoSecrets(errorText(err), [node.password], `the delay() rejection of ${tag}`);
    }
    await settle(() => workers.every((w) => /consuming resumed/.test(w.output())), 15_000);
    for (const w of workers) {
      expect(w.child.exitCode, `worker still running:\n${tail(w.output(), 25)}`).to.equal(null);
      const out = w.output();
      expect(out).to.match(/Connection to broker lost/);
      expect(out).to.match(/Trying again in \d+\.\d+ seconds/);
      expect(out).to.match(/consuming resumed/);
      assertNoSecrets(out, [node.password], 'worker output');
    }
    // Remote control came back too: each worker's pub/sub connection subscribed to its pidbox again.
    const control = brokerProducer(broker, queue);
    closers.push(() => control.close());
    let pongs = 0;
    await settle(async () => (pongs = (await control.control.ping({ timeout: 1, limit: workers.length })).length) === workers.length, 20_000, 200);
    expect(pongs, 'workers answering ping after the restart').to.equal(workers.length);
  });
});
