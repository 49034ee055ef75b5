/**
 * Fault: RabbitMQ stops and starts again while producers publish 5,000 tasks
 * and two workers (acks_late) run them.
 *
 * Guarantees checked:
 * - every delay() that resolved ran (lost = 0): a confirm means the broker has
 *   the message on disk;
 * - every delay() that did not resolve rejected with a BrokerError saying what
 *   happened (and no password);
 * - the workers reconnect by themselves with backoff, redeclare, restore their
 *   prefetch and resume consuming, without a restart;
 * - duplicates (acks_late redeliveries of tasks that ran but whose ack died with
 *   the connection) are counted and bounded by what the workers held.
 */
import amqp from 'amqplib';
import { expect } from 'chai';
import { BrokerError } from '../../src/index.js';
import {
  assertNoSecrets, entries, errorText, faultFixture, newRun, produce, producerApp, reportTally, type Sent, settle, sleep, startFaultWorker, tail, tally,
} from './support.js';

const TOTAL = 5000;

/** Messages ready in `queue` (a passive declare: one round trip). */
async function readyCount(url: string, queue: string): Promise<number> {
  const conn = await amqp.connect(url);
  try {
    const ch = await conn.createChannel();
    return (await ch.checkQueue(queue)).messageCount;
  } finally {
    await conn.close().catch(() => undefined);
  }
}
const CONCURRENCY = 10;
const PREFETCH = CONCURRENCY * 4;
/** Each task takes this long, so two workers run at most ~400 tasks/s ... */
const TASK_MS = 50;
/** ... while the producers send ~800/s: a backlog is sitting in the queue when the broker stops. */
const RATE_PER_PRODUCER = 400;

describe('fault: RabbitMQ restart under load (5,000 tasks, acks_late)', function () {
  this.timeout(180_000);
  const fx = faultFixture({ beforeCleanup: async (svc) => { if (!svc.rabbit.running) await svc.rabbit.start(); } });
  const { workers, apps } = fx;
  const run = newRun('br');
  const queue = `faults-${run}`;
  fx.runs.push(run);
  fx.queues.push(queue);

  it('loses no confirmed task; rejected sends say why; workers resume on their own', async () => {
    const { rabbit } = fx.svc;
    const env = { FAULTS_ACKS_LATE: '1' };
    workers.push(...(await Promise.all([
      startFaultWorker({ broker: rabbit.url, queue, concurrency: CONCURRENCY, env }),
      startFaultWorker({ broker: rabbit.url, queue, concurrency: CONCURRENCY, env }),
    ])));

    const tags = Array.from({ length: TOTAL }, (_, i) => `${run}:${i}`);
    const halves = [tags.slice(0, TOTAL / 2), tags.slice(TOTAL / 2)];
    const sent: Sent = { sent: 0, confirmed: new Set(), rejected: new Map(), ids: new Map() };
    let restartAt = 0;
    let restarted: Promise<void> | null = null;
    let downMs = 0;
    let backlog = -1;
    const producers = halves.map((part) => {
      const app = producerApp({ broker_url: rabbit.url, task_default_queue: queue });
      apps.push(app);
      return produce({
        app, tags: part, task: 'faults.slow', args: (t) => [t, TASK_MS], inFlight: 25, ratePerSec: RATE_PER_PRODUCER,
        onSettled: (s) => {
          // Restart once a fifth has been confirmed: producers and workers are mid-flight, and
          // about four seconds of sends remain. The backlog is read over AMQP (milliseconds), not
          // with rabbitmqctl, whose start-up takes seconds on a loaded 2-core machine: time in
          // which the producers could finish before the broker goes down, missing the fault.
          if (!restarted && s.confirmed.size >= TOTAL / 5) {
            restarted = (async () => {
              backlog = await readyCount(rabbit.url, queue);
              restartAt = Date.now();
              await rabbit.restart();
              downMs = Date.now() - restartAt;
            })();
          }
        },
      }, sent);
    });
    await Promise.all(producers);
    expect(restarted, 'the broker was restarted mid-run').to.not.equal(null);
    await restarted;

    // Every confirmed task must run; wait for them (and let redeliveries land).
    await settle(async () => {
      const done = new Set((await entries(run)).map((e) => e.tag));
      return [...sent.confirmed].every((t) => done.has(t));
    }, 60_000, 500);
    const drained = await settle(async () => {
      const s = await rabbit.queueStats(queue);
      return s !== null && s.ready === 0 && s.unacked === 0;
    }, 20_000, 500);
    await sleep(500);

    const t = tally(sent, await entries(run), tags);
    reportTally('broker-restart', t, { 'backlog-at-stop': backlog, 'broker-down-ms': downMs });
    if (t.lost.length > 0 || !drained) {
      console.log(`queue: ${JSON.stringify(await rabbit.queueStats(queue))}; lost (first 10): ${t.lost.slice(0, 10).join(' ')}`);
      for (const w of workers) console.log(`--- worker ${w.pid} (exit ${w.child.exitCode}):\n${tail(w.output(), 30)}`);
    }

    expect(t.lost, 'confirmed tasks that never ran').to.deep.equal([]);
    expect(t.unknown).to.equal(0);
    expect(t.confirmed + t.rejected).to.equal(TOTAL);
    expect(t.rejected, 'some sends fell in the outage (otherwise the fault missed)').to.be.greaterThan(0);
    expect(backlog, 'messages waiting in the queue when the broker stopped (durability exercised)').to.be.at.least(200);
    // acks_late: only tasks a worker held when the connection died can run twice.
    expect(t.duplicated).to.be.at.most(2 * PREFETCH);

    for (const [tag, err] of sent.rejected) {
      expect(err, `rejection of ${tag}`).to.be.instanceOf(BrokerError);
      expect(err.message).to.match(/RabbitMQ|broker|connection/i);
      assertNoSecrets(errorText(err), [rabbit.password], `the delay() rejection of ${tag}`);
    }

    // Both workers survived, logged the outage and the backoff, and resumed (a worker
    // may still be sleeping out its backoff, at most 10 s, when the other finished the work).
    await settle(() => workers.every((w) => /consuming resumed/.test(w.output())), 15_000);
    for (const w of workers) {
      expect(w.child.exitCode, `worker still running:\n${tail(w.output().replace(/.*Task faults.*\n/g, ''), 25)}`).to.equal(null);
      const out = w.output();
      expect(out).to.match(/Connection to broker lost/);
      expect(out).to.match(/Trying again in \d+\.\d+ seconds/);
      expect(out).to.match(/consuming resumed/);
      assertNoSecrets(out, [rabbit.password], 'worker output');
    }
    // Prefetch restored: each worker's task consumer channel has its basic.qos again. Each worker
    // also consumes its remote-control mailbox (no acks, so no basic.qos), resumed as well.
    const consumerChannels = (await rabbit.channels()).filter((c) => c.consumers > 0);
    expect(consumerChannels.length).to.equal(4);
    const taskChannels = consumerChannels.filter((c) => c.globalPrefetch !== 0);
    expect(taskChannels.length).to.equal(2);
    for (const c of taskChannels) expect(c.globalPrefetch, `prefetch on ${c.connection}`).to.equal(PREFETCH);
  });
});
