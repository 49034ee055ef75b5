/**
 * Fault: every connection to RabbitMQ goes silent without a clean close (a
 * TCP proxy stops forwarding bytes but keeps the sockets open: no FIN, no RST),
 * as with a dead peer or a dropped NAT entry. Only heartbeats can tell.
 *
 * Guarantees checked (broker_heartbeat = 2 s on both sides):
 * - producers' delay() calls caught in the silence never hang and never resolve
 *   for a message the broker did not confirm: with task_publish_retry (the
 *   default) they are sent again on a new connection once the heartbeat gave
 *   up on the old one, and resolve when that copy is confirmed; without it they
 *   reject;
 * - workers notice the dead connection within a few heartbeats, reconnect
 *   (through the proxy, which pipes new connections again) and resume;
 * - every confirmed task runs; duplicates (acks_late redeliveries) are counted.
 *
 * Also: a worker whose queue is deleted under it (RabbitMQ cancels the
 * consumer) declares the queue again and keeps consuming.
 */
import { expect } from 'chai';
import { BrokerError } from '../../src/index.js';
import { TcpProxy } from '../helpers/tcp-proxy.js';
import type { TsWorker } from '../helpers/ts-worker.js';
import {
  assertNoSecrets, entries, errorText, faultFixture, newRun, produce, producerApp, reportTally, type Sent, settle, sleep, startFaultWorker, tail, tally, waitFor,
} from './support.js';

const HEARTBEAT_S = 2;
const TOTAL = 2000;
const CONCURRENCY = 20;

