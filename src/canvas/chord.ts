/**
 * `chord(header, body)`: the body runs once with the results of every header
 * task, in header order. The header is published as a group whose members
 * carry the body in their message (`embed.chord`); the result backend counts
 * them (Redis: Celery's `celery-taskset-meta-<gid>.j/.s/...` keys), and
 * whichever worker finishes the last member, Python or TypeScript, sends the
 * body. `applyAsync()` resolves with the body's result, whose `parent` is the
 * header's GroupResult.
 */
import { randomUUID } from 'node:crypto';
import type { Celery } from '../app/celery.js';
import type { SignatureDict } from '../protocol/message.js';
import type { AsyncResult, ResultNode } from '../result/async-result.js';
import { GroupResult } from '../result/group-result.js';
import { Group } from './group.js';
import { type CeleryOptions } from './options.js';
import {
  dropEmpty,
  isDict,
  maybeSignature,
  maybeSignatureOrNull,
  registerSignatureType,
  Signature,
  type FreezeOptions,
} from './signature.js';

/** Celery's `_maybe_group`: the header as a list of signatures. */
function maybeGroup(tasks: unknown, app: Celery | null): Signature[] | Group {
  let t = tasks;
  if (isDict(t)) t = Signature.fromDict(t, app);
  if (t instanceof Group || (t instanceof Signature && t.subtaskType === 'chain')) return [...((t as Signature).kwargs.tasks as Signature[])];
  if (t instanceof Signature) return [t];
  return ((t as unknown[]) ?? []).map((x) => maybeSignature(x, app));
}

export class Chord<R = unknown> extends Signature<R, any, AsyncResult<R>> {
  constructor(
    header: unknown,
    body: Signature | SignatureDict | null = null,
    options: CeleryOptions = {},
    app: Celery | null = null,
    extra: { task?: string; args?: unknown[]; kwargs?: Record<string, unknown>; immutable?: boolean } = {},
  ) {
    super(
      extra.task ?? 'celery.chord',
      extra.args ?? [],
      { ...(extra.kwargs ?? { kwargs: {} }), header: maybeGroup(header, app), body: maybeSignatureOrNull(body, app) },
      options,
      { subtaskType: 'chord', immutable: extra.immutable ?? false },
      app,
    );
  }

  /** A chord from its dict (a chain step or chord body read from a message). */
  static fromChordDict(d: SignatureDict, app: Celery | null): Chord {
    const { header, body, ...rest } = (d.kwargs ?? {}) as Record<string, unknown>;
    return new Chord(header, (body ?? null) as SignatureDict | null, { ...(d.options ?? {}) }, app, {
      task: d.task,
      args: Array.isArray(d.args) ? [...d.args] : [],
      kwargs: rest,
      immutable: d.immutable === true,
    });
  }

  /** The header: a list of signatures, or a Group once frozen. */
  get tasks(): Signature[] | Group {
    return this.kwargs.header as Signature[] | Group;
  }

  set tasks(tasks: Signature[] | Group) {
    this.kwargs.header = tasks;
  }

  /** The header's signatures. */
  get headerTasks(): Signature[] {
    const t = this.tasks;
    return t instanceof Group ? t.tasks : t;
  }

  get body(): Signature | null {
    return (this.kwargs.body as Signature | null) ?? null;
  }

  set body(body: Signature | null) {
    this.kwargs.body = body;
  }

  protected override resolveApp(): Celery | null {
    return super.resolveApp() ?? this.headerTasks[0]?.maybeApp ?? this.body?.maybeApp ?? null;
  }

  override clone(args: unknown[] = [], kwargs: Record<string, unknown> = {}, options: CeleryOptions = {}): Chord<R> {
    const sig = super.clone(args, kwargs, options) as unknown as Chord<R>;
    if (sig.body) sig.body = maybeSignature(sig.body, null, true);
    return sig;
  }

