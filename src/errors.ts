/**
 * Error classes, one per layer, all deriving from {@link CeleryError}.
 *
 * Messages say what happened and what to do next; they never contain
 * passwords (URLs are masked before they get here).
 */

/** Base class of every error ts-celery raises. */
export class CeleryError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** A setting is unknown, has the wrong type, or a config module could not be loaded. */
export class ImproperlyConfigured extends CeleryError {
  /** Stored for Python as Celery's own class (e.g. "Cannot replace with an empty chain"). */
  static readonly pythonModule = 'celery.exceptions';
}

/** A message could not be encoded or decoded (bad JSON, wrong body shape, missing header...). */
export class ProtocolError extends CeleryError {}

/** Task arguments or a result cannot be represented as JSON (BigInt, cycles, functions...). */
export class EncodeError extends ProtocolError {}

/** A message's content type is not in `accept_content` (pickle, yaml, msgpack...). */
export class ContentDisallowed extends ProtocolError {
  constructor(readonly contentType: string) {
    super(
      `Refusing to deserialize untrusted content of type ${contentType || '(none)'}: ` +
        `only application/json is accepted`,
    );
  }
}

/** A rate limit string Celery would not parse either. */
export class InvalidRateLimit extends ImproperlyConfigured {
  constructor(
    readonly value: unknown,
    /** The error Python's `rate()` raises for it, as `repr()` (what a Python worker replies). */
    readonly pythonError: string,
  ) {
    super(`Invalid rate limit ${JSON.stringify(value)}: use tasks per second as a number, or "N/s", "N/m", "N/h" (${pythonError})`);
  }
}

/** The broker could not be reached, refused us, or dropped the connection. */
export class BrokerError extends CeleryError {}

/** A publish was not confirmed by the broker (nacked, or the channel closed first). */
export class PublishError extends BrokerError {}

/**
 * The connection (or channel) was lost before the broker confirmed a publish,
 * or the broker nacked it: the message may or may not be stored. ts-celery
 * publishes it again under `task_publish_retry` (on the next node when
 * `broker_url` lists several); this is what `delay()` rejects with once the
 * retries ran out.
 */
export class UnconfirmedPublishError extends PublishError {}

/**
 * The installed amqplib does not read py-amqp's header types through ts-celery's decoder
 * (found by the self-check before the first connection). Retrying cannot fix it; installing
 * an amqplib version ts-celery was tested with does.
 */
export class HeaderDecoderError extends BrokerError {}

/** The result backend could not be reached or answered with an error. */
export class BackendError extends CeleryError {}

/** `get()` was called but no result backend is configured. */
export class NoResultBackend extends BackendError {
  constructor() {
    super(
      'No result backend is configured: set result_backend (e.g. "redis://127.0.0.1:6379/0") ' +
        'to read task results',
    );
  }
}

/** `AsyncResult.get()` gave up waiting. Mirrors `celery.exceptions.TimeoutError`. */
export class TimeoutError extends CeleryError {}

/** A task name that no app has registered. Mirrors `celery.exceptions.NotRegistered`. */
export class NotRegistered extends CeleryError {
  static readonly pythonModule = 'celery.exceptions';
  /** Stored as `exc_message`, as Python stores `NotRegistered(name)`. */
  readonly excArgs: unknown[];
  constructor(readonly taskName: string) {
    super(`Task of kind ${JSON.stringify(taskName)} is not registered`);
    this.excArgs = [taskName];
  }
}

/**
 * A task failed remotely. Raised by `AsyncResult.get()` for FAILURE and REVOKED
 * states; carries Celery's exception shape, whatever language the worker was in.
 *
 * The exception type read from a result is data, never a constructor lookup:
 * `excType` is only copied into `name`.
 */
