/**
 * The program of each pool thread (`-P threads`). It loads the app module the way the main
 * thread did (ESM or CommonJS, JavaScript or TypeScript), so every task is registered here
 * too. Then, for each task the main thread hands it, it calls the function (with `self`, the
 * task context for `parent_id`, and its own soft time limit) and answers with the value or
 * the error. Publishing, storing, retrying and acking all stay with the main thread:
 * `self.retry()`, `delay()` and `get()` in a task here are requests to it.
 */
import { getHeapStatistics } from 'node:v8';
import { parentPort, receiveMessageOnPort, threadId, workerData } from 'node:worker_threads';
import { useThreadConnections, type Celery } from '../../app/celery.js';
import { runInTaskContext, type TaskContextSource } from '../../app/context.js';
import type { RetryOptions, Task, TaskRequest } from '../../app/task.js';
import type { TaskMessage } from '../../protocol/message.js';
import { loadApp } from '../../cli/load-app.js';
import { serializeException } from '../../protocol/exceptions.js';
import { CeleryError, EncodeError, Ignore, NotRegistered, Reject, Retry, SoftTimeLimitExceeded } from '../../errors.js';
import { getLogger, setLogLevel, setLogSink } from '../../support/log.js';
import { BoundContext, buildRequest, type BoundRun } from '../execute.js';
import { checkRetryAllowed, retrySchedule } from '../retry.js';
import { MainThreadRpc, ThreadBackend, ThreadBroker } from './thread-connections.js';
import { tupleToInfo, tupleToMessage, type RunPacket } from './run-packet.js';
import { toEnvelope, type FromThread, type RetryCall, type ThreadStartData, type ToThread } from './thread-messages.js';

const data = workerData as ThreadStartData;
const port = parentPort!;
const post = (message: FromThread): void => port.postMessage(message);
const rpc = new MainThreadRpc(post);

/** The publish of a `self.retry()` failed; the run still ends as that retry (the main thread knows why). */
class RetryPublishFailed extends CeleryError {
  constructor(readonly retry: number, cause: unknown) {
    super(`Could not publish the retry: ${(cause as Error).message}`, { cause });
  }
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return value instanceof Promise || (value !== null && (typeof value === 'object' || typeof value === 'function') && typeof (value as { then?: unknown }).then === 'function');
}

/** One run here: the task context (`parent_id` of what it sends), `self.signal`, `self.retry()`. */
class ThreadRun implements TaskContextSource, BoundRun {
  private requestObject: TaskRequest | null = null;
  private messageObject: TaskMessage | null = null;
  private abort: AbortController | null = null;
  /** The Retry of each `self.retry()` call of this run, by number (the main thread holds the real one). */
  readonly retries = new Map<Retry, number>();
  /** Results of what the task sent, as tuples: the main thread stores them as its `children`. */
  private sent: unknown[] | undefined;

  constructor(
    readonly task: Task<never, unknown>,
    readonly packet: RunPacket,
  ) {}

  get seq(): number {
    return this.packet[0];
  }

  /** The task message, rebuilt from the packet when first needed (`self.request`, a retry). */
  get message(): TaskMessage {
    return (this.messageObject ??= tupleToMessage(this.packet[4]));
  }

  get request(): TaskRequest {
    if (this.requestObject) return this.requestObject;
    const request = buildRequest(this.message, { info: tupleToInfo(this.packet[5]) }, data.hostname, {});
    // The properties (every header) come from the main thread only if the task reads them.
    const seq = this.seq;
    Object.defineProperty(request, 'properties', {
      enumerable: true,
      configurable: true,
      get: () => {
        const properties = fetchProperties(seq);
        Object.defineProperty(request, 'properties', { value: properties, enumerable: true, configurable: true, writable: true });
        return properties;
      },
    });
    return (this.requestObject = request);
  }

  addChild(child: { asTuple(): unknown }): void {
    (this.sent ??= []).push(child.asTuple());
  }

  children(): unknown[] {
    return this.sent ?? [];
  }

  /** What the main thread needs with the run's end, besides how it ended. */
  ending(): { seq: number; memory?: number; children?: unknown[] } {
    return endingOf(this.seq, this.sent);
  }

  /** The app this thread loaded, the task's own (BoundRun). */
  get app(): Celery {
    return this.task.app;
  }

  aborter(): AbortController {
    return (this.abort ??= new AbortController());
  }

