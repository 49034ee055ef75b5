/** The embedded in-memory result backend (`memory://`): one process, nothing persisted. */
import { EventEmitter } from 'node:events';
import { TimeoutError } from '../errors.js';
import { READY_STATES, States, type ResultMeta } from '../protocol/result-meta.js';
import type { ResultBackend } from './types.js';

export class MemoryBackend implements ResultBackend {
  readonly displayUrl = 'memory://';
  private readonly results = new Map<string, ResultMeta>();
  private readonly changes = new EventEmitter().setMaxListeners(0);

  async store(meta: ResultMeta): Promise<void> {
    if (this.results.get(meta.task_id)?.status === States.SUCCESS) return;
    this.results.set(meta.task_id, meta);
    this.changes.emit(meta.task_id, meta);
  }

  async get(taskId: string): Promise<ResultMeta | null> {
    return this.results.get(taskId) ?? null;
  }

  waitForReady(taskId: string, timeoutMs: number | null): Promise<ResultMeta> {
    const current = this.results.get(taskId);
    if (current && READY_STATES.has(current.status)) return Promise.resolve(current);
    return new Promise((resolve, reject) => {
      const onChange = (meta: ResultMeta): void => {
        if (!READY_STATES.has(meta.status)) return;
        cleanup();
        resolve(meta);
      };
      const timer = timeoutMs === null ? null : setTimeout(() => {
        cleanup();
        reject(new TimeoutError('The operation timed out.'));
      }, timeoutMs);
      const cleanup = (): void => {
        if (timer) clearTimeout(timer);
        this.changes.off(taskId, onChange);
      };
      this.changes.on(taskId, onChange);
    });
  }

  async forget(taskId: string): Promise<void> {
    this.results.delete(taskId);
  }

  async close(): Promise<void> {}
}
