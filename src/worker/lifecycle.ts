/**
 * What happens to a task on a worker, as typed events on `worker.lifecycle`:
 * the seam the worker state (inspect), task events (celeryev) and metrics
 * subscribe to, so none of them needs code inside the consume
 * loop. Each event has Celery's name for the moment it describes; every task
 * that was received ends with exactly one of succeeded, failed, retried,
 * revoked, rejected, released or ignored.
 */
import type { Delivery } from '../broker/types.js';
import type { TaskMessage } from '../protocol/message.js';
import { getLogger } from '../support/log.js';

const log = getLogger('MainProcess');

/** Why a task was revoked (the fields of Celery's `task-revoked` event). */
export interface RevokedInfo {
  /** Stopped while running (`revoke(terminate=True)`). */
  terminated: boolean;
  /** The signal number asked for with terminate (15 = SIGTERM), else null. */
  signum: number | null;
  /** Past its `expires` rather than revoked by id or stamp. */
  expired: boolean;
}

export interface TaskLifecycleEvents {
  /** A valid message for a registered task arrived, and it was not revoked. */
  'task-received': [message: TaskMessage, delivery: Delivery];
  /** Held in memory until its ETA. */
  'task-scheduled': [message: TaskMessage];
  /** Waiting for a concurrency slot (after its ETA and rate limit). */
  'task-reserved': [message: TaskMessage];
  /** Running now; `acknowledged` is true when its message was acked as it started (early ack). */
  'task-started': [message: TaskMessage, acknowledged: boolean];
  /** Returned; `runtime` in seconds. */
  'task-succeeded': [message: TaskMessage, result: unknown, runtime: number];
  /** Threw (or hit its hard time limit). */
  'task-failed': [message: TaskMessage, error: unknown, runtime: number];
  /** Called `self.retry()` (or `autoretryFor` matched): a new message is scheduled. */
  'task-retried': [message: TaskMessage, exc: unknown];
  /** Not run (revoked, expired) or stopped (terminated); state REVOKED. */
  'task-revoked': [message: TaskMessage, info: RevokedInfo];
  /** Its message was rejected or requeued after the run (acks_late). */
  'task-rejected': [message: TaskMessage, requeue: boolean];
  /** Left this worker without running: given back at shutdown, or parked in the broker. */
  'task-released': [message: TaskMessage];
  /**
   * Ended by `Ignore` (`self.replace()` among others) or by `Reject` with
   * requeue: no state stored, and, as in Celery, no task event sent (a
   * requeued message's `task-rejected` follows); it is no longer running here.
   */
  'task-ignored': [message: TaskMessage];
}

type Listener<K extends keyof TaskLifecycleEvents> = (...args: TaskLifecycleEvents[K]) => void;

/**
 * The task lifecycle of one worker (`worker.lifecycle`): typed `on`/`off`,
 * and an `emit` of fixed arity. Not an EventEmitter on purpose: this runs
 * four times per task on the hot path, and Node's `emit(...args)` allocates
 * an array per call; here a call with no listener costs a property read.
 */
export class TaskLifecycle {
  private readonly listeners: { [K in keyof TaskLifecycleEvents]?: Array<Listener<K>> } = {};

  /** Calls `listener` for every `event` from now on. */
  on<K extends keyof TaskLifecycleEvents>(event: K, listener: Listener<K>): this {
    const list = (this.listeners[event] ??= []) as Array<Listener<K>>;
    list.push(listener);
    return this;
  }

  off<K extends keyof TaskLifecycleEvents>(event: K, listener: Listener<K>): this {
    const list = this.listeners[event] as Array<Listener<K>> | undefined;
    const i = list ? list.indexOf(listener) : -1;
    if (i >= 0) list!.splice(i, 1);
    return this;
  }

  /** Tells every listener. A listener that throws is a bug in it: the others still run, and the task is not affected. */
  emit<K extends keyof TaskLifecycleEvents>(event: K, ...args: TaskLifecycleEvents[K]): void;
  emit(event: keyof TaskLifecycleEvents, a?: unknown, b?: unknown, c?: unknown): void {
    const list = this.listeners[event] as Array<(a: unknown, b: unknown, c: unknown) => void> | undefined;
    if (!list) return;
    for (let i = 0; i < list.length; i++) {
      try {
        list[i]!(a, b, c);
      } catch (err) {
        log.error(`A ${event} listener failed: ${(err as Error)?.stack ?? String(err)}`);
      }
    }
  }
}
