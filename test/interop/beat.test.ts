/**
 * `ts-celery beat` as users run it, against real RabbitMQ (vhost
 * ts-celery-beat), Redis (DB 12) and a Python Celery 5.7 worker:
 *
 * - an every-2-s entry for ~10 s sends 4-6 messages, which the Python worker runs;
 * - two beats on the same schedule at once still send 4-6 (one sends, one stands by);
 * - killing the beat that holds the lease hands over within ttl × 1.2, with no run sent twice;
 * - a beat killed and restarted with its schedule file repeats nothing and skips nothing;
 * - `ts-celery worker -B` runs beat inside the worker, which runs what it sends.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import amqp from 'amqplib';
import { expect } from 'chai';
import { Redis } from 'ioredis';
import { startPythonWorker, type PythonWorker } from '../helpers/python.js';
import { uniqueName } from '../helpers/services.js';
import { logTime, startTsBeat, type TsBeat } from '../helpers/ts-beat.js';
import { waitFor } from '../helpers/wait-for.js';

const VHOST_URL = 'amqp://guest:guest@127.0.0.1:5672/ts-celery-beat';
const REDIS_URL = 'redis://127.0.0.1:6379/12';
const APP = 'test/interop/beat-app';
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** The times at which the Python worker finished py.echo(tag). */
function pythonRuns(worker: PythonWorker, tag: string): number[] {
  return worker
    .logs()
    .split('\n')
    .filter((l) => /Task py\.echo\[[^\]]+\] succeeded in/.test(l) && l.includes(`'args': ['${tag}']`))
    .map((l) => logTime(l)!);
}

const gaps = (times: number[]): number[] => times.slice(1).map((t, i) => t - times[i]!);

