/**
 * The worker: consumes task queues, runs tasks with bounded async
 * concurrency, holds (or parks) ETA tasks, and shuts down without losing work.
 *
 * Flow of one delivery (see `onDelivery`): parse -> find the task -> expired?
 * -> due later? hold or park -> wait for a slot -> run -> store state -> settle.
 * Every settle goes through `decideAck` (ack-policy.ts).
 */
import { EventEmitter } from 'node:events';
import { availableParallelism } from 'node:os';
import type { Celery } from '../app/celery.js';
import { queueDeclaration } from '../app/routing.js';
import { appTimezone } from '../app/timezone.js';
import type { Task } from '../app/task.js';
import { clampPrefetch, type Broker, type Consumer, type Delivery, type QueueDeclaration } from '../broker/types.js';
import { ContentDisallowed, NotRegistered, TaskRevokedError } from '../errors.js';
import type { QueueDefinition } from '../app/config.js';
import { parseTaskMessage, type TaskMessage } from '../protocol/message.js';
import { serializeException } from '../protocol/exceptions.js';
import { buildExceptionMeta, States } from '../protocol/result-meta.js';
import { DisabledBackend } from '../backend/disabled.js';
import { getLogger, isEnabled } from '../support/log.js';
import { decideAck, type AckDecision, type DeliveryEvent, type RunOutcome } from './ack-policy.js';
import { chordPartReturn } from './canvas.js';
import { EtaPlacement, type Parker } from './delayed-delivery.js';
import { EtaScheduler } from './eta.js';
import { executeTask, SoftTimeLimitExceeded, type ExecutionContext } from './execute.js';
import { TaskLifecycle } from './lifecycle.js';
import type { PoolJob } from './pool.js';
import { createPool, type PoolName, type WorkerPool } from './pools/index.js';
import { RateLimiter } from './rate-limit.js';
import { ResultWriter } from './results.js';
import { WorkerServices, type WorkerServiceOptions } from './services.js';
import { WorkerState } from './state.js';

const log = getLogger('MainProcess');

export interface WorkerOptions extends WorkerServiceOptions {
  /** Queues to consume (`-Q`); default: `task_default_queue`. */
  queues?: string[];
  /** Tasks running at once (`-c`); default `worker_concurrency`, else the CPU count as Celery. */
  concurrency?: number;
  /** `--prefetch-multiplier`; default `worker_prefetch_multiplier` (4). 0 = no limit. */
  prefetchMultiplier?: number;
  /** Node name (`-n`), e.g. `celery@host`. */
  hostname: string;
  /** The pool (`-P`): `async` (the main event loop) or `threads` (worker threads); default `worker_pool`. */
  pool?: PoolName;
  /** The module that exports the app (`-A`, resolved): each thread of `-P threads` loads it. */
  appModule?: string;
}

/** Counters, for logs, tests and `stats`. */
export interface WorkerStats {
  received: number;
  succeeded: number;
  failed: number;
  retried: number;
  /** Invalid or unregistered messages rejected. */
  rejected: number;
  /** Expired tasks not run. */
  revoked: number;
  /** ETA tasks parked in the broker. */
  parked: number;
}

interface ConsumerSlot {
  declaration: QueueDeclaration;
  consumer: Consumer | null;
  /** ETA tasks held from this consumer; its prefetch is raised by this much. */
  held: number;
}

/** Why a message was rejected, in a few words, for the log. */
function describeDelivery(delivery: Delivery): string {
  const h = delivery.message.headers;
  const id = typeof h.id === 'string' ? ` id=${h.id}` : '';
  const task = typeof h.task === 'string' ? ` task=${h.task}` : '';
  return `content_type=${delivery.message.contentType ?? '(none)'}${task}${id} body=${delivery.message.body.length}B queue=${delivery.info.queue}`;
}

/** The two 'starting' events, shared: one is decided for every task run. */
const STARTING_EARLY: DeliveryEvent = Object.freeze({ kind: 'starting', acksLate: false });
const STARTING_LATE: DeliveryEvent = Object.freeze({ kind: 'starting', acksLate: true });

function settle(delivery: Delivery, decision: AckDecision): void {
  if (decision === 'ack') delivery.ack();
  else if (decision === 'reject') delivery.reject(false);
  else if (decision === 'requeue') delivery.reject(true);
}

