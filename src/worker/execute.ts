/**
 * Running one task: bind its arguments, give a bound task its `self`, enforce
 * time limits, turn `self.retry()` and `autoretryFor` into a republished
 * message, store the state as Python does, and log it in Celery's format.
 */
import type { Celery } from '../app/celery.js';
import { runInTaskContext } from '../app/context.js';
import type { BoundTask, RetryOptions, Task, TaskRequest } from '../app/task.js';
import type { Delivery } from '../broker/types.js';
import { CeleryError, Retry } from '../errors.js';
import { serializeException } from '../protocol/exceptions.js';
import { buildTaskMessage, EMPTY_EMBED, type TaskMessage } from '../protocol/message.js';
import { pyRepr } from '../protocol/repr.js';
import { buildExceptionMeta, buildResultMeta, States, type MetaContext } from '../protocol/result-meta.js';
import { getLogger, isEnabled } from '../support/log.js';
import type { RunOutcome } from './ack-policy.js';
import { continueAfterFailure, continueAfterSuccess } from './canvas.js';
import { bindArguments, paramsFromOption, readParams, type Param } from './arguments.js';
import type { ResultWriter } from './results.js';
import { DEFAULT_MAX_RETRIES, maxRetriesExceeded, retryCountdown, retryMessage, retryRoute } from './retry.js';

const log = getLogger('MainProcess');

/** Hard time limit reached. Python stores it with this type and module. */
export class TimeLimitExceeded extends CeleryError {
  static readonly pythonModule = 'billiard.exceptions';
}
/** Soft time limit reached: the task's `self.signal` aborts with this. */
export class SoftTimeLimitExceeded extends CeleryError {
  static readonly pythonModule = 'billiard.exceptions';
}
/** `self.retry()` could not publish the retry message. */
class RetryNotPublished extends CeleryError {}

/** What the executor needs from the worker. */
export interface ExecutionContext {
  app: Celery;
  hostname: string;
  results: ResultWriter;
  /** Abort controllers of running tasks that asked for `self.signal`; a cold shutdown aborts them all. */
  aborters: Set<AbortController>;
}

const paramCache = new WeakMap<object, Param[]>();

function paramsOf(task: Task<never, unknown>): Param[] {
  let params = paramCache.get(task);
  if (!params) {
    params = task.options.params ? paramsFromOption(task.options.params) : readParams(task.fn);
    if (task.bound && !task.options.params) params = params.slice(1); // `self`
    paramCache.set(task, params);
  }
  return params;
}

function excRepr(err: unknown): string {
  const { exc_type, exc_message } = serializeException(err);
  return `${exc_type}(${exc_message.map((a) => pyRepr(a)).join(', ')})`;
}

export function buildRequest(message: TaskMessage, delivery: Delivery, hostname: string): TaskRequest {
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
    timeLimit: message.timeLimit,
    headers: message.extraHeaders,
  };
}

