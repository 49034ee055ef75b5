/**
 * `AsyncResult`: a handle on a task's outcome, as in Celery.
 *
 * `get()` waits on the backend's notifications (Redis pub/sub), not a polling
 * loop. A FAILURE or REVOKED state rejects with a {@link TaskError} carrying
 * the remote exception type, message, module and traceback.
 *
 * A result made by a canvas knows its `parent` (the previous step of a chain,
 * the header of a chord). As in Celery, `get()` first reports a failed parent:
 * a chord whose header failed rejects with the header task's own error, not
 * with the `ChordError` stored on the body.
 */
import type { ResultBackend } from '../backend/types.js';
import type { NodeReply, RevokeOptions } from '../control/client.js';
import { ImproperlyConfigured } from '../errors.js';
import { deserializeException } from '../protocol/exceptions.js';
import { PROPAGATE_STATES, READY_STATES, States, type ResultMeta, type State } from '../protocol/result-meta.js';
import { isResultTuple, type ResultTuple } from '../protocol/result-tuple.js';
import type { GroupResult } from './group-result.js';

export interface GetOptions {
  /** Milliseconds to wait before rejecting with `TimeoutError` (default: wait forever, as Celery). */
  timeout?: number;
  /** Reject on FAILURE/REVOKED (default true). With false, resolves with the error instead. */
  propagate?: boolean;
  /** Reject with a failed parent's error first (default true, as Celery's `follow_parents`). */
  followParents?: boolean;
}

/** A node of a result tree: one task, or a group of them. */
export type ResultNode = AsyncResult<unknown> | GroupResult<unknown>;

/** How often a waiting `get()` checks whether a parent failed (Celery's drain interval). */
const PARENT_CHECK_MS = 1_000;

/** Builds results from tuples; set by group-result.ts (which imports this module). */
let fromTuple: ((tuple: ResultTuple, backend: ResultBackend, app: RevokeHost | null) => ResultNode) | null = null;

/** @internal */
export function setResultFromTuple(fn: (tuple: ResultTuple, backend: ResultBackend, app: RevokeHost | null) => ResultNode): void {
  fromTuple = fn;
}

/** What `revoke()` needs: an app's remote control. */
export interface RevokeHost {
  readonly control: { revoke(taskId: string, options?: RevokeOptions): Promise<NodeReply[]> };
}

export class AsyncResult<R = unknown> {
  /** The result this one follows in a canvas (previous chain step, chord header), if known. */
  parent: ResultNode | null = null;
  /** The last ready meta seen: ready states never change, so it is not read again. */
  private cache: ResultMeta | null = null;

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

  /** The result backend this result reads. */
  get resultBackend(): ResultBackend {
    return this.backend;
  }

  /** The stored meta, or null while PENDING (never stored). */
  async meta(): Promise<ResultMeta | null> {
    if (this.cache) return this.cache;
    const meta = await this.backend.get(this.id);
    this.remember(meta);
    return meta;
  }

  /** @internal True when a ready meta is already known. */
  isCached(): boolean {
    return this.cache !== null;
  }

  /** @internal Keeps a ready meta read in bulk (GroupResult). */
  remember(meta: ResultMeta | null): void {
    if (meta && READY_STATES.has(meta.status)) this.cache = meta;
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
   * Results of the tasks this task sent while it ran (its callbacks, the
   * next step of its chain, groups it applied), as the worker stored them.
   */
  async children(): Promise<ResultNode[]> {
    const stored = (await this.meta())?.children;
    if (!Array.isArray(stored) || !fromTuple) return [];
    const build = fromTuple;
    // With the app, so a child's revoke() works as on one from delay().
    return stored.filter(isResultTuple).map((t) => build(t, this.backend, this.app));
  }

  /**
   * Waits for the task to finish and returns its value. Rejects with the
   * remote error (a `TaskError`) on FAILURE/REVOKED, `TimeoutError` when
   * `timeout` ms pass, `BackendError` when the backend is unreachable, and
   * `NoResultBackend` when none is configured.
   */
  get(options: { timeout?: number; propagate?: true; followParents?: boolean }): Promise<R>;
  get(options: { timeout?: number; propagate: false; followParents?: boolean }): Promise<R | Error>;
  get(): Promise<R>;
  async get(options: GetOptions = {}): Promise<R | Error> {
    const propagate = options.propagate !== false;
    const watchParents = propagate && options.followParents !== false && this.parent !== null;
    if (watchParents) await this.throwIfParentFailed();
    const meta = this.cache ?? (watchParents ? await this.waitWatchingParents(options.timeout ?? null) : await this.backend.waitForReady(this.id, options.timeout ?? null));
    this.remember(meta);
    if (watchParents) await this.throwIfParentFailed();
    if (PROPAGATE_STATES.has(meta.status)) {
      const error = deserializeException(meta.result, { state: meta.status, taskId: this.id, traceback: meta.traceback });
      if (!propagate) return error;
      throw error;
    }
    return meta.result as R;
  }

  /** Waits for this task while checking, every second, that no parent failed. */
  private waitWatchingParents(timeoutMs: number | null): Promise<ResultMeta> {
    const abort = new AbortController();
    return new Promise<ResultMeta>((resolve, reject) => {
      const timer = setInterval(() => {
        this.throwIfParentFailed().catch((err: unknown) => {
          abort.abort(err);
          reject(err as Error);
        });
      }, PARENT_CHECK_MS);
      this.backend
        .waitForReady(this.id, timeoutMs, abort.signal)
        .then(resolve, reject)
        .finally(() => clearInterval(timer));
    });
  }

  /** Rejects with the first failure found among the parents, starting at the root. */
  async throwIfParentFailed(): Promise<void> {
    const parents: ResultNode[] = [];
    for (let node = this.parent; node; node = node.parent) parents.push(node);
    for (const node of parents.reverse()) await node.maybeThrow();
  }

  /** Rejects with this task's error if it failed; resolves otherwise (without waiting). */
  async maybeThrow(): Promise<void> {
    const meta = await this.meta();
    if (meta && PROPAGATE_STATES.has(meta.status)) {
      throw deserializeException(meta.result, { state: meta.status, taskId: this.id, traceback: meta.traceback });
    }
  }

  /** Celery's result tuple: `[[id, parent], null]`. */
  asTuple(): ResultTuple {
    return [[this.id, this.parent ? this.parent.asTuple() : null], null];
  }

  /** Deletes the stored result. */
  forget(): Promise<void> {
    this.cache = null;
    return this.backend.forget(this.id);
  }

  toString(): string {
    return this.id;
  }

  /** Stored inside results as Celery's tuple (a task may return a result handle). */
  toJSON(): ResultTuple {
    return this.asTuple();
  }
}
