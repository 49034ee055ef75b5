/**
 * Running one task: bind its arguments, give a bound task its `self`, enforce
 * time limits, turn `self.retry()` and `autoretryFor` into a republished
 * message, store the state as Python does, and log it in Celery's format.
 */
import type { Celery } from '../app/celery.js';
import { runInTaskContext, type TaskContextSource } from '../app/context.js';
import type { BoundTask, RetryOptions, Task, TaskRequest } from '../app/task.js';
import type { Delivery } from '../broker/types.js';
import { addToChord, replaceTask } from '../canvas/replace.js';
import { requestStamps } from '../canvas/stamping.js';
import type { Signature } from '../canvas/signature.js';
import { CeleryError, Ignore, Reject, Retry, SoftTimeLimitExceeded, TaskRevokedError, ThreadTaskError, TimeLimitExceeded, WorkerLostError } from '../errors.js';
import { serializeException } from '../protocol/exceptions.js';
import { buildTaskMessage, EMPTY_EMBED, NO_EXTRA_HEADERS, NO_TIME_LIMIT, type TaskMessage } from '../protocol/message.js';
import { messageProperties } from '../protocol/properties.js';
import { pyRepr } from '../protocol/repr.js';
import { buildExceptionMeta, buildResultMeta, States, type MetaContext } from '../protocol/result-meta.js';
import { getLogger, isEnabled } from '../support/log.js';
import { requeuesLostTask, type RunOutcome } from './ack-policy.js';
import type { TaskLifecycle } from './lifecycle.js';
import { chordPartReturn, continueAfterFailure, sendCallbacks } from './canvas.js';
import { bindArguments, paramsOfTask } from './arguments.js';
import type { TaskCall, WorkerPool } from './pools/types.js';
import type { ResultWriter } from './results.js';
import { checkRetryAllowed, DEFAULT_MAX_RETRIES, retryArguments, retryMessage, retryPublishRoute, retrySchedule } from './retry.js';

const log = getLogger('MainProcess');

export { TimeLimitExceeded, SoftTimeLimitExceeded } from '../errors.js';
/** `self.retry()` could not publish the retry message. */
class RetryNotPublished extends CeleryError {}

/** What the executor needs from the worker. */
export interface ExecutionContext {
  app: Celery;
  hostname: string;
  results: ResultWriter;
  /** Abort controllers of running tasks that asked for `self.signal`; a cold shutdown aborts them all. */
  aborters: Set<AbortController>;
  /** False when no result backend is configured: nothing is built or stored then. */
  storesResults: boolean;
  /** The app's time zone (IANA name): `date_done` and retry etas are written in it, as Celery does. */
  timeZone: string;
  /** Where the run reports succeeded/failed/retried/revoked (the worker's lifecycle). */
  lifecycle: TaskLifecycle;
  /** Runs in progress by task id: `revoke(terminate=True)` finds them here. */
  running: Map<string, RunHandle>;
  /** Time limits set at run time (`time_limit` command) by task name; they replace the task's own. */
  timeLimits: Map<string, { soft: number | null; hard: number | null }>;
  /** Where the task's function runs: this event loop (`-P async`) or a worker thread (`-P threads`). */
  pool: WorkerPool;
}

/** A run in progress, as remote control sees it. */
export interface RunHandle {
  /**
   * Stops the run now: its `self.signal` aborts with `TaskRevokedError('terminated')`,
   * its slot is freed, and REVOKED is stored. The promise itself cannot be
   * killed (there is no preemption in JS); whatever it does later is ignored.
   */
  terminate(signum: number): void;
}

/** True for anything `await` would unwrap: a Promise or any object with a `then` method. */
function isThenable(value: unknown): value is PromiseLike<unknown> {
  return value instanceof Promise || (value !== null && (typeof value === 'object' || typeof value === 'function') && typeof (value as { then?: unknown }).then === 'function');
}

function excRepr(err: unknown): string {
  const { exc_type, exc_message } = serializeException(err);
  return `${exc_type}(${exc_message.map((a) => pyRepr(a)).join(', ')})`;
}

/**
 * `self.request` of a run. `properties` are the message's (see protocol/properties.ts); a worker
 * thread gets them with its run request.
 */