  /** `chord | task` extends the body; `chord | group(one)` too; anything else makes a chain. */
  override pipe(other: Signature): Signature {
    let o = other;
    if (o instanceof Group && o.tasks.length === 1) o = o.tasks[0]!;
    if (!(o instanceof Group) && o.subtaskType !== 'chain') {
      const sig = this.clone();
      sig.body = sig.body ? sig.body.pipe(o) : o;
      return sig;
    }
    return super.pipe(other);
  }

  /** Links a callback to the body. */
  override link<S>(callback: S): S {
    this.body!.link(callback);
    return callback;
  }

  /**
   * Links an errback to the body (and, with `task_allow_error_cb_on_chord_header`,
   * to every header task), as Celery does.
   */
  override linkError<S>(errback: S): S {
    const eb = maybeSignature(errback);
    if (this.maybeApp?.conf.task_allow_error_cb_on_chord_header) {
      for (const task of this.headerTasks) task.linkError(eb.clone([], {}, { immutable: true }));
    }
    for (const task of this.headerTasks) if (task instanceof Chord) task.linkError(errback);
    this.body!.linkError(errback);
    return errback;
  }

  /** Makes the header (im)mutable; the body keeps receiving the header's results. */
  override setImmutable(immutable: boolean): void {
    for (const task of this.headerTasks) task.setImmutable(immutable);
  }

  /** @internal */
  override async apply(args: unknown[], kwargs: Record<string, unknown>, options: CeleryOptions): Promise<AsyncResult<R>> {
    const opts = dropEmpty(options);
    const partial = args.length && !this.immutable ? [...args, ...this.args] : this.args;
    const body0 = (kwargs.body as Signature | undefined) ?? this.body;
    if (!body0) throw new TypeError('A chord needs a body: chord(header, body)');
    const { body: _b, ...callKwargs } = kwargs;
    const headerKwargs = { ...((this.kwargs.kwargs as Record<string, unknown>) ?? {}), ...callKwargs };
    const taskIdParam = typeof opts.task_id === 'string' ? opts.task_id : undefined;
    const rest: CeleryOptions = { ...opts };
    delete rest.task_id;
    // countdown/eta delay the header, not the body (Celery #7851).
    const headerDelay: CeleryOptions = {};
    for (const key of ['countdown', 'eta']) {
      if (rest[key] !== undefined) {
        headerDelay[key] = rest[key];
        delete rest[key];
      }
    }
    const callbacks: CeleryOptions = {};
    for (const key of ['link', 'link_error']) {
      if (key in rest) {
        callbacks[key] = rest[key];
        delete rest[key];
      }
    }
    const body = maybeSignature(body0).clone([], {}, bodyOptions(rest));
    const app = this.maybeApp ?? body.app;
    const tasks =
      this.tasks instanceof Group
        ? this.tasks.clone()
        : new Group([...this.tasks], { task_id: typeof this.options.task_id === 'string' ? this.options.task_id : randomUUID() }, app);
    const merged: CeleryOptions = { ...this.options, ...rest, ...callbacks };
    delete merged.countdown;
    delete merged.eta;
    const optionTaskId = merged.task_id;
    delete merged.task_id;
    const taskId = taskIdParam ?? (typeof optionTaskId === 'string' ? optionTaskId : undefined);
    return this.run(tasks, body, partial, app, taskId, headerKwargs, headerDelay, merged);
  }

