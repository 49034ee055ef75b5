/**
 * Signatures: a task call described as data (`add.s(2)`), as Celery's canvas
 * defines it. Chains, groups and chords are signatures too (subclasses in
 * chain.ts, group.ts, chord.ts), registered by their `subtask_type` so that a
 * signature read from a message becomes the right class again.
 *
 * A signature knows the app it belongs to (`task.s()`, `app.signature()`),
 * without putting it on the wire, so `applyAsync()` needs no app argument.
 * Its options keep Celery's names (`task_id`, `link_error`...) because they
 * travel inside messages that Python workers read.
 */
import { randomUUID } from 'node:crypto';
import type { Celery } from '../app/celery.js';
import { ImproperlyConfigured } from '../errors.js';
import type { SignatureDict } from '../protocol/message.js';
import { argsRepr, pyRepr } from '../protocol/repr.js';
import type { AsyncResult, ResultNode } from '../result/async-result.js';
import type { StampingVisitor, StampOptions } from './stamping.js';
import { toApplyOptions, toCeleryOptions, type CeleryOptions, type SignatureOptions } from './options.js';

/** What freezing may fix on a signature before it is sent (Celery's `freeze()` arguments). */
export interface FreezeOptions {
  groupId?: string | null | undefined;
  chord?: Signature | SignatureDict | null | undefined;
  rootId?: string | null | undefined;
  parentId?: string | null | undefined;
  groupIndex?: number | null | undefined;
}

type FromDict = (d: SignatureDict, app: Celery | null) => Signature;
const TYPES = new Map<string, FromDict>();

/** Registers a signature subclass under its `subtask_type` (done by chain.ts, group.ts...). */
export function registerSignatureType(name: string, fromDict: FromDict): void {
  TYPES.set(name, fromDict);
}

/** Python's `|` for every kind of signature; set by chain.ts (which knows chains, groups and chords). */
let pipeImplementation: ((a: Signature, b: Signature) => Signature) | null = null;

/** @internal */
export function setPipeImplementation(fn: (a: Signature, b: Signature) => Signature): void {
  pipeImplementation = fn;
}

/** Canvas stamping; set by stamping.ts (which knows chains, groups and chords). */
type StampImplementation = (sig: Signature, visitor: StampingVisitor | null | undefined, options: StampOptions) => void;
let stampImplementation: StampImplementation | null = null;

/** @internal */
export function setStampImplementation(fn: StampImplementation): void {
  stampImplementation = fn;
}

/** Options whose value a merge must not change once set: they tie a task to its group (Celery's `_IMMUTABLE_OPTIONS`). */
const IMMUTABLE_OPTIONS = new Set(['group_id', 'stamped_headers']);

const STANDARD_KEYS = new Set(['task', 'args', 'kwargs', 'options', 'subtask_type', 'immutable']);

/** True for a plain object (a signature dict read from JSON). */
export function isDict(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v) && !(v instanceof Signature);
}

/**
 * A copy of a signature's options: nested signatures become dicts with
 * copied options (Python's `deepcopy` of a signature gives a dict), so
 * changing a copy never changes the original.
 */
export function copyOptions(value: unknown): unknown {
  if (value instanceof Signature) return { ...value.toJSON(), options: copyOptions(value.options) };
  if (Array.isArray(value)) return value.map(copyOptions);
  if (isDict(value)) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = k === 'options' || k !== 'kwargs' ? copyOptions(v) : v;
    return out;
  }
  return value;
}

/** Python dict equality of two signatures (or dicts), for "link it only once". */
function sameSignature(a: unknown, b: unknown): boolean {
  return a === b || JSON.stringify(a) === JSON.stringify(b);
}

/**
 * A task call described as data. `R` is what the task returns; `In` is the
 * type of the value a previous step prepends to its arguments (checked by
 * `chain()`); `Res` is what `applyAsync()` resolves to (an `AsyncResult<R>`
 * for a task, a `GroupResult` for a group).
 */
export class Signature<R = unknown, In = any, Res = unknown> {
  /** Phantom type fields: never set, used only by the type checker. */
  declare readonly __result?: R;
  declare readonly __input?: (value: In) => void;

