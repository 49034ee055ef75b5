import { expect } from 'chai';
import { Celery, TaskError, Worker } from '../../../src/index.js';
import type { MemoryBroker } from '../../../src/broker/memory.js';
import { setLogLevel, setLogSink } from '../../../src/support/log.js';

/** The worker on the embedded broker: one process, no services. */
describe('worker on the embedded memory broker', () => {
  let app: Celery;
  let worker: Worker;
  let running = 0;
  let peak = 0;
  const logs: string[] = [];
  let restoreSink: (l: string) => void;

  before(async () => {
    restoreSink = setLogSink((l) => logs.push(l));
    setLogLevel('info');
    app = new Celery('mem', { broker_url: 'memory://' });
    app.task({ name: 'add' }, (x: number, y: number) => x + y);
    app.task({ name: 'fail' }, (msg: string) => { throw new RangeError(msg); });
    app.task({ name: 'flaky', bind: true }, async (self) => (self.request.retries < 2 ? self.retry({ countdown: 0.05 }) : self.request.retries));
    app.task({ name: 'sleepy' }, async (ms: number) => {
      running++;
      peak = Math.max(peak, running);
      await new Promise((r) => setTimeout(r, ms));
      running--;
      return ms;
    });
    app.task({ name: 'greet' }, (greeting: string, name = 'world') => `${greeting}, ${name}`);
    worker = new Worker(app, { hostname: 'mem@test', concurrency: 3 });
    await worker.start();
  });
  after(async () => {
    await worker.stop();
    await app.close();
    setLogSink(restoreSink);
    setLogLevel('warning');
  });

  it('runs a task and get() returns its value', async () => {
    const r = await app.sendTask<number>('add', [2, 3]);
    expect(await r.get({ timeout: 2000 })).to.equal(5);
    await new Promise((resolve) => setImmediate(resolve)); // the line is logged after the result is stored
    expect(logs.some((l) => /INFO\/MainProcess\] Task add\[.*\] succeeded in .*s: 5$/.test(l))).to.equal(true);
  });

  it('maps kwargs onto parameters by name, and keeps JS defaults', async () => {
    expect(await (await app.sendTask('add', [], { x: 2, y: 40 })).get({ timeout: 2000 })).to.equal(42);
    expect(await (await app.sendTask('greet', ['hi'])).get({ timeout: 2000 })).to.equal('hi, world');
    const err = await (await app.sendTask('add', [1], { z: 1 })).get({ timeout: 2000 }).catch((e: unknown) => e);
    expect(err).to.be.instanceOf(TaskError);
    expect(err).to.deep.include({ excType: 'TypeError', excModule: 'builtins', excMessage: "add() got an unexpected keyword argument 'z'" });
  });

  it('stores failures with the error class name', async () => {
    const err = await (await app.sendTask('fail', ['boom'])).get({ timeout: 2000 }).catch((e: unknown) => e);
    expect(err).to.deep.include({ excType: 'RangeError', excMessage: 'boom' });
  });

  it('retries a bound task with the same id until it succeeds', async () => {
    const r = await app.sendTask('flaky');
    expect(await r.get({ timeout: 3000 })).to.equal(2);
  });

  it('never runs more than -c tasks at once, and does run that many', async () => {
    peak = 0;
    const results = await Promise.all(Array.from({ length: 10 }, () => app.sendTask('sleepy', [30])));
    await Promise.all(results.map((r) => r.get({ timeout: 5000 })));
    expect(peak).to.equal(3);
  });

  it('runs a countdown task no earlier than asked, without blocking others', async () => {
    const sent = Date.now();
    const later = await app.sendTask('sleepy', [0], {}, { countdown: 0.4 });
    const now = await app.sendTask('add', [1, 1]);
    expect(await now.get({ timeout: 1000 })).to.equal(2);
    expect(Date.now() - sent).to.be.below(350);
    await later.get({ timeout: 3000 });
    expect(Date.now() - sent).to.be.at.least(400);
  });

  it('does not run an expired task and stores REVOKED', async () => {
    const r = await app.sendTask('add', [1, 1], {}, { expires: new Date(Date.now() - 1000) });
    const err = await r.get({ timeout: 2000 }).catch((e: unknown) => e);
    expect(err).to.deep.include({ excType: 'TaskRevokedError', state: 'REVOKED', excMessage: 'expired' });
  });

  it('rejects garbage and unregistered tasks, and keeps working', async () => {
    const broker = app.broker as MemoryBroker;
    const route = { exchange: '', routingKey: 'celery' };
    await broker.publish({ body: Buffer.from('{not json'), contentType: 'application/json', contentEncoding: 'utf-8', headers: { task: 'add', id: 'bad-1' }, deliveryMode: 2 }, route);
    await broker.publish({ body: Buffer.from('x'), contentType: 'application/x-python-serialize', contentEncoding: 'binary', headers: { task: 'add', id: 'bad-2' }, deliveryMode: 2 }, route);
    const unknown = await app.sendTask('nobody.knows', [1]);
    const err = await unknown.get({ timeout: 2000 }).catch((e: unknown) => e);
    expect(err).to.deep.include({ excType: 'NotRegistered', excModule: 'celery.exceptions' });
    expect(await (await app.sendTask('add', [20, 22])).get({ timeout: 2000 })).to.equal(42);
    expect(logs.some((l) => /Rejected a message \(invalid task message: invalid JSON/.test(l))).to.equal(true);
    expect(logs.some((l) => /Refusing to deserialize untrusted content of type application\/x-python-serialize/.test(l))).to.equal(true);
    expect(broker.size('celery')).to.equal(0);
  });
});

