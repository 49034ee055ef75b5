/**
 * ts-celery's tools against a Python Celery 5.7 worker: `ts-celery
 * inspect|control|status` print what `celery inspect|control|status` print
 * for the same worker, and the TypeScript `app.control` / `result.revoke()`
 * steer it.
 */
import { expect } from 'chai';
import { Celery, TaskError } from '../../src/index.js';
import { celery, startPyCtlWorker, tsCelery, until, type CtlWorker } from './support.js';
import { CONTROL_AMQP_URL, CONTROL_REDIS_URL, deleteControlQueues } from './services.js';

describe('ts-celery tools against a Python Celery 5.7 worker', function () {
  this.timeout(60_000);
  let w: CtlWorker;
  let node: string;
  let app: Celery;

  before(async () => {
    w = await startPyCtlWorker({ concurrency: 2 });
    node = w.nodename;
    app = new Celery('ctlclient', { broker_url: CONTROL_AMQP_URL, result_backend: CONTROL_REDIS_URL, task_default_queue: w.queue });
  });
  after(async () => {
    await app?.close();
    await w?.stop();
    await deleteControlQueues(w.queue);
  });

  it('ts-celery inspect ping / registered / revoked print what celery prints, exit code 0', async () => {
    for (const command of [['inspect', 'ping'], ['inspect', 'registered'], ['inspect', 'revoked'], ['inspect', 'reserved'], ['status']]) {
      const [py, ts] = await Promise.all([celery([...command, '-d', node]), tsCelery([...command, '-d', node])]);
      expect(ts.stdout, command.join(' ')).to.equal(py.stdout);
      expect(ts.code, command.join(' ')).to.equal(0);
    }
  });

  it('ts-celery inspect --json, exit code 69 when nobody answers, 2 for an unknown command', async () => {
    const ping = await tsCelery(['inspect', 'ping', '-d', node, '--json']);
    expect(JSON.parse(ping.stdout)).to.deep.equal({ [node]: { ok: 'pong' } });
    const none = await tsCelery(['inspect', 'ping', '-d', 'nobody@nowhere']);
    expect(none.code).to.equal(69);
    expect(none.stderr).to.equal('Error: No nodes replied within time constraint\n');
    const bad = await tsCelery(['inspect', 'pingg']);
    expect(bad.code).to.equal(2);
    expect(bad.stderr).to.contain('Error: Command pingg not recognized. Available inspect commands: active, active_queues, clock, conf, memdump, memsample, objgraph, ping, query_task, registered, report, reserved, revoked, scheduled, stats');
    const noBroker = await tsCelery(['inspect', 'ping', '-b', 'amqp://guest:guest@127.0.0.1:1/']);
    expect(noBroker.code).to.equal(69);
    expect(noBroker.stderr).to.match(/^Error: Could not connect to the message broker\./);
  });

  it('app.control.inspect() reads its stats, registered tasks and active tasks', async () => {
    const i = app.control.inspect({ destination: [node], timeout: 2 });
    const stats = (await i.stats())![node]!;
    expect(stats.pool).to.deep.include({ 'max-concurrency': 2, implementation: 'celery.concurrency.prefork:TaskPool' });
    expect((await i.registered('rate_limit'))![node]).to.include('ctl.limited [rate_limit=100/m]');
    const r = await app.sendTask('ctl.sleep', [3]);
    await until(async () => ((await i.active())?.[node] ?? []).length === 1, 'the task running on the Python worker');
    expect((await i.active())![node]![0]).to.deep.include({ id: r.id, name: 'ctl.sleep' });
    // result.revoke({ terminate }) stops it on the Python worker (prefork kills the child).
    await r.revoke({ terminate: true });
    const err = (await r.get({ timeout: 10_000, propagate: false })) as TaskError;
    expect(err).to.be.instanceOf(TaskError);
    expect(err.excType).to.equal('TaskRevokedError');
    expect(await r.state()).to.equal('REVOKED');
  });

  it('ts-celery control rate_limit / revoke / add_consumer answer as celery control does', async () => {
    const rl = await tsCelery(['control', 'rate_limit', 'ctl.add', '5/s', '-d', node]);
    expect(rl.stdout).to.equal(`->  ${node}: OK\n        new rate limit set successfully\n`);
    expect((await app.control.inspect({ destination: [node], timeout: 2 }).registered())![node]).to.include('ctl.add [rate_limit=5/s]');
    const revoke = await tsCelery(['control', 'revoke', 'ts-cli-revoked', '-d', node]);
    expect(revoke.stdout).to.equal(`->  ${node}: OK\n        tasks {'ts-cli-revoked'} flagged as revoked\n`);
    const auto = await tsCelery(['control', 'autoscale', '3', '1', '-d', node]);
    expect(auto.stdout).to.equal(`->  ${node}: ERROR\n        ValueError('Autoscale not enabled')\n`);
    const ping = await app.control.ping({ destination: [node], timeout: 2 });
    expect(ping).to.deep.equal([{ [node]: { ok: 'pong' } }]);
  });
});