  task: string;
  args: unknown[];
  kwargs: Record<string, unknown>;
  /** apply_async options, Celery's names. */
  options: CeleryOptions;
  /** null for a task, `chain`, `group`, `chord`, `chunks`, `xmap`, `xstarmap`. */
  subtaskType: string | null;
  /** An immutable signature ignores the arguments a previous step would prepend. */
  immutable: boolean;
  /** Keys of a signature dict that Celery code added and that must round-trip (e.g. `chord_size`). */
  private extra: Record<string, unknown> | null = null;
  private boundApp: Celery | null;

  constructor(
    task: string,
    args: unknown[] = [],
    kwargs: Record<string, unknown> = {},
    options: CeleryOptions = {},
    fields: { subtaskType?: string | null; immutable?: boolean } = {},
    app: Celery | null = null,
  ) {
    this.task = task;
    this.args = args;
    this.kwargs = kwargs;
    this.options = options;
    this.subtaskType = fields.subtaskType ?? null;
    this.immutable = fields.immutable ?? false;
    this.boundApp = app;
  }

  /** A signature from its dict (a message's `callbacks`, `chain`, `chord`...), as the right class. */
  static fromDict(d: SignatureDict | Record<string, unknown>, app: Celery | null = null): Signature {
    const type = typeof d.subtask_type === 'string' ? d.subtask_type : null;
    const make = type ? TYPES.get(type) : undefined;
    if (make) return make(d as SignatureDict, app);
    const sig = new Signature(
      String(d.task),
      Array.isArray(d.args) ? [...(d.args as unknown[])] : [],
      isDict(d.kwargs) ? (d.kwargs as Record<string, unknown>) : {},
      isDict(d.options) ? (d.options as CeleryOptions) : {},
      { subtaskType: type, immutable: d.immutable === true },
      app,
    );
    sig.keepExtra(d);
    return sig;
  }

  /** @internal Keeps non-standard keys of a dict so they are sent on again. */
  protected keepExtra(d: Record<string, unknown>): void {
    for (const [k, v] of Object.entries(d)) {
      if (!STANDARD_KEYS.has(k)) (this.extra ??= {})[k] = v;
    }
  }

  /** The app of this signature: its own, else (for a chain, group or chord) that of its first task. */
  protected resolveApp(): Celery | null {
    return this.boundApp;
  }

  /** The app this signature is bound to. */
  get app(): Celery {
    const app = this.resolveApp();
    if (!app) {
      throw new ImproperlyConfigured(
        `The signature ${this.task} is not bound to an app: build it with task.s(), task.si() or app.signature()`,
      );
    }
    return app;
  }

  /** The bound app, or null. */
  get maybeApp(): Celery | null {
    return this.resolveApp();
  }

  /** Binds the signature to `app` (Celery's `maybe_signature(d, app=app)`). */
  bind(app: Celery | null): this {
    if (app) this.boundApp = app;
    return this;
  }

  /** The task id, once frozen (or set with `.set({ taskId })`). */
  get id(): string | undefined {
    return typeof this.options.task_id === 'string' ? this.options.task_id : undefined;
  }

  set id(value: string | undefined) {
    if (value === undefined) delete this.options.task_id;
    else this.options.task_id = value;
  }

  /** The task name (Celery's `sig.name`). */
  get name(): string {
    return this.task;
  }

  /**
   * Sets execution options (`queue`, `countdown`, `taskId`, `linkError`...,
   * camelCase or Celery's names) and `immutable`. Returns this signature.
   */
  set(options: SignatureOptions): this {
    const { options: celery, immutable } = toCeleryOptions(options);
    if (immutable !== undefined) this.setImmutable(immutable);
    Object.assign(this.options, celery);
    return this;
  }

  /** Makes the signature (im)mutable. */
  setImmutable(immutable: boolean): void {
    this.immutable = immutable;
  }

  /** The list under `options[key]`, made a list if it was one value. */
  protected listOption(key: string): unknown[] {
    const current = this.options[key];
    if (Array.isArray(current)) return current;
    const items = current === undefined || current === null ? [] : [current];
    this.options[key] = items;
    return items;
  }

  /** Adds `value` to the list option `key` unless an equal one is there. */
  appendToListOption<T>(key: string, value: T): T {
    const items = this.listOption(key);
    if (!items.some((i) => sameSignature(i, value))) items.push(value);
    return value;
  }

