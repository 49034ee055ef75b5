/**
 * celery-node's `AsyncResult` on top of ts-celery's: the same methods, with
 * ts-celery's waiting (the backend's notifications, not a 500 ms poll) and
 * errors (`TaskError`, `TimeoutError`).
 */
import type { AsyncResult as CoreResult } from '../../result/async-result.js';

/** Where the result's state is read from (the client's app). */
export interface ResultSource {
  coreResult(taskId: string): CoreResult;
}

export class AsyncResult {
  /**
   * Resolves once the broker confirmed the task message; rejects with the
   * `PublishError`/`BrokerError` saying why it could not be sent. celery-node
   * returned before publishing and lost such failures; `get()`, `status()`
   * and `result()` wait for this first and reject with that error.
   */
  readonly sent: Promise<void>;

  constructor(
    /** The task id. */
    readonly taskId: string,
    private readonly source: ResultSource,
    sent: Promise<void> = Promise.resolve(),
  ) {
    this.sent = sent;
  }

  /**
   * Waits for the task to finish and resolves with its return value.
   * `timeout` is in milliseconds (0 or none: wait as long as it takes), as in
   * celery-node; `interval` is accepted and unused (no polling). Rejects with
   * a `TaskError` on FAILURE or REVOKED (`excType`, `excMessage`,
   * `remoteTraceback`), with a `TimeoutError` when `timeout` passes.
   */
  // `any`, as celery-node declares it: code written against celery-node keeps compiling.
  async get(timeout?: number, interval?: number): Promise<any> {
    void interval;
    await this.sent;
    return this.source.coreResult(this.taskId).get(timeout ? { timeout } : {});
  }

  /**
   * The stored state (`STARTED`, `RETRY`, `SUCCESS`, `FAILURE`, `REVOKED`),
   * or null while nothing is stored (Celery's PENDING), as celery-node reports it.
   */
  async status(): Promise<string | null> {
    await this.sent;
    return (await this.source.coreResult(this.taskId).meta())?.status ?? null;
  }

  /**
   * The stored `result` field, or null while nothing is stored: the return
   * value after SUCCESS, Celery's `{exc_type, exc_message, exc_module}` after FAILURE.
   */
  async result(): Promise<any> {
    await this.sent;
    return (await this.source.coreResult(this.taskId).meta())?.result ?? null;
  }
}