describe('time limits and autoretry (memory broker)', () => {
  let app: Celery;
  let worker: Worker;
  class Flaky extends Error {}
  let attempts = 0;

  before(async () => {
    app = new Celery('limits', { broker_url: 'memory://' });
    app.task({ name: 'hang', timeLimit: 0.2 }, () => new Promise(() => undefined));
    app.task({ name: 'quick' }, () => 'ran');
    app.task({ name: 'polite', bind: true, softTimeLimit: 0.1 }, (self) =>
      new Promise((_, reject) => self.signal.addEventListener('abort', () => reject(self.signal.reason))));
    app.task({ name: 'auto', autoretryFor: [Flaky], retryBackoff: 0.05, maxRetries: 3 }, () => {
      attempts++;
      if (attempts < 3) throw new Flaky('try again');
      return attempts;
    });
    app.task({ name: 'auto-exhausted', autoretryFor: [Flaky], defaultRetryDelay: 0.01, maxRetries: 1 }, () => {
      throw new Flaky('never works');
    });
    worker = new Worker(app, { hostname: 'limits@test', concurrency: 2 });
    await worker.start();
  });
  after(() => worker.stop());

  it('fails a task past its hard limit with TimeLimitExceeded and frees the slot', async () => {
    // Two hung tasks fill both slots (-c 2); the third task runs only if the limit frees them.
    const hung = await Promise.all([app.sendTask('hang'), app.sendTask('hang')]);
    const quick = await app.sendTask('quick');
    for (const r of hung) {
      const err = await r.get({ timeout: 3000 }).catch((e: unknown) => e);
      expect(err).to.deep.include({ excType: 'TimeLimitExceeded', excModule: 'billiard.exceptions' });
    }
    expect(await quick.get({ timeout: 3000 })).to.equal('ran');
  });

  it('aborts self.signal at the soft limit', async () => {
    const err = await (await app.sendTask('polite')).get({ timeout: 3000 }).catch((e: unknown) => e);
    expect(err).to.deep.include({ excType: 'SoftTimeLimitExceeded' });
  });

  it('retries autoretryFor errors with the backoff, then fails with the original error', async () => {
    expect(await (await app.sendTask('auto')).get({ timeout: 3000 })).to.equal(3);
    const err = await (await app.sendTask('auto-exhausted')).get({ timeout: 3000 }).catch((e: unknown) => e);
    expect(err).to.deep.include({ excType: 'Flaky', excMessage: 'never works' });
  });
});

describe('workflows: link, link_error and chains (memory broker)', () => {
  const seen: string[] = [];
  const app = new Celery('canvas', { broker_url: 'memory://' });
  const addTask = app.task({ name: 'add' }, (x: number, y: number) => x + y);
  const mulTask = app.task({ name: 'mul' }, (x: number, y: number) => x * y);
  app.task({ name: 'boom' }, () => { throw new Error('boom'); });
  const onError = app.task({ name: 'on_error' }, (failedId: string) => { seen.push(failedId); return failedId; });
  let worker: Worker;

  before(async () => {
    worker = new Worker(app, { hostname: 'canvas@test', concurrency: 4 });
    await worker.start();
  });
  after(() => worker.stop());

  const add = () => addTask;
  const mul = () => mulTask;

  it('sends link callbacks with the result prepended, with parent and root set', async () => {
    const callbackId = 'cb-1';
    const r = await app.sendTask('add', [2, 3], {}, { link: mul().s(10).set({ taskId: callbackId }) });
    expect(await r.get({ timeout: 2000 })).to.equal(5);
    expect(await app.asyncResult(callbackId).get({ timeout: 2000 })).to.equal(50);
  });

  it('immutable callbacks keep their own args', async () => {
    const r = await app.sendTask('add', [1, 1], {}, { link: add().si(100, 1).set({ taskId: 'cb-2' }) });
    await r.get({ timeout: 2000 });
    expect(await app.asyncResult('cb-2').get({ timeout: 2000 })).to.equal(101);
  });

  it('continues a chain step by step (stored in reverse, as Celery does)', async () => {
    // add(2, 3) | mul(10) | add(1): the message carries the remaining steps reversed.
    const steps = [add().s(1).set({ taskId: 'step-3' }), mul().s(10).set({ taskId: 'step-2' })];
    await app.sendTask('add', [2, 3], {}, { chain: steps });
    expect(await app.asyncResult('step-3').get({ timeout: 2000 })).to.equal(51);
  });

  it('sends link_error errbacks with the failed task id', async () => {
    const r = await app.sendTask('boom', [], {}, { linkError: onError.s() });
    await r.get({ timeout: 2000 }).catch(() => undefined);
    const deadline = Date.now() + 2000;
    while (!seen.includes(r.id) && Date.now() < deadline) await new Promise((res) => setTimeout(res, 10));
    expect(seen).to.include(r.id);
  });
});

describe('rpc:// results (memory broker)', () => {
  it('sends each state to the caller and get() receives it', async () => {
    const app = new Celery('rpc-mem', { broker_url: 'memory://', result_backend: 'rpc://', task_track_started: true });
    app.task({ name: 'add' }, (x: number, y: number) => x + y);
    app.task({ name: 'fail' }, () => { throw new TypeError('nope'); });
    const worker = new Worker(app, { hostname: 'rpc@test', concurrency: 2 });
    await worker.start();
    try {
      const r = await app.sendTask<number>('add', [2, 3]);
      expect(await r.get({ timeout: 2000 })).to.equal(5);
      expect(await r.state()).to.equal('SUCCESS');
      const err = await (await app.sendTask('fail')).get({ timeout: 2000 }).catch((e: unknown) => e);
      expect(err).to.deep.include({ excType: 'TypeError', excMessage: 'nope' });
    } finally {
      await worker.stop();
      await app.close();
    }
  });
});
