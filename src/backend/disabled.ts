/** No result backend configured: storing is a no-op, reading says how to configure one. */
import { ImproperlyConfigured, NoResultBackend } from '../errors.js';
import type { ResultMeta } from '../protocol/result-meta.js';
import type { ResultBackend } from './types.js';

export class DisabledBackend implements ResultBackend {
  readonly displayUrl = 'disabled://';
  async store(_meta: ResultMeta): Promise<void> {}
  async get(_taskId: string): Promise<ResultMeta | null> {
    throw new NoResultBackend();
  }
  async waitForReady(_taskId: string, _timeoutMs: number | null): Promise<ResultMeta> {
    throw new NoResultBackend();
  }
  async forget(_taskId: string): Promise<void> {}
  ensureChordsAllowed(): void {
    throw new ImproperlyConfigured(
      'Chords need a result backend to count their header (result_backend is not set): set result_backend to a redis:// URL',
    );
  }
  async close(): Promise<void> {}
}
