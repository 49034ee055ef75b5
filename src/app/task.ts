/**
 * Tasks: what `app.task(...)` returns.
 *
 * `delay()` and `applyAsync()` are typed from the task function, so wrong
 * argument types do not compile, and `AsyncResult.get()` resolves to the
 * function's (awaited) return type.
 */
import type { DeliveryInfo } from '../broker/types.js';
import { ChunksSignature, MapSignature } from '../canvas/maps.js';
import type { SignatureLike, SignatureOptions } from '../canvas/options.js';
import { Signature, signature } from '../canvas/signature.js';
import type { SignatureDict } from '../protocol/message.js';
import type { AsyncResult, ResultNode } from '../result/async-result.js';
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
   * With `acksLate`, a task whose pool thread died under it (`-P threads`: the thread
   * crashed or ran out of memory) goes back to the queue instead of failing with
   * `WorkerLostError` (`task_reject_on_worker_lost`). When the worker process itself dies,
   * RabbitMQ redelivers its unacked messages in any case.
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
  /**
   * Called by `self.replace(sig)` with the complete replacement (the steps that
   * followed this task in its chain included) just before it is sent, as
   * Celery's `Task.on_replace` (5.3+), which stamping uses:
   * `onReplace: (sig) => { sig.stamp(visitor) }`. Unlike Python's, it cannot
   * skip the sending (Celery's `super().on_replace(sig)`); the worker sends after it.
   */
  onReplace?: (sig: Signature, self: BoundTask) => void | Promise<void>;
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
  link?: SignatureLike | SignatureLike[];
  /** Tasks to run with this task's id, on failure (Celery's `link_error`). */
  linkError?: SignatureLike | SignatureLike[];
  // Canvas fields: set by chains, groups and chords (and by Python producers).
  /** The group this task belongs to (header `group`). */
  groupId?: string;
  /** Its position in the group (header `group_index`). */
  groupIndex?: number;
  /** The chord body to run once this task, a chord header member, and its siblings finished (`embed.chord`). */
  chord?: SignatureLike;
  /** The chain steps after this task, last step first (`embed.chain`). */
  chain?: SignatureLike[];
  /** Where rpc:// replies go (default: this app's reply queue). */
  replyTo?: string;
  /** How many times the task was replaced with `self.replace()` (header `replaced_task_nesting`). */
  replacedTaskNesting?: number;
  /** Record the result in the sending task's `children` (default true, inside a task). */
  addToParent?: boolean;
  /** Route as if the task had this name (`celery.starmap` messages route as their task). */
  routeName?: string;
}

/** Every {@link TaskOptions} key (the compiler checks the list is complete). */
const TASK_OPTION_NAMES = [
  'name', 'bind', 'maxRetries', 'defaultRetryDelay', 'retryBackoff', 'retryBackoffMax', 'retryJitter', 'autoretryFor',
  'acksLate', 'rejectOnWorkerLost', 'ignoreResult', 'trackStarted', 'timeLimit', 'softTimeLimit', 'queue', 'routingKey',
  'priority', 'expires', 'rateLimit', 'params', 'onReplace',
] as const satisfies ReadonlyArray<keyof TaskOptions>;

