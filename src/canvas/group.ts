/**
 * `group`: tasks run in parallel; `applyAsync()` resolves with a
 * {@link GroupResult} (the values in the group's order). Every member is
 * published with header `group` = the group id and `group_index` = its
 * position, as Celery 5.7 does. When the group is a chord's header, the
 * chord size is stored before any member is published, so the last member
 * to finish, on any worker, fires the body.
 */
import { randomUUID } from 'node:crypto';
import type { Celery } from '../app/celery.js';
import { currentTaskContext } from '../app/context.js';
import type { SignatureDict } from '../protocol/message.js';
import type { ResultNode } from '../result/async-result.js';
import { GroupResult } from '../result/group-result.js';
import { descend } from './descend.js';
import { type CeleryOptions } from './options.js';
import { dropEmpty, maybeSignature, registerSignatureType, Signature, type FreezeOptions } from './signature.js';

/** Publishes at most this many members at once (the broker pipelines their confirms). */
const PUBLISH_CONCURRENCY = 1_000;

/** One prepared member: its frozen signature, its result, and its group id. */
type Prepared = [Signature, ResultNode, string];

/** Runs `fn` over `items` with at most `limit` calls in flight; rejects with the first error. */
export async function eachLimit<T>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<unknown>): Promise<void> {
  let next = 0;
  let failed: unknown = null;
  const worker = async (): Promise<void> => {
    while (failed === null && next < items.length) {
      const i = next++;
      try {
        await fn(items[i]!, i);
      } catch (err) {
        failed ??= err;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  if (failed !== null) throw failed;
}

export class Group<R = unknown> extends Signature<R[], any, GroupResult<R>> {
  constructor(tasks: Signature[], options: CeleryOptions = {}, app: Celery | null = null) {
    super('celery.group', [], { tasks }, options, { subtaskType: 'group' }, app);
  }

  /** A group from its dict; its tasks become signatures. */
  static fromGroupDict(d: SignatureDict, app: Celery | null): Group {
    const kwargs = (d.kwargs ?? {}) as { tasks?: unknown[] };
    const tasks = (kwargs.tasks ?? []).map((t) => maybeSignature(t, app));
    kwargs.tasks = tasks; // as Celery: later freezes refer to these objects
    return new Group(tasks, { ...(d.options ?? {}) }, app);
  }

  /** The member signatures. */
  get tasks(): Signature[] {
    return this.kwargs.tasks as Signature[];
  }

  set tasks(tasks: Signature[]) {
    this.kwargs.tasks = tasks;
  }

  /** The number of members. */
  get length(): number {
    return this.tasks.length;
  }

  protected override resolveApp(): Celery | null {
    return super.resolveApp() ?? this.tasks[0]?.maybeApp ?? null;
  }

  override clone(args: unknown[] = [], kwargs: Record<string, unknown> = {}, options: CeleryOptions = {}): Group<R> {
    // Celery's group keeps its member objects in a clone (a new list of the same signatures).
    return super.clone(args, kwargs, options) as unknown as Group<R>;
  }

  /** `group | task` is a chord; `group | group()` (empty) is the group itself. */
  override pipe(other: Signature): Signature {
    if (other instanceof Group && other.tasks.length === 0) return this;
    return super.pipe(other);
  }

  /** Links `callback` to the first member only, made immutable (as Celery: a group cannot pass its results on; use a chord). */
  override link<S>(callback: S): S {
    const sig = maybeSignature(callback).clone().set({ immutable: true });
    this.tasks[0]!.link(sig);
    return callback;
  }

  /** Links `errback` to every member (it may run more than once). */
  override linkError<S>(errback: S): S {
    const sig = maybeSignature(errback);
    for (const task of this.tasks) task.linkError(sig.clone());
    return errback;
  }

  override setImmutable(immutable: boolean): void {
    for (const task of this.tasks) task.setImmutable(immutable);
  }

  /** @internal */
  override async apply(args: unknown[], kwargs: Record<string, unknown>, options: CeleryOptions): Promise<GroupResult<R>> {
    const { link, link_error, add_to_parent, producer: _producer, ...rest } = dropEmpty(options);
    if (link !== undefined) throw new TypeError('Cannot add link to group: use a chord');
    if (link_error !== undefined) throw new TypeError('Cannot add link to group: do that on individual tasks');
    const app = this.app;
    if (this.tasks.length === 0) return this.freeze();
    const [opts, groupId, rootId] = this.freezeGid(rest);
    const prepared = this.prepared(this.tasks, [], groupId, rootId, app);
    const results = await this.applyTasks(prepared, app, args, kwargs, opts);
    let result: GroupResult<R> = new GroupResult<R>(groupId, results, app.backend, app);
    // group(a | group(b, c)): the result is that of the inner group.
    if (results.length === 1 && results[0] instanceof GroupResult) result = results[0] as GroupResult<R>;
    if (add_to_parent !== false) currentTaskContext()?.addChild?.(result);
    return result;
  }

  /** The group's options merged with the call's; the group id is the `task_id` option (or new). */
  private freezeGid(options: CeleryOptions): [CeleryOptions, string, string | null] {
    const merged: CeleryOptions = { ...this.options };
    for (const [k, v] of Object.entries(options)) {
      if ((k === 'group_id' || k === 'stamped_headers') && k in this.options) continue;
      merged[k] = v;
    }
    const groupId = typeof merged.task_id === 'string' ? merged.task_id : randomUUID();
    delete merged.task_id;
    merged.group_id = groupId;
    return [merged, groupId, typeof merged.root_id === 'string' ? merged.root_id : null];
  }

  /**
   * Clones and freezes every member (nested groups unrolled), with the group id,
   * root id and its index; `partialArgs` are prepended to mutable members.
   */
  private prepared(tasks: Signature[], partialArgs: unknown[], groupId: string, rootId: string | null, app: Celery): Prepared[] {
    const out: Prepared[] = [];
    tasks.forEach((t, index) => {
      const task = t instanceof Signature ? t.clone() : Signature.fromDict(t as SignatureDict, app);
      if (task instanceof Group) {
        out.push(...task.prepared(task.tasks, partialArgs, groupId, rootId, app));
      } else if (task.subtaskType === 'chain' && ((task.kwargs.tasks as unknown[] | undefined) ?? []).length === 0) {
        // An empty chain has no task and no result: dropped (Celery #9772).
      } else {
        if (partialArgs.length && !task.immutable) task.args = [...partialArgs, ...task.args];
        out.push([task, task.freeze(null, { groupId, rootId, groupIndex: index }), groupId]);
      }
    });
    return out;
  }

  /** Publishes the members; stores the chord size first when they are a chord's header. */
  private async applyTasks(
    tasks: Prepared[],
    app: Celery,
    args: unknown[],
    kwargs: Record<string, unknown>,
    options: CeleryOptions,
  ): Promise<ResultNode[]> {
    const { chord, group_index: _index, ...memberOptions } = options;
    const chordOf = (sig: Signature): unknown => chord ?? sig.options.chord;
    const last = tasks[tasks.length - 1];
    if (last && chordOf(last[0])) {
      // Celery stores the size right before the last member is sent; storing it before the
      // first gives the same count (no member can complete the chord without it) and lets
      // every member be published at once.
      const size = tasks.reduce((n, [sig]) => n + descend(sig), 0);
      await app.backend.setChordSize?.(last[2], size);
    }
    await eachLimit(tasks, PUBLISH_CONCURRENCY, ([sig]) =>
      sig.apply(args, kwargs, { ...memberOptions, chord: chordOf(sig), add_to_parent: false }),
    );
    return tasks.map(([, res]) => res);
  }

  /** Fixes the group's and every member's ids (see {@link Signature.freeze}); returns the GroupResult. */
  override freeze(_id?: string | null, f: FreezeOptions = {}): GroupResult<R> {
    const [gid, results] = this.freezeGroupTasks(f);
    return new GroupResult<R>(gid, results, this.app.backend, this.app);
  }

  /** @internal Celery's `_freeze_group_tasks`: the group id and the members' frozen results. */
  freezeGroupTasks(f: FreezeOptions = {}): [string, ResultNode[]] {
    const opts = this.options;
    if (typeof opts.task_id !== 'string') opts.task_id = randomUUID();
    const gid = opts.task_id as string;
    if (f.groupId) opts.group_id = f.groupId;
    if (f.chord) opts.chord = f.chord;
    if (f.groupIndex !== null && f.groupIndex !== undefined) opts.group_index = f.groupIndex;
    if (!('root_id' in opts)) opts.root_id = f.rootId ?? null;
    if (!('parent_id' in opts)) opts.parent_id = f.parentId ?? null;
    const rootId = (opts.root_id as string | null) ?? null;
    const parentId = (opts.parent_id as string | null) ?? null;
    // Nested groups are flattened; as in Celery, their members are taken from the front, last first.
    const stack: unknown[] = [...this.tasks];
    const newTasks: Signature[] = [];
    const results: ResultNode[] = [];
    let groupIndex = 0;
    while (stack.length) {
      const task = maybeSignature(stack.shift(), this.maybeApp).clone();
      if (task instanceof Group) {
        for (const t of task.tasks) stack.unshift(t);
      } else if (task.subtaskType === 'chain' && ((task.kwargs.tasks as unknown[] | undefined) ?? []).length === 0) {
        continue;
      } else {
        newTasks.push(task);
        results.push(task.freeze(null, { groupId: f.groupId, chord: f.chord, rootId, parentId, groupIndex }));
        groupIndex++;
      }
    }
    this.tasks = newTasks;
    return [gid, results];
  }
}

registerSignatureType('group', (d, app) => Group.fromGroupDict(d, app));

/**
 * `group(add.s(1, 1), add.s(2, 2))` or `group([...])`: runs the tasks in
 * parallel. `await g.applyAsync()` resolves with a {@link GroupResult}.
 */
export function group<S extends Signature<any, any, any>>(...tasks: S[] | [S[]] | [Group]): Group<ResultOf<S>> {
  let list: Signature[];
  if (tasks.length === 1 && Array.isArray(tasks[0])) list = tasks[0] as Signature[];
  else if (tasks.length === 1 && tasks[0] instanceof Group) list = (tasks[0] as Group).tasks;
  else if (tasks.length === 1 && tasks[0] instanceof Signature) list = [(tasks[0] as Signature).clone()];
  else list = tasks as Signature[];
  return new Group<ResultOf<S>>(list.map((t) => maybeSignature(t)), {});
}

/** The value type a signature's task resolves to. */
export type ResultOf<S> = S extends Signature<infer R, any, any> ? R : unknown;
