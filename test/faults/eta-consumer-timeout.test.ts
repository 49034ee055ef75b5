/**
 * Fault: an ETA task due later than RabbitMQ's `consumer_timeout`.
 *
 * RabbitMQ 3.10 closes a channel with PRECONDITION_FAILED when its oldest
 * unacked delivery is older than `consumer_timeout` (celery/celery#6760). It
 * checks this on each channel *tick*: `channel_tick_interval`, 60 s by
 * default on 3.10 (set in rabbit.app, not exposed in rabbitmq.conf; this
 * node sets it to 1 s in advanced.config). So a channel is killed somewhere
 * between `consumer_timeout` and `consumer_timeout + tick` after the delivery.
 *
 * ts-celery holds ETA tasks unacked only up to `worker_eta_max_hold`; later
 * ones are parked in fixed-TTL delay queues that dead-letter them back. With
 * the timeout lowered to 4 s for this test's channels:
 * - without parking (worker_eta_max_hold = 1 h) the worker's channel IS killed;
 * - with parking (worker_eta_max_hold = 2 s) it is not, and the task runs
 *   once, at its ETA.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { expect } from 'chai';
import { FAULTS_CHANNEL_TICK_MS } from '../helpers/rabbit-node.js';
import type { TsWorker } from '../helpers/ts-worker.js';
import {
  entries, faultFixture, newRun, producerApp, report, settle, sleep, startFaultWorker,
} from './support.js';

const CONSUMER_TIMEOUT_MS = 4000;
const COUNTDOWN_S = 10;

/** The `channel_tick_interval` default in the installed RabbitMQ (read from its rabbit.app). */
function installedTickDefault(): number | null {
  try {
    const base = '/usr/lib/rabbitmq/lib';
    for (const server of readdirSync(base)) {
      const plugins = `${base}/${server}/plugins`;
      for (const dir of readdirSync(plugins)) {
        if (!/^rabbit-\d/.test(dir)) continue;
        const m = /\{channel_tick_interval,\s*(\d+)\}/.exec(readFileSync(`${plugins}/${dir}/ebin/rabbit.app`, 'utf8'));
        if (m) return Number(m[1]);
      }
    }
  } catch {
    /* not a Debian layout */
  }
  return null;
}

interface ConsumerRow {
  queue: string;
  tag: string;
}