/** Every {@link ApplyOptions} key. */
const APPLY_OPTION_NAMES = [
  'taskId', 'countdown', 'eta', 'expires', 'queue', 'routingKey', 'exchange', 'priority', 'ignoreResult', 'timeLimit',
  'softTimeLimit', 'shadow', 'headers', 'parentId', 'rootId', 'link', 'linkError',
  'groupId', 'groupIndex', 'chord', 'chain', 'replyTo', 'replacedTaskNesting', 'addToParent', 'routeName',
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
  /**
   * The message's properties as Celery's `request.properties` (kombu's
   * `message.properties`): for AMQP `content_type`, `application_headers`,
   * `delivery_mode`, `priority`, `correlation_id`, `reply_to`, `app_id`... as sent.
   */
  properties: Record<string, unknown>;
  /** The group id (Celery's `request.group`; same as `groupId`). */
  group: string | null;
  /** The task's position in its group or chord header (`group_index`). */
  groupIndex: number | null;
  /** The chord body, when this task is a chord header member (`request.chord`). */
  chord: SignatureDict | null;
  /** Callbacks (`link`) of this task. */
  callbacks: SignatureDict[] | null;
  /** Errbacks (`link_error`) of this task. */
  errbacks: SignatureDict[] | null;
  /** The chain steps after this task, last step first. */
  chain: SignatureDict[] | null;
  /** How many replacements led to this task (`replaced_task_nesting`). */
  replacedTaskNesting: number;
  /** The names of this task's stamps (header `stamped_headers`; Celery's `request.stamped_headers`), [] when none. */
  stampedHeaders: string[];
  /** Stamp name -> value (header `stamps`; Celery's `request.stamps`), one entry per stamped header. */
  stamps: Record<string, unknown>;
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
  /**
   * When the retried run expires: seconds from now, a Date, or null for never (Celery's
   * `retry(expires=...)`). Default: the task's current `expires`, kept as Celery keeps it.
   */
  expires?: number | Date | null;
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
  /**
   * Replaces this task with `sig` (a task, chain, group or chord), as Celery's
   * `self.replace()`: the replacement keeps this task's id, group, chord and
   * place in its chain, and whoever waits for this task gets its result. Ends
   * the run (rejects with `Ignore`); `return` or `await` it.
   */
  replace(sig: Signature<any, any, any>): Promise<never>;
  /**
   * Adds `sig` to the chord this task is a header member of: the body then
   * also waits for it. Sends it unless `lazy`. Needs the Redis backend.
   */
  addToChord(sig: Signature<any, any, any>, options?: { lazy?: boolean }): Promise<Signature | ResultNode>;
}

/** Every suffix of a parameter list: what `s()` may bind (the previous result fills the first missing parameter). */
type Suffixes<A extends unknown[]> = A extends [unknown, ...infer Rest] ? A | Suffixes<Rest> : A;
type DropLast<A extends unknown[], P extends unknown[]> = P extends [unknown, ...infer PR]
  ? A extends [...infer H, unknown]
    ? DropLast<H, PR>
    : []
  : A;
/** The parameter a previous step's result fills: the one before the bound suffix (unknown when it cannot be told). */
type PrependedInput<A extends unknown[], P extends unknown[]> = DropLast<A, P> extends [...unknown[], infer L] ? L : unknown;

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

  /**
   * A signature of this task (`add.s(2)`), bound to the app: in a chain or as
   * a `link`, the previous result is prepended to `args` (so `args` are the
   * task's last parameters).
   */
  s<const P extends Suffixes<A>>(...args: P): Signature<R, PrependedInput<A, P>, AsyncResult<R>> {
    return new Signature<R, PrependedInput<A, P>, AsyncResult<R>>(this.name, [...args], {}, {}, {}, this.app);
  }

  /** An immutable signature (`add.si(2, 3)`): called with exactly these args, ignoring the parent's result. */
  si(...args: A): Signature<R, unknown, AsyncResult<R>> {
    return new Signature<R, unknown, AsyncResult<R>>(this.name, [...args], {}, {}, { immutable: true }, this.app);
  }

  /** A signature with keyword arguments and options (Python's `task.signature(args, kwargs, **options)`). */
  signature(args: unknown[] = [], kwargs: Record<string, unknown> = {}, options: SignatureOptions = {}): Signature<R, any, AsyncResult<R>> {
    return signature<R>(this.name, args, kwargs, options, this.app);
  }

  /** One message that runs this task once per item, resolving with the list of results (`celery.map`). */
  map(it: Array<A[0]>): MapSignature<R> {
    return new MapSignature<R>('xmap', this.signature(), it, {}, this.app);
  }

  /** One message that runs this task once per argument list (`celery.starmap`). */
  starmap(it: A[]): MapSignature<R> {
    return new MapSignature<R>('xstarmap', this.signature(), it, {}, this.app);
  }

  /** `it` split into parts of `n` argument lists, each part one `celery.starmap` message, all in a group. */
  chunks(it: A[], n: number): ChunksSignature<R> {
    return new ChunksSignature<R>(this.signature(), it, n, {}, this.app);
  }

  /** A result handle for an id of this task. */
  asyncResult(id: string): AsyncResult<R> {
    return this.app.asyncResult<R>(id);
  }

  toString(): string {
    return `<@task: ${this.name}>`;
  }
}