export class TaskError extends CeleryError {
  /** Python `__qualname__` (or JS class name) of the remote exception, e.g. `ValueError`. */
  readonly excType: string;
  /** The remote exception's message (its args joined the way Python's `str()` does). */
  readonly excMessage: string;
  /** The remote exception's args, as stored (`exc_message`). */
  readonly excArgs: unknown[];
  /** Python module of the exception type (`builtins`, `celery.exceptions`...), or null. */
  readonly excModule: string | null;
  /** The remote traceback text, when the worker stored one. */
  readonly remoteTraceback: string | null;
  /** The task's final state: `FAILURE` or `REVOKED`. */
  readonly state: string;
  /** The id of the task that failed. */
  readonly taskId: string;

  constructor(fields: {
    excType: string;
    excArgs: unknown[];
    excModule: string | null;
    traceback: string | null;
    state: string;
    taskId: string;
  }) {
    const excMessage = formatExcArgs(fields.excArgs);
    super(excMessage ? `${fields.excType}: ${excMessage}` : fields.excType);
    this.name = fields.excType;
    this.excType = fields.excType;
    this.excArgs = fields.excArgs;
    this.excMessage = excMessage;
    this.excModule = fields.excModule;
    this.remoteTraceback = fields.traceback;
    this.state = fields.state;
    this.taskId = fields.taskId;
  }
}

/**
 * Raised inside a task when `self.retry()` exceeded `maxRetries` and no `exc` was given.
 * Mirrors `celery.exceptions.MaxRetriesExceededError`.
 */
export class MaxRetriesExceededError extends CeleryError {
  /** Python module Celery uses for this class, so Python rebuilds the real type. */
  static readonly pythonModule = 'celery.exceptions';
}

/**
 * A task's `expires` passed, or it was revoked. Mirrors `celery.exceptions.TaskRevokedError`.
 */
export class TaskRevokedError extends CeleryError {
  static readonly pythonModule = 'celery.exceptions';
}

/**
 * What `self.retry()` returns: an error that ends the run as "retry" (state
 * RETRY, not a failure). Mirrors `celery.exceptions.Retry`.
 *
 * It is also thenable, so the three ways to write Celery's `raise self.retry()`
 * do the same thing: `throw self.retry()` throws it, while `return self.retry()`
 * and `await self.retry()` reject with it once the retry message is with the
 * broker (or with the publish error when it could not be sent). The worker
 * waits for {@link Retry.sent} before it settles the original message either way.
 */
export class Retry extends CeleryError implements PromiseLike<never> {
  static readonly pythonModule = 'celery.exceptions';
  /**
   * Settles once the message that runs the task again is confirmed: `null`
   * when it is, else the error that kept it from being sent. Never rejects.
   */
  readonly sent: Promise<Error | null>;

  constructor(
    message: string,
    /** The exception that caused the retry, if any (stored with the RETRY state). */
    readonly exc: unknown,
    /** When the retry will run. */
    readonly when: Date,
    /** The publish of the retry message (already sent when omitted). */
    publish: PromiseLike<unknown> = Promise.resolve(),
  ) {
    super(message);
    this.sent = Promise.resolve(publish).then(
      () => null,
      (err: unknown) => (err instanceof Error ? err : new Error(String(err))),
    );
  }

  /** Rejects with this Retry (or the publish error) once the retry message's fate is known. */
  then<T1 = never, T2 = never>(
    onfulfilled?: ((value: never) => T1 | PromiseLike<T1>) | null,
    onrejected?: ((reason: unknown) => T2 | PromiseLike<T2>) | null,
  ): Promise<T1 | T2> {
    return this.sent
      .then((err): never => {
        throw err ?? this;
      })
      .then(onfulfilled, onrejected);
  }
}

/**
 * Thrown inside a task to end the run without storing a state (`self.replace()`
 * raises it after sending the replacement). Mirrors `celery.exceptions.Ignore`.
 */
export class Ignore extends CeleryError {
  static readonly pythonModule = 'celery.exceptions';
}

