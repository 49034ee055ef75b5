/**
 * `GroupResult`: the results of a group's tasks, in the group's order, as in
 * Celery. `save()` and `GroupResult.restore()` use Celery's
 * `celery-taskset-meta-<id>` document, so a group saved by Python can be
 * restored here and the other way round.
 */
import type { ResultBackend } from '../backend/types.js';
import { BackendError, ImproperlyConfigured, TimeoutError } from '../errors.js';
import { READY_STATES, States, type ResultMeta } from '../protocol/result-meta.js';
import type { ResultTuple } from '../protocol/result-tuple.js';
import { AsyncResult, setResultFromTuple, type GetOptions, type ResultNode, type RevokeHost as AppHost } from './async-result.js';

/** Rebuilds results from a Celery result tuple (`result_from_tuple`). */
export function resultFromTuple(tuple: ResultTuple, backend: ResultBackend, app: AppHost | null = null): ResultNode {
  const [[id, parentTuple], nodes] = tuple;
  // Every node gets the app, so revoke() works on any of them as on a result from delay().
  const node: ResultNode =
    nodes === null ? new AsyncResult(id, backend, app) : new GroupResult(id, nodes.map((n) => resultFromTuple(n, backend, app)), backend, app);
  if (parentTuple) node.parent = resultFromTuple(parentTuple, backend, app);
  return node;
}
setResultFromTuple(resultFromTuple);

/** What `revoke()` needs from the app: its remote control (Celery's `app.control`). */
interface RevokeHost {
  readonly control?: { revoke(taskIds: string[], options?: Record<string, unknown>): Promise<unknown> };
}

function notSupported(backend: ResultBackend, what: string): BackendError {
  return new BackendError(`The result backend ${backend.displayUrl} cannot ${what}: use a redis:// result backend`);
}

export class GroupResult<R = unknown> {
  /** The result this group follows in a canvas, if known. */
  parent: ResultNode | null = null;

  constructor(
    /** The group id (the `group` header of its tasks). */
    readonly id: string,
    /** One result per task, in the group's order (a nested group stays a GroupResult). */
    readonly results: ResultNode[],
    private readonly backend: ResultBackend,
    /** The app, for `revoke()`. */
    private readonly app: object | null = null,
  ) {}

  /**
   * A group saved with {@link save} (by TypeScript or by Python's
   * `GroupResult.save()`), or null when none is stored under `id`.
   */
  static async restore<R = unknown>(app: { backend: ResultBackend }, id: string): Promise<GroupResult<R> | null> {
    const backend = app.backend;
    if (!backend.restoreGroup) throw notSupported(backend, 'restore groups');
    const tuple = await backend.restoreGroup(id);
    if (!tuple) return null;
    const host = 'control' in app ? (app as AppHost) : null;
    const node = resultFromTuple(tuple, backend, host);
    return new GroupResult<R>(id, node instanceof GroupResult ? node.results : [node], backend, app);
  }

  /** The number of results. */
  get length(): number {
    return this.results.length;
  }

  /** Stores the group (`celery-taskset-meta-<id>`) for {@link GroupResult.restore}. */
  async save(): Promise<this> {
    if (!this.backend.saveGroup) throw notSupported(this.backend, 'save groups');
    await this.backend.saveGroup(this.id, this.asTuple());
    return this;
  }

  /** Deletes the saved group (not its tasks' results). */
  async delete(): Promise<void> {
    await this.backend.deleteGroup?.(this.id);
  }

  /** Deletes the results of every task in the group, and the saved group. */
  async forget(): Promise<void> {
    await Promise.all(this.results.map((r) => r.forget()));
    await this.delete();
  }

  /** Every leaf task result, depth first (nested groups flattened). */
  leaves(): AsyncResult[] {
    return this.results.flatMap((r) => (r instanceof GroupResult ? r.leaves() : [r as AsyncResult]));
  }

  /** Reads the states of every leaf (one round trip when the backend supports it). */
  private async metas(): Promise<Array<ResultMeta | null>> {
    const leaves = this.leaves();
    const pending = leaves.filter((r) => !r.isCached());
    if (pending.length > 0 && this.backend.getMany) {
      const metas = await this.backend.getMany(pending.map((r) => r.id));
      pending.forEach((r, i) => r.remember(metas[i] ?? null));
    }
    return Promise.all(leaves.map((r) => r.meta()));
  }