/** Every event a {@link Worker} emits about itself, with its arguments (each task's lifecycle is on `worker.lifecycle`). */
export interface WorkerEvents {
  /** Consuming every queue: `start()` is about to resolve. */
  ready: [];
  /** A message was rejected unread (malformed, refused content type, unregistered task); why, in a few words. */
  rejected: [reason: string];
  /** A task run ended (its state stored) with this outcome. */
  'task-finished': [taskId: string, outcome: RunOutcome];
  /**
   * The broker gave up keeping the consumers attached (reconnect retries ran out, or a queue
   * could not be redeclared): the worker logs it and stops warm by itself; `ts-celery worker`
   * then exits non-zero so a supervisor restarts it.
   */
  fatal: [error: Error];
  /** `stop()` finished: nothing consumes, running tasks are done and their states stored. */
  stopped: [];
  /** A remote `shutdown` asked for a warm shutdown; the CLI exits after it (without a listener, stop() runs). */
  'shutdown-requested': [reason: string];
}

export class Worker extends EventEmitter<WorkerEvents> {
  readonly hostname: string;
  readonly queues: string[];
  readonly stats: WorkerStats = { received: 0, succeeded: 0, failed: 0, retried: 0, rejected: 0, revoked: 0, parked: 0 };
  /** Requests held, revoked ids, counters: what remote control and heartbeats report (Celery's `worker.state`). */
  readonly workerState: WorkerState;
  /** Events, remote control, the state file, metrics. */
  readonly services: WorkerServices;
  /** When start() was called (epoch ms), for `uptime`. */
  startedAt = Date.now();
  /** Each task's lifecycle, as typed events: received, started, succeeded... (lifecycle.ts). */
  readonly lifecycle = new TaskLifecycle();

  /** Runs the tasks (`-P`); resize, terminate and stats go through it. */
  readonly pool: WorkerPool;
  private readonly limiter: RateLimiter;
  private readonly multiplier: number;
  private prefetchPerConsumer: number;
  private readonly eta: EtaScheduler;
  private results!: ResultWriter;
  private broker!: Broker;
  private slots: ConsumerSlot[] = [];
  /** Slots stopped by cancel_consumer: their deliveries are settled, and closed at stop(). */
  private readonly cancelled: ConsumerSlot[] = [];
  private state: 'new' | 'starting' | 'running' | 'stopping' | 'stopped' = 'new';
  private stopping: Promise<void> | null = null;
  private readonly aborters = new Set<AbortController>();
  /** Parks into the broker's delay queues waiting for their confirm. */
  private readonly parking = new Set<Promise<void>>();
  private ctx!: ExecutionContext;
  /** Where not-yet-due ETA tasks wait: memory, the delay queues, or native delayed delivery. */
  private readonly etaPlacement: EtaPlacement;

  constructor(
    readonly app: Celery,
    options: WorkerOptions,
  ) {
    super();
    const conf = app.conf;
    this.hostname = options.hostname;
    const concurrency = options.concurrency ?? conf.worker_concurrency ?? availableParallelism();
    this.queues = options.queues?.length ? [...options.queues] : [conf.task_default_queue];
    this.multiplier = options.prefetchMultiplier ?? conf.worker_prefetch_multiplier;
    this.prefetchPerConsumer = this.multiplier === 0 ? 0 : clampPrefetch(concurrency * this.multiplier);
    this.pool = createPool({ name: options.pool ?? conf.worker_pool, limit: concurrency, app, hostname: this.hostname, appModule: options.appModule });
    this.limiter = new RateLimiter((job) => this.pool.submit(job), conf.worker_disable_rate_limits);
    this.eta = new EtaScheduler(conf.worker_eta_task_limit);
    this.etaPlacement = new EtaPlacement(app, conf.worker_eta_max_hold * 1000);
    this.workerState = new WorkerState(this.hostname);
    this.workerState.follow(this.lifecycle);
    this.services = new WorkerServices(this, options);
  }

  /** Tasks running at once at most (`-c`; pool_grow/pool_shrink change it). */
  get concurrency(): number {
    return this.pool.limit;
  }

  /** Prefetch per consumer before ETA bumps (concurrency × multiplier, clamped to 65,535). */
  get prefetch(): number {
    return this.prefetchPerConsumer;
  }

  /** Tasks running now. */
  get active(): number {
    return this.pool.active;
  }

  /**
   * Loads the app's tasks, connects, and starts consuming every queue. When
   * `stop()` is called before this finished, it resolves without the worker
   * ever becoming ready, closing what it opened after the stop.
   */
  start(): Promise<void> {
    if (this.state !== 'new') return Promise.reject(new Error(`worker already ${this.state}`));
    this.state = 'starting';
    return this.startSteps();
  }