  /** Adds every value to the list option `key`. */
  extendListOption(key: string, value: unknown): void {
    this.listOption(key).push(...(Array.isArray(value) ? value : [value]));
  }

  /** Runs `callback` with this task's result prepended to its args, after this task succeeds. Returns `callback`. */
  link<S>(callback: S): S {
    return this.appendToListOption('link', callback);
  }

  /** Runs `errback` with this task's id after this task fails. Returns `errback`. */
  linkError<S>(errback: S): S {
    return this.appendToListOption('link_error', errback);
  }

  /** `linkError` that returns this signature, for chaining calls. */
  onError(errback: Signature | SignatureDict): this {
    this.linkError(errback);
    return this;
  }

  /**
   * Celery's `_merge`: partial args are prepended, kwargs and options merged
   * (without changing `group_id` once set). An immutable signature keeps its
   * args and kwargs unless `force`.
   */
  merge(
    args: unknown[] = [],
    kwargs: Record<string, unknown> = {},
    options: CeleryOptions | null = null,
    force = false,
  ): [unknown[], Record<string, unknown>, CeleryOptions] {
    let newOptions = this.options;
    if (options !== null) {
      const stamped = Array.isArray(this.options.stamped_headers) ? (this.options.stamped_headers as string[]) : [];
      newOptions = { ...this.options };
      for (const [k, v] of Object.entries(options)) {
        if ((IMMUTABLE_OPTIONS.has(k) || stamped.includes(k)) && k in this.options) continue;
        newOptions[k] = v;
      }
    }
    if (this.immutable && !force) return [this.args, this.kwargs, newOptions];
    return [
      args.length ? [...args, ...this.args] : this.args,
      Object.keys(kwargs).length ? { ...this.kwargs, ...kwargs } : this.kwargs,
      newOptions,
    ];
  }

  /** A copy (optionally with partial args, kwargs and options merged in); options are copied deeply. */
  clone(args: unknown[] = [], kwargs: Record<string, unknown> = {}, options: CeleryOptions = {}): Signature<R, In, Res> {
    const changed = args.length > 0 || Object.keys(kwargs).length > 0 || Object.keys(options).length > 0;
    let [a, k, o] = changed ? this.merge(args, kwargs, options) : [this.args, this.kwargs, this.options];
    if (k === this.kwargs) k = { ...k };
    const d: Record<string, unknown> = {
      ...this.extra,
      task: this.task,
      args: [...a],
      kwargs: k,
      options: copyOptions(o),
      subtask_type: this.subtaskType,
      immutable: this.immutable,
    };
    return Signature.fromDict(d, this.boundApp) as Signature<R, In, Res>;
  }

  /**
   * Fixes the task id (and group, chord, root and parent ids) before sending,
   * as Celery's `freeze()`; returns the result handle the task will have.
   */
  freeze(id?: string | null, f: FreezeOptions = {}): ResultNode {
    const opts = this.options;
    if (typeof opts.task_id !== 'string') opts.task_id = id || randomUUID();
    if (f.rootId) opts.root_id = f.rootId;
    if (f.parentId) opts.parent_id = f.parentId;
    const app = this.resolveApp();
    if (!('reply_to' in opts) && app) opts.reply_to = app.oid;
    if (f.groupId && !('group_id' in opts)) opts.group_id = f.groupId;
    if (f.chord) opts.chord = f.chord;
    if (f.groupIndex !== null && f.groupIndex !== undefined) opts.group_index = f.groupIndex;
    return this.app.asyncResult(opts.task_id as string);
  }

  /**
   * Sends the task: `args` are prepended to the signature's own (unless it is
   * immutable), `kwargs` and `options` merged. Resolves once the broker has it.
   */
  applyAsync(args: unknown[] = [], kwargs: Record<string, unknown> = {}, options: SignatureOptions = {}): Promise<Res> {
    const { options: celery, immutable } = toCeleryOptions(options);
    if (immutable !== undefined) celery.immutable = immutable;
    return this.apply(args, kwargs, celery);
  }

  /** Sends the task with `args` prepended (Celery's `delay`). */
  delay(...args: unknown[]): Promise<Res> {
    return this.apply(args, {}, {});
  }