  /** True when every task finished (SUCCESS, FAILURE or REVOKED). */
  async ready(): Promise<boolean> {
    return (await this.metas()).every((m) => m !== null && READY_STATES.has(m.status));
  }

  /** True when every task succeeded. */
  async successful(): Promise<boolean> {
    return (await this.metas()).every((m) => m?.status === States.SUCCESS);
  }

  /** True when any task failed. */
  async failed(): Promise<boolean> {
    return (await this.metas()).some((m) => m?.status === States.FAILURE);
  }

  /** True when any task has not finished yet. */
  async waiting(): Promise<boolean> {
    return !(await this.ready());
  }

  /** How many tasks succeeded. */
  async completedCount(): Promise<number> {
    return (await this.metas()).filter((m) => m?.status === States.SUCCESS).length;
  }

  /** Rejects with the first failure among the results (without waiting). */
  async maybeThrow(): Promise<void> {
    await this.metas();
    for (const r of this.results) await r.maybeThrow();
  }

  /**
   * Waits for every task and resolves with their values in the group's order
   * (a nested group gives a nested array). Rejects as soon as one fails
   * (unless `propagate: false`, which puts the errors in place of values),
   * and with `TimeoutError` after `timeout` ms for the whole group.
   */
  get(options: { timeout?: number; propagate?: true }): Promise<R[]>;
  get(options: { timeout?: number; propagate: false }): Promise<Array<R | Error>>;
  get(): Promise<R[]>;
  async get(options: GetOptions = {}): Promise<Array<R | Error>> {
    const deadline = options.timeout === undefined ? null : Date.now() + options.timeout;
    if (options.propagate !== false && options.followParents !== false && this.parent) {
      for (let node: ResultNode | null = this.parent; node; node = node.parent) await node.maybeThrow();
    }
    return this.collect(deadline, options.propagate !== false);
  }

  /** Same as {@link get} (Celery's `join`). */
  join(options: GetOptions = {}): Promise<Array<R | Error>> {
    return this.get(options as { propagate: false });
  }

  private async collect(deadline: number | null, propagate: boolean): Promise<Array<R | Error>> {
    const remaining = (): number | undefined => {
      if (deadline === null) return undefined;
      const left = deadline - Date.now();
      if (left <= 0) throw new TimeoutError('The operation timed out.');
      return left;
    };
    // All at once, so the first failure rejects without waiting for earlier members.
    const values = this.results.map((r) => {
      if (r instanceof GroupResult) return r.collect(deadline, propagate);
      const timeout = remaining();
      return propagate
        ? (r as AsyncResult<R>).get({ ...(timeout === undefined ? {} : { timeout }), followParents: false })
        : (r as AsyncResult<R>).get({ ...(timeout === undefined ? {} : { timeout }), propagate: false });
    });
    return (await Promise.all(values)) as Array<R | Error>;
  }

  /**
   * Revokes every task of the group on every worker, as Celery's
   * `GroupResult.revoke()` (a `revoke` broadcast; `terminate`, `signal`
   * as `app.control.revoke`). Needs the app's remote control.
   */
  async revoke(options: { terminate?: boolean; signal?: string } = {}): Promise<unknown> {
    const control = (this.app as RevokeHost | null)?.control;
    if (!control) {
      throw new ImproperlyConfigured('GroupResult.revoke() needs the app\'s remote control (app.control), which this GroupResult has no access to');
    }
    return control.revoke(this.leaves().map((r) => r.id), options);
  }

  /** Celery's result tuple: `[[id, parent], [member tuples]]`. */
  asTuple(): ResultTuple {
    return [[this.id, this.parent ? this.parent.asTuple() : null], this.results.map((r) => r.asTuple())];
  }

  /** Stored inside results as Celery's tuple (a task may return a group's result). */
  toJSON(): ResultTuple {
    return this.asTuple();
  }

  toString(): string {
    return this.id;
  }
}

