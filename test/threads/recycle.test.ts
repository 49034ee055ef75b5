/**
 * Recycling pool threads as Celery recycles its children (worker_max_tasks_per_child,
 * worker_max_memory_per_child), and a thread that runs out of memory under
 * worker_thread_resource_limits: it dies alone, its task fails with WorkerLostError.
 */
import { expect } from 'chai';
import { ImproperlyConfigured, TaskError, Worker } from '../../src/index.js';
import { setLogLevel, setLogSink } from '../../src/support/log.js';
import { app } from './app.js';
import { APP_MODULE, poolSettled } from './support.js';

describe('-P threads: recycling and resource limits', function () {
  this.timeout(60_000);
  const logs: string[] = [];
  let restoreSink: (line: string) => void;
  let worker: Worker | null = null;
  const saved = { ...app.conf };

  const run = async <T = unknown>(name: string, args: unknown[] = []): Promise<T> => (await app.sendTask<T>(name, args)).get({ timeout: 20_000 });

  before(() => {
    restoreSink = setLogSink((line) => logs.push(line));
    setLogLevel('info');
  });
  afterEach(async () => {
    await worker?.stop();
    worker = null;
    Object.assign(app.conf, saved);
  });
  after(async () => {
    await app.close();
    setLogSink(restoreSink);
    setLogLevel('warning');
  });

  it('worker_max_tasks_per_child: a thread is replaced after that many tasks', async () => {
    app.conf.worker_max_tasks_per_child = 2;
    worker = new Worker(app, { hostname: 'recycle@test', concurrency: 1, pool: 'threads', appModule: APP_MODULE });
    await worker.start();
    const threads: number[] = [];
    for (let i = 0; i < 5; i++) threads.push((await run<{ threadId: number }>('where')).threadId);
    expect(threads[0]).to.equal(threads[1]);
    expect(threads[2]).to.equal(threads[3]);
    expect(new Set([threads[0], threads[2], threads[4]]).size).to.equal(3);
    expect(logs.filter((l) => /Replacing ThreadPoolWorker-\d+: it ran 2 task\(s\) \(worker_max_tasks_per_child\)/.test(l))).to.have.length(2);
  });

  it('worker_max_memory_per_child: a thread left holding more is replaced after its task; past resourceLimits it dies alone', async () => {
    app.conf.worker_max_memory_per_child = 150_000; // KiB
    app.conf.worker_thread_resource_limits = { maxOldGenerationSizeMb: 256 };
    worker = new Worker(app, { hostname: 'memory@test', concurrency: 1, pool: 'threads', appModule: APP_MODULE });
    await worker.start();
    const first = await run<number>('leak', [1]);
    expect(await run<number>('leak', [1])).to.equal(first); // small: the same thread carries on
    expect(await run<number>('leak', [160 * 1024])).to.equal(first); // the task completes...
    expect(await run<number>('leak', [1])).not.to.equal(first); // ...and its thread was replaced after it
    expect(logs.some((l) => /Replacing ThreadPoolWorker-\d+: it holds \d+ KiB, more than worker_max_memory_per_child \(150000 KiB\)/.test(l))).to.equal(true);

    await poolSettled(worker, 1);
    const err = await run('hog').catch((e: unknown) => e);
    expect(err).to.be.instanceOf(TaskError);
    expect(err).to.deep.include({ excType: 'WorkerLostError' });
    expect((err as TaskError).excMessage).to.match(/^Worker exited prematurely: out of memory \(.*\)\.$/);
    expect(await run('add', [1, 2])).to.equal(3); // the replacement runs the next task
  });

  it('the threads pool needs the module that exports the app', () => {
    expect(() => new Worker(app, { hostname: 'x@test', pool: 'threads' })).to.throw(ImproperlyConfigured, /appModule/);
  });
});