  /**
   * Checks the retry limit here (so it throws at once, as in the async pool) and asks the
   * main thread to publish the next run, with the countdown worked out here.
   */
  retry(options: RetryOptions = {}): Retry {
    const { task, message } = this;
    checkRetryAllowed(task.name, task.options, message, options);
    const { countdown, eta } = retrySchedule(options, task.options, message.retries);
    const number = this.retries.size + 1;
    const call: RetryCall = {
      ...(options.eta ? { eta } : { countdown }),
      maxRetries: null, // checked above
      args: options.args,
      kwargs: options.kwargs,
      queue: options.queue,
      exc: options.exc === undefined || options.exc === null ? undefined : toEnvelope(options.exc),
    };
    const publish = rpc.call<void>({ t: 'retry', seq: this.seq, number, options: call }).catch((err: unknown) => {
      throw new RetryPublishFailed(number, err);
    });
    const retry = new Retry(`Retry in ${Math.round(countdown * 1000) / 1000}s`, options.exc ?? null, new Date(eta), publish);
    this.retries.set(retry, number);
    return retry;
  }

  call(): unknown {
    const { task } = this;
    const fn = task.fn;
    const args = this.packet[2];
    return runInTaskContext(this, () => (task.bound ? fn(...([new BoundContext(this), ...args] as never[])) : fn(...(args as never[]))));
  }
}

/** Longest a thread waits for the main thread to send `request.properties`. */
const PROPERTIES_WAIT_MS = 10_000;

/**
 * `request.properties` of run `seq`, from the main thread, synchronously (a task reads them as
 * a plain property): ask, wait on the shared flag until the answer is on the properties port.
 * `{}` once the run has ended.
 */
function fetchProperties(seq: number): Record<string, unknown> {
  post({ t: 'properties', seq });
  // Bounded: the main thread answers at once (null once the run has ended); if it cannot (it is
  // stopping), the task gets {} rather than a thread blocked forever.
  const woke = Atomics.wait(data.propertiesFlag, 0, 0, PROPERTIES_WAIT_MS);
  Atomics.store(data.propertiesFlag, 0, 0);
  if (woke === 'timed-out') return {};
  const answer = receiveMessageOnPort(data.propertiesPort) as { message: Record<string, unknown> | null } | undefined;
  return answer?.message ?? {};
}

/** KiB this thread holds (V8 heap committed + external), when worker_max_memory_per_child asks. */
function memoryKiB(): number | undefined {
  if (!data.reportMemory) return undefined;
  const heap = getHeapStatistics();
  return Math.round((heap.total_heap_size + heap.external_memory) / 1024);
}

/**
 * What goes with every end of a run: its seq, the memory (when asked) and the children.
 * Keys that do not apply are left out, not set to undefined: fewer keys to clone.
 */
function endingOf(seq: number, children: unknown[] | undefined): { seq: number; memory?: number; children?: unknown[] } {
  const end: { seq: number; memory?: number; children?: unknown[] } = { seq };
  const memory = memoryKiB();
  if (memory !== undefined) end.memory = memory;
  if (children) end.children = children;
  return end;
}

/**
 * The value as the main thread will store it: JSON's view of it (toJSON, dropped undefined
 * keys), which a structured clone alone would not give. What JSON cannot encode (BigInt,
 * cycles) goes as is, to fail in the main thread exactly as it does in the async pool.
 */
function jsonView(value: unknown): unknown {
  if (value === null || typeof value !== 'object') return value;
  try {
    return JSON.parse(JSON.stringify(value)) as unknown;
  } catch {
    return value;
  }
}

let app: Celery;

/**
 * Runs one task. A function that returns a plain value (the common case for CPU-bound work)
 * is answered in the same turn, with no promise of our own: in a thread every promise runs
 * the task context's AsyncLocalStorage hooks, a per-task cost of the hop. A thenable is
 * settled through Promise.resolve(), as `await` did. Both paths post the same messages.
 */
