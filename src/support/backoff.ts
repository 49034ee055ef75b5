/** Timing helpers for retries and reconnects. */

/** Resolves after `ms`, or early (rejecting) when `signal` aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * Exponential backoff with full jitter, capped: attempt 0 waits up to `baseMs`,
 * attempt n up to `baseMs * 2^n`, never more than `maxMs`.
 */
export function backoffDelay(attempt: number, baseMs: number, maxMs: number, jitter = true): number {
  const ceiling = Math.min(maxMs, baseMs * 2 ** attempt);
  return jitter ? ceiling / 2 + Math.random() * (ceiling / 2) : ceiling;
}