describe('fault: connection cut without a clean close (heartbeats)', function () {
  this.timeout(120_000);
  const fx = faultFixture();
  const { workers, apps, queues, runs } = fx;
  let proxy: TcpProxy;

  before(async () => {
    proxy = new TcpProxy(fx.svc.rabbit.port);
    await proxy.start();
  });

  after(async () => {
    await proxy.close();
  });

  const viaProxy = (): string => `amqp://${fx.svc.rabbit.user}:${fx.svc.rabbit.password}@127.0.0.1:${proxy.port}/`;

  it('detects the dead peer by heartbeat, rejects unconfirmed sends, loses no confirmed task', async () => {
    const run = newRun('cut');
    runs.push(run);
    const queue = `faults-${run}`;
    queues.push(queue);
    const env = { FAULTS_ACKS_LATE: '1', FAULTS_HEARTBEAT: String(HEARTBEAT_S) };
    const pair = await Promise.all([
      startFaultWorker({ broker: viaProxy(), queue, concurrency: CONCURRENCY, env }),
      startFaultWorker({ broker: viaProxy(), queue, concurrency: CONCURRENCY, env }),
    ]);
    workers.push(...pair);

    const logBefore = fx.svc.rabbit.log().length;
    const tags = Array.from({ length: TOTAL }, (_, i) => `${run}:${i}`);
    // Two producers: one sends again what the silence left unconfirmed (task_publish_retry, the
    // default), the other (task_publish_retry off) rejects it.
    const retrying: Sent = { sent: 0, confirmed: new Set(), rejected: new Map(), ids: new Map() };
    const noRetry: Sent = { sent: 0, confirmed: new Set(), rejected: new Map(), ids: new Map() };
    let cutAt = 0;
    let cut = 0;
    const cutOnce = (): void => {
      if (!cutAt && retrying.confirmed.size + noRetry.confirmed.size >= TOTAL / 3) {
        cutAt = Date.now();
        cut = proxy.blackhole();
      }
    };
    const retryApp = producerApp({ broker_url: viaProxy(), task_default_queue: queue, broker_heartbeat: HEARTBEAT_S });
    const noRetryApp = producerApp({ broker_url: viaProxy(), task_default_queue: queue, broker_heartbeat: HEARTBEAT_S, task_publish_retry: false });
    apps.push(retryApp, noRetryApp);
    let retryAppLost = 0;
    retryApp.broker.on('disconnected', () => retryAppLost++);
    const producing = Promise.all([
      produce({ app: retryApp, tags: tags.slice(0, TOTAL / 2), task: 'faults.record', args: (t) => [t], inFlight: 10, ratePerSec: 125, onSettled: cutOnce }, retrying),
      produce({ app: noRetryApp, tags: tags.slice(TOTAL / 2), task: 'faults.record', args: (t) => [t], inFlight: 10, ratePerSec: 125, onSettled: cutOnce }, noRetry),
    ]);
    // While silenced, pending sends must settle (reject) once the heartbeat declares the peer dead.
    let firstRejectAfterCut = 0;
    const watcher = (async () => {
      while (!firstRejectAfterCut) {
        if (cutAt && noRetry.rejected.size > 0) firstRejectAfterCut = Date.now() - cutAt;
        await sleep(50);
      }
    })();
    await producing;
    await Promise.race([watcher, sleep(1000)]);
    const sent: Sent = {
      sent: retrying.sent + noRetry.sent,
      confirmed: new Set([...retrying.confirmed, ...noRetry.confirmed]),
      rejected: new Map([...retrying.rejected, ...noRetry.rejected]),
      ids: new Map([...retrying.ids, ...noRetry.ids]),
    };

    await settle(async () => {
      const done = new Set((await entries(run)).map((e) => e.tag));
      return [...sent.confirmed].every((t) => done.has(t));
    }, 60_000, 500);
    await settle(async () => {
      const s = await fx.svc.rabbit.queueStats(queue);
      return s !== null && s.ready === 0 && s.unacked === 0;
    }, 30_000, 500);
    await sleep(300);

    const t = tally(sent, await entries(run), tags);
    // RabbitMQ's side of the silenced connections: it too gave up on them by heartbeat.
    const brokerMissed = (fx.svc.rabbit.log().slice(logBefore).match(/missed heartbeats from client/g) ?? []).length;
    reportTally('connection-cut', t, {
      'connections-cut': cut, 'rejected-with-retry': retrying.rejected.size, 'rejected-without-retry': noRetry.rejected.size,
      'first-reject-after-cut-ms': firstRejectAfterCut, 'broker-closed-by-heartbeat': brokerMissed,
    });
    if (t.lost.length > 0) for (const w of workers) console.log(`--- worker ${w.pid}:\n${tail(w.output(), 30)}`);

    expect(cut, 'connections silenced').to.be.at.least(4); // two workers + the two producers
    expect(brokerMissed, 'silenced connections RabbitMQ closed for missed heartbeats').to.equal(cut);
    expect(t.lost, 'confirmed tasks that never ran').to.deep.equal([]);
    expect(t.unknown).to.equal(0);
    expect(t.confirmed + t.rejected).to.equal(TOTAL);
    expect(noRetry.rejected.size, 'without task_publish_retry, sends caught in the silence reject').to.be.greaterThan(0);
    expect(retrying.rejected.size, 'with task_publish_retry, they are sent again on a new connection').to.equal(0);
    expect(retryAppLost, 'the retrying producer went through the cut').to.be.at.least(1);
    expect(t.duplicated).to.be.at.most(2 * CONCURRENCY * 4);
    // Detection by heartbeat: amqplib gives up after two silent intervals.
    expect(firstRejectAfterCut, 'ms from the cut to the first rejected send').to.be.within(HEARTBEAT_S * 1000, HEARTBEAT_S * 4000);
    for (const [tag, err] of sent.rejected) {
      expect(err, `rejection of ${tag}`).to.be.instanceOf(BrokerError);
      assertNoSecrets(errorText(err), [fx.svc.rabbit.password], `the delay() rejection of ${tag}`);
    }
    // Resumed: a new connection after the loss, and both consumers attached again.
    const resumed = (w: TsWorker): boolean => /Connection to broker lost[\s\S]*Connected to /.test(w.output());
    await settle(() => workers.every(resumed), 15_000);
    for (const w of workers) {
      expect(w.child.exitCode, 'worker still running').to.equal(null);
      expect(w.output()).to.match(/Connection to broker lost.*Heartbeat timeout/);
      expect(resumed(w), `worker ${w.pid} reconnected:\n${tail(w.output().replace(/.*Task faults.*\n/g, ''), 12)}`).to.equal(true);
      assertNoSecrets(w.output(), [fx.svc.rabbit.password], 'worker output');
    }
    expect((await fx.svc.rabbit.queueStats(queue))?.consumers, 'consumers attached again').to.equal(2);
    expect(proxy.accepted, 'workers and producers reconnected through the proxy').to.be.at.least(8);
  });

  it('redeclares its queue and keeps consuming when the queue is deleted under it', async () => {
    const run = newRun('redecl');
    runs.push(run);
    const queue = `faults-${run}`;
    queues.push(queue);
    const worker = await startFaultWorker({ broker: fx.svc.rabbit.url, queue, concurrency: 2 });
    workers.push(worker);
    const app = producerApp({ broker_url: fx.svc.rabbit.url, task_default_queue: queue });
    apps.push(app);
    await app.sendTask('faults.record', [`${run}:before`]);
    await waitFor(async () => (await entries(run)).length === 1, 10_000, 'the first task');

    await fx.svc.rabbit.deleteQueues(queue); // RabbitMQ sends basic.cancel to the consumer
    const back = await settle(async () => (await fx.svc.rabbit.queueStats(queue))?.consumers === 1, 10_000);
    expect(back, `the worker declared and consumed its queue again:\n${tail(worker.output(), 6)}`).to.equal(true);
    await app.sendTask('faults.record', [`${run}:after`]);
    await waitFor(async () => (await entries(run)).length === 2, 10_000, 'the task sent after the queue was re-created');
    expect((await entries(run)).map((e) => e.tag)).to.deep.equal([`${run}:before`, `${run}:after`]);
    expect(worker.child.exitCode).to.equal(null);
  });
});