  /** start()'s steps; after each await, a stop() that came meanwhile ends them. */
  private async startSteps(): Promise<void> {
    await this.app.loadTasks();
    if (this.state !== 'starting') return;
    try {
      await this.pool.start(); // -P threads: every thread has loaded the app
    } catch (err) {
      if (this.state !== 'starting') return; // stopped meanwhile: the threads were stopped on purpose
      throw err;
    }
    if (this.state !== 'starting') return;
    this.broker = this.app.broker;
    this.broker.on('fatal', this.onBrokerFatal);
    this.results = new ResultWriter(this.app.backend);
    this.ctx = {
      app: this.app,
      hostname: this.hostname,
      results: this.results,
      aborters: this.aborters,
      storesResults: !(this.app.backend instanceof DisabledBackend),
      timeZone: appTimezone(this.app.conf),
      lifecycle: this.lifecycle,
      running: new Map(),
      timeLimits: new Map(),
      pool: this.pool,
    };
    this.startedAt = Date.now();
    await this.services.beforeConsume();
    if (this.state !== 'starting') return;
    this.slots = this.queues.map((q) => ({ declaration: queueDeclaration(this.app.conf, q), consumer: null, held: 0 }));
    for (const slot of this.slots) {
      const consumer = await this.openConsumer(slot);
      if (this.state !== 'starting') {
        // stop() came while this consumer was being opened, and has already cancelled the
        // ones before it: close this one too (what it delivered meanwhile went back).
        await consumer.close();
        return;
      }
      slot.consumer = consumer;
    }
    await this.etaPlacement.start(this.broker, this.slots.map((s) => s.declaration));
    if (this.state !== 'starting') return;
    await this.services.afterConsume();
    if (this.state !== 'starting') return;
    this.state = 'running';
    log.info(`${this.hostname} ready.`);
    this.emit('ready');
  }

  private openConsumer(slot: ConsumerSlot): Promise<Consumer> {
    return this.broker.consume(slot.declaration, {
      prefetch: clampPrefetch(this.prefetch + slot.held),
      onDelivery: (d) => this.onDelivery(slot, d),
    });
  }

  /** @internal */
  apply(delivery: Delivery, event: DeliveryEvent): void {
    settle(delivery, decideAck(event));
  }

  /** Step 1: read the message, find its task, and check expiry and eta. */
  private onDelivery(slot: ConsumerSlot, delivery: Delivery): void {
    if (this.state === 'stopping' || this.state === 'stopped') {
      // Arrived while the consumer was being cancelled: it never started.
      return this.apply(delivery, { kind: 'not-started' });
    }
    let message: TaskMessage;
    try {
      message = parseTaskMessage(delivery.message);
    } catch (err) {
      this.stats.rejected++;
      const reason = err instanceof ContentDisallowed ? err.message : `invalid task message: ${(err as Error).message}`;
      log.error(`Rejected a message (${reason}) [${describeDelivery(delivery)}]`);
      this.emit('rejected', reason);
      return this.apply(delivery, { kind: 'invalid' });
    }
    this.stats.received++;
    const task = this.app.tasks.get(message.task);
    if (!task) {
      this.lifecycle.emit('task-failed', message, new NotRegistered(message.task), 0);
      this.stats.rejected++;
      log.error(`Received unregistered task of type '${message.task}'.\nThe message has been ignored and discarded. [${describeDelivery(delivery)}]`);
      if (!message.ignoreResult) {
        void this.results.store(buildExceptionMeta(message.id, States.FAILURE, new NotRegistered(message.task), { parentId: message.parentId, timeZone: this.ctx.timeZone }), {
          replyTo: message.replyTo,
          correlationId: message.id,
        });
      }
      this.emit('rejected', `unregistered task ${message.task}`);
      return this.apply(delivery, { kind: 'unregistered' });
    }
    if (isEnabled('info')) log.info(`Task ${message.task}[${message.id}] received`);
    if (this.discardedAsRevoked(delivery, message)) return; // as Python: no task-received for these
    this.lifecycle.emit('task-received', message, delivery);
    this.schedule(slot, delivery, message, task);
  }

