/**
 * Python Celery client -> `ts-celery worker`: Python's delay()/apply_async()
 * and AsyncResult.get() against TypeScript tasks (issue: the worker).
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { expect } from 'chai';
import { Redis } from 'ioredis';
import { PY_DIR, PYTHON, runPythonClient, type PythonKind } from '../helpers/python.js';
import { REDIS_URL, deleteQueues, uniqueName } from '../helpers/services.js';
import { startTsWorker, type TsWorker } from '../helpers/ts-worker.js';

const run = promisify(execFile);

/** `pool`: the worker's -P; the threads pool runs every task of the suite in worker threads (issue #13). */
function suite(python: PythonKind, full: boolean, pool: 'async' | 'threads' = 'async'): void {
  describe(`Python client (${python === 'pypi' ? 'Celery 5.7' : 'Celery 5.2.6'}) -> ts-celery worker${pool === 'threads' ? ' -P threads' : ''}`, function () {
    this.timeout(60_000);
    const queue = uniqueName(`pyclient-${python}`);
    let worker: TsWorker;
    const send = (name: string, ...flags: string[]) =>
      runPythonClient<unknown>(['send', name, '--queue', queue, '--get', '--timeout', '20', ...flags], { python, env: { PYTASKS_QUEUE: queue } });

    before(async () => {
      worker = await startTsWorker(
        pool === 'threads' ? { queues: [queue], concurrency: 3, extraArgs: ['-P', 'threads'], timeoutMs: 60_000 } : { queues: [queue], concurrency: 10 },
      );
    });
    after(async () => {
      expect(await worker.stop()).to.equal(0);
      await deleteQueues(queue);
    });

    it('runs a TypeScript task with positional args and Python get() returns the value', async () => {
      const r = await send('ts.add', '--args', '[2, 3]');
      expect(r).to.deep.include({ state: 'SUCCESS', result: 5 });
    });

    it('maps Python kwargs onto the TypeScript parameters by name', async () => {
      expect(await send('ts.add', '--kwargs', '{"x": 2, "y": 40}')).to.deep.include({ state: 'SUCCESS', result: 42 });
      expect(await send('ts.add', '--args', '[1]', '--kwargs', '{"y": 2}')).to.deep.include({ result: 3 });
    });

    it("a JS TypeError raises Python's builtin TypeError; other errors keep their class name", async () => {
      expect(await send('ts.fail_type', '--args', '["bad input"]')).to.deep.include({
        state: 'FAILURE', exc_type: 'TypeError', exc_module: 'builtins', exc_message: 'bad input',
      });
      expect(await send('ts.fail_custom', '--args', '["gateway down"]')).to.deep.include({
        state: 'FAILURE', exc_type: 'SmsProviderError', exc_message: 'gateway down',
      });
    });

    it('a bound task retrying twice succeeds, and Python sees request.retries == 2', async () => {
      expect(await send('ts.retry_twice')).to.deep.include({ state: 'SUCCESS', result: 2 });
    });

    if (!full) return;

    it('an unknown or missing argument fails with a TypeError Python can read', async () => {
      expect(await send('ts.add', '--args', '[1]', '--kwargs', '{"z": 1}')).to.deep.include({
        exc_type: 'TypeError', exc_message: "ts.add() got an unexpected keyword argument 'z'",
      });
      expect(await send('ts.add', '--args', '[1]')).to.deep.include({
        exc_type: 'TypeError', exc_message: "ts.add() missing 1 required positional argument: 'y'",
      });
    });

    it('throw self.retry(), await self.retry() and return self.retry() all retry, as raise self.retry() does', async () => {
      const results = await Promise.all(['ts.retry_throw', 'ts.retry_await', 'ts.retry_return_sync', 'ts.retry_twice'].map((name) => send(name)));
      for (const r of results) expect(r).to.deep.include({ state: 'SUCCESS', result: 2, exc_type: null });
      for (const r of results) {
        // Two runs each ended as a retry, logged as Celery does; none stored anything but RETRY and SUCCESS.
        expect(worker.output().match(new RegExp(`\\[${r.id}\\] retry: Retry in 0\\.[35]s`, 'g'))).to.have.length(2);
      }
      expect(worker.output()).not.to.match(/Unhandled promise rejection/);
    });

    it('throw self.retry({ exc }) past maxRetries fails with exc', async () => {
      expect(await send('ts.retry_throw_exhausted')).to.deep.include({ state: 'FAILURE', exc_type: 'SmsProviderError', exc_message: 'gave up' });
      expect(worker.output()).not.to.match(/Unhandled promise rejection/);
    });

    it('acks_late: a thrown retry that RabbitMQ does not confirm requeues the original instead of losing it', async () => {
      const r = await send('ts.retry_unroutable');
      expect(r).to.deep.include({ state: 'SUCCESS', result: 'redelivered' });
      expect(worker.output()).to.match(new RegExp(`Could not publish the retry of ts\\.retry_unroutable\\[${r.id}\\]: .*NO_ROUTE`));
    });

    it('a thrown string, plain object or promise fails with a readable message', async () => {
      expect(await send('ts.throw_value', '--args', '["string"]')).to.deep.include({ state: 'FAILURE', exc_type: 'Exception', exc_message: 'plain text failure' });
      // Plain data stays data, as Python's raise Exception({...}) would store it.
      expect(await send('ts.throw_value', '--args', '["object"]')).to.deep.include({
        state: 'FAILURE', exc_type: 'Exception', exc_message: "{'code': 42, 'reason': 'quota'}", exc_args: [{ code: 42, reason: 'quota' }],
      });
      expect(await send('ts.throw_value', '--args', '["map"]')).to.deep.include({
        state: 'FAILURE', exc_type: 'Exception', exc_message: "non-Error value thrown: Map(1) { 'code' => 42 }",
      });
      const promise = await send('ts.throw_value', '--args', '["promise"]');
      expect(promise.exc_message).to.match(/^a Promise was thrown instead of an Error/);
    });

    it('awaits a returned thenable that is not a Promise', async () => {
      expect(await send('ts.thenable', '--args', '[21]')).to.deep.include({ state: 'SUCCESS', result: 42 });
    });

    it("params ['*args', '**kwargs'] takes any arguments, as Python's def f(*args, **kwargs)", async () => {
      expect(await send('ts.var_args', '--args', '[1, "two"]', '--kwargs', '{"x": 1, "y": [2]}')).to.deep.include({
        state: 'SUCCESS', result: { args: [1, 'two'], kwargs: { x: 1, y: [2] } },
      });
      expect(await send('ts.var_args')).to.deep.include({ state: 'SUCCESS', result: { args: [], kwargs: {} } });
    });

    it("named parameters before *args and **kwargs bind as in Python's def f(self, a, *args, **kwargs)", async () => {
      expect(await send('ts.mixed_var_args', '--args', '[1, 2, 3]', '--kwargs', '{"k": "v"}')).to.deep.include({
        state: 'SUCCESS', result: { a: 1, args: [2, 3], kwargs: { k: 'v' }, task: 'ts.mixed_var_args' },
      });
      expect(await send('ts.mixed_var_args', '--kwargs', '{"a": 5, "other": 1}')).to.deep.include({
        state: 'SUCCESS', result: { a: 5, args: [], kwargs: { other: 1 }, task: 'ts.mixed_var_args' },
      });
      expect(await send('ts.mixed_var_args', '--kwargs', '{"other": 1}')).to.deep.include({
        state: 'FAILURE', exc_type: 'TypeError', exc_message: "ts.mixed_var_args() missing 1 required positional argument: 'a'",
      });
      expect(await send('ts.mixed_var_args', '--args', '[1]', '--kwargs', '{"a": 2}')).to.deep.include({
        state: 'FAILURE', exc_type: 'TypeError', exc_message: "ts.mixed_var_args() got multiple values for argument 'a'",
      });
    });

    it('retries exhausted: FAILURE with the original error', async () => {
      expect(await send('ts.retry_forever')).to.deep.include({ state: 'FAILURE', exc_type: 'SmsProviderError', exc_message: 'still failing' });
    });

    it('honours a countdown', async () => {
      const sent = Date.now() / 1000;
      const r = await send('ts.now', '--countdown', '2');
      expect(r.state).to.equal('SUCCESS');
      expect(r.result as number).to.be.at.least(sent + 2);
    });

    it('does not run an expired task and stores REVOKED', async () => {
      // Due after it expires: delivered at once (TTL 1 s), held for its eta, found expired.
      const r = await send('ts.now', '--countdown', '2', '--expires', '1');
      expect(r).to.deep.include({ state: 'REVOKED', exc_type: 'TaskRevokedError' });
    });

    it('ignore_result: the task runs and nothing is stored', async () => {
      const r = await runPythonClient(['send', 'ts.ignored', '--queue', queue], { python });
      await waitFor(() => new RegExp(`ts\\.ignored\\[${r.id}\\] succeeded`).test(worker.output()), 10_000);
      const redis = new Redis(REDIS_URL);
      try {
        expect(await redis.exists(`celery-task-meta-${r.id}`)).to.equal(0);
      } finally {
        redis.disconnect();
      }
    });

    it('gives bound tasks the request Python would see', async () => {
      const r = await send('ts.request_info');
      const info = r.result as Record<string, unknown>;
      expect(info).to.deep.include({ id: r.id, retries: 0, root_id: r.id, parent_id: null });
      expect(info.delivery_info).to.deep.include({ exchange: '', routingKey: queue, queue, redelivered: false });
      expect(info.hostname as string).to.match(/^ts-.*@/);
    });

    it('continues a chain built in Python, step by step, on the TypeScript worker', async () => {
      const script = [
        'import json, pytasks',
        'from celery import chain',
        `sig = lambda *a: pytasks.app.signature('ts.add', args=a, queue='${queue}')`,
        'r = chain(sig(2, 3), sig(10), sig(100)).apply_async()',
        'print(json.dumps([r.get(timeout=20), r.parent.get(timeout=20)]))',
      ].join('\n');
      const { stdout } = await run(PYTHON[python], ['-c', script], { cwd: PY_DIR });
      expect(JSON.parse(stdout.trim().split('\n').at(-1)!)).to.deep.equal([115, 15]);
    });

    it("survives py-amqp's int64 header tag (amqplib alone would drop the connection)", async () => {
      const script = [
        'import json, sys, pytasks',
        `r = pytasks.app.send_task('ts.headers', queue='${queue}', headers={'big': 2**40, 'neg': -5, 'after': 'kept'})`,
        'print(json.dumps(r.get(timeout=20)))',
      ].join('\n');
      const { stdout } = await run(PYTHON[python], ['-c', script], { cwd: PY_DIR });
      expect(JSON.parse(stdout.trim().split('\n').at(-1)!)).to.deep.include({ big: 2 ** 40, neg: -5, after: 'kept' });
      expect(worker.output()).not.to.match(/Lost the connection|Unexpected type tag/);
    });
  });
}

