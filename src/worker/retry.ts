/**
 * Retries: when the next run happens, and the message that schedules it.
 *
 * A retry is a new message with the same task id, `retries + 1` and an eta,
 * published back to the queue the task came from: exactly what a Python
 * worker publishes, so a Python worker can pick it up too, and vice versa.
 */
import type { CelerySettings } from '../app/config.js';
import { nativeDelayedRoute } from '../app/delayed-delivery.js';
import { queueDeclaration } from '../app/routing.js';
import type { RetryOptions, TaskOptions } from '../app/task.js';
import { stripDelayPrefix } from '../broker/native-delayed-delivery.js';
import type { DeliveryInfo, PublishRoute, QueueDeclaration } from '../broker/types.js';
import type { Param } from './arguments.js';
import { MaxRetriesExceededError } from '../errors.js';
import { withoutBrokerHeaders, type TaskMessage } from '../protocol/message.js';
import { argsRepr, kwargsRepr } from '../protocol/repr.js';

/** Celery's defaults. */
export const DEFAULT_MAX_RETRIES = 3;
export const DEFAULT_RETRY_DELAY = 180;
export const DEFAULT_BACKOFF_MAX = 600;

/**
 * Seconds before retry number `retries + 1`. With `retryBackoff: b` the n-th
 * retry waits b × 2^(n-1) s (3, 6, 12 s for b = 3), capped at
 * `retryBackoffMax`, optionally jittered to a random whole number in [0, delay]
 * (Celery's full jitter). Without backoff: `defaultRetryDelay`.
 *
 * Python Celery applies the backoff only to `autoretry_for`; here it also
 * applies to `self.retry()` without a countdown, which is what the Meiduo
 * tutorial promises (see the README's differences table).
 */
export function retryCountdown(options: Readonly<TaskOptions>, retriesSoFar: number, random: () => number = Math.random): number {
  const backoff = options.retryBackoff;
  if (backoff === undefined || backoff === false) return options.defaultRetryDelay ?? DEFAULT_RETRY_DELAY;
  const factor = backoff === true ? 1 : Math.max(0, backoff);
  const delay = Math.min(options.retryBackoffMax ?? DEFAULT_BACKOFF_MAX, factor * 2 ** retriesSoFar);
  return options.retryJitter ? Math.floor(random() * (Math.floor(delay) + 1)) : delay;
}

/** Celery's message for running out of retries. */
export function maxRetriesExceeded(taskName: string, message: TaskMessage): MaxRetriesExceededError {
  return new MaxRetriesExceededError(
    `Can't retry ${taskName}[${message.id}] args:${argsRepr(message.args)} kwargs:${kwargsRepr(message.kwargs)}`,
  );
}

/**
 * What `self.retry()` throws when the task may not retry any more (`maxRetries`, or the
 * call's own): its `exc`, else MaxRetriesExceededError, as Python's `retry()` raises.
 */
export function checkRetryAllowed(taskName: string, taskOptions: Readonly<TaskOptions>, message: TaskMessage, options: RetryOptions): void {
  const max = options.maxRetries !== undefined ? options.maxRetries : (taskOptions.maxRetries ?? DEFAULT_MAX_RETRIES);
  if (max !== null && message.retries >= max) {
    throw options.exc !== undefined ? options.exc : maxRetriesExceeded(taskName, message);
  }
}

/** When the retry `self.retry(options)` asks for runs: seconds from `now`, and its eta (epoch ms). */
export function retrySchedule(options: RetryOptions, taskOptions: Readonly<TaskOptions>, retriesSoFar: number, now = Date.now()): { countdown: number; eta: number } {
  if (options.eta) return { countdown: (options.eta.getTime() - now) / 1000, eta: options.eta.getTime() };
  const countdown = options.countdown ?? retryCountdown(taskOptions, retriesSoFar);
  return { countdown, eta: now + countdown * 1000 };
}

/** The message that runs the task again, as a Python worker's `retry()` builds it. */
export function retryMessage(
  message: TaskMessage,
  eta: number,
  overrides: { args?: unknown[] | undefined; kwargs?: Record<string, unknown> | undefined; expires?: number | Date | null | undefined },
  now = Date.now(),
): TaskMessage {
  const extraHeaders = withoutBrokerHeaders(message.extraHeaders);
  const args = overrides.args ?? message.args;
  const kwargs = overrides.kwargs ?? message.kwargs;
  const { expires } = overrides;
  return {
    ...message,
    args,
    kwargs,
    // As Celery's retry(expires=...): seconds from now or a time; otherwise the task's own is kept.
    expires: expires === undefined ? message.expires : expires === null ? null : expires instanceof Date ? expires.getTime() : now + expires * 1000,
    retries: message.retries + 1,
    eta,
    // Published from inside the running task, so (as in Python) its parent is the task itself.
    parentId: message.id,
    argsrepr: overrides.args ? null : message.argsrepr,
    kwargsrepr: overrides.kwargs ? null : message.kwargsrepr,
    extraHeaders,
    protocol: 2,
  };
}

