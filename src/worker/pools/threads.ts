/**
 * `-P threads`: each task's function runs in one of N worker threads, so CPU-bound tasks
 * use every core while the main thread keeps consuming, heartbeating and acking.
 *
 * Each thread loads the app module itself (thread-main.ts) and runs one task at a time.
 * The main thread keeps every connection and every decision: a thread only calls the
 * function and answers with the value or the error; its `self.retry()`, `delay()` and
 * `get()` are requests the main thread serves (see {@link ThreadPool.serve}).
 *
 * A thread is stopped for good and replaced when a hard time limit or `terminate()` kills
 * its task, when it crashed (an uncaught error outside the task, out of memory: the task
 * fails with WorkerLostError), or when `worker_max_tasks_per_child` /
 * `worker_max_memory_per_child` say it has done enough (recycling, as Celery's children).
 */
import { MessageChannel, Worker as NodeWorker, type ResourceLimits } from 'node:worker_threads';
import type { Celery } from '../../app/celery.js';
import type { ThreadResourceLimits } from '../../app/config.js';
import { EncodeError, Ignore, Reject, WorkerLostError } from '../../errors.js';
import { getLogger, getLogLevel, writeLogLine } from '../../support/log.js';
import { ConcurrencyPool } from '../pool.js';
import { PoolThread, ThreadJob } from './pool-thread.js';
import { BOOTSTRAP, bootData, type Boot } from './thread-boot.js';
import { infoToTuple, messageToTuple, type RunPacket } from './run-packet.js';
import { taskErrorFrom, toEnvelope, type FromThread, type RpcReply, type ThreadStartData } from './thread-messages.js';
import type { PoolInfo, PoolJob, TaskCall, WorkerPool } from './types.js';

const log = getLogger('MainProcess');

export interface ThreadPoolOptions {
  /** Threads, i.e. tasks at once (`-c`). */
  limit: number;
  /** The main thread's app: it serves the threads' publishes and backend calls. */
  app: Celery;
  /** The module file that exports the app; each thread loads it. */
  appModule: string;
  /** The worker's node name (`self.request.hostname`). */
  hostname: string;
  /** `worker_max_tasks_per_child`. */
  maxTasksPerChild: number | null;
  /** `worker_max_memory_per_child`, KiB. */
  maxMemoryPerChild: number | null;
  /** `worker_thread_resource_limits`. */
  resourceLimits: ThreadResourceLimits | null;
}

export class ThreadPool implements WorkerPool {
  readonly name = 'threads';
  private readonly queue: ConcurrencyPool;
  private readonly threads = new Set<PoolThread>();
  /** Calls waiting for a thread (a replacement still loading the app). */
  private readonly waiting: ThreadJob[] = [];
  private target: number;
  private nextSeq = 0;
  private nextName = 0;
  private started = false;
  private closing = false;
  /** Replacements that failed to load in a row: spacing the next attempt out. */
  private failedStarts = 0;
  private warnedMissing = false;
  private readonly boot = bootData();

  constructor(private readonly options: ThreadPoolOptions) {
    this.queue = new ConcurrencyPool(options.limit);
    this.target = options.limit;
  }

  get limit(): number {
    return this.queue.limit;
  }

  get active(): number {
    return this.queue.active;
  }

  get pending(): number {
    return this.queue.pending;
  }

  /** Starts the threads and waits until each has loaded the app. */
  async start(): Promise<void> {
    this.started = true;
    const threads = Array.from({ length: this.target }, () => this.spawn());
    try {
      await Promise.all(threads.map((t) => t.ready));
    } catch (err) {
      await this.close();
      throw err;
    }
  }

  submit(job: PoolJob): void {
    this.queue.submit(job);
  }

  cancelPending(): number {
    return this.queue.cancelPending();
  }

  idle(): Promise<void> {
    return this.queue.idle();
  }

  /** Returns the call as a thenable (see ThreadJob), settled when the thread answers. */
  invoke(call: TaskCall, args: unknown[], softLimit: number | null): ThreadJob {
    const job = new ThreadJob(++this.nextSeq, call, args, softLimit);
    if (this.closing) {
      job.reject(new WorkerLostError('Worker exited prematurely: the pool is closing.'));
      return job;
    }
    const thread = this.idleThread();
    if (thread) this.dispatch(thread, job);
    else this.waiting.push(job);
    return job;
  }