describe('fault: long ETA vs RabbitMQ consumer_timeout', function () {
  this.timeout(90_000);
  const fx = faultFixture({
    beforeCleanup: async (svc) => {
      await svc.rabbit.eval('application:set_env(rabbit, consumer_timeout, 1800000).').catch(() => undefined);
    },
  });
  const { workers, apps } = fx;
  const run = newRun('eta');
  const held = `faults-${run}-held`;
  const parked = `faults-${run}-parked`;
  fx.runs.push(run);
  fx.queues.push(held, parked, ...[1, 5, 30].map((s) => `ts-celery.delay.${parked}.${s}s`));

  before(async () => {
    // consumer_timeout is read by each channel when it opens: lower it for the channels of this test.
    await fx.svc.rabbit.eval(`application:set_env(rabbit, consumer_timeout, ${CONSUMER_TIMEOUT_MS}).`);
  });

  async function consumers(): Promise<ConsumerRow[]> {
    const out = await fx.svc.rabbit.ctl(['list_consumers', 'queue_name', 'consumer_tag', '--formatter', 'json']);
    return (JSON.parse(out) as Array<Record<string, unknown>>).map((r) => ({ queue: String(r.queue_name), tag: String(r.consumer_tag) }));
  }

  it('parking keeps the channel alive and runs the task once at its ETA; holding gets the channel killed', async () => {
    const { rabbit } = fx.svc;
    const settings = await rabbit.eval('{application:get_env(rabbit, consumer_timeout), application:get_env(rabbit, channel_tick_interval)}.');
    expect(settings.replace(/\s/g, '')).to.equal(`{{ok,${CONSUMER_TIMEOUT_MS}},{ok,${FAULTS_CHANNEL_TICK_MS}}}`);
    const logBefore = rabbit.log().length;

    const [heldWorker, parkedWorker] = await Promise.all([
      startFaultWorker({ broker: rabbit.url, queue: held, concurrency: 4, env: { FAULTS_ETA_MAX_HOLD: '3600' } }),
      startFaultWorker({ broker: rabbit.url, queue: parked, concurrency: 4, env: { FAULTS_ETA_MAX_HOLD: '2' } }),
    ]);
    workers.push(heldWorker, parkedWorker);
    const before = await consumers();
    const tagOf = (q: string, rows: ConsumerRow[]): string[] => rows.filter((r) => r.queue === q).map((r) => r.tag);
    const [heldTag] = tagOf(held, before);
    const [parkedTag] = tagOf(parked, before);
    expect(heldTag && parkedTag, 'both consumers attached').to.be.a('string');

    const sentAt: Record<string, number> = {};
    for (const [queue, tag] of [[held, `${run}:held`], [parked, `${run}:parked`]] as const) {
      const app = producerApp({ broker_url: rabbit.url, task_default_queue: queue });
      apps.push(app);
      sentAt[tag] = Date.now();
      await app.sendTask('faults.record', [tag], {}, { countdown: COUNTDOWN_S });
    }
    const etaOf = (tag: string): number => sentAt[tag]! + COUNTDOWN_S * 1000;

    // Both tasks are due after COUNTDOWN_S; give them a little slack to run, then look.
    await sleep(COUNTDOWN_S * 1000);
    await settle(async () => (await entries(run)).length >= 2, 8000, 250);
    await sleep(500);
    const done = await entries(run);
    const after = await consumers();
    const log = rabbit.log().slice(logBefore);
    // RabbitMQ 3.10 logs "Consumer <delivery tag> on channel N has timed out" (the number is the
    // delivery tag, not the consumer tag), then "Channel error on connection <pid> ...". Attribute
    // each kill to a worker through the connection's client-provided name (`... gen<pid>@host`).
    const names = new Map<string, string>();
    for (const m of log.matchAll(/connection (<[\d.]+>) \([^)]*\) has a client-provided name: (.*)$/gm)) names.set(m[1]!, m[2]!);
    const killLines = [...log.matchAll(/^(\S+ \S+?)\d{3}\+00:00 \[error\] \S+ Channel error on connection (<[\d.]+>)[^\n]*\n[^\n]*delivery acknowledgement on channel \d+ timed out/gm)];
    const kills = killLines.map((m) => names.get(m[2]!) ?? m[2]!);
    const timedOut = (worker: TsWorker): number => kills.filter((name) => name.includes(`gen${worker.pid}@`)).length;
    // When the first kill happened, relative to the delivery of the held message (~ when it was sent).
    const firstKillAt = killLines[0] ? Date.parse(`${killLines[0][1]!.replace(' ', 'T')}Z`) : NaN;
    const firstKillAfterMs = firstKillAt - sentAt[`${run}:held`]!;

    const runsOf = (tag: string) => done.filter((e) => e.tag === tag);
    const heldRuns = runsOf(`${run}:held`);
    const parkedRuns = runsOf(`${run}:parked`);
    report('eta-consumer-timeout', {
      'consumer-timeout-ms': CONSUMER_TIMEOUT_MS, 'tick-ms': FAULTS_CHANNEL_TICK_MS, 'tick-default-ms': installedTickDefault() ?? '?',
      countdown: `${COUNTDOWN_S}s`, 'held:channel-kills': timedOut(heldWorker), 'held:runs': heldRuns.length,
      'parked:channel-kills': timedOut(parkedWorker), 'parked:runs': parkedRuns.length,
      'held:first-kill-after-ms': firstKillAfterMs,
      'parked:late-ms': parkedRuns[0] ? parkedRuns[0].at - etaOf(`${run}:parked`) : 'n/a',
    });

    // Without parking: RabbitMQ killed the channel holding the ETA message (its first consumer
    // was timed out, and the worker had to consume again under a new tag).
    expect(kills.length, 'every consumer_timeout kill is attributed').to.equal(timedOut(heldWorker) + timedOut(parkedWorker));
    expect(timedOut(heldWorker), `consumer_timeout kills of the holding worker's channel (log:\n${log.slice(-2000)})`).to.be.at.least(1);
    expect(tagOf(held, after)).to.not.include(heldTag);
    // ... between consumer_timeout and consumer_timeout + one channel tick after the delivery.
    expect(firstKillAfterMs, 'ms from delivery to the first kill').to.be.within(CONSUMER_TIMEOUT_MS, CONSUMER_TIMEOUT_MS + FAULTS_CHANNEL_TICK_MS + 500);

    // With parking: same consumer from start to end, never timed out, and the task ran once, on time.
    expect(timedOut(parkedWorker), 'consumer_timeout kills of the parking worker\'s channel').to.equal(0);
    expect(tagOf(parked, after)).to.deep.equal([parkedTag]);
    expect(parkedRuns.length, 'runs of the parked task').to.equal(1);
    const late = parkedRuns[0]!.at - etaOf(`${run}:parked`);
    expect(late, 'ms after its ETA that the parked task ran').to.be.within(0, 1500);
    expect(parkedWorker.child.exitCode).to.equal(null);
    expect(heldWorker.child.exitCode).to.equal(null);
  });
});
