/**
 * Tasks: what `app.task(...)` returns.
 *
 * `delay()` and `applyAsync()` are typed from the task function, so wrong
 * argument types do not compile, and `AsyncResult.get()` resolves to the
 * function's (awaited) return type.
 */
import type { DeliveryInfo } from '../broker/types.js';
import type { Signature } from '../protocol/message.js';
import type { AsyncResult } from '../result/async-result.js';
import type { Celery } from './celery.js';
import { ImproperlyConfigured, type Retry } from '../errors.js';
import { didYouMean, looseCase } from '../support/suggest.js';

/** An error class, for `autoretryFor`. */
export type ErrorClass = abstract new (...args: never[]) => Error;

/** Per-task options, Celery's names in camelCase. */
export interface TaskOptions {
  /** Registered name; Python producers send this (e.g. `ccp_send_sms_code`). Defaults to the function's name. */
  name?: string;
  /** Pass the task context (`self`) as the first argument. */
  bind?: boolean;
  /** Retries allowed before failing (default 3; null = unlimited). */
  maxRetries?: number | null;
  /** Seconds before a retry when no countdown/backoff applies (default 180). */
  defaultRetryDelay?: number;
  /**
   * Exponential backoff for retries: the n-th retry waits `retryBackoff × 2^(n-1)` s
   * (true = factor 1). Applies to `self.retry()` without a countdown and to `autoretryFor`.
   */
  retryBackoff?: number | boolean;
  /** Cap for the backoff, seconds (default 600). */
  retryBackoffMax?: number;
  /** Randomize the backoff delay within [0, delay] (default false). */
  retryJitter?: boolean;
  /** Errors that trigger an automatic retry with the backoff policy. */
  autoretryFor?: ErrorClass[];
  /** Ack after the task finishes instead of when it starts (`task_acks_late`). */
  acksLate?: boolean;
  /**
   * Accepted for compatibility, without effect: there are no pool child processes
   * to lose. When the worker process itself dies, RabbitMQ redelivers its unacked
   * (acksLate) messages, as if this were true.
   */
  rejectOnWorkerLost?: boolean;
  /** Store no result (`task_ignore_result`). */
  ignoreResult?: boolean;
  /** Store STARTED when the task begins (`task_track_started`). */
  trackStarted?: boolean;
  /** Hard time limit in seconds: the task fails with TimeLimitExceeded. */
  timeLimit?: number;
  /** Soft time limit in seconds: the task's `signal` aborts with SoftTimeLimitExceeded. */
  softTimeLimit?: number;
  /** Default queue for this task (task_routes and applyAsync options win). */
  queue?: string;
  routingKey?: string;
  priority?: number;
  /** Default expiry in seconds for messages of this task. */
  expires?: number;
  /**
   * Most tasks of this kind a worker starts, as Celery's `rate_limit`: `'10/s'`,
   * `'100/m'`, `'1000/h'`, or a number per second. Per worker, not global;
   * tasks over the limit wait on the worker (their messages stay unacked).
   */
  rateLimit?: string | number;
  /**
   * Parameter names, for mapping kwargs from Python callers onto positional
   * parameters. Read from the function's source when not given.
   */
  params?: string[];
}

/** Options for one call, as `apply_async` takes them. */
export interface ApplyOptions {
  /** Use this id instead of a new uuid. */
  taskId?: string;
  /** Run no earlier than this many seconds from now. */
  countdown?: number;
  /** Run no earlier than this time. */
  eta?: Date | string | number;
  /** Seconds from now, or an absolute time, after which the task is not run (REVOKED). */
  expires?: number | Date | string;
  queue?: string;
  routingKey?: string;
  exchange?: string;
  /** AMQP priority (only honoured on queues with x-max-priority). */
  priority?: number;
  ignoreResult?: boolean;
  /** Hard time limit override, seconds. */
  timeLimit?: number;
  /** Soft time limit override, seconds. */
  softTimeLimit?: number;
  /** Name shown in logs and monitors instead of the task name. */
  shadow?: string;
  /** Extra message headers (they appear on the worker's `request`). */
  headers?: Record<string, unknown>;
  /** Parent task id (set automatically when sending from inside a task). */
  parentId?: string;
  /** Root task id of the workflow. */
  rootId?: string;
  /** Tasks to run with this task's return value prepended to their args, on success (Celery's `link`). */
  link?: Signature | Signature[];
  /** Tasks to run with this task's id, on failure (Celery's `link_error`). */
  linkError?: Signature | Signature[];
}