  resize(limit: number): void {
    this.queue.resize(limit);
    this.target = limit;
    let live = this.live();
    while (live < this.target) {
      this.spawn();
      live++;
    }
    // Shrinking: idle threads go now, busy ones when their task ends (finish()).
    for (const thread of this.threads) {
      if (live <= this.target) break;
      if (thread.state === 'idle' || thread.state === 'starting') {
        this.stop(thread);
        live--;
      }
    }
  }

  terminate(taskId: string, reason: Error): boolean {
    for (const thread of this.threads) {
      const job = thread.job;
      if (job && job.call.message.id === taskId) {
        this.kill(job, reason);
        return true;
      }
    }
    return false;
  }

  info(): PoolInfo {
    return {
      implementation: 'threads',
      'max-concurrency': this.limit,
      processes: [...this.threads].filter((t) => t.state !== 'stopping').map((t) => t.threadId),
      'max-tasks-per-child': this.options.maxTasksPerChild,
      'max-memory-per-child': this.options.maxMemoryPerChild,
    };
  }

  /** Stops every thread (after idle(): a call still running ends as WorkerLostError). */
  async close(): Promise<void> {
    this.closing = true;
    for (const job of this.waiting.splice(0)) job.reject(new WorkerLostError('Worker exited prematurely: the pool is closing.'));
    const exits = [...this.threads].map((t) => {
      this.stop(t);
      return t.exited;
    });
    await Promise.all(exits);
  }

  /** Threads started or running that will take work. */
  private live(): number {
    let n = 0;
    for (const t of this.threads) if (t.state !== 'stopping') n++;
    return n;
  }

  private idleThread(): PoolThread | null {
    for (const t of this.threads) if (t.state === 'idle') return t;
    return null;
  }

  private spawn(): PoolThread {
    const { app, appModule, maxMemoryPerChild, resourceLimits } = this.options;
    const name = `ThreadPoolWorker-${++this.nextName}`;
    const backend = app.backend;
    // request.properties are sent only when a task reads them: they hold every header, and cloning
    // them with every run request was a large share of the hop's CPU (see answerProperties()).
    const channel = new MessageChannel();
    const flag = new Int32Array(new SharedArrayBuffer(4));
    const data: ThreadStartData & { boot: Boot } = {
      boot: this.boot,
      appModule,
      appName: app.main,
      oid: app.oid,
      brokerUrl: app.broker.displayUrl,
      backendUrl: backend.displayUrl,
      backendBeforePublish: typeof backend.beforePublish === 'function',
      logLevel: getLogLevel(),
      reportMemory: maxMemoryPerChild !== null,
      threadName: name,
      hostname: this.options.hostname,
      propertiesPort: channel.port2,
      propertiesFlag: flag,
    };
    const worker = new NodeWorker(BOOTSTRAP, {
      eval: true,
      workerData: data,
      transferList: [channel.port2],
      name,
      ...(resourceLimits ? { resourceLimits: resourceLimits as ResourceLimits } : {}),
    });
    const thread = new PoolThread(name, worker, channel.port1, flag);
    this.threads.add(thread);
    worker.on('message', (message: FromThread) => this.onMessage(thread, message));
    worker.on('error', (err: Error & { code?: string }) => {
      thread.failure = err.code === 'ERR_WORKER_OUT_OF_MEMORY' ? `out of memory (${err.message})` : `uncaught ${err.name}: ${err.message}`;
    });
    worker.on('exit', (code) => this.onExit(thread, code));
    return thread;
  }

