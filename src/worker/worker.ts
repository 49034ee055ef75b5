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
import { parseTaskMessage, type TaskMessage } from '../protocol/message.js';
import { buildExceptionMeta, States } from '../protocol/result-meta.js';
import { DisabledBackend } from '../backend/disabled.js';
import { getLogger, isEnabled } from '../support/log.js';
import { decideAck, type AckDecision, type DeliveryEvent, type RunOutcome } from './ack-policy.js';
import { EtaScheduler } from './eta.js';
import { executeTask, SoftTimeLimitExceeded, type ExecutionContext } from './execute.js';
import { ConcurrencyPool, type PoolJob } from './pool.js';
import { ResultWriter } from './results.js';

const log = getLogger('MainProcess');

export interface WorkerOptions {
  /** Queues to consume (`-Q`); default: `task_default_queue`. */
  queues?: string[];
  /** Tasks running at once (`-c`); default `worker_concurrency`, else the CPU count as Celery. */
  concurrency?: number;
  /** `--prefetch-multiplier`; default `worker_prefetch_multiplier` (4). 0 = no limit. */
  prefetchMultiplier?: number;
  /** Node name (`-n`), e.g. `celery@host`. */
  hostname: string;
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

function settle(delivery: Delivery, decision: AckDecision): void {
  if (decision === 'ack') delivery.ack();
  else if (decision === 'reject') delivery.reject(false);
  else if (decision === 'requeue') delivery.reject(true);
}

/** Every event a {@link Worker} emits, with its arguments. */
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
}

export class Worker extends EventEmitter<WorkerEvents> {
  readonly hostname: string;
  readonly concurrency: number;
  readonly queues: string[];
  /** Prefetch per consumer before ETA bumps (concurrency × multiplier, clamped to 65,535). */
  readonly prefetch: number;
  readonly stats: WorkerStats = { received: 0, succeeded: 0, failed: 0, retried: 0, rejected: 0, revoked: 0, parked: 0 };

  private readonly pool: ConcurrencyPool;
  private readonly eta: EtaScheduler;
  private results!: ResultWriter;
  private broker!: Broker;
  private slots: ConsumerSlot[] = [];
  private state: 'new' | 'starting' | 'running' | 'stopping' | 'stopped' = 'new';
  private stopping: Promise<void> | null = null;
  private readonly aborters = new Set<AbortController>();
  /** Parks into the broker's delay queues waiting for their confirm. */
  private readonly parking = new Set<Promise<void>>();
  private ctx!: ExecutionContext;
  private readonly maxHoldMs: number;