  /**
   * @internal `applyAsync` with options in Celery's names, as the canvas and
   * the worker pass them. Options whose value is null or undefined are dropped.
   */
  apply(args: unknown[], kwargs: Record<string, unknown>, options: CeleryOptions): Promise<Res> {
    const opts = dropEmpty(options);
    const [a, k, o] =
      args.length > 0 || Object.keys(kwargs).length > 0 || Object.keys(opts).length > 0
        ? this.merge(args, kwargs, opts)
        : [this.args, this.kwargs, this.options];
    return this.app.sendTask(this.task, a, k, toApplyOptions(o)) as Promise<Res>;
  }

  /**
   * Stamps this signature and everything under it (callbacks, errbacks,
   * chain steps, group members, chord header and body), as Celery 5.3+'s
   * `sig.stamp(visitor, append_stamps, **headers)`: `visitor` (optional)
   * returns stamps per canvas part; `options` holds fixed stamps
   * (`{ tenant: 't1' }`) and `appendStamps` (duplicated stamps become lists).
   * Stamps become options (listed in `stamped_headers`), sent in the task
   * messages' `stamped_headers`/`stamps` headers; a worker shows them as
   * `request.stamps`. Returns this signature.
   */
  stamp(visitor?: StampingVisitor | null, options: StampOptions = {}): this {
    if (!stampImplementation) throw new Error('the canvas is not loaded: import it from ts-celery');
    stampImplementation(this as Signature, visitor, options);
    return this;
  }

  /** Python's `|`: this, then `other` (a chain; a group becomes a chord's header). */
  pipe(other: Signature): Signature {
    if (!pipeImplementation) throw new Error('the canvas is not loaded: import it from ts-celery');
    return pipeImplementation(this as Signature, other);
  }

  /** `add(2, 2)`, for logs. */
  reprcall(): string {
    const args = argsRepr(this.args).slice(1, -1).replace(/,$/, '');
    const kw = Object.entries(this.kwargs).map(([k, v]) => `${k}=${pyRepr(v)}`);
    return `${this.task}(${[args, ...kw].filter(Boolean).join(', ')})`;
  }

  toString(): string {
    return this.reprcall();
  }

  /** The wire form (nested signatures serialize themselves). */
  toJSON(): SignatureDict {
    return {
      ...this.extra,
      task: this.task,
      args: this.args,
      kwargs: this.kwargs,
      options: this.options,
      subtask_type: this.subtaskType,
      immutable: this.immutable,
    };
  }

  /** A plain JSON copy of the wire form (no class instances anywhere). */
  toDict(): SignatureDict {
    return JSON.parse(JSON.stringify(this)) as SignatureDict;
  }
}

/** Options without null/undefined values (Celery drops them in `apply_async`). */
export function dropEmpty(options: CeleryOptions): CeleryOptions {
  let out: CeleryOptions | null = null;
  for (const [k, v] of Object.entries(options)) {
    if (v === null || v === undefined) {
      out ??= { ...options };
      delete out[k];
    }
  }
  return out ?? options;
}

/**
 * A signature for `d` (Celery's `maybe_signature`): dicts become signatures,
 * signatures are kept (or cloned), both bound to `app` when given.
 */
export function maybeSignature(d: unknown, app: Celery | null = null, clone = false): Signature {
  if (d instanceof Signature) {
    const sig = clone ? d.clone() : d;
    return sig.bind(app);
  }
  if (isDict(d)) return Signature.fromDict(d, app);
  throw new ImproperlyConfigured(`Not a signature: ${JSON.stringify(d)}`);
}

/** A signature (or null) for an optional value. */
export function maybeSignatureOrNull(d: unknown, app: Celery | null = null, clone = false): Signature | null {
  return d === null || d === undefined ? null : maybeSignature(d, app, clone);
}

/**
 * A task signature by name (e.g. a task defined only in Python). Unbound
 * unless `app` is given: `app.signature()` binds it to the app, so it can be
 * applied; an unbound one can still be linked or put in a canvas.
 */
export function signature<R = unknown>(
  name: string,
  args: unknown[] = [],
  kwargs: Record<string, unknown> = {},
  options: SignatureOptions = {},
  app: Celery | null = null,
): Signature<R, any, AsyncResult<R>> {
  const { options: celery, immutable } = toCeleryOptions(options);
  return new Signature<R, any, AsyncResult<R>>(name, args, kwargs, celery, { immutable: immutable ?? false }, app);
}
