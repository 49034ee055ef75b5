/**
 * `add.map(xs)`, `add.starmap(pairs)` and `add.chunks(pairs, n)`, as Celery's
 * `xmap`, `xstarmap` and `chunks`: one message runs the task over many
 * arguments in a row (`celery.map` / `celery.starmap`), and `chunks` splits
 * the list into a group of such messages.
 */
import type { Celery } from '../app/celery.js';
import type { SignatureDict } from '../protocol/message.js';
import type { AsyncResult } from '../result/async-result.js';
import type { GroupResult } from '../result/group-result.js';
import { Group } from './group.js';
import { toApplyOptions, type CeleryOptions } from './options.js';
import { dropEmpty, maybeSignature, registerSignatureType, Signature } from './signature.js';

function taskName(task: unknown): string | undefined {
  if (task instanceof Signature) return task.task;
  if (task && typeof task === 'object' && typeof (task as { task?: unknown }).task === 'string') return (task as { task: string }).task;
  return undefined;
}

/** `celery.map` / `celery.starmap`: the task over each item, in one message; resolves with the list of results. */
export class MapSignature<R = unknown> extends Signature<R[], any, AsyncResult<R[]>> {
  constructor(kind: 'xmap' | 'xstarmap', task: Signature | SignatureDict, it: unknown[], options: CeleryOptions = {}, app: Celery | null = null) {
    super(kind === 'xmap' ? 'celery.map' : 'celery.starmap', [], { task, it: [...it] }, options, { subtaskType: kind, immutable: true }, app);
  }

  protected override resolveApp(): Celery | null {
    const task = this.kwargs.task;
    return super.resolveApp() ?? (task instanceof Signature ? task.maybeApp : null);
  }

  /** @internal */
  override apply(_args: unknown[], _kwargs: Record<string, unknown>, options: CeleryOptions): Promise<AsyncResult<R[]>> {
    const [, , merged] = this.merge([], {}, dropEmpty(options));
    const { route_name: routeName, ...opts } = merged;
    const task = this.kwargs.task;
    const route = (typeof routeName === 'string' && routeName) || taskName(task) || this.task;
    return this.app.sendTask(this.task, [], { task, it: this.kwargs.it }, { ...toApplyOptions(opts), routeName: route }) as Promise<AsyncResult<R[]>>;
  }
}

/** `chunks`: `it` split into parts of `n`, each part a `celery.starmap` message, all in a group. */
export class ChunksSignature<R = unknown> extends Signature<R[][], any, GroupResult<R[]>> {
  constructor(task: Signature | SignatureDict, it: unknown[][], n: number, options: CeleryOptions = {}, app: Celery | null = null) {
    super('celery.chunks', [], { task, it: [...it], n }, options, { subtaskType: 'chunks', immutable: true }, app);
  }

  protected override resolveApp(): Celery | null {
    const task = this.kwargs.task;
    return super.resolveApp() ?? (task instanceof Signature ? task.maybeApp : null);
  }

  /** The group of `celery.starmap` signatures this stands for. */
  group(): Group<R[]> {
    const it = this.kwargs.it as unknown[][];
    const n = this.kwargs.n as number;
    const task = maybeSignature(this.kwargs.task, this.maybeApp);
    const parts: Signature[] = [];
    for (let i = 0; i < it.length; i += n) parts.push(new MapSignature('xstarmap', task, it.slice(i, i + n), {}, this.maybeApp));
    return new Group<R[]>(parts, {}, this.maybeApp);
  }

  /** @internal */
  override apply(args: unknown[], kwargs: Record<string, unknown>, options: CeleryOptions): Promise<GroupResult<R[]>> {
    return this.group().apply(args, kwargs, { ...this.options, ...dropEmpty(options), route_name: taskName(this.kwargs.task) });
  }
}

function mapFromDict(kind: 'xmap' | 'xstarmap') {
  return (d: SignatureDict, app: Celery | null): Signature => {
    const k = (d.kwargs ?? {}) as { task?: SignatureDict; it?: unknown[] };
    return new MapSignature(kind, maybeSignature(k.task, app), k.it ?? [], { ...(d.options ?? {}) }, app);
  };
}

registerSignatureType('xmap', mapFromDict('xmap'));
registerSignatureType('xstarmap', mapFromDict('xstarmap'));
registerSignatureType('chunks', (d, app) => {
  const k = (d.kwargs ?? {}) as { task?: SignatureDict; it?: unknown[][]; n?: number };
  return new ChunksSignature(maybeSignature(k.task, app), k.it ?? [], k.n ?? 1, { ...(d.options ?? {}) }, app);
});
