/**
 * celery-node's `Worker` on ts-celery's worker.
 *
 * Registered functions are called as celery-node calls them, `fn(...args,
 * kwargs)`: the kwargs object always comes last. Everything else is
 * ts-celery's worker: a message is acked when its task starts (not on
 * arrival), at most `worker_concurrency` tasks run at once with a bounded
 * prefetch, eta/expires are honoured, bad messages are rejected without
 * crashing, the broker connection is re-established, failures are stored in
 * Celery's exception shape, and SIGTERM/SIGINT stop it warm.
 */
import { hostname } from 'node:os';
import type { Celery } from '../../app/celery.js';
import { currentTaskRequest } from '../../app/context.js';
import { ImproperlyConfigured } from '../../errors.js';
import { getLogger, logLevelChosen, setLogLevel } from '../../support/log.js';
import { logBrokerEvents } from '../../worker/broker-log.js';
import { Worker as CoreWorker } from '../../worker/worker.js';
import { Base } from './base.js';
import { DEFAULT_CONCURRENCY } from './conf.js';

const log = getLogger('MainProcess');

/** Workers started in this process, for their node names. */
let started = 0;

/**
 * The node name a shim worker answers remote control as: `celery-node-<pid>@<host>`,
 * then `celery-node-<pid>-2@<host>`... for more workers in one process. celery-node
 * had no node names, and programs run it several times per host (pm2, cluster):
 * Celery's `celery@<host>` for all of them would make every worker after the first
 * fail to declare the node's exclusive pidbox queue, and never start.
 */
function nodeName(): string {
  started++;
  return `celery-node-${process.pid}${started > 1 ? `-${started}` : ''}@${hostname()}`;
}

/** A function registered with `worker.register()`: `(...args, kwargs) => value | Promise`. */
export type TaskHandler = (...args: any[]) => unknown;

/** One running task, settled when the worker has stored its state. */
interface Running {
  promise: Promise<void>;
  settle(): void;
}

export class Worker extends Base {
  /** Registered functions by task name. */
  readonly handlers: Record<string, TaskHandler> = {};
  /** The tasks running now; each settles once its state is stored. */
  readonly activeTasks = new Set<Promise<void>>();

  private core: CoreWorker | null = null;
  private readonly running = new Map<string, Running[]>();
  private stopping: Promise<void> | null = null;
  private signals = 0;

  /**
   * Registers `handler` for task `name`. It is called with the task's
   * positional args and then its kwargs object, and may return a value or a
   * promise. A missing handler or a name registered twice throws, as in celery-node.
   */
  // `Function` as celery-node declares it, so its callers keep compiling.
  register(name: string, handler: Function): void {
    if (!handler) throw new ImproperlyConfigured('Undefined handler');
    if (typeof handler !== 'function') throw new ImproperlyConfigured(`The handler of task ${name} must be a function`);
    if (Object.hasOwn(this.handlers, name)) throw new ImproperlyConfigured('Handler is already set');
    this.handlers[name] = handler as TaskHandler;
    if (this.connected) this.define(this.app, name, handler as TaskHandler);
  }

  protected override onAppCreated(app: Celery): void {
    for (const [name, handler] of Object.entries(this.handlers)) this.define(app, name, handler);
  }

  /** A ts-celery task taking any arguments (`*args, **kwargs`) that calls `handler(...args, kwargs)`. */
  private define(app: Celery, name: string, handler: TaskHandler): void {
    app.task({ name, params: ['*args', '**kwargs'] }, (args: unknown[], kwargs: Record<string, unknown>) => {
      this.track(currentTaskRequest()!.id);
      return handler(...args, kwargs);
    });
  }

  private track(taskId: string): void {
    let settle!: () => void;
    const promise = new Promise<void>((resolve) => (settle = resolve));
    this.activeTasks.add(promise);
    const list = this.running.get(taskId) ?? [];
    list.push({ promise, settle });
    this.running.set(taskId, list);
  }

  private readonly onFinished = (taskId: string): void => {
    const list = this.running.get(taskId);
    const run = list?.shift();
    if (!run) return; // not run by a handler (expired, unregistered)
    if (list!.length === 0) this.running.delete(taskId);
    this.activeTasks.delete(run.promise);
    run.settle();
  };

