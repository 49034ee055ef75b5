/**
 * `chain(a, b, c)`: each task runs after the previous one succeeded, with its
 * result prepended to its args. As Celery does it, one message is published
 * for the first task, carrying the rest in `embed.chain` (reversed: the worker
 * pops the last element); every step's id is fixed in advance. A group
 * followed by a task becomes a chord; nested chains are flattened.
 */
import type { Celery } from '../app/celery.js';
import type { SignatureDict } from '../protocol/message.js';
import type { AsyncResult, ResultNode } from '../result/async-result.js';
import { GroupResult } from '../result/group-result.js';
import { Chord, firstTaskOptions, stripChordHeaderLinks } from './chord.js';
import { Group, type ResultOf } from './group.js';
import { type CeleryOptions } from './options.js';
import { dropEmpty, maybeSignature, registerSignatureType, setPipeImplementation, Signature, type FreezeOptions } from './signature.js';

function isEmptyGroup(task: unknown): boolean {
  return task instanceof Group && task.tasks.length === 0;
}

/** A group of one task is that task (Celery's `maybe_unroll_group`). */
function maybeUnrollGroup(g: Group): Signature {
  return g.tasks.length === 1 ? g.tasks[0]! : g;
}

/** A chord body that is a chain led by a task (not by a group) can be split off the chord. */
function isChainLedByTask(body: unknown): body is Chain {
  return body instanceof Chain && body.tasks.length > 0 && !(body.tasks[0] instanceof Group);
}

export class Chain<R = unknown, Res = AsyncResult<R>> extends Signature<R, any, Res> {
  constructor(tasks: Signature[], options: CeleryOptions = {}, app: Celery | null = null) {
    super('celery.chain', [], { tasks }, options, { subtaskType: 'chain' }, app);
  }

  /** A chain from its dict; its tasks become signatures. */
  static fromChainDict(d: SignatureDict, app: Celery | null): Chain {
    const tasks = (((d.kwargs ?? {}) as { tasks?: unknown[] }).tasks ?? []).map((t) => maybeSignature(t, app));
    return new Chain(tasks, { ...(d.options ?? {}) }, app);
  }

  /** The steps, in order. */
  get tasks(): Signature[] {
    return this.kwargs.tasks as Signature[];
  }

  set tasks(tasks: Signature[]) {
    this.kwargs.tasks = tasks;
  }

  protected override resolveApp(): Celery | null {
    return super.resolveApp() ?? this.tasks[0]?.maybeApp ?? null;
  }

  override clone(args: unknown[] = [], kwargs: Record<string, unknown> = {}, options: CeleryOptions = {}): Chain<R, Res> {
    const sig = super.clone(args, kwargs, options) as unknown as Chain<R, Res>;
    sig.tasks = sig.tasks.map((t) => maybeSignature(t, this.maybeApp, true));
    return sig;
  }

  /**
   * The steps, cloned, with the chain's callbacks on the last one and its
   * errbacks on every one (so a failure anywhere calls them).
   */
  unchainTasks(): Signature[] {
    const tasks = this.tasks.map((t) => t.clone());
    const list = (v: unknown): unknown[] => (v === undefined || v === null ? [] : Array.isArray(v) ? v : [v]);
    for (const sig of list(this.options.link)) tasks.at(-1)?.link(sig);
    for (const sig of list(this.options.link_error)) for (const task of tasks) task.linkError(sig);
    return tasks;
  }

  /** Splits nested chord bodies before freezing (Celery's `_unroll_chords`); only on a copy being sent. */
  unrollChords(app: Celery): void {
    const pending: Signature[] = [...this.tasks];
    const tasks: Signature[] = [];
    while (pending.length) {
      let task = pending.shift()!;
      if (task instanceof Chain) {
        task = task.clone();
        (task as Chain).unrollChords(app);
      }
      if (task instanceof Chord && isChainLedByTask(task.body)) pending.unshift(...task.unrollBody());
      else tasks.push(task);
    }
    this.tasks = tasks;
  }

  /** @internal */
  override apply(args: unknown[], kwargs: Record<string, unknown>, options: CeleryOptions): Promise<Res> {
    const opts = dropEmpty(options);
    return this.run(args, kwargs, Object.keys(opts).length ? { ...this.options, ...opts } : this.options) as Promise<Res>;
  }