  /** Step 2: run now, or hold/park until the eta. */
  private schedule(slot: ConsumerSlot, delivery: Delivery, message: TaskMessage, task: Task<never, unknown>): void {
    if (this.discardedAsRevoked(delivery, message)) return; // its eta came after a revoke or its expiry
    const now = Date.now();
    if (message.eta === null || message.eta <= now) return this.submit(delivery, message, task);
    const wait = message.eta - now;
    const parker = this.etaPlacement.parker(slot.declaration, wait, this.eta.hasRoom());
    if (parker) {
      const parking = this.park(slot, delivery, message, task, wait, parker);
      this.parking.add(parking);
      void parking.finally(() => this.parking.delete(parking));
      return;
    }
    this.hold(slot, delivery, message, task);
  }

  private hold(slot: ConsumerSlot, delivery: Delivery, message: TaskMessage, task: Task<never, unknown>): void {
    this.adjustHeld(slot, +1);
    this.lifecycle.emit('task-scheduled', message);
    this.eta.hold({
      dueAt: message.eta!,
      fire: () => {
        this.adjustHeld(slot, -1);
        this.schedule(slot, delivery, message, task);
      },
      release: () => {
        this.adjustHeld(slot, -1);
        this.release(delivery, message);
      },
    });
  }

  /** @internal Gives a task that never started back to the queue (warm shutdown). */
  release(delivery: Delivery, message: TaskMessage): void {
    this.apply(delivery, { kind: 'not-started' });
    this.lifecycle.emit('task-released', message);
  }

  /**
   * Keeps a held ETA task from using up the prefetch window, as Python Celery does. A broker
   * that cannot park holds every ETA task, so the bump stops at `worker_eta_task_limit`
   * (Celery's `max_prefetch`): past it, memory stays bounded and consuming waits for an eta.
   */
  private adjustHeld(slot: ConsumerSlot, delta: number): void {
    slot.held += delta;
    // Quorum queues: the per-consumer limit is fixed for the consumer's life (Celery's qos_global = False).
    if (!this.etaPlacement.holdRaisesPrefetch(slot.declaration)) return;
    const bump = this.broker.park || this.eta.limit === null ? slot.held : Math.min(slot.held, this.eta.limit);
    if (this.prefetch > 0 && slot.consumer) void slot.consumer.setPrefetch(clampPrefetch(this.prefetch + bump));
  }

  private async park(slot: ConsumerSlot, delivery: Delivery, message: TaskMessage, task: Task<never, unknown>, wait: number, parker: Parker): Promise<void> {
    try {
      const parkedFor = await parker(delivery);
      if (parkedFor !== null) {
        this.stats.parked++;
        log.debug(`Task ${message.task}[${message.id}] due in ${Math.round(wait / 1000)}s: parked in the broker for ${parkedFor / 1000}s`);
        this.apply(delivery, { kind: 'parked' });
        this.lifecycle.emit('task-released', message);
        return;
      }
    } catch (err) {
      log.warning(`Could not park ETA task ${message.task}[${message.id}], holding it in memory: ${(err as Error).message}`);
    }
    if (this.state === 'running') this.hold(slot, delivery, message, task);
    else this.release(delivery, message);
  }

  /**
   * Revoked (by id or stamp) or past its expiry: REVOKED is stored, the
   * message acked, and the task never runs. Checked when it arrives, when its
   * eta comes, and when it gets a slot.
   */
  private discardedAsRevoked(delivery: Delivery, message: TaskMessage): boolean {
    const expired = message.expires !== null && message.expires <= Date.now();
    if (!expired && !this.workerState.isRevoked(message)) return false;
    this.stats.revoked++;
    if (isEnabled('info')) {
      log.info(expired ? `Task ${message.task}[${message.id}] expired: discarded, state REVOKED` : `Discarding revoked task: ${message.task}[${message.id}]`);
    }
    if (expired) this.workerState.revoked.add(message.id); // as Python's maybe_expire
    if (!message.ignoreResult) {
      const reason = new TaskRevokedError(expired ? 'expired' : 'revoked');
      void this.results.store(buildExceptionMeta(message.id, States.REVOKED, reason, { parentId: message.parentId, timeZone: this.ctx.timeZone }), {
        replyTo: message.replyTo,
        correlationId: message.id,
      });
    }
    // A chord member that will never run still counts, or the chord would wait forever (as Celery's mark_as_revoked).
    if (message.embed.chord) void chordPartReturn(this.app, this.results, message, States.REVOKED, serializeException(new TaskRevokedError('expired')));
    this.apply(delivery, { kind: 'expired' });
    this.lifecycle.emit('task-revoked', message, { terminated: false, signum: null, expired });
    return true;
  }