/**
 * Thrown inside a task to reject its message instead of storing a result, as
 * Celery's `raise Reject(reason, requeue)`. Mirrors `celery.exceptions.Reject`.
 *
 * With `acks_late` the message is rejected: `requeue: true` gives it back to
 * the queue (it is redelivered, `deliveryInfo.redelivered` true) and nothing is
 * stored; `requeue: false` stores FAILURE with this error and drops the message
 * (or dead-letters it). With early ack the message was acked when the task
 * started, so rejecting it does nothing; `requeue: false` still stores
 * FAILURE, as Celery does (issue #4222 of Celery).
 */
export class Reject extends CeleryError {
  static readonly pythonModule = 'celery.exceptions';
  /** Celery's exception args, `(reason, requeue)`: what Python's `get()` rebuilds. */
  readonly excArgs: [unknown, boolean];

  constructor(
    /** Why; stored as the first arg and logged. */
    readonly reason: unknown = null,
    /** Give the message back to the queue (only with `acks_late`). */
    readonly requeue = false,
  ) {
    // Python's repr: `reject requeue=True: reason`.
    super(`reject requeue=${requeue ? 'True' : 'False'}: ${reason === null || reason === undefined ? 'None' : String(reason)}`);
    this.excArgs = [reason ?? null, requeue];
  }
}

/**
 * A chord's header failed (or its body could not be sent): stored as the
 * body's FAILURE, as Python does. Mirrors `celery.exceptions.ChordError`.
 */
export class ChordError extends CeleryError {
  static readonly pythonModule = 'celery.exceptions';
}

/** Hard time limit reached: the task was stopped. Python stores it with this type and module, its args `[limit]`. */
export class TimeLimitExceeded extends CeleryError {
  static readonly pythonModule = 'billiard.exceptions';
  /** Stored as `exc_message`, as billiard's `TimeLimitExceeded(limit)`; the time limit in seconds, when known. */
  readonly excArgs: unknown[] | undefined;
  constructor(message: string, limitSeconds?: number) {
    super(message);
    this.excArgs = limitSeconds === undefined ? undefined : [limitSeconds];
  }
}

/** Soft time limit reached: the task's `self.signal` aborts with this. */
export class SoftTimeLimitExceeded extends CeleryError {
  static readonly pythonModule = 'billiard.exceptions';
}

/**
 * The pool thread (or process) running a task ended before the task did: it crashed
 * (an uncaught error outside the task, out of memory) or was killed. Mirrors
 * `billiard.exceptions.WorkerLostError`, stored as Python stores it.
 */
export class WorkerLostError extends CeleryError {
  static readonly pythonModule = 'billiard.exceptions';
}

/**
 * What a task threw in a worker thread (`-P threads`), carried to the main thread as data:
 * the exception exactly as the thread would store it (type, args, module), its traceback
 * and stack. The main thread stores, logs and retries with it as with the error itself.
 */
export class ThreadTaskError extends TaskError {
  /** True when the error matched the task's `autoretryFor` classes (checked in the thread, where they live). */
  readonly autoretry: boolean;

  constructor(fields: {
    excType: string;
    excArgs: unknown[];
    excModule: string | null;
    traceback: string | null;
    taskId: string;
    message: string;
    stack: string;
    autoretry: boolean;
  }) {
    super({ ...fields, state: 'FAILURE' });
    // The thread's own message and stack, so the traceback and the log read as in the async pool.
    this.message = fields.message;
    this.stack = fields.stack;
    this.autoretry = fields.autoretry;
  }
}

/** Python's `str(exc)` for an exception built from `args`. */
export function formatExcArgs(args: unknown[]): string {
  if (args.length === 0) return '';
  if (args.length === 1) return typeof args[0] === 'string' ? args[0] : JSON.stringify(args[0]) ?? '';
  return JSON.stringify(args);
}

/**
 * A `beat_schedule` entry or a crontab that cannot be used: a bad crontab
 * field (Celery raises `ValueError`/`ParseException` for these), a missing
 * task name, an unknown option. The message names the entry and the field.
 */
export class ScheduleError extends ImproperlyConfigured {}