describe('ts-celery beat with RabbitMQ, Redis and a Python Celery 5.7 worker', function () {
  this.timeout(120_000);
  const queue = uniqueName('beat-interop');
  const leaseKeys: string[] = [];
  const beats: TsBeat[] = [];
  let worker: PythonWorker;
  let dir: string;

  const beat = (env: Record<string, string>, args: string[] = []): TsBeat => {
    const b = startTsBeat(['beat', '-A', APP, '-l', 'info', ...args], {
      BEAT_BROKER: VHOST_URL,
      BEAT_BACKEND: REDIS_URL,
      BEAT_QUEUE: queue,
      BEAT_EVERY: '2',
      ...env,
    });
    beats.push(b);
    return b;
  };
  /**
   * Once the beats stopped: waits (polling, up to 20 s: the Python worker lags on a loaded
   * machine) until the worker ran at least as many py.echo(tag) as the beats sent, then
   * 500 ms more, in which a run sent twice would show up. The tests compare the counts.
   */
  const allRun = async (expected: Array<[tag: string, sends: number]>): Promise<void> => {
    await waitFor(() => expected.every(([tag, sends]) => pythonRuns(worker, tag).length >= sends), {
      timeoutMs: 20_000, everyMs: 100, what: `the Python worker to run ${expected.map(([t, n]) => `${n} × ${t}`).join(', ')}`,
    }).catch(() => {}); // the tests' own expectations then say what is missing
    await sleep(500);
  };
  const leaseKey = (): string => {
    const k = uniqueName('test:beat');
    leaseKeys.push(k);
    return k;
  };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ts-celery-beat-'));
    worker = await startPythonWorker({ queues: [queue], env: { PYTASKS_BROKER: VHOST_URL, PYTASKS_BACKEND: REDIS_URL } });
  });

  after(async () => {
    await Promise.all(beats.map((b) => b.stop(2_000)));
    await worker?.stop();
    const redis = new Redis(REDIS_URL);
    for (const k of leaseKeys) await redis.del(k, `${k}:fence`, `${k}:schedule`);
    redis.disconnect();
    const conn = await amqp.connect(VHOST_URL);
    const ch = await conn.createChannel();
    await ch.deleteQueue(queue);
    await conn.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('one beat sends an every-2-s entry 4-6 times in ~10 s; two beats at once also 4-6 (one stands by)', async () => {
    const single = beat({ BEAT_TAG: 'single', BEAT_LEASE_KEY: leaseKey() });
    const pairKey = leaseKey();
    const pair = [beat({ BEAT_TAG: 'pair', BEAT_LEASE_KEY: pairKey }), beat({ BEAT_TAG: 'pair', BEAT_LEASE_KEY: pairKey })];
    await Promise.all([single, ...pair].map((b) => b.waitFor(/Acquired the lease|Standing by/)));
    await sleep(10_000);
    expect(await Promise.all([single, ...pair].map((b) => b.stop()))).to.deep.equal([0, 0, 0]);
    await allRun([['single', single.sends().length], ['pair', pair.flatMap((b) => b.sends()).length]]);

    const singleRuns = pythonRuns(worker, 'single');
    const pairRuns = pythonRuns(worker, 'pair');
    process.stdout.write(`      Python ran: one beat ${singleRuns.length}, two beats ${pairRuns.length}\n`);
    expect(singleRuns.length).to.be.within(4, 6);
    expect(pairRuns.length).to.be.within(4, 6);
    expect(pair.map((b) => b.sends().length).sort()).to.deep.equal([0, pairRuns.length]);
    // Gaps between the beat's own send times (its log's timestamps): when the Python worker picks a
    // message up depends on its load, not on beat, and the run counts above already catch a repeat.
    const pairSends = pair.flatMap((b) => b.sends());
    for (const g of [...gaps(single.sends()), ...gaps(pairSends)]) expect(g).to.be.within(1_700, 2_400);
    expect(single.output()).to.match(/\[[^\]]+: INFO\/MainProcess\] Scheduler: Sending due task every \(py\.echo\)/);
    expect(single.output()).to.include('. every: py.echo <freq: 2.00 seconds>'); // the schedule in the banner
  });

  it('killing the beat that holds the lease hands over within ttl × 1.2, sending no run twice', async () => {
    const key = leaseKey();
    const env = { BEAT_TAG: 'failover', BEAT_LEASE_KEY: key, BEAT_LEASE_TTL: '2', BEAT_EVERY: '1' };
    const first = beat(env);
    await first.waitFor(/Acquired the lease/);
    const second = beat(env);
    await second.waitFor(/Standing by/);
    await sleep(3_000);
    const killedAt = Date.now();
    first.child.kill('SIGKILL');
    const tookOver = await second.waitFor(/Acquired the lease/, 10_000);
    await sleep(3_000);
    expect(await second.stop()).to.equal(0);
    await allRun([['failover', first.sends().length + second.sends().length]]);

    const handover = tookOver - killedAt;
    const sends = [...first.sends(), ...second.sends()].sort((a, b) => a - b);
    const runs = pythonRuns(worker, 'failover');
    process.stdout.write(`      handover ${handover} ms after SIGKILL (ttl 2 s: at most 2.4 s); ${first.sends().length} + ${second.sends().length} sends, ${runs.length} runs\n`);
    expect(handover).to.be.lessThan(2_400 + 500); // + process scheduling on a busy machine
    expect(second.sends().length).to.be.greaterThan(0);
    expect(runs).to.have.length(sends.length);
    // Every-1-s entry: a run sent twice would show as a gap far below 1 s.
    for (const g of gaps(sends)) expect(g).to.be.greaterThan(800); // beat's send times, not the worker's pick-up
    const outage = second.sends()[0]! - first.sends().at(-1)!;
    expect(outage).to.be.lessThan(2_400 + 1_000 + 500);
  });

  it('a beat killed and restarted with its schedule file repeats nothing and skips nothing', async () => {
    const file = join(dir, 'restart-schedule.json');
    // BEAT_BACKEND=none: no Redis, so no lease: the state lives in the schedule file.
    const env = { BEAT_TAG: 'restart', BEAT_BACKEND: 'none', BEAT_SCHEDULE_FILE: file };
    const first = beat(env);
    await first.waitFor(/runs next at/);
    expect(first.output()).to.match(/Running WITHOUT high availability/);
    await sleep(5_000); // sends at ~2 and ~4 s
    first.child.kill('SIGKILL'); // a crash: no chance to save anything at exit
    await first.exited;
    const second = beat(env);
    const restarted = await second.waitFor(/runs next at/);
    await sleep(4_500);
    expect(await second.stop()).to.equal(0);
    await allRun([['restart', first.sends().length + second.sends().length]]);

    const before = first.sends();
    const after = second.sends();
    const runs = pythonRuns(worker, 'restart');
    process.stdout.write(`      ${before.length} sends, kill -9, restart: ${after.length} sends; Python ran ${runs.length}\n`);
    expect(before.length).to.be.within(2, 3);
    expect(runs).to.have.length(before.length + after.length);
    // Nothing repeated: the first send after the restart comes a full interval after the last one before it.
    expect(after[0]! - before.at(-1)!).to.be.greaterThan(1_900);
    // Nothing skipped: the run that fell due while beat was down is sent as soon as it is back.
    if (before.at(-1)! + 2_000 < restarted) expect(after[0]! - restarted).to.be.lessThan(500);
    for (const g of [...gaps(before), ...gaps(after)]) expect(g).to.be.greaterThan(1_800); // beat's send times
  });

  it('ts-celery worker -B runs beat in the worker, and the worker runs what it sends', async () => {
    const b = startTsBeat(['worker', '-A', APP, '-B', '-l', 'info', '-Q', queue + '-b', '-c', '4', '-s', join(dir, 'embedded.json')], {
      BEAT_BROKER: VHOST_URL,
      BEAT_BACKEND: 'none',
      BEAT_QUEUE: `${queue}-b`,
      BEAT_TASK: 'beatapp.tick',
      BEAT_TAG: 'embedded',
      BEAT_EVERY: '1',
    });
    beats.push(b);
    await b.waitFor(/ ready\./);
    const ran = (): number => b.output().split('tick ran: embedded').length - 1;
    for (let waited = 0; ran() < 2 && waited < 10_000; waited += 100) await sleep(100);
    expect(await b.stop()).to.equal(0);
    expect(ran()).to.be.at.least(2);
    expect(b.output()).to.match(/INFO\/Beat\] Scheduler: Sending due task every \(beatapp\.tick\)/);
    const conn = await amqp.connect(VHOST_URL);
    const ch = await conn.createChannel();
    await ch.deleteQueue(`${queue}-b`);
    await conn.close();
  });
});
