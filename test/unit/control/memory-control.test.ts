/**
 * Remote control end to end in one process (memory broker): `app.control`
 * talks to a real Worker through the pidbox, and the commands change what
 * the worker does. The RabbitMQ and Python sides are in test/control/.
 */
import { expect } from 'chai';
import { Celery, TaskError, Worker } from '../../../src/index.js';
import { States } from '../../../src/protocol/result-meta.js';
import { setLogSink } from '../../../src/support/log.js';

const tick = (ms = 20): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function until(check: () => boolean | Promise<boolean>, what: string, timeoutMs = 3000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await tick();
  }
}

describe('remote control on the embedded broker', () => {
  let app: Celery;
  let worker: Worker;
  const restore = setLogSink(() => undefined);
  // With a destination the client stops waiting at the first (only) reply.
  const inspect = () => app.control.inspect({ timeout: 0.5, destination: ['mem@test'] });
  const call = async (command: string, args: Record<string, unknown> = {}) =>
    (await app.control.broadcast(command, { arguments: args, reply: true, timeout: 0.5, destination: ['mem@test'] }))[0]?.['mem@test'];

  before(async () => {
    app = new Celery('memctl', { broker_url: 'memory://' });
    app.task({ name: 'add' }, (x: number, y: number) => x + y);
    app.task({ name: 'sleep', bind: true }, async (self, ms: number) => {
      await new Promise<void>((resolve, reject) => {
        const t = setTimeout(resolve, ms);
        self.signal.addEventListener('abort', () => {
          clearTimeout(t);
          reject(self.signal.reason);
        });
      });
      return ms;
    });
    app.task({ name: 'stuck' }, () => new Promise(() => undefined)); // ignores its signal
    worker = new Worker(app, { hostname: 'mem@test', concurrency: 2 });
    await worker.start();
  });
  after(async () => {
    await worker.stop();
    await app.close();
    setLogSink(restore);
  });

  it('answers ping, clock, registered and stats in Celery shapes', async () => {
    expect(await inspect().ping()).to.deep.equal({ 'mem@test': { ok: 'pong' } });
    expect((await inspect().clock())!['mem@test']!.clock).to.be.a('number');
    expect(await inspect().registered()).to.deep.equal({ 'mem@test': ['add', 'sleep', 'stuck'] });
    expect(await inspect().registered('max_retries')).to.deep.equal({ 'mem@test': ['add [max_retries=3]', 'sleep [max_retries=3]', 'stuck [max_retries=3]'] });
    const stats = (await inspect().stats())!['mem@test']!;
    expect(Object.keys(stats)).to.deep.equal(['total', 'pid', 'clock', 'uptime', 'pool', 'broker', 'prefetch_count', 'rusage']);
    expect(stats.pool).to.deep.include({ 'max-concurrency': 2, processes: [process.pid] });
    expect(stats.prefetch_count).to.equal(2 * 4);
  });

  it('lists active, reserved and scheduled tasks, and query_task finds each', async () => {
    const a = await app.sendTask('sleep', [300]);
    const b = await app.sendTask('sleep', [300]);
    const c = await app.sendTask('sleep', [300]);
    const later = await app.sendTask('add', [1, 1], {}, { countdown: 30 });
    await until(async () => ((await inspect().active())?.['mem@test'] ?? []).length === 2, 'two active');
    const reserved = (await inspect().reserved())!['mem@test']!;
    expect(reserved.map((r) => r.id)).to.deep.equal([c.id]);
    expect(reserved[0]).to.deep.include({ name: 'sleep', type: 'sleep', hostname: 'mem@test', time_start: null, acknowledged: false, worker_pid: null });
    const scheduled = (await inspect().scheduled())!['mem@test']!;
    expect(scheduled).to.have.length(1);
    expect(scheduled[0]).to.deep.include({ priority: 6 });
    expect((scheduled[0]!.request as { id: string }).id).to.equal(later.id);
    const q = (await inspect().queryTask(a.id, c.id, later.id, 'nope'))!['mem@test']!;
    expect(Object.fromEntries(Object.entries(q).map(([id, [state]]) => [id, state]))).to.deep.equal({ [a.id]: 'active', [c.id]: 'reserved', [later.id]: 'scheduled' });
    expect(q[a.id]![1]).to.deep.include({ acknowledged: true, worker_pid: process.pid, args: [300] });
    await Promise.all([a, b, c].map((r) => r.get({ timeout: 3000 })));
    await app.control.revoke(later.id);
  });

  it('revoke: a queued task never runs and is REVOKED; it shows in revoked', async () => {
    const blockers = [await app.sendTask('sleep', [200]), await app.sendTask('sleep', [200])];
    const victim = await app.sendTask('add', [2, 2]);
    await app.control.revoke(victim.id);
    const err = (await victim.get({ timeout: 3000, propagate: false })) as TaskError;
    expect(err).to.be.instanceOf(TaskError);
    expect(err.excType).to.equal('TaskRevokedError');
    expect(err.excArgs).to.deep.equal(['revoked']);
    await Promise.all(blockers.map((r) => r.get({ timeout: 3000 })));
    expect((await inspect().revoked())!['mem@test']).to.include(victim.id);
  });

  it('revoke(terminate): the running task is stopped (signal aborted, slot freed), REVOKED terminated', async () => {
    const r = await app.sendTask('stuck', []);
    await until(async () => ((await inspect().active())?.['mem@test'] ?? []).length === 1, 'stuck active');
    const reply = await app.control.revoke(r.id, { terminate: true, reply: true, timeout: 0.2 });
    expect(reply).to.deep.equal([{ 'mem@test': { ok: `terminate: ${r.id}` } }]);
    const err = (await r.get({ timeout: 3000, propagate: false })) as TaskError;
    expect(err.excType).to.equal('TaskRevokedError');
    expect(err.excArgs).to.deep.equal(['terminated']);
    expect(await r.state()).to.equal(States.REVOKED);
    // The slot is free again: both slots run new tasks.
    await until(() => worker.active === 0, 'slot freed');
    const [x, y] = [await app.sendTask('sleep', [50]), await app.sendTask('sleep', [50])];
    expect(await Promise.all([x.get({ timeout: 2000 }), y.get({ timeout: 2000 })])).to.deep.equal([50, 50]);
    expect(await app.control.revoke('unknown-id', { terminate: true, reply: true, timeout: 0.2 })).to.deep.equal([{ 'mem@test': { ok: 'terminate: tasks unknown' } }]);
  });

  it('revoke_by_stamped_headers: a message carrying a revoked stamp never runs', async () => {
    expect(await call('revoke_by_stamped_headers', { headers: { batch: 'b1' } })).to.deep.equal({ ok: "headers {'batch': 'b1'} flagged as revoked, but not terminated" });
    const r = await app.sendTask('add', [3, 3], {}, { headers: { stamped_headers: ['batch'], stamps: { batch: 'b1' } } });
    const err = (await r.get({ timeout: 3000, propagate: false })) as TaskError;
    expect(err.excArgs).to.deep.equal(['revoked']);
  });

  it('rate_limit: validates like Celery, and spaces the task out', async () => {
    expect(await call('rate_limit', { task_name: 'add', rate_limit: 'ten/s' })).to.deep.equal({ error: `Invalid rate limit string: ValueError("could not convert string to float: 'ten'")` });
    expect(await call('rate_limit', { task_name: 'no.such', rate_limit: '1/s' })).to.deep.equal({ error: 'unknown task' });
    expect(await call('rate_limit', {})).to.deep.equal({ error: "TypeError(\"rate_limit() missing 2 required positional arguments: 'task_name' and 'rate_limit'\")" });
    expect(await call('rate_limit', { task_name: 'add', rate_limit: '10/s' })).to.deep.equal({ ok: 'new rate limit set successfully' });
    expect(await inspect().registered()).to.deep.equal({ 'mem@test': ['add [rate_limit=10/s]', 'sleep', 'stuck'] });
    const started = Date.now();
    const rs = await Promise.all([1, 2, 3].map((i) => app.sendTask('add', [i, i])));
    await Promise.all(rs.map((r) => r.get({ timeout: 3000 })));
    // Three tasks at 10/s with a bucket of one token: the third starts 0.2 s after the first.
    expect(Date.now() - started).to.be.at.least(180);
    expect(await call('rate_limit', { task_name: 'add', rate_limit: 0 })).to.deep.equal({ ok: 'rate limit disabled successfully' });
  });

  it('time_limit: a new hard limit fails the task with TimeLimitExceeded', async () => {
    expect(await call('time_limit', { task_name: 'sleep', hard: 0.05 })).to.deep.equal({ ok: 'time limits set successfully' });
    const err = (await (await app.sendTask('sleep', [2000])).get({ timeout: 3000, propagate: false })) as TaskError;
    expect(err.excType).to.equal('TimeLimitExceeded');
    await call('time_limit', { task_name: 'sleep' });
    expect(await (await app.sendTask('sleep', [60])).get({ timeout: 3000 })).to.equal(60);
  });

  it('pool_grow / pool_shrink change the concurrency and the prefetch', async () => {
    const before = (await inspect().stats())!['mem@test']!.prefetch_count as number; // 8, plus held ETA tasks
    expect(await call('pool_grow', { n: 2 })).to.deep.equal({ ok: 'pool will grow' });
    expect(worker.concurrency).to.equal(4);
    expect((await inspect().stats())!['mem@test']!.prefetch_count).to.equal(before + 2 * 4);
    const rs = await Promise.all([1, 2, 3, 4].map(() => app.sendTask('sleep', [200])));
    await until(() => worker.active === 4, 'four running at once');
    await Promise.all(rs.map((r) => r.get({ timeout: 3000 })));
    expect(await call('pool_shrink', { n: 2 })).to.deep.equal({ ok: 'pool will shrink' });
    expect(worker.concurrency).to.equal(2);
    expect(await call('pool_shrink', { n: 5 })).to.deep.equal({ error: "ValueError(\"Can't shrink the pool below 1 (concurrency is 2)\")" });
  });

  it('add_consumer / cancel_consumer start and stop consuming a queue', async () => {
    expect(await call('add_consumer', { queue: 'extra', exchange: null, exchange_type: 'direct', routing_key: null })).to.deep.equal({ ok: 'add consumer extra' });
    await until(async () => ((await inspect().activeQueues())?.['mem@test'] ?? []).length === 2, 'two queues');
    const queues = (await inspect().activeQueues())!['mem@test']!;
    expect(queues[1]).to.deep.include({ name: 'extra', routing_key: 'extra', durable: true, exclusive: false, auto_delete: false, no_ack: false });
    expect(await (await app.sendTask('add', [5, 5], {}, { queue: 'extra' })).get({ timeout: 2000 })).to.equal(10);
    expect(await call('cancel_consumer', { queue: 'extra' })).to.deep.equal({ ok: 'no longer consuming from extra' });
    await until(async () => ((await inspect().activeQueues())?.['mem@test'] ?? []).length === 1, 'one queue');
  });

  it('enable/disable_events, heartbeat, hello, and what is not supported', async () => {
    expect(await call('enable_events')).to.deep.equal({ ok: 'task events enabled' });
    expect(await call('enable_events')).to.deep.equal({ ok: 'task events already enabled' });
    expect(await call('disable_events')).to.deep.equal({ ok: 'task events disabled' });
    expect(await call('heartbeat')).to.equal(null);
    const hello = (await inspect().hello('other@node', ['from-other']))!['mem@test']!;
    expect(hello!.revoked).to.include('from-other');
    expect(hello!.clock).to.be.a('number');
    expect(await call('autoscale', { max: 2, min: 1 })).to.deep.equal({ error: "ValueError('Autoscale not enabled')" });
    expect(await call('pingg')).to.deep.equal({ error: "KeyError('pingg')" });
    expect((await call('objgraph')) as { error: string }).to.have.property('error');
    expect(await call('memsample')).to.match(/^\d+(\.\d+)?MB$/);
  });

  it('conf hides secrets; report says what runs', async () => {
    const conf = (await inspect().conf())!['mem@test']!;
    // As Celery's conf.table(): what the app set (broker_url), and include and deprecated_settings always.
    expect(conf).to.deep.equal({ broker_url: 'memory://', deprecated_settings: null, include: [] });
    const report = (await inspect().report())!['mem@test']!.ok;
    expect(report).to.match(/software -> ts-celery:\S+ node:/);
  });

  it('shutdown stops the worker without a reply', async () => {
    expect(await app.control.broadcast('shutdown', { reply: true, timeout: 0.2 })).to.deep.equal([]);
    await until(() => !worker.running, 'worker stopped');
    expect(await inspect().ping()).to.equal(null);
  });
});

describe('inspect active after self.replace() (embedded broker)', () => {
  const restore = setLogSink(() => undefined);
  let app: Celery;
  let worker: Worker;
  after(async () => {
    await worker?.stop();
    await app?.close();
    setLogSink(restore);
  });

  it('a replaced task leaves the active list, as Celery marks an ignored request ready', async () => {
    app = new Celery('memreplace', { broker_url: 'memory://' });
    let replacementRan = false;
    app.task({ name: 'target' }, () => {
      replacementRan = true;
      return 1;
    });
    app.task({ name: 'replaced', bind: true }, (self) => self.replace(app.signature('target')));
    worker = new Worker(app, { hostname: 'memreplace@test', concurrency: 2 });
    await worker.start();
    await app.sendTask('replaced');
    await until(() => replacementRan, 'the replacement to run');
    await tick(50);
    const active = (await app.control.inspect({ timeout: 0.5, destination: ['memreplace@test'] }).active())!['memreplace@test'];
    expect(active).to.deep.equal([]);
    expect(worker.workerState.active).to.equal(0);
  });
});