async function waitFor(check: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 50));
  }
}

suite('pypi', true);
suite('debian', false);
suite('pypi', true, 'threads');

describe('Python client (Celery 5.7) -> ts-celery worker with timezone and global_keyprefix (issue #9)', function () {
  this.timeout(60_000);
  const queue = uniqueName('pyclient-tz');
  const env = { PYTASKS_QUEUE: queue, PYTASKS_RESULT_KEYPREFIX: 'tsx' };
  let worker: TsWorker;
  const send = (name: string, ...flags: string[]) =>
    runPythonClient<unknown>(['send', name, '--queue', queue, '--get', '--timeout', '20', ...flags], { python: 'pypi', env });

  before(async () => {
    worker = await startTsWorker({ queues: [queue], concurrency: 4, env: { TSAPP_TIMEZONE: 'Asia/Shanghai', TSAPP_RESULT_KEYPREFIX: 'tsx' } });
  });
  after(async () => {
    expect(await worker.stop()).to.equal(0);
    await deleteQueues(queue);
  });

  it('stores results under the global_keyprefix, with date_done in the app timezone, and Python reads them', async () => {
    const r = await send('ts.add', '--args', '[2, 3]');
    expect(r).to.deep.include({ state: 'SUCCESS', result: 5 });
    const redis = new Redis(REDIS_URL);
    try {
      expect(await redis.exists(`celery-task-meta-${r.id}`)).to.equal(0);
      const stored = JSON.parse((await redis.get(`tsx_celery-task-meta-${r.id}`))!) as { date_done: string };
      // As Celery 5.7 stores it (test/fixtures/celery-5.7/redis_date_done_timezone.json): app.now() in the zone.
      expect(stored.date_done).to.match(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?\+08:00$/);
      expect(Math.abs(Date.parse(stored.date_done) - Date.now())).to.be.below(60_000);
    } finally {
      redis.disconnect();
    }
  });

  it('reads a naive eta as UTC, as a Celery 5.7 worker does, whatever the app timezone', async () => {
    // Two seconds from now in UTC, without an offset. Read as Shanghai time it would be 8 h away.
    const eta = new Date(Date.now() + 2000).toISOString().replace('Z', '');
    const sent = Date.now() / 1000;
    const r = await send('ts.now', '--eta', eta);
    expect(r.state).to.equal('SUCCESS');
    expect(r.result as number).to.be.at.least(Date.parse(`${eta}Z`) / 1000 - 0.01);
    expect(r.result as number).to.be.below(sent + 15);
  });
});