  /** Celery's `chain.run`: publishes the first task with the rest in `embed.chain`. */
  private async run(args: unknown[], kwargs: Record<string, unknown>, options: CeleryOptions): Promise<ResultNode | null> {
    const {
      group_id: groupId, chord, task_id: taskId, link, link_error: linkError,
      publisher: _pub, producer: _prod, root_id: rootId, parent_id: parentId, group_index: groupIndex,
      ...rest
    } = options;
    const app = this.app;
    const partial = args.length && !this.immutable ? [...args, ...this.args] : this.args;
    const [tasks, results] = this.prepareSteps(partial, kwargs, this.tasks, {
      rootId: rootId as string | undefined, parentId: parentId as string | undefined, linkError, app,
      lastTaskId: taskId as string | undefined, groupId: groupId as string | undefined,
      chordBody: chord as Signature | undefined, clone: true, groupIndex: groupIndex as number | undefined,
    });
    if (!results.length) return null; // an empty chain runs nothing
    if (link) tasks[0]!.extendListOption('link', link);
    const first = tasks.pop()!;
    // Never mutate options.chain: group members share the options (Celery #5354).
    const stepOptions: CeleryOptions = { ...rest, chain: Array.isArray(rest.chain) ? [...rest.chain, ...tasks] : tasks };
    const applied = await first.apply([], {}, stepOptions);
    // A single task: its real result (a GroupResult is fulfilled by its members, not the frozen one).
    return tasks.length === 0 ? (applied as ResultNode) : results[0]!;
  }

  /** Fixes every step's id; returns the last step's result (its parents: the steps before). */
  override freeze(id?: string | null, f: FreezeOptions = {}): ResultNode {
    const [, results] = this.prepareSteps(this.args, this.kwargs, this.tasks, {
      rootId: f.rootId ?? undefined, parentId: f.parentId ?? undefined, app: this.app, lastTaskId: id ?? undefined,
      groupId: f.groupId ?? undefined, chordBody: (f.chord as Signature | undefined) ?? undefined, clone: false,
      groupIndex: f.groupIndex ?? undefined,
    });
    return results[0]!;
  }

  /**
   * Celery's `prepare_steps`: unrolls nested chains, upgrades `group | task` to
   * a chord, freezes every step (the last one with the chain's id, group and
   * chord), links results to their parents. Returns the steps and their
   * results, last step first.
   */
  prepareSteps(
    args: unknown[],
    kwargs: Record<string, unknown>,
    tasks0: Signature[],
    p: {
      rootId?: string | undefined; parentId?: string | undefined; linkError?: unknown; app: Celery;
      lastTaskId?: string | undefined; groupId?: string | undefined; chordBody?: Signature | undefined;
      clone: boolean; groupIndex?: number | undefined;
    },
  ): [Signature[], ResultNode[]] {
    const { app, clone, rootId } = p;
    const steps: Signature[] = tasks0.map((t) => maybeSignature(t, app));
    // The first real task gets the partial args: splice leading chains, drop leading empty groups (Celery #9772).
    let strippedGroup: Signature | null = null;
    while (steps.length) {
      let head = steps[0]!;
      if (head instanceof Chain) {
        steps.shift();
        if (clone) head = head.clone();
        steps.unshift(...(head as Chain).tasks.map((t) => maybeSignature(t, app)));
        continue;
      }
      if (head instanceof Group) {
        head = steps[0] = maybeUnrollGroup(head);
        if (steps.length > 1 && isEmptyGroup(head)) {
          strippedGroup = steps.shift()!;
          continue;
        }
      }
      break;
    }
    if (strippedGroup !== null && steps.length === 0) steps.push(strippedGroup);

    let prevTask: Signature | null = null;
    let prevRes: ResultNode | null = null;
    const tasks: Signature[] = [];
    const results: ResultNode[] = [];
    let i = 0;
    // In reverse: the result is the `chain` message field, which the worker pops from the end.
    while (steps.length) {
      let task = maybeSignature(steps.pop(), app);
      const isFirstTask = steps.length === 0;
      const isLastTask = i === 0;
      if (task instanceof Group) {
        task = maybeUnrollGroup(task);
        if (isEmptyGroup(task) && (steps.length || prevTask)) continue;
      }
      if (clone && task instanceof Chord && isChainLedByTask(task.body)) {
        steps.push(...task.unrollBody());
        continue;
      }
      if (clone) task = isFirstTask ? task.clone(args, kwargs) : task.clone();
      else if (isFirstTask) task.args = [...args, ...task.args];
      if (task instanceof Chain) {
        steps.push(...task.tasks);
        continue;
      }
      if (task instanceof Group && prevTask) {
        // group(...) | s  ->  chord(group, s)
        tasks.pop();
        const bodyRes = results.pop()!;
        // A GroupResult has no task id of its own (Celery #5467).
        const options: CeleryOptions = bodyRes instanceof GroupResult ? {} : { task_id: bodyRes.id };
        if (rootId) options.root_id = rootId;
        task = new Chord(task, prevTask, options, app);
        prevTask = tasks.at(-1) ?? null;
        // The rest of the chain follows the chord's result, not the body's (Celery #9608).
        let node: ResultNode | null = results.at(-1) ?? null;
        while (node !== null && node.parent !== bodyRes) node = node.parent;
        if (node !== null) {
          node.parent = null;
          prevRes = node;
        }
      }
      const res = isLastTask
        ? task.freeze(p.lastTaskId, { rootId, groupId: p.groupId, chord: p.chordBody, groupIndex: p.groupIndex })
        : task.freeze(null, { rootId });
      i++;
      if (prevRes && !prevRes.parent) prevRes.parent = res;
      if (p.linkError) {
        for (const errback of Array.isArray(p.linkError) ? p.linkError : [p.linkError]) {
          task.linkError(errback);
          // Also on the body, for the chord's error handling.
          if (task instanceof Chord && task.body) task.body.linkError(errback);
        }
      }
      tasks.push(task);
      results.push(res);
      prevTask = task;
      prevRes = res;
      if (task instanceof Chord) {
        app.backend.ensureChordsAllowed?.();
        // A chord's result is its body's; what follows depends on the header's group result.
        let node: ResultNode = res;
        while (node.parent) node = node.parent;
        prevRes = node;
      }
    }
    this.id = results[0]?.id ?? p.lastTaskId;
    if (clone) for (const task of tasks) stripChordHeaderLinks(task);
    return [tasks, results];
  }
}

