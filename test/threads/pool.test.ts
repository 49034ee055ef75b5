/**
 * `-P threads` in one process, on the embedded broker: tasks run in worker threads that
 * loaded the app themselves; values, errors, retries, limits and crashes come back to the
 * main thread, which stores and acks as it does for the async pool.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { expect } from 'chai';
import { TaskError, TimeLimitExceeded, Worker } from '../../src/index.js';
import { setLogLevel, setLogSink } from '../../src/support/log.js';
import { app } from './app.js';
import { APP_MODULE, osThreads, poolSettled, waitFor } from './support.js';

describe('-P threads (embedded broker)', function () {
  this.timeout(60_000);
  let worker: Worker;
  const logs: string[] = [];
  let restoreSink: (line: string) => void;

  const run = async <T = unknown>(name: string, args: unknown[] = [], kwargs: Record<string, unknown> = {}): Promise<T> =>
    (await app.sendTask<T>(name, args, kwargs)).get({ timeout: 10_000 });
  const failure = async (name: string, args: unknown[] = []): Promise<TaskError> => {
    const err = await run(name, args).catch((e: unknown) => e);
    expect(err).to.be.instanceOf(TaskError);
    return err as TaskError;
  };

  before(async () => {
    restoreSink = setLogSink((line) => logs.push(line));
    setLogLevel('info');
    worker = new Worker(app, { hostname: 'threads@test', concurrency: 2, pool: 'threads', appModule: APP_MODULE });
    await worker.start();
  });
  after(async () => {
    await worker.stop();
    await app.close();
    setLogSink(restoreSink);
    setLogLevel('warning');
  });

  it('runs each task in a worker thread and get() returns its value', async () => {
    expect(await run('add', [2, 3])).to.equal(5);
    expect(await run('add', [], { x: 2, y: 40 })).to.equal(42);
    expect(await run('where')).to.deep.include({ isMainThread: false });
    expect(worker.pool.info()).to.deep.include({ implementation: 'threads', 'max-concurrency': 2 });
  });

  it('runs CPU-bound tasks in parallel while the main event loop stays free', async () => {
    const delay = monitorEventLoopDelay({ resolution: 10 });
    delay.enable();
    const [a, b] = await Promise.all([run<number[]>('span', [400]), run<number[]>('span', [400])]);
    delay.disable();
    expect(a![2]).not.to.equal(b![2]); // two threads
    expect(a![0]! < b![1]! && b![0]! < a![1]!, 'the two busy loops overlapped in time').to.equal(true);
    // Two 400 ms busy loops ran, yet the main thread never stalled for anything like that long.
    expect(delay.max / 1e6).to.be.below(200);
  });

  it("stores a thread's error with its class name and the thread's own traceback", async () => {
    const err = await failure('fail', ['bad input']);
    expect(err).to.deep.include({ excType: 'RangeError', excModule: 'ts_celery.errors', excMessage: 'bad input' });
    expect(err.remoteTraceback).to.match(/^RangeError: bad input\n {4}at .*test\/threads\/app\.ts/);
    const text = await failure('throwsText');
    expect(text).to.deep.include({ excType: 'Exception', excModule: 'builtins', excMessage: 'plain text', remoteTraceback: null });
  });

  it('self.retry() in a thread is published by the main thread: RETRY with exc, then SUCCESS', async () => {
    expect(await run('flaky')).to.equal('ok after 2 retries');
    const retries = logs.filter((l) => / Task flaky\[.*\] retry: Retry in 0\.01s: Flaky\('attempt [01]'\)$/.test(l));
    expect(retries).to.have.length(2);
    expect(await run('awaitRetry')).to.equal(1);
  });

  it('autoretryFor matches the classes of the thread that threw, and gives up after maxRetries', async () => {
    const err = await failure('autoretry');
    expect(err).to.deep.include({ excType: 'Flaky', excMessage: 'try 2' });
  });

  it('the soft time limit aborts self.signal inside the thread', async () => {
    expect(await run('soft')).to.equal('SoftTimeLimitExceeded');
  });

  it('a task sent from a thread gets the running task as parent, through the main thread', async () => {
    const out = await run<{ me: string; child: string; value: number }>('parent');
    expect(out.value).to.equal(3);
    expect(await app.backend.get(out.child)).to.deep.include({ status: 'SUCCESS', parent_id: out.me });
    // ...and it is stored among the parent's children, as Celery stores request.children.
    const parent = await app.backend.get(out.me);
    expect(JSON.stringify(parent?.children)).to.include(out.child);
  });

  it('self.replace() in a thread: the replacement runs and its result is the task\'s', async () => {
    expect(await run('replaced', [1])).to.equal(101);
  });

  it('return values are what JSON makes of them, as the async pool stores them', async () => {
    expect(await run('dated')).to.deep.equal({ when: '1970-01-01T00:00:00.000Z' });
  });

  it('a thenable is awaited in the thread; a broken thenable or an unsendable value fails the task, not the thread', async () => {
    const before = worker.pool.info().processes;
    expect(await run('thenable', [21])).to.equal(42);
    expect(await failure('badThenable')).to.deep.include({ excType: 'TypeError', excMessage: 'then() broke' });
    const encode = await failure('unclonable');
    expect(encode.excType).to.equal('EncodeError');
    expect(encode.excMessage).to.match(/^Cannot send the return value of unclonable to the worker's main thread/);
    expect(worker.pool.info().processes, 'no thread was replaced').to.deep.equal(before);
    expect(await run('add', [1, 1])).to.equal(2);
  });

  it("task logs from a thread reach the worker's log", async () => {
    await run('logs', ['hello from a thread']);
    expect(logs.some((l) => / WARNING\/tasks\.threads\] hello from a thread$/.test(l))).to.equal(true);
  });

  it('a promise rejection nobody awaited is logged, and the thread lives on', async () => {
    const thread = await run<number>('stray');
    // Logged when the thread's rejection event reaches the main thread: after get() returned, maybe well after under load.
    await waitFor(() => logs.some((l) => l.includes('nobody awaited me')), 10_000, 'the unhandled rejection logged').catch(() => {});
    expect(logs.some((l) => /ERROR\/ThreadPoolWorker-\d+\] Unhandled promise rejection .*: Error: nobody awaited me/.test(l))).to.equal(true);
    const again = new Set<number>();
    for (let i = 0; i < 4; i++) again.add(await run<number>('stray'));
    expect(again.has(thread)).to.equal(true);
  });

  it('an endless loop past timeLimit fails with TimeLimitExceeded within 2 s; its thread is replaced, none leaks', async () => {
    await poolSettled(worker, 2);
    const threadsBefore = osThreads();
    const started = Date.now();
    const err = await failure('forever');
    expect(Date.now() - started).to.be.below(2000);
    expect(err).to.deep.include({ excType: 'TimeLimitExceeded', excModule: 'billiard.exceptions' });
    expect(err.excArgs).to.deep.equal([1]); // as billiard stores TimeLimitExceeded(1)
    expect(logs.some((l) => /ERROR\/MainProcess\] Hard time limit \(1s\) exceeded for forever\[/.test(l))).to.equal(true);
    expect(await run('add', [1, 1])).to.equal(2); // the next task runs
    await poolSettled(worker, 2);
    expect(osThreads()).to.equal(threadsBefore);
  });

  it('terminate() stops one running task now: its thread is killed and replaced', async () => {
    await poolSettled(worker, 2);
    const result = await app.sendTask('span', [60_000]);
    // Running in a thread (its state busy), not still on its way there: else terminate() has nothing to kill.
    const pool = worker.pool as unknown as { threads: Set<{ state: string }> };
    await waitFor(() => [...pool.threads].some((t) => t.state === 'busy'), 10_000, 'the task running in a thread');
    expect(worker.pool.terminate(result.id, new TimeLimitExceeded('terminated by test'))).to.equal(true);
    const err = await result.get({ timeout: 5000 }).catch((e: unknown) => e);
    expect(err).to.deep.include({ excType: 'TimeLimitExceeded' });
    expect(worker.pool.terminate('no-such-task', new Error('x'))).to.equal(false);
    await poolSettled(worker, 2);
  });

  it('a thread that crashes (an uncaught error outside the task) is replaced; its task fails with WorkerLostError', async () => {
    const err = await failure('crash');
    expect(err).to.deep.include({ excType: 'WorkerLostError', excModule: 'billiard.exceptions' });
    expect(err.excMessage).to.equal('Worker exited prematurely: uncaught Error: crashed outside the task.');
    expect(logs.some((l) => /Thread 'ThreadPoolWorker-\d+' \(thread id \d+\) exited with 'uncaught Error: crashed outside the task'/.test(l))).to.equal(true);
    const exit = await failure('exit');
    expect(exit.excMessage).to.equal('Worker exited prematurely: exit code 3.');
    expect(await run('add', [2, 2])).to.equal(4);
  });

  it('a lost task is handled as Celery handles WorkerLostError: requeued with acks_late + reject_on_worker_lost, else FAILURE', async () => {
    // acks_late + task_reject_on_worker_lost: back to the queue, runs again; no FAILURE stored in between.
    const requeued = await app.sendTask('dieLateRequeue');
    expect(await requeued.get({ timeout: 10_000 })).to.equal('second run');
    expect(logs.some((l) => l.includes(`dieLateRequeue[${requeued.id}] Worker exited prematurely: exit code 1.: requeued (task_reject_on_worker_lost)`))).to.equal(true);
    expect(logs.some((l) => l.includes(`dieLateRequeue[${requeued.id}] raised unexpected`))).to.equal(false);
    // Early ack (acked as it started) and plain acks_late (acked as failed): FAILURE WorkerLostError, never run again.
    for (const name of ['dieEarly', 'dieLate']) {
      const result = await app.sendTask(name);
      const err = await result.get({ timeout: 10_000 }).catch((e: unknown) => e);
      expect(err).to.deep.include({ excType: 'WorkerLostError', excMessage: 'Worker exited prematurely: exit code 1.' });
      await new Promise((r) => setTimeout(r, 300));
      expect(await app.backend.get(result.id)).to.deep.include({ status: 'FAILURE' });
      expect(logs.filter((l) => l.includes(`${name}[${result.id}] received`))).to.have.length(1);
    }
  });

  it('resize() grows and shrinks the number of threads (pool_grow / pool_shrink)', async () => {
    await poolSettled(worker, 2);
    worker.pool.resize(3);
    expect(worker.concurrency).to.equal(3);
    await poolSettled(worker, 3);
    const ids = new Set(await Promise.all([1, 2, 3].map(() => run<number[]>('span', [300]).then((s) => s[2]))));
    expect(ids.size).to.equal(3);
    worker.pool.resize(2);
    await poolSettled(worker, 2);
    expect(worker.pool.info().processes).to.have.length(2);
  });
});