function run(packet: RunPacket): void {
  const [seq, name, , soft] = packet;
  const task = app.tasks.get(name);
  if (!task) {
    post({ t: 'failed', error: toEnvelope(new NotRegistered(name)), ...endingOf(seq, undefined) });
    return;
  }
  const current = new ThreadRun(task, packet);
  let softTimer: NodeJS.Timeout | null = null;
  if (soft) {
    const controller = current.aborter();
    softTimer = setTimeout(() => controller.abort(new SoftTimeLimitExceeded(`SoftTimeLimitExceeded(${soft})`)), soft * 1000);
  }
  let returned: unknown;
  try {
    returned = current.call();
  } catch (thrown) {
    if (softTimer) clearTimeout(softTimer);
    return ended(current, thrown);
  }
  if (!isThenable(returned)) {
    if (softTimer) clearTimeout(softTimer);
    return returnedValue(current, returned);
  }
  // Through Promise.resolve, as `await` did: a thenable whose then() throws or calls back twice is settled once.
  Promise.resolve(returned).then(
    (value) => {
      if (softTimer) clearTimeout(softTimer);
      returnedValue(current, value);
    },
    (thrown: unknown) => {
      if (softTimer) clearTimeout(softTimer);
      ended(current, thrown);
    },
  );
}

/** The run returned (or its promise resolved) `value`. */
function returnedValue(current: ThreadRun, value: unknown): void {
  try {
    const end = current.ending();
    // The common end as a pair: nothing to report but the value.
    post(end.memory === undefined && end.children === undefined ? [end.seq, jsonView(value)] : { t: 'done', value: jsonView(value), ...end });
  } catch (err) {
    // A function or a class the clone refuses: the same EncodeError the result would have met.
    const encode = new EncodeError(`Cannot send the return value of ${current.task.name} to the worker's main thread: ${(err as Error).message}`);
    post({ t: 'failed', error: toEnvelope(encode), ...current.ending() });
  }
}

/** The run threw (or its promise rejected) `thrown`: a retry, an Ignore, a Reject or a failure. */
function ended(current: ThreadRun, thrown: unknown): void {
  const retry = thrown instanceof Retry ? current.retries.get(thrown) : thrown instanceof RetryPublishFailed ? thrown.retry : undefined;
  if (retry !== undefined) {
    post({ t: 'retried', retry, ...current.ending() });
  } else if (thrown instanceof Ignore) {
    post({ t: 'ignored', reason: thrown.message, ...current.ending() });
  } else if (thrown instanceof Reject) {
    // The reason as stored (JSON-safe), so any value crosses the thread boundary.
    post({ t: 'rejected', reason: thrown.excArgs[0] === null ? null : serializeException(thrown).exc_message[0], requeue: thrown.requeue, ...current.ending() });
  } else {
    // autoretryFor's classes are this thread's: only here can `instanceof` tell.
    const autoretry = current.task.options.autoretryFor?.some((cls) => thrown instanceof cls) ?? false;
    post({ t: 'failed', error: toEnvelope(thrown, autoretry), ...current.ending() });
  }
}

async function start(): Promise<void> {
  setLogLevel(data.logLevel);
  // Log lines go through the main thread's output, in order with its own lines.
  setLogSink((line) => post({ t: 'log', line }));
  // The main thread already printed the app's configuration warnings once.
  const emitWarning = process.emitWarning.bind(process);
  process.emitWarning = ((warning: string | Error, ...rest: unknown[]) => {
    if (rest[0] === 'TsCeleryWarning') return;
    (emitWarning as (...a: unknown[]) => void)(warning, ...rest);
  }) as typeof process.emitWarning;
  // As the CLI does in the main thread: a stray promise in task code is logged, not fatal.
  const log = getLogger(data.threadName);
  process.on('unhandledRejection', (reason) => {
    log.error(`Unhandled promise rejection (a promise nobody awaited, e.g. in task code): ${reason instanceof Error ? (reason.stack ?? reason.message) : String(reason)}`);
  });
  useThreadConnections({
    broker: new ThreadBroker(rpc, data.brokerUrl),
    backend: new ThreadBackend(rpc, data.backendUrl, data.backendBeforePublish),
    oid: data.oid,
  });
  port.on('message', (message: ToThread) => {
    if (Array.isArray(message)) run(message);
    else rpc.settle(message);
  });
  try {
    ({ app } = await loadApp(data.appModule));
    if (app.main !== data.appName) {
      throw new Error(`${data.appModule} exports the app ${JSON.stringify(app.main)}, but the worker runs ${JSON.stringify(data.appName)}`);
    }
    await app.ready();
    await app.loadTasks();
  } catch (err) {
    post({ t: 'load-failed', error: (err as Error).message });
    process.exit(1);
  }
  post({ t: 'ready', tasks: [...app.tasks.keys()], threadId });
}

void start();
