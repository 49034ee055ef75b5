/**
 * `ts-celery worker -P threads` as users run it, on RabbitMQ and Redis: CPU-bound tasks in
 * parallel while the worker keeps heartbeating, serving and answering remote control; a task
 * revoked with terminate, and a runaway one past its hard time limit, really stopped; a
 * thread dying under a task handled as Celery handles a lost pool child; threads recycled
 * after --max-tasks-per-child.
 */
import { expect } from 'chai';
import { Celery, TaskError } from '../../src/index.js';
import { AMQP_URL, REDIS_URL, deleteQueues, listQueue, RABBIT_VHOST, uniqueName } from '../helpers/services.js';
import { startTsWorker, type TsWorker } from '../helpers/ts-worker.js';
import { osThreads, waitFor } from './support.js';

const ENV = { CELERY_BROKER_URL: AMQP_URL, CELERY_RESULT_BACKEND: REDIS_URL, THREADS_HEARTBEAT: '1' };

describe('ts-celery worker -P threads (RabbitMQ, Redis)', function () {
  this.timeout(90_000);
  const queue = uniqueName('threads');
  const asyncQueue = uniqueName('threads-async');
  let worker: TsWorker;
  let producer: Celery;

  /** Waits until the worker has `expected` OS threads again, and checks it still has once any replacement has surely loaded. */
  const sameThreadCount = async (expected: number): Promise<void> => {
    await waitFor(() => osThreads(worker.pid) === expected, 20_000, `${expected} OS threads`);
    await run('add', [1, 1]);
    await new Promise((r) => setTimeout(r, 2000));
    expect(osThreads(worker.pid)).to.equal(expected);
  };
  /** The worker's node name, from its banner. */
  const nodeName = (): string => / -------------- (\S+@\S+) v/.exec(worker.output())![1]!;
  const send = (name: string, args: unknown[] = [], q = queue) => producer.sendTask(name, args, {}, { queue: q });
  const run = async <T = unknown>(name: string, args: unknown[] = []): Promise<T> => (await send(name, args)).get({ timeout: 20_000 }) as Promise<T>;

  before(async () => {
    producer = new Celery('threads-producer', { broker_url: AMQP_URL, result_backend: REDIS_URL });
    worker = await startTsWorker({ app: 'test/threads/app.ts', queues: [queue], concurrency: 3, env: ENV, extraArgs: ['-P', 'threads', '--max-tasks-per-child', '5'], timeoutMs: 60_000 });
  });
  after(async () => {
    expect(await worker.stop()).to.equal(0);
    await producer.close();
    await deleteQueues(queue, asyncQueue);
  });

  it('prints the pool in its banner', () => {
    expect(worker.output()).to.match(/\.> concurrency: 3 \(threads\)/);
  });

  it('runs CPU-bound tasks in parallel threads while the worker keeps heartbeating, serving other tasks and answering ping', async () => {
    const spins = [await send('span', [4000]), await send('span', [4000])];
    const napped = await run<number>('nap', [50]);
    // Remote control is answered by the main thread too: a ping while both threads compute.
    const replies = await producer.control.ping({ destination: [nodeName()], timeout: 1 });
    const pongAt = Date.now();
    expect(replies).to.deep.equal([{ [nodeName()]: { ok: 'pong' } }]);
    const [a, b] = (await Promise.all(spins.map((r) => r.get({ timeout: 20_000 })))) as number[][];
    expect(a![2]).not.to.equal(b![2]);
    expect(a![0]! < b![1]! && b![0]! < a![1]!, 'the two 4 s busy loops overlapped').to.equal(true);
    // Another task was received, run and stored while both threads computed...
    expect(napped).to.be.below(Math.min(a![1]!, b![1]!));
    expect(pongAt).to.be.below(Math.min(a![1]!, b![1]!));
    // ...and with a 1 s heartbeat, 4 s of computing did not cost the AMQP connection.
    expect(worker.output()).not.to.match(/Connection to broker lost/);
  });

  it('(the same load on -P async blocks the event loop: RabbitMQ drops the silent connection)', async () => {
    const asyncWorker = await startTsWorker({ app: 'test/threads/app.ts', queues: [asyncQueue], concurrency: 3, env: ENV, extraArgs: ['-P', 'async'], timeoutMs: 60_000 });
    try {
      const spins = [await send('span', [4000], asyncQueue), await send('span', [4000], asyncQueue)];
      const [a, b] = (await Promise.all(spins.map((r) => r.get({ timeout: 30_000 })))) as number[][];
      expect(a![0]! >= b![1]! || b![0]! >= a![1]!, 'one loop waited for the other').to.equal(true);
      await waitFor(() => /Connection to broker lost/.test(asyncWorker.output()), 10_000, 'the connection loss');
    } finally {
      await asyncWorker.stop();
    }
  });

  it('revoke(id, { terminate: true }) of a task computing in a thread: REVOKED, the thread is killed and replaced', async () => {
    await run('add', [0, 0]);
    const threadsBefore = osThreads(worker.pid);
    const victim = await send('span', [60_000]);
    await waitFor(() => worker.output().includes(`span[${victim.id}] received`), 10_000, 'the task to start');
    await new Promise((r) => setTimeout(r, 300));
    await producer.control.revoke(victim.id, { terminate: true, destination: [nodeName()], timeout: 1 });
    const err = await victim.get({ timeout: 10_000 }).catch((e: unknown) => e);
    expect(err).to.deep.include({ state: 'REVOKED', excType: 'TaskRevokedError' });
    expect(await run('add', [2, 2])).to.equal(4);
    await sameThreadCount(threadsBefore);
  });

  it('an endless loop with timeLimit 1 fails with TimeLimitExceeded within 2 s; the next task runs; no thread leaks', async () => {
    await run('add', [0, 0]);
    const threadsBefore = osThreads(worker.pid);
    for (let i = 0; i < 3; i++) {
      const started = Date.now();
      const err = await run('forever').catch((e: unknown) => e);
      expect(Date.now() - started).to.be.below(2000);
      expect(err).to.be.instanceOf(TaskError);
      expect(err).to.deep.include({ excType: 'TimeLimitExceeded', excModule: 'billiard.exceptions', excArgs: [1] });
      expect(await run('add', [i, 1])).to.equal(i + 1);
    }
    expect(worker.output()).to.match(/ERROR\/MainProcess\] Hard time limit \(1s\) exceeded for forever\[/);
    // Three threads killed and replaced: once the replacements have loaded, the worker has as many OS threads as before.
    await sameThreadCount(threadsBefore);
  });

  it('a thread that dies under a task: early ack and acks_late store WorkerLostError; with reject_on_worker_lost it runs again', async () => {
    const early = await send('dieEarly');
    const late = await send('dieLate');
    const requeued = await send('dieLateRequeue');
    for (const r of [early, late]) {
      const err = await r.get({ timeout: 20_000 }).catch((e: unknown) => e);
      expect(err).to.deep.include({ excType: 'WorkerLostError', excModule: 'billiard.exceptions', excMessage: 'Worker exited prematurely: exit code 1.' });
    }
    expect(await requeued.get({ timeout: 20_000 })).to.equal('second run');
    const out = worker.output();
    expect(out.match(new RegExp(`dieLateRequeue\\[${requeued.id}\\] received`, 'g'))).to.have.length(2);
    for (const r of [early, late]) expect(out.match(new RegExp(`\\[${r.id}\\] received`, 'g'))).to.have.length(1);
    // Nothing left behind: every message was acked (or requeued and then acked). The counters lag a little.
    let stats = await listQueue(RABBIT_VHOST, queue);
    for (const deadline = Date.now() + 20_000; (stats?.messages_ready || stats?.messages_unacknowledged) && Date.now() < deadline; ) {
      await new Promise((r) => setTimeout(r, 500));
      stats = await listQueue(RABBIT_VHOST, queue);
    }
    expect(stats).to.deep.include({ messages_ready: 0, messages_unacknowledged: 0 });
  });

  it('replaces a thread after --max-tasks-per-child tasks', async () => {
    const threads = new Set<number>();
    for (let i = 0; i < 12; i++) threads.add((await run<{ threadId: number }>('where')).threadId);
    expect(threads.size).to.be.at.least(3);
    expect(worker.output()).to.match(/Replacing ThreadPoolWorker-\d+: it ran 5 task\(s\) \(worker_max_tasks_per_child\)/);
  });
});