  /** Celery's `chord.run`: freezes body and header, counts the header, publishes it. */
  private async run(
    header: Group,
    body0: Signature,
    partialArgs: unknown[],
    app: Celery,
    taskId: string | undefined,
    kwargs: Record<string, unknown>,
    headerDelay0: CeleryOptions,
    options0: CeleryOptions,
  ): Promise<AsyncResult<R>> {
    let body = body0;
    const groupId = typeof header.options.task_id === 'string' ? header.options.task_id : randomUUID();
    const rootId = typeof body.options.root_id === 'string' ? body.options.root_id : null;
    const { interval: _i, countdown, max_retries: _m, eager: _e, ...rest } = { ...this.options, ...options0 };
    const options: CeleryOptions = rest;
    const headerDelay: CeleryOptions = { ...headerDelay0 };
    for (const [key, value] of [['countdown', countdown], ['eta', options.eta]] as const) {
      if (!(key in headerDelay) && value !== undefined && value !== null) headerDelay[key] = value;
    }
    delete options.eta;
    if (Object.keys(options).length) {
      delete options.task_id;
      body = addBodyCallbacks(body, options);
      Object.assign(body.options, bodyOptions(options));
    }
    if (body.subtaskType === 'chain') (body as Signature & { unrollChords(app: Celery): void }).unrollChords(app);
    const bodyResult = body.freeze(taskId ?? randomUUID(), { groupId, rootId });
    stripChordHeaderLinks(body);
    // The rest of a chain goes with the body, never with the header (Celery #3771); nor a chord.
    delete options.chain;
    delete options.chord;
    delete options.task_id;
    header.options.task_id = groupId;
    const [gid, results] = header.freezeGroupTasks({ groupId, chord: body, rootId });
    let headerResult: ResultNode;
    if (header.tasks.length) {
      app.backend.ensureChordsAllowed?.();
      const headerTuple = new GroupResult(gid, results, app.backend, app).asTuple();
      await app.backend.applyChord?.(gid, headerTuple);
      headerResult = await header.apply(partialArgs, kwargs, { ...options, ...headerDelay, task_id: groupId });
    } else {
      // Nothing will ever complete an empty header: the body runs now, with [].
      await body.delay([]);
      headerResult = new GroupResult(gid, results, app.backend, app);
    }
    bodyResult.parent = headerResult;
    return bodyResult as AsyncResult<R>;
  }

  /** Fixes the header's and body's ids; returns the body's result (its parent: the header's). */
  override freeze(id?: string | null, f: FreezeOptions = {}): ResultNode {
    if (!(this.tasks instanceof Group)) this.tasks = new Group(this.tasks, {}, this.maybeApp);
    const header = this.tasks;
    const headerResult = header.freeze(null, { parentId: f.parentId, rootId: f.rootId, chord: this.body });
    this.id = header.id;
    if (!this.body) return headerResult;
    const bodyResult = this.body.freeze(id, { rootId: f.rootId, chord: f.chord, groupId: f.groupId, groupIndex: f.groupIndex });
    // The body may be a chain: its first step follows the header.
    const seen = new Set<string>();
    for (let node: ResultNode | null = bodyResult; node; node = node.parent) {
      if (seen.has(node.id)) throw new Error('Recursive result parents');
      seen.add(node.id);
      if (node.parent === null) {
        node.parent = headerResult;
        break;
      }
    }
    return bodyResult;
  }

  /** chord(header, chain(a, b, c)) -> [chord(header, a), b, c]: the rest of the chain is not copied into every header task. */
  unrollBody(): Signature[] {
    const task = this.clone();
    const chain = task.body as Signature & { unchainTasks(): Signature[] };
    const bodyTasks = chain.unchainTasks();
    task.body = bodyTasks[0]!.clone([], {}, firstTaskOptions(chain));
    return [task, ...bodyTasks.slice(1)];
  }
}

registerSignatureType('chord', (d, app) => Chord.fromChordDict(d, app));

/** Options a chain's run consumes itself instead of giving them to its first task. */
const CHAIN_RUN_OPTIONS = new Set(['chord', 'group_id', 'group_index', 'link', 'link_error', 'parent_id', 'root_id', 'task_id']);

/** The options a chain passes on to its first task when run. */
export function firstTaskOptions(chain: Signature): CeleryOptions {
  const out: CeleryOptions = {};
  for (const [k, v] of Object.entries(chain.options)) if (!CHAIN_RUN_OPTIONS.has(k)) out[k] = v;
  return out;
}

/** Options passed on to the body: the header task that fires it is its parent. */
function bodyOptions(options: CeleryOptions): CeleryOptions {
  const { parent_id: _p, ...rest } = options;
  return rest;
}

