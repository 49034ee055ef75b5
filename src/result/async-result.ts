/**
 * `AsyncResult`: a handle on a task's outcome, as in Celery.
 *
 * `get()` waits on the backend's notifications (Redis pub/sub), not a polling
 * loop. A FAILURE or REVOKED state rejects with a {@link TaskError} carrying
 * the remote exception type, message, module and traceback.
 */
import type { ResultBackend } from '../backend/types.js';
import type { NodeReply, RevokeOptions } from '../control/client.js';
import { ImproperlyConfigured } from '../errors.js';
import { deserializeException } from '../protocol/exceptions.js';
import { PROPAGATE_STATES, READY_STATES, States, type ResultMeta, type State } from '../protocol/result-meta.js';

export interface GetOptions {
  /** Milliseconds to wait before rejecting with `TimeoutError` (default: wait forever, as Celery). */
  timeout?: number;
  /** Reject on FAILURE/REVOKED (default true). With false, resolves with the error instead. */
  propagate?: boolean;
}

/** What `revoke()` needs: an app's remote control. */
export interface RevokeHost {
  readonly control: { revoke(taskId: string, options?: RevokeOptions): Promise<NodeReply[]> };
}

export class AsyncResult<R = unknown> {
  constructor(
    /** The task id. */
    readonly id: string,
    private readonly backend: ResultBackend,
    private readonly app: RevokeHost | null = null,
  ) {}

  /**
   * Revokes the task on every worker (Celery's `AsyncResult.revoke`): if it
   * has not run yet it never will, and with `terminate` a running one is
   * stopped. State REVOKED.
   */
  revoke(options: RevokeOptions = {}): Promise<NodeReply[]> {
    if (!this.app) throw new ImproperlyConfigured('This AsyncResult has no app: use app.asyncResult(id).revoke() or app.control.revoke(id)');
    return this.app.control.revoke(this.id, options);
  }

  /** The stored meta, or null while PENDING (never stored). */
  meta(): Promise<ResultMeta | null> {
    return this.backend.get(this.id);
  }

  /** The current state: PENDING, STARTED, RETRY, SUCCESS, FAILURE or REVOKED. */
  async state(): Promise<State> {
    return (await this.meta())?.status ?? States.PENDING;
  }

  /** True once the task reached SUCCESS, FAILURE or REVOKED. */
  async ready(): Promise<boolean> {
    return READY_STATES.has(await this.state());
  }

  /** True when the task succeeded. */
  async successful(): Promise<boolean> {
    return (await this.state()) === States.SUCCESS;
  }

  /** True when the task failed. */
  async failed(): Promise<boolean> {
    return (await this.state()) === States.FAILURE;
  }

  /** The remote traceback of a failed (or retried) task, if stored. */
  async traceback(): Promise<string | null> {
    return (await this.meta())?.traceback ?? null;
  }

  /**
   * Waits for the task to finish and returns its value. Rejects with the
   * remote error (a `TaskError`) on FAILURE/REVOKED, `TimeoutError` when
   * `timeout` ms pass, `BackendError` when the backend is unreachable, and
   * `NoResultBackend` when none is configured.
   */
  get(options: { timeout?: number; propagate?: true }): Promise<R>;
  get(options: { timeout?: number; propagate: false }): Promise<R | Error>;
  get(): Promise<R>;
  async get(options: GetOptions = {}): Promise<R | Error> {
    const meta = await this.backend.waitForReady(this.id, options.timeout ?? null);
    if (PROPAGATE_STATES.has(meta.status)) {
      const error = deserializeException(meta.result, { state: meta.status, taskId: this.id, traceback: meta.traceback });
      if (options.propagate === false) return error;
      throw error;
    }
    return meta.result as R;
  }

  /** Deletes the stored result. */
  forget(): Promise<void> {
    return this.backend.forget(this.id);
  }

  toString(): string {
    return this.id;
  }
}