  private onMessage(thread: PoolThread, message: FromThread): void {
    // The commonest answer first: [seq, value], a run that returned.
    if (Array.isArray(message)) return void this.finish(thread, message[0], undefined, undefined)?.resolve(message[1]);
    switch (message.t) {
      case 'ready':
        this.failedStarts = 0;
        thread.loaded();
        this.checkTasks(message.tasks);
        if (thread.state === 'idle') this.next(thread);
        return;
      case 'load-failed':
        thread.failure = message.error;
        return;
      case 'log':
        writeLogLine(message.line);
        return;
      case 'properties':
        return this.answerProperties(thread, message.seq);
      case 'done':
        return void this.finish(thread, message.seq, message.memory, message.children)?.resolve(message.value);
      case 'failed': {
        const job = this.finish(thread, message.seq, message.memory, message.children);
        return job?.reject(taskErrorFrom(message.error, job.call.message.id));
      }
      case 'retried': {
        const job = this.finish(thread, message.seq, message.memory, message.children);
        return job?.reject(job.retries.get(message.retry) ?? new Error(`unknown retry ${message.retry}`));
      }
      case 'ignored':
        // self.replace() in the thread: the replacement is published and stores this id's result.
        return void this.finish(thread, message.seq, message.memory, message.children)?.reject(new Ignore(message.reason));
      case 'rejected':
        // Reject in the thread: rebuilt here, where the run's outcome and the ack are decided.
        return void this.finish(thread, message.seq, message.memory, message.children)?.reject(new Reject(message.reason, message.requeue));
      default:
        this.serve(thread, message);
    }
  }

  /** Answers a thread's request with the main thread's broker, backend or the run's retry. */
  private serve(thread: PoolThread, message: Extract<FromThread, { id: number }>): void {
    const { app } = this.options;
    let answer: Promise<unknown>;
    try {
      switch (message.t) {
        case 'publish': {
          // A Buffer arrives as a Uint8Array: same bytes.
          const body = Buffer.from(message.message.body.buffer, message.message.body.byteOffset, message.message.body.byteLength);
          answer = app.broker.publish({ ...message.message, body }, message.route);
          break;
        }
        case 'backend': {
          const backend = app.backend as unknown as Record<string, (...args: unknown[]) => Promise<unknown>>;
          answer = backend[message.method]!(...message.args);
          break;
        }
        case 'retry': {
          const job = thread.job;
          if (!job || job.seq !== message.seq) throw new Error('self.retry() of a run that already ended');
          const { exc, eta, countdown, ...rest } = message.options;
          const retry = job.call.retry({
            ...rest,
            ...(eta !== undefined ? { eta: new Date(eta) } : { countdown }),
            ...(exc ? { exc: taskErrorFrom(exc, job.call.message.id) } : {}),
          });
          job.retries.set(message.number, retry);
          answer = retry.sent.then((notSent) => {
            if (notSent) throw notSent;
          });
          break;
        }
      }
    } catch (err) {
      answer = Promise.reject(err);
    }
    answer.then(
      (value) => this.reply(thread, { t: 'reply', id: message.id, ok: true, value }),
      (err: unknown) => this.reply(thread, { t: 'reply', id: message.id, ok: false, error: toEnvelope(err) }),
    );
  }

  /**
   * A task in the thread read `self.request.properties`: the thread waits (Atomics.wait) until
   * they are on its properties port. Always answered, or the thread would wait for ever: `null`
   * when run `seq` is no longer the thread's (the thread then sees `{}`).
   */
  private answerProperties(thread: PoolThread, seq: number): void {
    const job = thread.job;
    let properties: Record<string, unknown> | null = job && job.seq === seq ? job.call.properties : null;
    try {
      thread.propertiesPort.postMessage(properties);
    } catch (err) {
      log.error(`Cannot send request.properties to ${thread.name}: ${(err as Error).message}`);
      properties = null;
      thread.propertiesPort.postMessage(properties);
    }
    Atomics.store(thread.propertiesFlag, 0, 1);
    Atomics.notify(thread.propertiesFlag, 0);
  }

  private reply(thread: PoolThread, message: RpcReply): void {
    if (thread.state !== 'stopping') thread.worker.postMessage(message);
  }

  /** Tasks the main app has that a thread's app did not register: said once, they would fail there. */
  private checkTasks(threadTasks: string[]): void {
    if (this.warnedMissing) return;
    const have = new Set(threadTasks);
    const missing = [...this.options.app.tasks.keys()].filter((name) => !have.has(name));
    if (missing.length === 0) return;
    this.warnedMissing = true;
    log.warning(
      `Task(s) ${missing.join(', ')} are registered in the main thread but not by ${this.options.appModule} in the worker threads: ` +
        'they fail with NotRegistered there. Register tasks in the app module (or modules it imports or autodiscovers).',
    );
  }

