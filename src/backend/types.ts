/**
 * The result backend interface: store a task's state, read it, wait for it.
 * One implementation per backend (redis, memory, disabled); the worker and
 * `AsyncResult` only talk to this.
 */
import type { ResultMeta } from '../protocol/result-meta.js';

/** What a worker knows about the task whose state it stores (rpc:// replies need it). */
export interface StoreContext {
  /** The task message's `reply_to` (the caller's reply queue for rpc://). */
  replyTo: string | null;
  /** The task message's `correlation_id` (the task id). */
  correlationId: string;
}

export interface ResultBackend {
  /** The backend URL with the password masked. */
  readonly displayUrl: string;
  /** Stores a state change. Never overwrites a stored SUCCESS (as Celery). */
  store(meta: ResultMeta, context?: StoreContext): Promise<void>;
  /**
   * Called before a task is published (rpc:// declares and consumes the reply
   * queue then, so no reply can arrive before anyone listens).
   */
  beforePublish?(): Promise<void>;
  /** The stored meta, or null when nothing is stored (Celery's PENDING). */
  get(taskId: string): Promise<ResultMeta | null>;
  /**
   * Resolves with the meta once the task reaches a ready state (SUCCESS,
   * FAILURE, REVOKED). Rejects with `TimeoutError` after `timeoutMs`
   * (null = wait forever) and with `BackendError` when the backend is unreachable.
   */
  waitForReady(taskId: string, timeoutMs: number | null): Promise<ResultMeta>;
  /** Deletes the stored result. */
  forget(taskId: string): Promise<void>;
  close(): Promise<void>;
}
