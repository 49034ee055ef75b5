/** The embedded in-memory result backend (`memory://`): one process, nothing persisted. */
import { READY_STATES, States, type ResultMeta } from '../protocol/result-meta.js';
import type { ResultBackend } from './types.js';
import { ReadyWaiters } from './waiters.js';

export class MemoryBackend implements ResultBackend {
  readonly displayUrl = 'memory://';
  private readonly results = new Map<string, ResultMeta>();
  private readonly waiters = new ReadyWaiters();

  async store(meta: ResultMeta): Promise<void> {
    if (this.results.get(meta.task_id)?.status === States.SUCCESS) return;
    this.results.set(meta.task_id, meta);
    if (READY_STATES.has(meta.status)) this.waiters.settle(meta.task_id, meta);
  }

  async get(taskId: string): Promise<ResultMeta | null> {
    return this.results.get(taskId) ?? null;
  }

  waitForReady(taskId: string, timeoutMs: number | null): Promise<ResultMeta> {
    const current = this.results.get(taskId);
    if (current && READY_STATES.has(current.status)) return Promise.resolve(current);
    return this.waiters.wait(taskId, timeoutMs).promise;
  }

  async forget(taskId: string): Promise<void> {
    this.results.delete(taskId);
  }

  async close(): Promise<void> {}
}