registerSignatureType('chain', (d, app) => Chain.fromChainDict(d, app));

/** Python's `a | b`, for every kind of signature. */
export function pipeSignatures(a: Signature, b: Signature): Signature {
  const app = a.maybeApp;
  if (a instanceof Chain) return pipeChain(a, b);
  if (a instanceof Group) return isEmptyGroup(b) ? a : new Chord(a, b, {}, app);
  if (b instanceof Chain) return new Chain([a, ...b.unchainTasks()], {}, app);
  if (b instanceof Group) return new Chain([a, maybeUnrollGroup(b)], {}, app);
  return new Chain([a, b], {}, app);
}

function pipeChain(self: Chain, other0: Signature): Signature {
  const app = self.maybeApp;
  let other = other0;
  if (isEmptyGroup(other)) return self;
  if (other instanceof Group) {
    other = maybeUnrollGroup(other);
    if (!(other instanceof Group)) return pipeChain(self, other);
    const tasks = self.unchainTasks();
    if (!tasks.length) return other;
    const last = tasks.at(-1)!;
    if (last instanceof Chord) {
      last.body = last.body!.pipe(other);
      return new Chain(tasks, {}, app);
    }
    return new Chain([...tasks, other], {}, app);
  }
  if (other instanceof Chain) return other.unchainTasks().reduce<Signature>((acc, t) => acc.pipe(t), self);
  const last = self.tasks.at(-1);
  if (last instanceof Group) {
    const sig = self.clone();
    sig.tasks[sig.tasks.length - 1] = new Chord(sig.tasks.at(-1)!, other, {}, app);
    if (sig.tasks.length > 1 && sig.tasks.at(-2) instanceof Chord) {
      const before = sig.tasks.at(-2) as Chord;
      before.body = before.body!.pipe(sig.tasks.at(-1)!);
      sig.tasks = sig.tasks.slice(0, -1);
    }
    return sig;
  }
  if (last instanceof Chord && !(other instanceof Chord)) {
    const sig = self.clone();
    const c = sig.tasks.at(-1) as Chord;
    c.body = c.body!.pipe(other);
    return sig;
  }
  return new Chain([...self.unchainTasks(), other], {}, app);
}