  constructor(
    readonly app: Celery,
    options: WorkerOptions,
  ) {
    super();
    const conf = app.conf;
    this.hostname = options.hostname;
    this.concurrency = options.concurrency ?? conf.worker_concurrency ?? availableParallelism();
    this.queues = options.queues?.length ? options.queues : [conf.task_default_queue];
    const multiplier = options.prefetchMultiplier ?? conf.worker_prefetch_multiplier;
    this.prefetch = multiplier === 0 ? 0 : clampPrefetch(this.concurrency * multiplier);
    this.pool = new ConcurrencyPool(this.concurrency);
    this.eta = new EtaScheduler(conf.worker_eta_task_limit);
    this.maxHoldMs = conf.worker_eta_max_hold * 1000;
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
    };
    this.slots = this.queues.map((q) => ({ declaration: queueDeclaration(this.app.conf, q), consumer: null, held: 0 }));
    for (const slot of this.slots) {
      const consumer = await this.broker.consume(slot.declaration, {
        prefetch: this.prefetch,
        onDelivery: (d) => this.onDelivery(slot, d),
      });
      if (this.state !== 'starting') {
        // stop() came while this consumer was being opened, and has already cancelled the
        // ones before it: close this one too (what it delivered meanwhile went back).
        await consumer.close();
        return;
      }
      slot.consumer = consumer;
    }
    this.state = 'running';
    log.info(`${this.hostname} ready.`);
    this.emit('ready');
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
    this.schedule(slot, delivery, message, task);
  }

  /** Step 2: run now, or hold/park until the eta. */
  private schedule(slot: ConsumerSlot, delivery: Delivery, message: TaskMessage, task: Task<never, unknown>): void {
    const now = Date.now();
    if (message.expires !== null && message.expires <= now) return this.revokeExpired(delivery, message);
    if (message.eta === null || message.eta <= now) return this.submit(delivery, message, task);
    const wait = message.eta - now;
    if (this.broker.park && (wait > this.maxHoldMs || !this.eta.hasRoom())) {
      const parking = this.park(slot, delivery, message, task, wait);
      this.parking.add(parking);
      void parking.finally(() => this.parking.delete(parking));
      return;
    }
    this.hold(slot, delivery, message, task);
  }

  private hold(slot: ConsumerSlot, delivery: Delivery, message: TaskMessage, task: Task<never, unknown>): void {
    this.adjustHeld(slot, +1);
    this.eta.hold({
      dueAt: message.eta!,
      fire: () => {
        this.adjustHeld(slot, -1);
        this.schedule(slot, delivery, message, task);
      },
      release: () => {
        this.adjustHeld(slot, -1);
        this.apply(delivery, { kind: 'not-started' });
      },
    });
  }

  /**
   * Keeps a held ETA task from using up the prefetch window, as Python Celery does. A broker
   * that cannot park holds every ETA task, so the bump stops at `worker_eta_task_limit`
   * (Celery's `max_prefetch`): past it, memory stays bounded and consuming waits for an eta.
   */
  private adjustHeld(slot: ConsumerSlot, delta: number): void {
    slot.held += delta;
    const bump = this.broker.park || this.eta.limit === null ? slot.held : Math.min(slot.held, this.eta.limit);
    if (this.prefetch > 0 && slot.consumer) void slot.consumer.setPrefetch(clampPrefetch(this.prefetch + bump));
  }

  private async park(slot: ConsumerSlot, delivery: Delivery, message: TaskMessage, task: Task<never, unknown>, wait: number): Promise<void> {
    try {
      const parkedFor = await this.broker.park!(delivery, wait);
      if (parkedFor !== null) {
        this.stats.parked++;
        log.debug(`Task ${message.task}[${message.id}] due in ${Math.round(wait / 1000)}s: parked in the broker for ${parkedFor / 1000}s`);
        return this.apply(delivery, { kind: 'parked' });
      }
    } catch (err) {
      log.warning(`Could not park ETA task ${message.task}[${message.id}], holding it in memory: ${(err as Error).message}`);
    }
    if (this.state === 'running') this.hold(slot, delivery, message, task);
    else this.apply(delivery, { kind: 'not-started' });
  }

  private revokeExpired(delivery: Delivery, message: TaskMessage): void {
    this.stats.revoked++;
    if (isEnabled('info')) log.info(`Task ${message.task}[${message.id}] expired: discarded, state REVOKED`);
    if (!message.ignoreResult) {
      void this.results.store(buildExceptionMeta(message.id, States.REVOKED, new TaskRevokedError('expired'), { parentId: message.parentId, timeZone: this.ctx.timeZone }), {
        replyTo: message.replyTo,
        correlationId: message.id,
      });
    }
    this.apply(delivery, { kind: 'expired' });
  }

  /** Step 3: wait for a concurrency slot, then run. */
  private submit(delivery: Delivery, message: TaskMessage, task: Task<never, unknown>): void {
    this.pool.submit(new PendingRun(this, delivery, message, task));
  }

  /** @internal Step 4, when a slot is free (PendingRun.run). */
  async runDelivery(delivery: Delivery, message: TaskMessage, task: Task<never, unknown>): Promise<void> {
    // It may have waited for a slot past its expiry.
    if (message.expires !== null && message.expires <= Date.now()) return this.revokeExpired(delivery, message);
    if (!delivery.live) {
      // The connection dropped while it waited: RabbitMQ has already given it back.
      return;
    }
    const acksLate = task.options.acksLate ?? this.app.conf.task_acks_late;
    this.apply(delivery, { kind: 'starting', acksLate });
    const outcome = await executeTask(this.ctx, task, message, delivery);
    if (outcome === 'success') this.stats.succeeded++;
    else if (outcome === 'retry') this.stats.retried++;
    else this.stats.failed++;
    this.apply(delivery, {
      kind: 'finished',
      acksLate,
      outcome,
      acksOnFailureOrTimeout: this.app.conf.task_acks_on_failure_or_timeout,
    });
    this.emit('task-finished', message.id, outcome);
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
      await Promise.allSettled(this.slots.map((s) => s.consumer?.cancel()));
      const requeued = this.pool.cancelPending() + this.eta.releaseAll();
      if (requeued > 0) log.info(`Returned ${requeued} task(s) that had not started to the queue`);
      // A park still waiting for its confirm must settle its delivery before the channel closes:
      // closed first, RabbitMQ would requeue the original while the parked copy returns later (two runs).
      await Promise.allSettled([...this.parking]);
      if (this.pool.active > 0) log.warning(`Waiting for ${this.pool.active} running task(s) to finish...`);
      await this.pool.idle();
      if (this.results) await this.results.flush(10_000); // undefined when stopped before start() connected
      await Promise.allSettled(this.slots.map((s) => s.consumer?.close()));
    }
    this.broker?.off('fatal', this.onBrokerFatal);
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
    this.worker.apply(this.delivery, { kind: 'not-started' });
  }
}