/** Runs the task; resolves with how it ended. Never rejects. */
export async function executeTask(
  ctx: ExecutionContext,
  task: Task<never, unknown>,
  message: TaskMessage,
  delivery: Delivery,
): Promise<RunOutcome> {
  const conf = ctx.app.conf;
  const started = performance.now();
  const request = buildRequest(message, delivery, ctx.hostname);
  const ignoreResult = message.ignoreResult || (task.options.ignoreResult ?? conf.task_ignore_result);
  const metaCtx: MetaContext = { parentId: message.parentId, groupId: message.group };
  if (conf.result_extended) {
    metaCtx.extended = { name: task.name, args: message.args, kwargs: message.kwargs, worker: ctx.hostname, retries: message.retries, queue: delivery.info.routingKey };
  }
  const replyCtx = { replyTo: message.replyTo, correlationId: message.id };
  const store = (status: string, result: unknown, traceback: string | null = null): Promise<void> =>
    ignoreResult ? Promise.resolve() : ctx.results.store(buildResultMeta(message.id, status, result, traceback, metaCtx), replyCtx);

  if (task.options.trackStarted ?? conf.task_track_started) {
    await store(States.STARTED, { pid: process.pid, hostname: ctx.hostname });
  }

  // Created only when the task reads self.signal or has a soft limit: most tasks never need one.
  let abort: AbortController | null = null;
  const aborter = (): AbortController => {
    if (!abort) {
      abort = new AbortController();
      ctx.aborters.add(abort);
    }
    return abort;
  };

  const retry = async (options: RetryOptions = {}): Promise<never> => {
    const max = options.maxRetries !== undefined ? options.maxRetries : (task.options.maxRetries ?? DEFAULT_MAX_RETRIES);
    if (max !== null && message.retries >= max) {
      throw options.exc !== undefined ? options.exc : maxRetriesExceeded(task.name, message);
    }
    const countdown = options.eta ? (options.eta.getTime() - Date.now()) / 1000 : (options.countdown ?? retryCountdown(task.options, message.retries));
    const eta = options.eta ? options.eta.getTime() : Date.now() + countdown * 1000;
    const next = retryMessage(message, eta, { args: options.args, kwargs: options.kwargs });
    try {
      const route = retryRoute(delivery.info, options.queue);
      await ctx.app.broker.publish(buildTaskMessage(next), { ...route, declare: null });
    } catch (err) {
      throw new RetryNotPublished(`Could not publish the retry of ${task.name}[${message.id}]: ${(err as Error).message}`, { cause: err });
    }
    throw new Retry(`Retry in ${Math.round(countdown * 1000) / 1000}s`, options.exc ?? null, new Date(eta));
  };

  const self: BoundTask = {
    name: task.name,
    app: ctx.app,
    request,
    maxRetries: task.options.maxRetries ?? DEFAULT_MAX_RETRIES,
    get signal() {
      return aborter().signal;
    },
    retry,
  };

  const [hardOverride, softOverride] = message.timeLimit;
  const hard = hardOverride ?? task.options.timeLimit ?? conf.task_time_limit;
  const soft = softOverride ?? task.options.softTimeLimit ?? conf.task_soft_time_limit;
  const timers: NodeJS.Timeout[] = [];
  if (soft) {
    const controller = aborter();
    timers.push(setTimeout(() => controller.abort(new SoftTimeLimitExceeded(`SoftTimeLimitExceeded(${soft})`)), soft * 1000));
  }

  try {
    const args = bindArguments(task.name, paramsOf(task), message.args, message.kwargs);
    const call = (): unknown => runInTaskContext(request, () => (task.bound ? task.fn(...([self, ...args] as never[])) : task.fn(...(args as never[]))));
    const running = Promise.resolve().then(call);
    const value = hard
      ? await Promise.race([
          running,
          new Promise<never>((_, reject) => {
            // The promise cannot be killed; the slot is freed and its late result ignored.
            timers.push(setTimeout(() => reject(new TimeLimitExceeded(`TimeLimitExceeded(${hard})`)), hard * 1000));
          }),
        ])
      : await running;
    await store(States.SUCCESS, value);
    if (message.embed !== EMPTY_EMBED) await continueAfterSuccess(ctx.app, message, value);
    if (isEnabled('info')) {
      log.info(`Task ${task.name}[${message.id}] succeeded in ${((performance.now() - started) / 1000).toFixed(6)}s: ${pyRepr(value)}`);
    }
    return 'success';
  } catch (thrown) {
    let err = thrown;
    const autoretry = task.options.autoretryFor;
    if (autoretry && !(err instanceof Retry) && autoretry.some((cls) => err instanceof cls)) {
      err = await retry({ exc: err }).catch((e: unknown) => e);
    }
    if (err instanceof Retry) {
      if (!ignoreResult) {
        // As Python: RETRY with the serialized exc, or a null result when retry() got none.
        await ctx.results.store(
          err.exc != null ? buildExceptionMeta(message.id, States.RETRY, err.exc, metaCtx) : buildResultMeta(message.id, States.RETRY, null, null, metaCtx),
          replyCtx,
        );
      }
      log.info(`Task ${task.name}[${message.id}] retry: ${err.message}${err.exc != null ? `: ${excRepr(err.exc)}` : ''}`);
      return 'retry';
    }
    if (err instanceof RetryNotPublished) {
      log.error(err.message);
      return 'retry-not-published';
    }
    if (!ignoreResult) await ctx.results.store(buildExceptionMeta(message.id, States.FAILURE, err, metaCtx), replyCtx);
    if (message.embed.errbacks) await continueAfterFailure(ctx.app, message);
    log.error(`Task ${task.name}[${message.id}] raised unexpected: ${excRepr(err)}\n${err instanceof Error ? (err.stack ?? '') : ''}`);
    return err instanceof TimeLimitExceeded ? 'time-limit' : 'failure';
  } finally {
    for (const t of timers) clearTimeout(t);
    if (abort) ctx.aborters.delete(abort);
  }
}