/** Back where it came from: the default exchange + queue name, or the original exchange and key. */
export function retryRoute(info: DeliveryInfo, queueOverride?: string): { exchange: string; routingKey: string } {
  if (queueOverride) return { exchange: '', routingKey: queueOverride };
  if (info.exchange === '') return { exchange: '', routingKey: info.queue };
  return { exchange: info.exchange, routingKey: info.routingKey };
}

/** `celery_delayed_<N>` / `celery_delayed_delivery` (optionally prefixed): a message that waited in the delay queues. */
const DELAY_EXCHANGE = /(^|_)celery_delayed_(\d+|delivery)$/;

/**
 * The retry's full route. For an app with quorum queues, a retry with a
 * countdown goes through native delayed delivery, as a Celery 5.7 worker
 * sends it (to `celery_delayed_27`, the delay in front of the queue's
 * routing key). Otherwise back where it came from; a message that arrived
 * through the delay exchanges goes back to its queue's own exchange with the
 * delay digits removed from its key.
 */
export function retryPublishRoute(
  conf: CelerySettings,
  info: DeliveryInfo,
  queueOverride: string | undefined,
  etaMs: number,
  nowMs: number,
  transportHasTopology: boolean,
): PublishRoute {
  let queue: QueueDeclaration | null = null;
  try {
    queue = queueDeclaration(conf, queueOverride ?? info.queue);
  } catch {
    /* not in task_queues and task_create_missing_queues off: route as it came */
  }
  const delayed = nativeDelayedRoute(conf, queue, etaMs, nowMs, transportHasTopology);
  if (delayed) return delayed;
  if (!queueOverride && queue && DELAY_EXCHANGE.test(info.exchange) && queue.exchange.name !== '') {
    return { exchange: queue.exchange.name, routingKey: stripDelayPrefix(info.routingKey), declare: null };
  }
  return { ...retryRoute(info, queueOverride), declare: null };
}

/**
 * The args and kwargs of the retry message when `self.retry()` was given only
 * `args` or only `kwargs`: Celery 5.7's `Task.retry` (#6494). Passing new
 * positional args drops the inherited kwargs that name the same parameters;
 * passing new kwargs moves the inherited positional args into their
 * parameters' places and replaces those the kwargs name. Anything else keeps
 * Celery's plain rule: what was given replaces, what was not is inherited.
 */
export function retryArguments(
  params: readonly Param[],
  current: { args: unknown[]; kwargs: Record<string, unknown> },
  given: { args?: unknown[] | undefined; kwargs?: Record<string, unknown> | undefined },
): { args: unknown[]; kwargs: Record<string, unknown> } {
  const args = given.args ?? current.args;
  const kwargs = given.kwargs ?? current.kwargs;
  const positional = params.filter((p) => p.kind === 'positional');
  if (given.args && !given.kwargs && Object.keys(current.kwargs).length > 0) {
    // The new args fill the first len(args) parameters: an inherited kwarg for one of them would
    // be "multiple values for argument" on the next run.
    const kept = { ...current.kwargs };
    for (const p of positional.slice(0, given.args.length)) if (p.name !== null) delete kept[p.name];
    return { args, kwargs: kept };
  }
  if (given.kwargs && !given.args && current.args.length > 0) {
    // Python's signature.bind_partial(*request.args): fails (and changes nothing) when the args
    // do not fit the parameters; leave that to the next run's argument check, as Celery does.
    const hasVarArgs = params.some((p) => p.kind === 'varargs' || p.kind === 'spread');
    if (current.args.length > positional.length && !hasVarArgs) return { args, kwargs };
    if (positional.slice(0, current.args.length).some((p) => p.name === null)) return { args, kwargs };
    const bound = current.args.slice(0, positional.length);
    const rest = current.args.slice(positional.length);
    const left = { ...given.kwargs };
    positional.slice(0, bound.length).forEach((p, i) => {
      if (p.name !== null && Object.prototype.hasOwnProperty.call(left, p.name)) {
        bound[i] = left[p.name];
        delete left[p.name];
      }
    });
    return { args: [...bound, ...rest], kwargs: left };
  }
  return { args, kwargs };
}