setPipeImplementation(pipeSignatures);

/** Celery's `_merge_chain_step`: adds `other` to `steps` by the rules of `|`; returns steps, or what replaces them. */
function mergeStep(steps: Signature[], other0: Signature, cloneOther: boolean): Signature[] | Signature {
  let other = other0;
  if (isEmptyGroup(other)) return steps;
  if (other instanceof Group) {
    other = maybeUnrollGroup(other);
    if (!(other instanceof Group)) return mergeStep(steps, other, cloneOther);
    if (!steps.length) return other;
    const last = steps.at(-1)!;
    if (last instanceof Chord) {
      last.body = last.body!.pipe(other);
      return steps;
    }
    steps.push(cloneOther ? other.clone() : other);
    return steps;
  }
  if (other instanceof Chain) {
    const inner = other.unchainTasks();
    for (let position = 0; position < inner.length; position++) {
      const result = mergeStep(steps, inner[position]!, cloneOther || position !== inner.length - 1);
      if (result !== steps) return inner.slice(position + 1).reduce<Signature>((acc, t) => acc.pipe(t), result as Signature);
    }
    return steps;
  }
  const last = steps.at(-1);
  if (last instanceof Group) {
    steps[steps.length - 1] = new Chord(last, cloneOther ? other.clone() : other, {}, other.maybeApp);
    return steps;
  }
  if (last instanceof Chord && !(other instanceof Chord)) {
    last.body = last.body!.pipe(other);
    return steps;
  }
  steps.push(cloneOther ? other.clone() : other);
  return steps;
}

/** Celery's `chain(X, Y, Z)`: the same as `X | Y | Z`, in one pass. */
export function foldChain(tasks: Signature[]): Signature {
  const steps: Signature[] = [];
  for (let position = 0; position < tasks.length; position++) {
    const result = mergeStep(steps, tasks[position]!, position !== tasks.length - 1);
    if (result !== steps) return tasks.slice(position + 1).reduce<Signature>((acc, t) => acc.pipe(t), result as Signature);
  }
  return new Chain([...steps.slice(0, -1).map((s) => s.clone()), ...steps.slice(-1)]);
}

// ---------------------------------------------------------------------------
// Typed construction

type AnySig = Signature<any, any, any>;
type InputOf<S> = S extends { readonly __input?: (value: infer I) => void } ? I : unknown;

/** Each step after the first must accept the previous step's result as its first argument. */
export type ValidChain<S extends readonly AnySig[]> = S extends readonly [infer A extends AnySig, infer B extends AnySig, ...infer Rest extends AnySig[]]
  ? [ResultOf<A>] extends [InputOf<B>]
    ? [A, ...ValidChain<[B, ...Rest]>]
    : [A, Signature<any, ResultOf<A>, any>, ...Rest]
  : S;

type LastOf<S extends readonly unknown[]> = S extends readonly [...unknown[], infer L] ? L : unknown;
type ResultHandleOf<S> = S extends Signature<any, any, infer Res> ? Res : AsyncResult<unknown>;

/**
 * `chain(add.s(2, 2), mul.s(4))`: runs the steps one after the other, each
 * getting the previous result prepended to its args. `applyAsync()` resolves
 * with the last step's result (whose `parent` is the step before). With typed
 * signatures, a step whose first parameter cannot take the previous step's
 * result does not compile.
 */
export function chain(): Signature<null, any, null>;
export function chain<const S extends readonly AnySig[]>(...tasks: S & ValidChain<S>): Signature<ResultOf<LastOf<S>>, any, ResultHandleOf<LastOf<S>>>;
/** `chain([a, b, c])`: the steps as one list (not type-checked step by step). */
export function chain(tasks: AnySig[]): Signature;
export function chain(...tasks: Array<AnySig | AnySig[]>): Signature {
  if (tasks.length === 1 && Array.isArray(tasks[0])) {
    const list = tasks[0] as Signature[];
    return list.length === 0 ? new Chain([]) : foldChain(list);
  }
  if (tasks.length === 0) return new Chain([]);
  // As Celery: chain(x) of one signature wraps it (nothing to fold); more are folded like x | y | z.
  if (tasks.length === 1) return new Chain([tasks[0] as Signature]);
  return foldChain(tasks as Signature[]);
}
