/**
 * The `get()` calls waiting for tasks to become ready, grouped by id. Each
 * waits with its own timeout; settling an id resolves every waiter at once.
 * `onIdle(id)` runs when an id has no waiter left (the Redis backend
 * unsubscribes from the id's channel then).
 */
import { TimeoutError } from '../errors.js';
import type { ResultMeta } from '../protocol/result-meta.js';

interface Waiter {
  resolve(meta: ResultMeta): void;
  reject(err: Error): void;
}

/** One started wait. */
export interface Wait {
  promise: Promise<ResultMeta>;
  /** True when nobody was waiting for this id before. */
  first: boolean;
  /** Rejects this wait (and only this one). */
  fail(err: Error): void;
}

export class ReadyWaiters {
  private readonly byId = new Map<string, Set<Waiter>>();

  constructor(private readonly onIdle: (id: string) => void = () => undefined) {}

  /** Ids with at least one waiter. */
  get size(): number {
    return this.byId.size;
  }

  ids(): string[] {
    return [...this.byId.keys()];
  }

  /**
   * Starts waiting for `id`; rejects with `TimeoutError` after `timeoutMs` (null = never),
   * or with the reason of `signal` when it aborts.
   */
  wait(id: string, timeoutMs: number | null, signal?: AbortSignal): Wait {
    let set = this.byId.get(id);
    const first = !set;
    if (!set) this.byId.set(id, (set = new Set()));
    const waiters = set;
    let fail: (err: Error) => void = () => undefined;
    const promise = new Promise<ResultMeta>((resolve, reject) => {
      let timer: NodeJS.Timeout | null = null;
      const waiter: Waiter = {
        resolve: (meta) => {
          if (timer) clearTimeout(timer);
          resolve(meta);
        },
        reject: (err) => {
          if (timer) clearTimeout(timer);
          this.remove(id, waiter);
          reject(err);
        },
      };
      if (timeoutMs !== null) timer = setTimeout(() => waiter.reject(new TimeoutError('The operation timed out.')), timeoutMs);
      waiters.add(waiter);
      fail = waiter.reject;
      if (signal) {
        const onAbort = (): void => waiter.reject(signal.reason instanceof Error ? signal.reason : new Error('aborted'));
        if (signal.aborted) onAbort();
        else signal.addEventListener('abort', onAbort, { once: true });
      }
    });
    return { promise, first, fail };
  }

  /** `id` is ready: resolves all its waiters. */
  settle(id: string, meta: ResultMeta): void {
    const set = this.byId.get(id);
    if (!set) return;
    this.byId.delete(id);
    this.onIdle(id);
    for (const w of set) w.resolve(meta);
  }

  /** Rejects every waiter, with an error made for its id. */
  failAll(error: (id: string) => Error): void {
    for (const [id, set] of [...this.byId]) for (const w of [...set]) w.reject(error(id));
  }

  private remove(id: string, waiter: Waiter): void {
    const set = this.byId.get(id);
    if (!set?.delete(waiter)) return;
    if (set.size === 0) {
      this.byId.delete(id);
      this.onIdle(id);
    }
  }
}