  /** Step 3: wait for its rate limit's token and a concurrency slot, then run. */
  private submit(delivery: Delivery, message: TaskMessage, task: Task<never, unknown>): void {
    this.lifecycle.emit('task-reserved', message);
    this.limiter.submit(task.name, task.options.rateLimit ?? this.app.conf.task_default_rate_limit ?? undefined, new PendingRun(this, delivery, message, task));
  }

  /** @internal Step 4, when a slot is free (PendingRun.run). */
  async runDelivery(delivery: Delivery, message: TaskMessage, task: Task<never, unknown>): Promise<void> {
    // It may have waited for a slot past its expiry, or been revoked meanwhile.
    if (this.discardedAsRevoked(delivery, message)) return;
    if (!delivery.live) {
      // The connection dropped while it waited: RabbitMQ has already given it back.
      this.lifecycle.emit('task-released', message);
      return;
    }
    const acksLate = task.options.acksLate ?? this.app.conf.task_acks_late;
    this.apply(delivery, acksLate ? STARTING_LATE : STARTING_EARLY);
    this.lifecycle.emit('task-started', message, !acksLate);
    const outcome = await executeTask(this.ctx, task, message, delivery);
    if (outcome === 'success' || outcome === 'ignored') this.stats.succeeded++;
    else if (outcome === 'retry') this.stats.retried++;
    else if (outcome === 'terminated') this.stats.revoked++;
    else this.stats.failed++;
    const decision = decideAck({
      kind: 'finished',
      acksLate,
      outcome,
      acksOnFailureOrTimeout: this.app.conf.task_acks_on_failure_or_timeout,
      rejectOnWorkerLost: task.options.rejectOnWorkerLost ?? this.app.conf.task_reject_on_worker_lost ?? false,
    });
    settle(delivery, decision);
    if (decision === 'reject' || decision === 'requeue') this.lifecycle.emit('task-rejected', message, decision === 'requeue');
    // Checked first: emit()'s rest arguments allocate even when nobody listens (the CLI does not).
    if (this.listenerCount('task-finished') > 0) this.emit('task-finished', message.id, outcome);
  }

  /**
   * Warm shutdown: stop consuming, give back every task that has not started,
   * let running tasks finish (and be acked), store their states, and end the
   * subscriptions. The app's own connections stay open (it may still be
   * sending tasks); `app.close()` closes them.
   */
  stop(): Promise<void> {
    this.stopping ??= this.stopSteps();
    return this.stopping;
  }

  private async stopSteps(): Promise<void> {
    const was = this.state;
    // Stop wins over a start() still in progress: start() checks the state after each await
    // and closes what it opens from then on. Not waiting for it keeps a stop during a long
    // connection retry at startup immediate. Deliveries meanwhile go back (onDelivery).
    this.state = 'stopping';
    if (was !== 'new') {
      // Task consumers first: a delivery arriving while stopping is given back, and the
      // broker must not hand it to this consumer again.
      await Promise.allSettled(this.slots.map((s) => s.consumer?.cancel()));
      await this.services.beforeStop();
      const requeued = this.limiter.cancelAll() + this.pool.cancelPending() + this.eta.releaseAll();
      if (requeued > 0) log.info(`Returned ${requeued} task(s) that had not started to the queue`);
      // A park still waiting for its confirm must settle its delivery before the channel closes:
      // closed first, RabbitMQ would requeue the original while the parked copy returns later (two runs).
      await Promise.allSettled([...this.parking]);
      if (this.pool.active > 0) log.warning(`Waiting for ${this.pool.active} running task(s) to finish...`);
      await this.pool.idle();
      await this.pool.close();
      if (this.results) await this.results.flush(10_000); // undefined when stopped before start() connected
      await Promise.allSettled([...this.slots, ...this.cancelled].map((s) => s.consumer?.close()));
      await this.services.afterStop();
    }
    this.broker?.off('fatal', this.onBrokerFatal);
    this.etaPlacement.stop();
    this.state = 'stopped';
    this.emit('stopped');
  }

  /**
   * The broker gave up keeping the consumers attached: a worker that stays up
   * without consuming is the failure operators fear most, so say so and stop.
   */
  private readonly onBrokerFatal = (err: Error): void => {
    log.critical(`consumer: ${err.message}\nNothing is consuming any more: shutting down.`);
    this.emit('fatal', err);
    void this.stop();
  };

  /** Cold shutdown: abort running tasks' signals; the caller exits. Unacked messages are redelivered. */
  abortRunning(): void {
    for (const controller of this.aborters) controller.abort(new SoftTimeLimitExceeded('the worker is shutting down (cold)'));
  }