export function buildRequest(message: TaskMessage, delivery: Pick<Delivery, 'info'>, hostname: string, properties: Record<string, unknown>): TaskRequest {
  return {
    id: message.id,
    task: message.task,
    args: message.args,
    kwargs: message.kwargs,
    retries: message.retries,
    eta: message.eta === null ? null : new Date(message.eta),
    expires: message.expires === null ? null : new Date(message.expires),
    hostname,
    deliveryInfo: delivery.info,
    parentId: message.parentId,
    rootId: message.rootId,
    groupId: message.group,
    correlationId: message.id,
    replyTo: message.replyTo,
    origin: message.origin,
    // Copies where the parsed message shares a frozen default (message.ts): the task may change its request.
    timeLimit: message.timeLimit === NO_TIME_LIMIT ? [null, null] : message.timeLimit,
    headers: message.extraHeaders === NO_EXTRA_HEADERS ? {} : message.extraHeaders,
    properties,
    group: message.group,
    groupIndex: message.groupIndex,
    chord: message.embed.chord,
    callbacks: message.embed.callbacks,
    errbacks: message.embed.errbacks,
    chain: message.embed.chain,
    replacedTaskNesting: typeof message.extraHeaders.replaced_task_nesting === 'number' ? message.extraHeaders.replaced_task_nesting : 0,
    ...requestStamps(message.extraHeaders),
  };
}

/** Runs the task; resolves with how it ended. Never rejects. */
export function executeTask(ctx: ExecutionContext, task: Task<never, unknown>, message: TaskMessage, delivery: Delivery): Promise<RunOutcome> {
  return new TaskRun(ctx, task, message, delivery).run();
}

/**
 * One run of one task. A class rather than closures: a run is the hottest
 * allocation in the worker, and most tasks need neither `self`, nor a
 * request object, nor an AbortController; those are built on first use.
 */
class TaskRun implements TaskContextSource, RunHandle, TaskCall, BoundRun {
  private readonly storesResult: boolean;
  /** What the stored meta says beside the result; only built when a result is stored. */
  private readonly metaCtx: MetaContext | null = null;
  private requestObject: TaskRequest | null = null;
  /** Results of what the task sent (Celery's `request.children`), stored with its state. */
  private sent: Array<{ asTuple(): unknown }> | null = null;
  private abort: AbortController | null = null;
  private timers: NodeJS.Timeout[] | null = null;
  /** The last Retry `self.retry()` returned in this run, if any. */
  private requestedRetry: Retry | null = null;
  /** Rejects the awaited task promise early: a hard time limit or a terminate. */
  private interrupt: ((reason: Error) => void) | null = null;
  /** Why the run was stopped early, once it was. */
  private stopReason: Error | null = null;
  /** Set by terminate(): the signal number asked for. */
  private terminatedWith: number | null = null;

  constructor(
    readonly ctx: ExecutionContext,
    readonly task: Task<never, unknown>,
    readonly message: TaskMessage,
    private readonly delivery: Delivery,
  ) {
    const conf = ctx.app.conf;
    this.storesResult = ctx.storesResults && !message.ignoreResult && !(task.options.ignoreResult ?? conf.task_ignore_result);
    if (!this.storesResult) return;
    this.metaCtx = { parentId: message.parentId, groupId: message.group, timeZone: ctx.timeZone };
    if (conf.result_extended) {
      this.metaCtx.extended = { name: task.name, args: message.args, kwargs: message.kwargs, worker: ctx.hostname, retries: message.retries, queue: delivery.info.routingKey };
    }
  }

  /** `self.request`, and what tasks sent from inside this one take their parent from. */
  get request(): TaskRequest {
    return (this.requestObject ??= buildRequest(this.message, this.delivery, this.ctx.hostname, this.properties));
  }

  /** Where the message came from (the task's `request.deliveryInfo`). */
  /** The message's properties as Celery's `request.properties` (built when asked for). */
  get properties(): Record<string, unknown> {
    return messageProperties(this.delivery.message);
  }

  get deliveryInfo(): Delivery['info'] {
    return this.delivery.info;
  }

  addChild(child: { asTuple(): unknown }): void {
    (this.sent ??= []).push(child);
  }

  children(): unknown[] {
    return this.sent ? this.sent.map((c) => c.asTuple()) : [];
  }

  /** Runs canvas work (callbacks, chords) as this task: what it sends gets it as parent. */
  inContext<T>(fn: () => Promise<T>): Promise<T> {
    return runInTaskContext(this, fn);
  }

  /**
   * {@link inContext}, bound (handed to the chord join, which calls it only to send the body).
   * Made when asked for: only chord members need it, and a bound arrow per run costs every task.
   */
  get asTask(): <T>(fn: () => Promise<T>) => Promise<T> {
    return (fn) => runInTaskContext(this, fn);
  }

  /** The run's AbortController, created when first asked for (self.signal, a soft limit). */
  /** The worker's app (BoundRun). */
  get app(): Celery {
    return this.ctx.app;
  }