  /**
   * Connects and consumes `conf.CELERY_QUEUE`; resolves once consuming.
   * Rejects (and logs a CRITICAL line) when it cannot start, for example
   * when the broker stays unreachable past `broker_connection_max_retries`.
   * Logs at info level unless a level was chosen (`setLogLevel`).
   */
  async start(): Promise<void> {
    if (this.core) throw new ImproperlyConfigured('worker.start() was already called');
    if (!logLevelChosen()) setLogLevel('info');
    const app = this.app;
    const core = new CoreWorker(app, {
      hostname: nodeName(),
      queues: [this.conf.CELERY_QUEUE],
      concurrency: app.conf.worker_concurrency ?? DEFAULT_CONCURRENCY,
    });
    this.core = core;
    try {
      const broker = app.broker; // an unsupported URL throws here
      logBrokerEvents(broker);
      core.on('task-finished', this.onFinished);
      core.on('fatal', () => void this.onFatal());
      log.info(
        `celery-node worker (ts-celery) on ${broker.displayUrl}, queue ${this.conf.CELERY_QUEUE}, ` +
          `concurrency ${core.concurrency}; registered tasks: ${Object.keys(this.handlers).join(', ') || '(none)'}`,
      );
      this.listenForSignals();
      await core.start();
    } catch (err) {
      log.critical(`worker: cannot start: ${(err as Error).message}`);
      this.unlistenForSignals();
      throw err;
    }
  }

  /** Resolves once every task running now has finished and its state is stored. */
  whenCurrentJobsFinished(): Promise<void[]> {
    return Promise.all([...this.activeTasks]);
  }

  /**
   * Warm shutdown: stops consuming, returns the tasks that have not started
   * to the queue, and waits for the running ones to finish and be stored.
   * The connections stay open (`disconnect()` closes them).
   */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      // A signal's own shutdown keeps listening: a second signal during it is the cold one.
      if (this.signals === 0) this.unlistenForSignals();
      await this.core?.stop();
    })();
    return this.stopping;
  }

  /** `stop()`, then closes the connections. */
  override async disconnect(): Promise<void> {
    await this.stop();
    await super.disconnect();
  }

  /**
   * The broker gave up (reconnect retries ran out, a queue could not be
   * redeclared): the core worker has logged it (CRITICAL) and stops warm.
   * Then the process exits 1, as `ts-celery worker` does, so a supervisor
   * restarts it: a worker program that stays up consuming nothing is the
   * failure this prevents (celery-node's worker does exactly that).
   */
  private async onFatal(): Promise<void> {
    await this.disconnect().catch(() => undefined);
    process.exit(1);
  }

  // Signals: only when the program has no handlers of its own, so its own
  // shutdown code (calling worker.disconnect()) stays in charge.
  private signalsInstalled = false;

  private listenForSignals(): void {
    if (process.listenerCount('SIGTERM') > 0 || process.listenerCount('SIGINT') > 0) return;
    process.on('SIGTERM', this.onSignal);
    process.on('SIGINT', this.onSignal);
    this.signalsInstalled = true;
  }

  private unlistenForSignals(): void {
    if (!this.signalsInstalled) return;
    process.off('SIGTERM', this.onSignal);
    process.off('SIGINT', this.onSignal);
    this.signalsInstalled = false;
  }

  /**
   * First signal: warm shutdown, then the signal again with no handler left,
   * so the process ends as it would have without this one. A second signal
   * during the warm shutdown: cold, at once (unacked messages are redelivered).
   */
  private readonly onSignal = (signal: NodeJS.Signals): void => {
    this.signals++;
    if (this.signals > 1) {
      log.warning(`worker: Cold shutdown (MainProcess) on ${signal}`);
      this.core?.abortRunning();
      this.unlistenForSignals();
      process.kill(process.pid, signal);
      return;
    }
    log.warning(`worker: Warm shutdown (MainProcess) on ${signal}`);
    void this.disconnect().finally(() => {
      this.unlistenForSignals();
      process.kill(process.pid, signal);
    });
  };
}
