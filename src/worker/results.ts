/**
 * Writing task states to the result backend without letting a backend
 * outage stop the worker.
 *
 * Each write is attempted at once (awaited, so a slow backend slows intake
 * instead of growing an unbounded backlog). When it fails, the state is kept
 * (only the newest per task id) and retried in the background with capped
 * exponential backoff, while tasks keep running and being acked. The backlog
 * is bounded; past the bound the oldest states are dropped and reported.
 */
import type { ResultBackend, StoreContext } from '../backend/types.js';
import type { ResultMeta } from '../protocol/result-meta.js';
import { backoffDelay, sleep } from '../support/backoff.js';
import { getLogger } from '../support/log.js';

const log = getLogger('MainProcess');

export interface ResultWriterOptions {
  /** Most states kept for retrying while the backend is down. */
  maxBacklog?: number;
}

export class ResultWriter {
  private readonly backlog = new Map<string, { meta: ResultMeta; context: StoreContext | undefined }>();
  private retrying: Promise<void> | null = null;
  private closed = false;
  private readonly maxBacklog: number;
  /** States dropped because the backlog was full (reported in logs). */
  dropped = 0;

  constructor(private readonly backend: ResultBackend, options: ResultWriterOptions = {}) {
    this.maxBacklog = options.maxBacklog ?? 10_000;
  }

  /** States waiting for the backend to come back. */
  get pending(): number {
    return this.backlog.size;
  }

  /** Stores `meta`; never throws. `context` is the task message's reply_to/correlation id (rpc://). */
  async store(meta: ResultMeta, context?: StoreContext): Promise<void> {
    if (this.backlog.size > 0) return this.enqueue(meta, context); // keep order behind earlier failures
    try {
      await this.attempt(meta, context);
    } catch (err) {
      log.warning(`Result backend unavailable, will retry storing results: ${(err as Error).message}`);
      this.enqueue(meta, context);
    }
  }

  /** One write. Backends bound their own waits (ioredis commandTimeout, AMQP confirms and heartbeats). */
  private attempt(meta: ResultMeta, context: StoreContext | undefined): Promise<void> {
    return this.backend.store(meta, context);
  }

  private enqueue(meta: ResultMeta, context: StoreContext | undefined): void {
    this.backlog.delete(meta.task_id); // a newer state replaces an older unsent one
    this.backlog.set(meta.task_id, { meta, context });
    while (this.backlog.size > this.maxBacklog) {
      const oldest = this.backlog.keys().next().value as string;
      this.backlog.delete(oldest);
      this.dropped++;
      log.error(`Result backlog full (${this.maxBacklog}): dropped the state of task ${oldest}`);
    }
    if (!this.retrying) this.retrying = this.retryLoop().finally(() => (this.retrying = null));
  }

  private async retryLoop(): Promise<void> {
    for (let attempt = 0; this.backlog.size > 0 && !this.closed; ) {
      const [taskId, entry] = this.backlog.entries().next().value as [string, { meta: ResultMeta; context: StoreContext | undefined }];
      try {
        await this.attempt(entry.meta, entry.context);
        if (this.backlog.get(taskId) === entry) this.backlog.delete(taskId);
        if (attempt > 0) log.info(`Result backend is back: storing ${this.backlog.size + 1} delayed state(s)`);
        attempt = 0;
      } catch {
        await sleep(backoffDelay(attempt++, 200, 10_000));
      }
    }
  }

  /** Waits up to `timeoutMs` for the backlog to drain (shutdown); returns how many were left. */
  async flush(timeoutMs: number): Promise<number> {
    const deadline = Date.now() + timeoutMs;
    while (this.backlog.size > 0 && Date.now() < deadline) await sleep(50);
    this.closed = true;
    if (this.backlog.size > 0) log.error(`${this.backlog.size} task state(s) could not be stored before shutdown`);
    return this.backlog.size;
  }
}