  aborter(): AbortController {
    if (!this.abort) {
      this.abort = new AbortController();
      this.ctx.aborters.add(this.abort);
    }
    return this.abort;
  }

  private store(status: string, result: unknown, traceback: string | null = null): Promise<void> {
    if (!this.storesResult) return Promise.resolve();
    if (this.sent) this.metaCtx!.children = this.children();
    return this.ctx.results.store(buildResultMeta(this.message.id, status, result, traceback, this.metaCtx!), this.replyContext());
  }

  private storeException(status: string, err: unknown): Promise<void> {
    if (!this.storesResult) return Promise.resolve();
    if (this.sent) this.metaCtx!.children = this.children();
    return this.ctx.results.store(buildExceptionMeta(this.message.id, status, err, this.metaCtx!), this.replyContext());
  }

  private replyContext(): { replyTo: string | null; correlationId: string } {
    return { replyTo: this.message.replyTo, correlationId: this.message.id };
  }

  private addTimer(ms: number, fire: () => void): void {
    (this.timers ??= []).push(setTimeout(fire, ms));
  }

  /** Awaits the task's promise, unless stop() comes first (the slot is then freed). */
  private interruptible(returned: PromiseLike<unknown>): Promise<unknown> {
    if (this.stopReason) return Promise.reject(this.stopReason);
    return new Promise((resolve, reject) => {
      this.interrupt = reject;
      returned.then(resolve, reject);
    });
  }

  /** Ends the wait for the task's promise with `reason` (first reason wins), and the thread running it if any. */
  private stop(reason: Error): void {
    if (this.stopReason) return;
    this.stopReason = reason;
    this.interrupt?.(reason);
    this.ctx.pool.terminate(this.message.id, reason); // -P threads: kills the thread; -P async cannot
  }

  terminate(signum: number): void {
    if (this.terminatedWith !== null || this.stopReason) return;
    this.terminatedWith = signum;
    const reason = new TaskRevokedError('terminated');
    this.aborter().abort(reason);
    this.stop(reason);
  }

  /**
   * `self.retry()`: publishes the message that runs the task again and
   * returns a {@link Retry} bound to that publish (see errors.ts). Past
   * `maxRetries` it throws `exc` (or MaxRetriesExceededError) at once, as
   * Python's `retry()` raises, so the task fails with it however it was called.
   */
  retry(options: RetryOptions = {}): Retry {
    const { task, message } = this;
    checkRetryAllowed(task.name, task.options, message, options);
    const { countdown, eta } = retrySchedule(options, task.options, message.retries);
    const given = { args: options.args, kwargs: options.kwargs };
    // Only args or only kwargs given: Celery 5.7 reconciles them with the inherited ones (retry.ts).
    const oneGiven = (given.args === undefined) !== (given.kwargs === undefined);
    const next = retryMessage(message, eta, { ...(oneGiven ? retryArguments(paramsOfTask(task), message, given) : given), expires: options.expires });
    const publish = (async () => {
      try {
        const { app } = this.ctx;
        const now = Date.now();
        const route = retryPublishRoute(app.conf, this.delivery.info, options.queue, eta, now, typeof app.broker.declareTopology === 'function');
        await app.broker.publish(buildTaskMessage(next, now, this.ctx.timeZone), route);
      } catch (err) {
        throw new RetryNotPublished(`Could not publish the retry of ${task.name}[${message.id}]: ${(err as Error).message}`, { cause: err });
      }
    })();
    const retry = new Retry(`Retry in ${Math.round(countdown * 1000) / 1000}s`, options.exc ?? null, new Date(eta), publish);
    this.requestedRetry = retry;
    return retry;
  }

  /**
   * A run that called `self.retry()` but neither threw, returned nor awaited
   * the result still ends as that retry: the next run is already on its way,
   * and storing this run's outcome too would report a result the retry then
   * replaces (or, after SUCCESS, cannot replace).
   */
  private unclaimedRetry(instead: string): Retry {
    const retry = this.requestedRetry!;
    log.warning(
      `Task ${this.task.name}[${this.message.id}] called self.retry() but then ${instead} instead of ending with the Retry; ` +
        'the run ends as a retry (write `throw self.retry(...)`)',
    );
    return retry;
  }

  /** Calls the task's function in this thread, with its `self` and its task context (the async pool's way). */
  callHere(args: unknown[]): unknown {
    const fn = this.task.fn;
    return runInTaskContext(this, () => (this.task.bound ? fn(...([new BoundContext(this), ...args] as never[])) : fn(...(args as never[]))));
  }

