/**
 * Remote control, events and Flower on a Redis broker (DB 10, results in DB
 * 11), against Celery 5.7: `celery inspect`/`celery control` steer a
 * `ts-celery worker`, `ts-celery inspect` reaches a Python worker, Python's
 * `app.events.Receiver` sees the TypeScript worker's events, and Flower 2.2
 * lists it. All of it goes over kombu's pub/sub topics (`/10.celery.pidbox`,
 * `/10.celeryev/...`) and reply lists, which both sides must agree on.
 */
import { expect } from 'chai';
import { Redis } from 'ioredis';
import { Celery, TaskError } from '../../src/index.js';
import { REDIS_BROKER_RESULTS_URL, REDIS_BROKER_URL } from '../helpers/services.js';
import { celery, pythonReceiver, startFlower, startPyCtlWorker, startTsCtlWorker, tsCelery, until, type CtlWorker } from './support.js';

const SEP = '\x06\x16';
const ENV = { CTL_BROKER: REDIS_BROKER_URL, CTL_BACKEND: REDIS_BROKER_RESULTS_URL };

describe('remote control, events and Flower on a Redis broker, with Celery 5.7', function () {
  this.timeout(90_000);
  let ts: CtlWorker;
  let app: Celery;
  const workers: CtlWorker[] = [];

  before(async () => {
    ts = await startTsCtlWorker({ concurrency: 2, args: ['-E'], env: ENV });
    workers.push(ts);
    app = new Celery('rbctl', { broker_url: REDIS_BROKER_URL, result_backend: REDIS_BROKER_RESULTS_URL, task_default_queue: ts.queue });
  });
  after(async () => {
    await app?.close();
    await Promise.all(workers.map((w) => w.stop()));
    const redis = new Redis(REDIS_BROKER_URL);
    const queues = workers.map((w) => w.queue);
    if (queues.length) await redis.del(...queues.flatMap((q) => [q, `${q}${SEP}3`, `${q}${SEP}6`, `${q}${SEP}9`, `_kombu.binding.${q}`, `_kombu.binding_permanent.${q}`]));
    redis.disconnect();
  });

  it('celery inspect ping, active and registered answer for the ts-celery worker', async () => {
    const ping = await celery(['inspect', 'ping', '-d', ts.nodename], 30_000, ENV);
    expect(ping.code, ping.stderr).to.equal(0);
    expect(ping.stdout).to.equal(`->  ${ts.nodename}: OK\n        pong\n\n1 node online.\n`);
    const running = await app.sendTask('ctl.sleep', [4]);
    let active: Record<string, Array<{ id: string; name: string }>> = {};
    await until(async () => {
      const r = await celery(['inspect', 'active', '-d', ts.nodename, '--json'], 30_000, ENV);
      active = JSON.parse(r.stdout) as typeof active;
      return (active[ts.nodename] ?? []).some((t) => t.id === running.id);
    }, 'the running task in celery inspect active', 20_000);
    expect(active[ts.nodename]!.find((t) => t.id === running.id)).to.deep.include({ name: 'ctl.sleep' });
    const registered = await celery(['inspect', 'registered', '-d', ts.nodename], 30_000, ENV);
    expect(registered.stdout).to.contain('    * ctl.add\n').and.to.contain('    * ctl.limited [rate_limit=100/m]\n');
    expect(await running.get({ timeout: 10_000 })).to.equal(4);
  });

  it('celery control revoke: a revoked task held for its countdown never runs and ends REVOKED', async () => {
    const held = await app.sendTask('ctl.add', [1, 2], {}, { countdown: 3 });
    await until(async () => {
      const r = await celery(['inspect', 'scheduled', '-d', ts.nodename, '--json'], 30_000, ENV);
      return r.stdout.includes(held.id);
    }, 'the ETA task held by the worker', 15_000);
    const revoke = await celery(['control', 'revoke', held.id, '-d', ts.nodename], 30_000, ENV);
    expect(revoke.stdout).to.contain(`->  ${ts.nodename}: OK\n        tasks {'${held.id}'} flagged as revoked`);
    const err = (await held.get({ timeout: 15_000 }).catch((e: unknown) => e)) as TaskError;
    expect(err).to.be.instanceOf(TaskError);
    expect(err.excType).to.equal('TaskRevokedError');
  });

  it("Python's app.events.Receiver sees the worker's heartbeats and task events", async () => {
    const receiver = pythonReceiver(ts.nodename, 5, ENV);
    await receiver.ready;
    const r = await app.sendTask('ctl.add', [20, 22]);
    expect(await r.get({ timeout: 10_000 })).to.equal(42);
    const events = await receiver.events;
    const mine = events.filter((e) => e.hostname === ts.nodename);
    expect(mine.filter((e) => e.type === 'worker-heartbeat').length).to.be.at.least(1);
    const taskEvents = mine.filter((e) => e.uuid === r.id).map((e) => e.type);
    expect(taskEvents).to.deep.equal(['task-received', 'task-started', 'task-succeeded']);
    expect(mine.find((e) => e.type === 'task-succeeded' && e.uuid === r.id)).to.deep.include({ result: '42' });
  });

  it('ts-celery inspect ping answers for a Python worker on the Redis broker', async () => {
    const py = await startPyCtlWorker({ env: ENV });
    workers.push(py);
    const ping = await tsCelery(['inspect', 'ping', '-d', py.nodename], 30_000, ENV);
    expect(ping.code, ping.stderr).to.equal(0);
    expect(ping.stdout).to.equal(`->  ${py.nodename}: OK\n        pong\n\n1 node online.\n`);
  });

  it('Flower 2.2 /api/workers lists the ts-celery worker with its stats and registered tasks', async () => {
    const flower = await startFlower(ENV);
    try {
      let workersInfo: Record<string, Record<string, any>> = {};
      await until(async () => {
        workersInfo = await flower.api('/api/workers?refresh=1');
        return Boolean(workersInfo[ts.nodename]?.stats && workersInfo[ts.nodename]?.registered);
      }, `the worker in Flower's /api/workers:\n${flower.log()}`, 40_000);
      const info = workersInfo[ts.nodename]!;
      expect(info.registered).to.include('ctl.add');
      expect(info.stats.broker).to.deep.include({ transport: 'redis', hostname: '127.0.0.1', port: 6379, virtual_host: '10' });
      expect(info.active_queues.map((q: { name: string }) => q.name)).to.deep.equal([ts.queue]);
    } finally {
      flower.stop();
    }
  });
});