/** Every {@link TaskOptions} key (the compiler checks the list is complete). */
const TASK_OPTION_NAMES = [
  'name', 'bind', 'maxRetries', 'defaultRetryDelay', 'retryBackoff', 'retryBackoffMax', 'retryJitter', 'autoretryFor',
  'acksLate', 'rejectOnWorkerLost', 'ignoreResult', 'trackStarted', 'timeLimit', 'softTimeLimit', 'queue', 'routingKey',
  'priority', 'expires', 'rateLimit', 'params',
] as const satisfies ReadonlyArray<keyof TaskOptions>;

/** Every {@link ApplyOptions} key. */
const APPLY_OPTION_NAMES = [
  'taskId', 'countdown', 'eta', 'expires', 'queue', 'routingKey', 'exchange', 'priority', 'ignoreResult', 'timeLimit',
  'softTimeLimit', 'shadow', 'headers', 'parentId', 'rootId', 'link', 'linkError',
] as const satisfies ReadonlyArray<keyof ApplyOptions>;

// Compile-time: adding an option to an interface without listing it above is an error here.
type Unlisted = Exclude<keyof TaskOptions, (typeof TASK_OPTION_NAMES)[number]> | Exclude<keyof ApplyOptions, (typeof APPLY_OPTION_NAMES)[number]>;
const allListed: [Unlisted] extends [never] ? true : Unlisted = true;
void allListed;

const TASK_OPTIONS: ReadonlySet<string> = new Set(TASK_OPTION_NAMES);
const APPLY_OPTIONS: ReadonlySet<string> = new Set(APPLY_OPTION_NAMES);

/**
 * Throws {@link ImproperlyConfigured} for a key that is not a task option,
 * naming the closest one (`maxRetrys`, or Celery's `max_retries` -> `maxRetries`):
 * a typo would otherwise be ignored silently.
 */
export function checkTaskOptions(taskName: string, options: object): void {
  for (const key of Object.keys(options)) {
    if (!TASK_OPTIONS.has(key)) {
      throw new ImproperlyConfigured(
        `Unknown task option ${JSON.stringify(key)} for task ${JSON.stringify(taskName)}${didYouMean(key, TASK_OPTION_NAMES, { normalize: looseCase })}`,
      );
    }
  }
}

/** As {@link checkTaskOptions}, for the options of one `applyAsync`/`sendTask` call. */
export function checkApplyOptions(options: object): void {
  // A for-in over the (usually empty) options: nothing is allocated on the delay() path.
  for (const key in options) {
    if (!APPLY_OPTIONS.has(key)) {
      throw new ImproperlyConfigured(`Unknown applyAsync option ${JSON.stringify(key)}${didYouMean(key, APPLY_OPTION_NAMES, { normalize: looseCase })}`);
    }
  }
}

/** `self.request` inside a bound task: what the worker knows about this run. */
export interface TaskRequest {
  id: string;
  task: string;
  args: unknown[];
  kwargs: Record<string, unknown>;
  retries: number;
  eta: Date | null;
  expires: Date | null;
  /** The worker's node name, e.g. `celery@host`. */
  hostname: string;
  deliveryInfo: DeliveryInfo;
  parentId: string | null;
  rootId: string | null;
  groupId: string | null;
  correlationId: string;
  replyTo: string | null;
  origin: string | null;
  timeLimit: [number | null, number | null];
  /** Headers beyond Celery's standard ones (custom `headers`, stamps...). */
  headers: Record<string, unknown>;
}

