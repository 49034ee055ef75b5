/**
 * celery-node's `Client` and `Task`: sending tasks by name, on ts-celery's
 * producer. `sendTask()` returns its `AsyncResult` at once, as celery-node
 * does; the message itself is published with a publisher confirm, and a
 * failure to send surfaces through that result (`sent`, `get()`), is logged,
 * and never becomes an unhandled rejection.
 */
import { randomUUID } from 'node:crypto';
import type { ApplyOptions } from '../../app/task.js';
import { EncodeError } from '../../errors.js';
import { assertJsonSerializable } from '../../protocol/json.js';
import type { AsyncResult as CoreResult } from '../../result/async-result.js';
import { getLogger } from '../../support/log.js';
import { Base } from './base.js';
import { checkProtocol } from './conf.js';
import { AsyncResult, type ResultSource } from './result.js';

const log = getLogger('MainProcess');

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

export class Client extends Base implements ResultSource {
  /** Publishes not yet confirmed: `disconnect()` waits for them. */
  private readonly sending = new Set<Promise<void>>();

  /** A task handle by name: `client.createTask('tasks.add').applyAsync([1, 2])`. */
  createTask(name: string): Task {
    return new Task(this, name);
  }

  /** A result handle for any task id (its state, its value). */
  asyncResult(taskId: string): AsyncResult {
    return new AsyncResult(taskId, this);
  }

  /** @internal The ts-celery result for an id (AsyncResult reads through this). */
  coreResult(taskId: string): CoreResult {
    return this.app.asyncResult(taskId);
  }

  /**
   * Sends task `taskName` with `args` and `kwargs` to `conf.CELERY_QUEUE`,
   * under `taskId` or a new uuid, and returns its result handle at once.
   * Arguments JSON cannot carry (BigInt, cycles, functions...), or `args`
   * that is not an array, throw an `EncodeError` here, before anything is sent.
   */
  sendTask(taskName: string, args?: Array<any>, kwargs?: object, taskId?: string): AsyncResult {
    if (typeof taskName !== 'string' || taskName === '') throw new EncodeError(`sendTask: the task name must be a non-empty string, got ${JSON.stringify(taskName)}`);
    const positional = args ?? [];
    const keywords = kwargs ?? {};
    if (!Array.isArray(positional)) throw new EncodeError(`args is not array: task ${taskName} got ${JSON.stringify(positional)}`);
    if (!isPlainObject(keywords)) throw new EncodeError(`kwargs is not object: task ${taskName} got ${JSON.stringify(keywords)}`);
    try {
      // Here rather than when the message is built: sendTask() returns before publishing.
      assertJsonSerializable(positional, 'args');
      assertJsonSerializable(keywords, 'kwargs');
    } catch (err) {
      throw new EncodeError(`Cannot encode the arguments of task ${taskName}: ${(err as Error).message}`);
    }
    const id = taskId || randomUUID();
    const app = this.app;
    // celery-node reads the queue and protocol at each send; so does this.
    checkProtocol(this.conf.TASK_PROTOCOL);
    app.conf.task_protocol = this.conf.TASK_PROTOCOL;
    const options: ApplyOptions = { taskId: id };
    // The default queue unless conf.CELERY_QUEUE changed since the app was made (task_routes still apply).
    if (this.conf.CELERY_QUEUE !== app.conf.task_default_queue) options.queue = this.conf.CELERY_QUEUE;
    const sent = app.sendTask(taskName, positional, keywords as Record<string, unknown>, options).then(() => undefined);
    this.sending.add(sent);
    sent.then(
      () => this.sending.delete(sent),
      (err: unknown) => {
        this.sending.delete(sent);
        log.error(`Could not send task ${taskName}[${id}]: ${(err as Error).message}`);
      },
    );
    return new AsyncResult(id, this, sent);
  }

  /** Waits for the tasks being sent to be confirmed (or fail), then closes the connections. */
  override async disconnect(): Promise<void> {
    await Promise.allSettled([...this.sending]);
    await super.disconnect();
  }
}

export class Task {
  constructor(
    /** The client that sends it. */
    readonly client: Client,
    /** The registered task name. */
    readonly name: string,
  ) {}

  /** Sends the task with positional arguments: `delay(1, 2)`. */
  delay(...args: any[]): AsyncResult {
    return this.applyAsync([...args]);
  }

  /** Sends the task with `args` and `kwargs` (the worker's function receives kwargs as its last argument). */
  applyAsync(args: Array<any>, kwargs?: object): AsyncResult {
    return this.client.sendTask(this.name, args || [], kwargs || {});
  }
}