  // ---------------------------------------------------------------------------
  // What remote control changes at run time (src/control/)

  /** True while the worker is running (not starting, not stopping). */
  get running(): boolean {
    return this.state === 'running';
  }

  /** A remote `shutdown`: the CLI's warm-shutdown path when it listens, else stop(). */
  requestShutdown(reason: string): void {
    if (this.listenerCount('shutdown-requested') > 0) this.emit('shutdown-requested', reason);
    else void this.stop();
  }

  /** Stops a running task (revoke with terminate); false when it is not running here. */
  terminate(taskId: string, signum: number): boolean {
    const run = this.ctx?.running.get(taskId);
    if (!run) return false;
    run.terminate(signum);
    return true;
  }

  /** `pool_grow`/`pool_shrink`: changes `-c` and the prefetch with it, as Celery does. */
  resize(concurrency: number): void {
    this.pool.resize(concurrency);
    if (this.multiplier === 0) return;
    this.prefetchPerConsumer = clampPrefetch(concurrency * this.multiplier);
    for (const slot of this.slots) void slot.consumer?.setPrefetch(clampPrefetch(this.prefetchPerConsumer + slot.held));
  }

  /** Unacked messages this worker may hold now, all consumers (`stats` -> `prefetch_count`). */
  get prefetchCount(): number {
    let n = 0;
    for (const slot of this.slots) if (slot.consumer?.consuming !== false) n += this.prefetch === 0 ? 0 : this.prefetch + slot.held;
    return n;
  }

  /** The queues consumed now. */
  get consuming(): QueueDeclaration[] {
    return this.slots.filter((s) => s.consumer?.consuming !== false).map((s) => s.declaration);
  }

  /** Every consumer slot's subscription (the health check reads them). */
  get consumers(): Array<Consumer | null> {
    return this.slots.map((s) => s.consumer);
  }

  /** `add_consumer`: starts consuming a queue (declared from task_queues, or as `definition` says). */
  async addQueue(definition: QueueDefinition): Promise<boolean> {
    if (this.slots.some((s) => s.declaration.name === definition.name)) return false;
    const listed = this.app.conf.task_queues?.some((q) => q.name === definition.name);
    const declaration = listed ? queueDeclaration(this.app.conf, definition.name) : queueDeclaration({ ...this.app.conf, task_queues: [definition] }, definition.name);
    const slot: ConsumerSlot = { declaration, consumer: null, held: 0 };
    this.slots.push(slot);
    this.queues.push(definition.name);
    try {
      slot.consumer = await this.openConsumer(slot);
    } catch (err) {
      this.slots.splice(this.slots.indexOf(slot), 1);
      this.queues.splice(this.queues.indexOf(definition.name), 1);
      throw err;
    }
    log.info(`Started consuming from ${definition.name}`);
    return true;
  }

  /** `cancel_consumer`: stops consuming a queue; tasks already received still run and are settled. */
  async cancelQueue(name: string): Promise<void> {
    const slot = this.slots.find((s) => s.declaration.name === name);
    log.info(`Canceling queue ${name}`);
    if (!slot) return;
    this.slots.splice(this.slots.indexOf(slot), 1);
    this.queues.splice(this.queues.indexOf(name), 1);
    this.cancelled.push(slot);
    await slot.consumer?.cancel();
  }

  /** `rate_limit`: a task's rate in tasks/s (0 = none). */
  setRateLimit(taskName: string, rate: number): void {
    this.limiter.setRate(taskName, rate);
  }

  /** The rate in force for a task (tasks/s, 0 = none). */
  rateLimitOf(task: Task<never, unknown>): number {
    return this.limiter.rateOf(task.name, task.options.rateLimit ?? this.app.conf.task_default_rate_limit ?? undefined);
  }

  /** `time_limit`: replaces a task's soft/hard time limits (seconds, null = none). */
  setTimeLimits(taskName: string, soft: number | null, hard: number | null): void {
    this.ctx.timeLimits.set(taskName, { soft, hard });
  }
}

/** A task waiting for a concurrency slot (a class: one small object per task, no closures). */
class PendingRun implements PoolJob {
  constructor(
    private readonly worker: Worker,
    private readonly delivery: Delivery,
    private readonly message: TaskMessage,
    private readonly task: Task<never, unknown>,
  ) {}

  run(): Promise<void> {
    return this.worker.runDelivery(this.delivery, this.message, this.task);
  }

  cancel(): void {
    this.worker.release(this.delivery, this.message);
  }
}