  async run(): Promise<RunOutcome> {
    const { ctx, task, message } = this;
    const conf = ctx.app.conf;
    const started = performance.now();
    ctx.running.set(message.id, this);
    if (this.storesResult && (task.options.trackStarted ?? conf.task_track_started)) {
      await this.store(States.STARTED, { pid: process.pid, hostname: ctx.hostname });
    }
    const [hardOverride, softOverride] = message.timeLimit;
    const changed = ctx.timeLimits.size > 0 ? ctx.timeLimits.get(task.name) : undefined;
    const hard = hardOverride ?? (changed ? changed.hard : (task.options.timeLimit ?? conf.task_time_limit));
    const soft = softOverride ?? (changed ? changed.soft : (task.options.softTimeLimit ?? conf.task_soft_time_limit));
    if (soft) {
      const controller = this.aborter();
      this.addTimer(soft * 1000, () => controller.abort(new SoftTimeLimitExceeded(`SoftTimeLimitExceeded(${soft})`)));
    }
    try {
      if (this.stopReason) throw this.stopReason;
      if (hard) {
        // -P async cannot kill the promise: the slot is freed and its late result ignored. -P threads kills the thread.
        this.addTimer(hard * 1000, () => {
          log.error(`Hard time limit (${hard}s) exceeded for ${task.name}[${message.id}]`);
          this.stop(new TimeLimitExceeded(`TimeLimitExceeded(${hard})`, hard));
        });
      }
      const args = bindArguments(task.name, paramsOfTask(task), message.args, message.kwargs);
      // The pool calls the function: here, or in a worker thread (which runs its own soft time limit).
      const returned = ctx.pool.invoke(this, args, soft);
      // Any thenable, not only Promise instances (query builders, other promise libraries); awaited so
      // that a hard time limit or a terminate can end the wait.
      const value = isThenable(returned) ? await this.interruptible(returned) : returned;
      if (this.requestedRetry) return await this.failed(this.unclaimedRetry('returned a value'), started);
      // As Celery: callbacks and the next chain step are sent before the state is stored (it lists them as
      // children); a chord member is counted after, so the body never runs before the member's result exists.
      const { callbacks, chain } = message.embed;
      if (callbacks?.length || chain?.length) await this.inContext(() => sendCallbacks(ctx.app, message, value));
      if (this.storesResult) await this.store(States.SUCCESS, value); // no await (a promise and a turn) when nothing is stored
      if (message.embed.chord) await chordPartReturn(ctx.app, ctx.results, message, States.SUCCESS, value, this.asTask);
      const runtime = (performance.now() - started) / 1000;
      if (isEnabled('info')) {
        log.info(`Task ${task.name}[${message.id}] succeeded in ${runtime.toFixed(6)}s: ${pyRepr(value)}`);
      }
      ctx.lifecycle.emit('task-succeeded', message, value, runtime);
      return 'success';
    } catch (thrown) {
      return this.failed(thrown, started);
    } finally {
      if (this.timers) for (const t of this.timers) clearTimeout(t);
      if (this.abort) ctx.aborters.delete(this.abort);
      if (ctx.running.get(message.id) === this) ctx.running.delete(message.id);
    }
  }