/** `self.retry(...)` options, as in Celery. */
export interface RetryOptions {
  /** The error that caused the retry; raised as the final error when retries run out. */
  exc?: unknown;
  /** Seconds to wait; default: the backoff policy, else `defaultRetryDelay`. */
  countdown?: number;
  /** Absolute time of the retry. */
  eta?: Date;
  /** Override the retry limit for this call. */
  maxRetries?: number | null;
  /** Replace the arguments for the retried run. */
  args?: unknown[];
  kwargs?: Record<string, unknown>;
  queue?: string;
}

/** `self` of a bound task. */
export interface BoundTask {
  readonly name: string;
  readonly app: Celery;
  readonly request: TaskRequest;
  readonly maxRetries: number | null;
  /**
   * Aborted when the task should stop: soft time limit reached, or the worker
   * is shutting down cold. Pass it to fetch() and friends.
   */
  readonly signal: AbortSignal;
  /**
   * Schedules a retry of this task (same id, `retries + 1`, after the countdown)
   * and returns a `Retry` that ends the run: `throw self.retry()` (Celery's
   * `raise self.retry()`), `return self.retry()` and `await self.retry()` all
   * work. Past `maxRetries` it throws `exc` (or `MaxRetriesExceededError`) at
   * once and the task fails.
   */
  retry(options?: RetryOptions): Retry;
}

/** A task function as the worker calls it. */
export type TaskFunction = (...args: never[]) => unknown;

/** The part of the app a task needs to send itself. */
export interface TaskHost {
  sendTaskFrom<R>(task: Task<never, R>, args: unknown[], kwargs: Record<string, unknown>, options: ApplyOptions): Promise<AsyncResult<R>>;
  asyncResult<R>(id: string): AsyncResult<R>;
}

/** A registered task. `A` = its arguments, `R` = what `get()` resolves to. */
export class Task<A extends unknown[] = unknown[], R = unknown> {
  constructor(
    /** The app it belongs to. */
    readonly app: Celery & TaskHost,
    /** Registered name. */
    readonly name: string,
    /** The options it was declared with. */
    readonly options: Readonly<TaskOptions>,
    /** The function, as written (with `self` first when bound). */
    readonly fn: TaskFunction,
  ) {}

  /** True when the function takes `self` first. */
  get bound(): boolean {
    return this.options.bind === true;
  }

  /** Sends the task with positional arguments; resolves once the broker has it. */
  delay(...args: A): Promise<AsyncResult<R>> {
    return this.app.sendTaskFrom<R>(this as unknown as Task<never, R>, args, {}, {});
  }

  /** Sends the task with arguments, keyword arguments and options (countdown, eta, queue...). */
  applyAsync(args?: Partial<A> | [], kwargs?: Record<string, unknown>, options: ApplyOptions = {}): Promise<AsyncResult<R>> {
    return this.app.sendTaskFrom<R>(this as unknown as Task<never, R>, (args ?? []) as unknown[], kwargs ?? {}, options);
  }

  /** A signature of this task (`add.s(2)`), e.g. for `link`: the parent's result is prepended to `args`. */
  s(...args: Partial<A> | []): Signature {
    return { task: this.name, args: args as unknown[], kwargs: {}, options: {}, subtask_type: null, immutable: false };
  }

  /** An immutable signature (`add.si(2, 3)`): called with exactly these args, ignoring the parent's result. */
  si(...args: A): Signature {
    return { task: this.name, args, kwargs: {}, options: {}, subtask_type: null, immutable: true };
  }

  /** A result handle for an id of this task. */
  asyncResult(id: string): AsyncResult<R> {
    return this.app.asyncResult<R>(id);
  }

  toString(): string {
    return `<@task: ${this.name}>`;
  }
}
