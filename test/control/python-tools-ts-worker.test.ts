/**
 * Celery 5.7's own tools against `ts-celery worker`: `celery inspect`,
 * `celery control`, `celery status` and the Python `app.control` API see and
 * steer a TypeScript worker as they do a Python one.
 */
import { expect } from 'chai';
import { uniqueName } from '../helpers/services.js';
import { celery, pyClient, startPyCtlWorker, startTsCtlWorker, until, type CtlWorker } from './support.js';
import { deleteControlQueues } from './services.js';

/** The keys a 5.7 worker's stats reply has (test/fixtures/celery-5.7/pidbox_results.json). */
const STATS_KEYS = ['total', 'pid', 'clock', 'uptime', 'pool', 'broker', 'prefetch_count', 'rusage'];
const INFO_KEYS = ['id', 'name', 'args', 'kwargs', 'type', 'hostname', 'time_start', 'acknowledged', 'delivery_info', 'worker_pid'];

describe('Python Celery 5.7 tools against a ts-celery worker', function () {
  this.timeout(60_000);
  let w: CtlWorker;
  let node: string;
  const extraQueue = uniqueName('ctl-extra');

  before(async () => {
    w = await startTsCtlWorker({ concurrency: 2, args: ['-E'] });
    node = w.nodename;
  });
  after(async () => {
    await w?.stop();
    await deleteControlQueues(w.queue, extraQueue);
  });

  it('celery inspect ping / status answer for it, exit code 0; an unknown node gives 69', async () => {
    const ping = await celery(['inspect', 'ping', '-d', node]);
    expect(ping.code).to.equal(0);
    expect(ping.stdout).to.equal(`->  ${node}: OK\n        pong\n\n1 node online.\n`);
    const status = await celery(['status', '-d', node]);
    expect(status.stdout).to.equal(`->  ${node}: OK\n\n1 node online.\n`);
    const none = await celery(['inspect', 'ping', '-d', 'nobody@nowhere']);
    expect(none.code).to.equal(69);
    expect(none.stderr).to.contain('No nodes replied within time constraint');
  });

  it('celery inspect stats / registered / active_queues give Celery-shaped replies', async () => {
    const stats = await celery(['inspect', 'stats', '-d', node, '--json']);
    const s = (JSON.parse(stats.stdout) as Record<string, Record<string, unknown>>)[node]!;
    expect(Object.keys(s)).to.deep.equal(STATS_KEYS);
    expect(s.pool).to.deep.include({ 'max-concurrency': 2, processes: [w.child.pid] });
    expect(s.broker).to.deep.include({ hostname: '127.0.0.1', port: 5672, userid: 'guest', virtual_host: 'ts-celery-control', transport: 'amqp' });
    expect(s.prefetch_count).to.equal(8);
    const registered = await celery(['inspect', 'registered', '-d', node]);
    expect(registered.stdout).to.contain('    * ctl.add\n');
    expect(registered.stdout).to.contain('    * ctl.limited [rate_limit=100/m]\n');
    const [queues] = (await pyClient([['inspect', 'active_queues', { destination: [node], timeout: 2 }]])) as [Record<string, Array<Record<string, unknown>>>];
    expect(queues[node]![0]).to.deep.include({ name: w.queue, routing_key: w.queue, durable: true, exclusive: false, auto_delete: false });
  });

  it("inspect conf lists what the app set, even to a default value, with include and deprecated_settings, as Celery 5.7's worker", async () => {
    const [conf] = (await pyClient([['inspect', 'conf', { destination: [node], timeout: 2 }]])) as [Record<string, Record<string, unknown>>];
    // A Celery 5.7 worker of an app that sets these replies with exactly these keys (plus its own
    // worker_disable_prefetch); worker_send_task_events is set to false, its default, and still listed.
    expect(conf[node]).to.deep.include({ deprecated_settings: null, include: [], worker_send_task_events: false, task_default_queue: w.queue });
    expect(conf[node]!.broker_url).to.equal('amqp://guest:********@127.0.0.1:5672/ts-celery-control');
  });

  it('active / reserved / scheduled / query_task through the Python API', async () => {
    // An eta with sub-millisecond digits, as Python's datetimes have.
    const etaIso = new Date(Date.now() + 60_000).toISOString().replace(/\.(\d{3})Z$/, '.$1457+00:00');
    const [a, b, c, later] = (await pyClient([
      // Long enough to still run after the CLI calls below (each spawns a Python process).
      ['send', 'ctl.sleep', [8], {}, { queue: w.queue }],
      ['send', 'ctl.sleep', [8], {}, { queue: w.queue }],
      ['send', 'ctl.sleep', [8], {}, { queue: w.queue }],
      ['send', 'ctl.add', [1, 2], {}, { queue: w.queue, eta_iso: etaIso }],
    ])) as [string, string, string, string];
    await until(async () => {
      const [act] = (await pyClient([['inspect', 'active', { destination: [node], timeout: 2 }]])) as [Record<string, unknown[]>];
      return act[node]?.length === 2;
    }, 'two active tasks');
    const [active, reserved, scheduled, query] = (await pyClient([
      ['inspect', 'active', { destination: [node], timeout: 2 }],
      ['inspect', 'reserved', { destination: [node], timeout: 2 }],
      ['inspect', 'scheduled', { destination: [node], timeout: 2 }],
      ['inspect', 'query_task', { destination: [node], timeout: 2 }, a, c, later],
    ])) as [Record<string, any>, Record<string, any>, Record<string, any>, Record<string, any>];
    expect(active[node].map((r: { id: string }) => r.id).sort()).to.deep.equal([a, b].sort());
    expect(Object.keys(active[node][0])).to.deep.equal(INFO_KEYS);
    expect(active[node][0]).to.deep.include({ name: 'ctl.sleep', args: [8], kwargs: {}, hostname: node, acknowledged: true, worker_pid: w.child.pid });
    expect(reserved[node].map((r: { id: string }) => r.id)).to.deep.equal([c]);
    expect(scheduled[node][0].request.id).to.equal(later);
    // Celery's isoformat(), to the microsecond the sender wrote (a JS Date alone keeps milliseconds).
    expect(scheduled[node][0].eta).to.equal(etaIso);
    expect(Object.fromEntries(Object.entries(query[node]).map(([id, v]) => [id, (v as [string])[0]]))).to.deep.equal({ [a]: 'active', [c]: 'reserved', [later]: 'scheduled' });

    // celery control revoke: the reserved task never runs; Python's get() sees REVOKED.
    const revoke = await celery(['control', 'revoke', c, '-d', node]);
    expect(revoke.stdout).to.equal(`->  ${node}: OK\n        tasks {'${c}'} flagged as revoked\n`);
    // app.control.revoke(terminate=True): the running task stops at once.
    const [, terminated, revokedResult, runningDone] = (await pyClient([
      ['revoke', a, { terminate: true }],
      ['get', a, 10],
      ['get', c, 10],
      ['get', b, 15],
    ])) as Array<Record<string, unknown>>;
    expect(terminated).to.deep.include({ state: 'REVOKED', exc_type: 'TaskRevokedError', exc_args: ['terminated'] });
    expect(revokedResult).to.deep.include({ state: 'REVOKED', exc_type: 'TaskRevokedError', exc_args: ['revoked'] });
    expect(runningDone).to.deep.include({ state: 'SUCCESS', result: 8 });
    const revokedList = await celery(['inspect', 'revoked', '-d', node]);
    expect(revokedList.stdout).to.contain(`    * ${c}\n`).and.to.contain(`    * ${a}\n`);
    await pyClient([['revoke', later]]);
  });

  it('celery control rate_limit and add_consumer change what the worker does', async () => {
    const rl = await celery(['control', 'rate_limit', 'ctl.add', '10/s', '-d', node]);
    expect(rl.stdout).to.equal(`->  ${node}: OK\n        new rate limit set successfully\n`);
    const registered = await celery(['inspect', 'registered', '-d', node]);
    expect(registered.stdout).to.contain('    * ctl.add [rate_limit=10/s]\n');
    const bad = await celery(['control', 'rate_limit', 'ctl.add', 'ten/s', '-d', node]);
    expect(bad.stdout).to.equal(`->  ${node}: ERROR\n        Invalid rate limit string: ValueError("could not convert string to float: 'ten'")\n`);

    const add = await celery(['control', 'add_consumer', extraQueue, '-d', node]);
    expect(add.stdout).to.equal(`->  ${node}: OK\n        add consumer ${extraQueue}\n`);
    const [id] = (await pyClient([['send', 'ctl.add', [20, 22], {}, { queue: extraQueue }]])) as [string];
    const [result] = (await pyClient([['get', id, 10]])) as Array<Record<string, unknown>>;
    expect(result).to.deep.include({ state: 'SUCCESS', result: 42 });
    const cancel = await celery(['control', 'cancel_consumer', extraQueue, '-d', node]);
    expect(cancel.stdout).to.equal(`->  ${node}: OK\n        no longer consuming from ${extraQueue}\n`);
  });

  it("a Python worker starting with mingle gets the ts-celery worker's revoked ids (hello)", async () => {
    const id = `mingle-${Date.now()}`;
    await pyClient([['broadcast', 'revoke', { arguments: { task_id: id }, destination: [node] }]]);
    const py = await startPyCtlWorker({ mingle: true });
    try {
      expect(py.output()).to.match(/mingle: sync with 1 nodes/);
      const [revoked] = (await pyClient([['inspect', 'revoked', { destination: [py.nodename], timeout: 2 }]])) as [Record<string, string[]>];
      expect(revoked[py.nodename]).to.include(id);
    } finally {
      await py.stop();
      await deleteControlQueues(py.queue);
    }
  });

  it('celery control shutdown: a warm shutdown, exit code 0, and no reply (as a Python worker)', async () => {
    const r = await celery(['control', 'shutdown', '-d', node]);
    expect(r.code).to.equal(69); // a worker shutting down does not answer
    expect(await w.exited).to.equal(0);
    expect(w.output()).to.contain('Got shutdown from remote');
  });
});
