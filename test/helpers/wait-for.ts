/**
 * Polling with a deadline, for tests that check broker, backend or worker state
 * which arrives "soon": a fixed sleep before the check is either too long (slow
 * tests) or, on a machine loaded by `npm test`'s parallel phase, too short
 * (flaky tests). Poll for the state a test expects instead, and keep fixed sleeps
 * for what must NOT happen ("no duplicate within 500 ms").
 */

/** Options of {@link waitFor}. */
export interface WaitForOptions {
  /** Give up after this long (ms). Default 10 000: generous, since passing runs return as soon as the state is there. */
  timeoutMs?: number;
  /** Poll interval (ms). Default 50. */
  everyMs?: number;
  /** What is awaited, for the timeout's message. */
  what?: string;
}

/**
 * Resolves with the first truthy value `check` returns (sync or async, polled
 * every `everyMs`); rejects with "timed out after N ms waiting for <what>"
 * once `timeoutMs` has passed. An error thrown by `check` rejects at once.
 */
export async function waitFor<T>(check: () => T | Promise<T>, options: WaitForOptions = {}): Promise<T> {
  const { timeoutMs = 10_000, everyMs = 50, what = 'the condition' } = options;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() >= deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