  private async failed(thrown: unknown, started: number): Promise<RunOutcome> {
    const { ctx, task, message } = this;
    let err = thrown;
    if (this.terminatedWith !== null) {
      // revoke(terminate=True): REVOKED 'terminated', as Python's _announce_revoked stores it.
      await this.storeException(States.REVOKED, new TaskRevokedError('terminated'));
      log.info(`Task ${task.name}[${message.id}] terminated (revoked with terminate, signal ${this.terminatedWith}): state REVOKED`);
      ctx.lifecycle.emit('task-revoked', message, { terminated: true, signum: this.terminatedWith, expired: false });
      return 'terminated';
    }
    if (this.requestedRetry && err !== this.requestedRetry && !(err instanceof RetryNotPublished)) err = this.unclaimedRetry('threw another error');
    const autoretry = task.options.autoretryFor;
    // An error from a worker thread was matched against the classes there, where it was made.
    if (autoretry && !(err instanceof Retry) && (err instanceof ThreadTaskError ? err.autoretry : autoretry.some((cls) => err instanceof cls))) {
      try {
        err = this.retry({ exc: err });
      } catch (final) {
        err = final; // out of retries: the task fails with exc
      }
    }
    if (err instanceof Retry) {
      // Settle nothing before the retry message's fate is known: acking the original
      // (acks_late) while the retry was never confirmed would lose the task.
      const notSent = await err.sent;
      if (notSent) err = notSent;
    }
    if (err instanceof Retry) {
      // As Python: RETRY with the serialized exc, or a null result when retry() got none.
      await (err.exc != null ? this.storeException(States.RETRY, err.exc) : this.store(States.RETRY, null));
      if (isEnabled('info')) log.info(`Task ${task.name}[${message.id}] retry: ${err.message}${err.exc != null ? `: ${excRepr(err.exc)}` : ''}`);
      ctx.lifecycle.emit('task-retried', message, err.exc);
      return 'retry';
    }
    if (err instanceof RetryNotPublished) {
      log.error(err.message);
      // Requeued by the ack policy: the worker reports it as task-rejected.
      return 'retry-not-published';
    }
    if (err instanceof Ignore) {
      // self.replace() sent the replacement, which stores this id's result: nothing to store here.
      if (isEnabled('info')) log.info(`Task ${task.name}[${message.id}] ignored`);
      ctx.lifecycle.emit('task-ignored', message);
      return 'ignored';
    }
    if (err instanceof WorkerLostError && requeuesLostTask(task.options.acksLate ?? ctx.app.conf.task_acks_late, task.options.rejectOnWorkerLost ?? ctx.app.conf.task_reject_on_worker_lost ?? false)) {
      // task_reject_on_worker_lost: the message goes back to run again, so nothing is stored (as Celery).
      log.error(`Task ${task.name}[${message.id}] ${err.message}: requeued (task_reject_on_worker_lost)`);
      return 'worker-lost';
    }
    if (err instanceof Reject) return this.rejected(err, started);
    await this.storeException(States.FAILURE, err);
    if (message.embed !== EMPTY_EMBED) await this.inContext(() => continueAfterFailure(ctx.app, ctx.results, message, err, this.request));
    log.error(`Task ${task.name}[${message.id}] raised unexpected: ${excRepr(err)}\n${err instanceof Error ? (err.stack ?? '') : ''}`);
    ctx.lifecycle.emit('task-failed', message, err, (performance.now() - started) / 1000);
    return err instanceof TimeLimitExceeded ? 'time-limit' : err instanceof WorkerLostError ? 'worker-lost' : 'failure';
  }

  /**
   * `throw new Reject(reason, requeue)`, as Celery's trace and Request.on_failure handle it:
   * logged as a warning; with requeue nothing is stored (the next delivery runs it again);
   * without, FAILURE with the Reject is stored and errbacks/chords go on as for a failure.
   * What happens to the message is the ack policy's call (it depends on acks_late).
   */
  private async rejected(err: Reject, started: number): Promise<RunOutcome> {
    const { ctx, task, message } = this;
    log.warning(`Task ${task.name}[${message.id}] ${err.message}`);
    if (err.requeue) {
      // No state and no event of its own (Celery sends task-rejected only when the message
      // was still unacked; the worker does that): it just stops being active here.
      ctx.lifecycle.emit('task-ignored', message);
      return 'rejected-requeue';
    }
    await this.storeException(States.FAILURE, err);
    if (message.embed !== EMPTY_EMBED) await this.inContext(() => continueAfterFailure(ctx.app, ctx.results, message, err, this.request));
    ctx.lifecycle.emit('task-failed', message, err, (performance.now() - started) / 1000);
    return 'rejected';
  }
}

/** What `self` of a bound task reads from its run: one on the main thread or in a pool thread. */
export interface BoundRun {
  readonly task: Task<never, unknown>;
  /** The app the run's canvas work (replace, add to chord) goes through. */
  readonly app: Celery;
  readonly request: TaskRequest;
  aborter(): AbortController;
  retry(options?: RetryOptions): Retry;
}

/** `self` of a bound task, on the main thread (TaskRun) and in a pool thread alike. */
export class BoundContext implements BoundTask {
  constructor(private readonly run: BoundRun) {}
  get name(): string {
    return this.run.task.name;
  }
  get app(): Celery {
    return this.run.app;
  }
  get request(): TaskRequest {
    return this.run.request;
  }
  get maxRetries(): number | null {
    return this.run.task.options.maxRetries ?? DEFAULT_MAX_RETRIES;
  }
  get signal(): AbortSignal {
    return this.run.aborter().signal;
  }
  retry(options?: RetryOptions): Retry {
    return this.run.retry(options);
  }
  replace(sig: Signature<any, any, any>): Promise<never> {
    return replaceTask(this.run.app, this.run.request, sig as Signature, this.run.task.options.onReplace && ((s) => this.run.task.options.onReplace!(s, this)));
  }
  addToChord(sig: Signature<any, any, any>, options: { lazy?: boolean } = {}): ReturnType<BoundTask['addToChord']> {
    return addToChord(this.run.app, this.run.request, sig as Signature, options.lazy);
  }
}