/** Clones `sig` and the signatures in it that linking changes (group members, a chord's body). */
function cloneWithMembers(sig: unknown): Signature {
  const s = maybeSignature(sig, null, true);
  if (s instanceof Group) s.tasks = s.tasks.map(cloneWithMembers);
  else if (s instanceof Chord && s.body) s.body = cloneWithMembers(s.body);
  return s;
}

/** Links `errback` to each task of a group body (Celery's `_link_error_to_body_tasks`). */
function linkErrorToBodyTasks(sig: Signature, errback: Signature, runsAsGroup = true): void {
  if (sig instanceof Group) {
    if (runsAsGroup && sig.options.link_error !== undefined && sig.options.link_error !== null) {
      sig.appendToListOption('link_error', errback.clone());
    } else {
      for (const task of sig.tasks) linkErrorToBodyTasks(task, errback, false);
    }
  } else if (sig instanceof Chord && sig.body) {
    linkErrorToBodyTasks(sig.body, errback);
  } else {
    sig.linkError(errback.clone());
  }
}

/** Moves `link`/`link_error` from `options` onto the body (Celery's `_add_body_callbacks`). */
function addBodyCallbacks(body0: Signature, options: CeleryOptions): Signature {
  const list = (v: unknown): unknown[] => (v === undefined || v === null ? [] : Array.isArray(v) ? v : [v]);
  const callbacks = list(options.link);
  const errbacks = list(options.link_error);
  delete options.link;
  delete options.link_error;
  let body = body0;
  if (callbacks.length || errbacks.length) body = cloneWithMembers(body);
  for (const cb of callbacks) {
    const callback = cloneWithMembers(maybeSignature(cb, body.maybeApp));
    if (body instanceof Group && body.tasks.length === 0) body.appendToListOption('link', callback);
    else body.link(callback);
  }
  for (const eb of errbacks) {
    if (body instanceof Group) linkErrorToBodyTasks(body, maybeSignature(eb, body.maybeApp));
    else body.appendToListOption('link_error', eb);
  }
  return body;
}

/** Removes the chord callback from the terminal tasks of a signature. */
function clearChordOption(sig: unknown): void {
  if (Array.isArray(sig)) {
    for (const t of sig) clearChordOption(t);
    return;
  }
  if (!(sig instanceof Signature)) return;
  delete sig.options.chord;
  if (sig instanceof Group) for (const t of sig.tasks) clearChordOption(t);
  else if (sig.subtaskType === 'chain') clearChordOption(((sig.kwargs.tasks as Signature[]) ?? []).at(-1));
  else if (sig instanceof Chord && sig.body) clearChordOption(sig.body);
}

/**
 * Removes from a copy being sent the chord callbacks that freezing put on
 * the header tasks of nested chords: each of those chords carries its body
 * anyway and puts them back when it runs (Celery's `_strip_chord_header_links`),
 * which keeps nested chords' messages from growing with every level.
 */
export function stripChordHeaderLinks(sig: unknown): void {
  if (sig instanceof Chord) {
    clearChordOption(sig.tasks);
    stripChordHeaderLinks(sig.tasks);
    if (sig.body) stripChordHeaderLinks(sig.body);
  } else if (sig instanceof Group || (sig instanceof Signature && sig.subtaskType === 'chain')) {
    for (const task of (sig.kwargs.tasks as Signature[]) ?? []) stripChordHeaderLinks(task);
  } else if (Array.isArray(sig)) {
    for (const task of sig) stripChordHeaderLinks(task);
  }
}

/**
 * `chord(header, body)`: runs the header tasks in parallel, then `body` with
 * the list of their results (in header order). Resolves with the body's result.
 */
export function chord<S extends Signature<any, any, any>, B extends Signature<any, any, any>>(
  header: S[] | Group<any> | S,
  body: B,
): Chord<B extends Signature<infer R, any, any> ? R : unknown> {
  return new Chord(header, body);
}