  /** Gives the thread its next call, if one waits. */
  private next(thread: PoolThread): void {
    const job = this.waiting.shift();
    if (job) this.dispatch(thread, job);
  }

  private dispatch(thread: PoolThread, job: ThreadJob): void {
    const { call, args, softLimit } = job;
    const request: RunPacket = [job.seq, call.task.name, args, softLimit, messageToTuple(call.message), infoToTuple(call.deliveryInfo)];
    try {
      thread.worker.postMessage(request);
    } catch (err) {
      return job.reject(new EncodeError(`Cannot send the arguments of ${call.task.name} to a worker thread: ${(err as Error).message}`));
    }
    thread.state = 'busy';
    thread.job = job;
    job.thread = thread;
  }

  /**
   * A thread answered for its call: recycle the thread or give it more work, and return the
   * call for the caller to settle (null when run `seq` is no longer the thread's).
   */
  private finish(thread: PoolThread, seq: number, memory: number | undefined, children: unknown[] | undefined): ThreadJob | null {
    const job = thread.job;
    if (!job || job.seq !== seq) return null;
    // What the task sent, for the `children` stored with its state.
    if (children) for (const child of children) job.call.addChild({ asTuple: () => child });
    thread.job = null;
    thread.tasksRun++;
    const { maxTasksPerChild, maxMemoryPerChild } = this.options;
    let retire: string | null = null;
    if (maxTasksPerChild !== null && thread.tasksRun >= maxTasksPerChild) retire = `it ran ${thread.tasksRun} task(s) (worker_max_tasks_per_child)`;
    else if (maxMemoryPerChild !== null && memory !== undefined && memory > maxMemoryPerChild) {
      retire = `it holds ${memory} KiB, more than worker_max_memory_per_child (${maxMemoryPerChild} KiB)`;
    } else if (this.live() > this.target) retire = 'the pool shrank';
    if (retire) {
      log.info(`Replacing ${thread.name}: ${retire}`);
      this.stop(thread);
    } else {
      thread.state = 'idle';
      this.next(thread);
    }
    return job;
  }

  /** Ends a running call now with `reason`, and the thread that runs it (it cannot be interrupted otherwise). */
  private kill(job: ThreadJob, reason: Error): void {
    const thread = job.thread;
    job.reject(reason);
    if (thread && thread.job === job) {
      thread.job = null;
      this.stop(thread);
    }
  }

  private stop(thread: PoolThread): void {
    if (thread.state === 'stopping') return;
    thread.state = 'stopping';
    void thread.worker.terminate();
  }

  private onExit(thread: PoolThread, code: number): void {
    this.threads.delete(thread);
    const wasStopped = thread.state === 'stopping';
    thread.state = 'stopping';
    const why = thread.failure ?? `exit code ${code}`;
    thread.loadFailed(why); // no-op once it loaded
    const job = thread.job;
    if (job) {
      thread.job = null;
      // A crash, out of memory, process.exit() in task code: Celery's "worker lost".
      log.error(`Thread '${thread.name}' (thread id ${thread.threadId}) exited with '${why}'`);
      job.reject(new WorkerLostError(`Worker exited prematurely: ${why}.`));
    } else if (!wasStopped && !this.closing) {
      log.error(`Thread '${thread.name}' exited with '${why}'${thread.loadedApp ? '' : ' while loading the app'}`);
    }
    if (this.closing || !this.started || this.live() >= this.target) return;
    // A replacement. When threads keep failing to load the app, try again less and less often.
    if (!thread.loadedApp) this.failedStarts++;
    const delay = this.failedStarts === 0 ? 0 : Math.min(30_000, 500 * 2 ** (this.failedStarts - 1));
    const respawn = (): void => {
      if (!this.closing && this.live() < this.target) this.spawn();
    };
    if (delay === 0) respawn();
    else setTimeout(respawn, delay).unref();
  }
}
