/**
 * Task states written to Redis in batches: every state stored during one turn
 * of the event loop goes out as ONE script call (`EVALSHA` with all the keys),
 * instead of one script call per task.
 *
 * Why: a worker running 1,000 tasks at once finishes dozens of them per turn
 * (their awaited replies arrive in the same socket read). ioredis already
 * pipelines the calls into one write, but each one still costs a Command
 * object, a promise and a reply parse in Node, and a script invocation in
 * Redis, which shares the machine's cores with the broker and the worker. One
 * call per turn removes most of that; the per-key work (the SUCCESS check,
 * SET, PUBLISH) is the same as the single-key script's, in the same order.
 *
 * Nothing is weakened: each `store()` still resolves only once Redis ran the
 * script that wrote (or, for a stored SUCCESS, deliberately kept) that key, so
 * an `acks_late` ack still waits for its result; a failed call rejects every
 * state in it, and the caller (the worker's ResultWriter) retries each one,
 * which is safe because a rewrite of the same state is idempotent and a stored
 * SUCCESS is never overwritten. The wait adds at most one event-loop turn
 * (`setImmediate`), not a timer.
 */

/** KEYS = the state keys; ARGV[1] = TTL in ms (0 = none), ARGV[i + 1] = the meta JSON of KEYS[i]. */
export const STORE_MANY_SCRIPT = `
local ttl = tonumber(ARGV[1])
local out = {}
for i, key in ipairs(KEYS) do
  local value = ARGV[i + 1]
  local keep = false
  local current = redis.call('GET', key)
  if current then
    local ok, doc = pcall(cjson.decode, current)
    keep = ok and type(doc) == 'table' and doc['status'] == 'SUCCESS'
  end
  if keep then
    out[i] = 0
  else
    if ttl and ttl > 0 then
      redis.call('SET', key, value, 'PX', ttl)
    else
      redis.call('SET', key, value)
    end
    redis.call('PUBLISH', key, value)
    out[i] = 1
  end
end
return out
`;

/**
 * Most states in one script call: the script runs atomically, so a bound keeps
 * one call from holding Redis for long (512 small states take well under a
 * millisecond).
 */
export const MAX_BATCH = 512;

/** The two Redis calls the batcher needs: one state, or many. */
export interface StoreCalls {
  one(key: string, value: string): Promise<unknown>;
  many(keys: string[], values: string[]): Promise<unknown>;
}

interface Pending {
  key: string;
  value: string;
  resolve(): void;
  reject(err: unknown): void;
}

/** Collects the states stored during one event-loop turn and writes them together. */
export class StoreBatcher {
  private queue: Pending[] = [];
  private scheduled = false;

  constructor(private readonly calls: StoreCalls) {}

  /** Resolves once Redis has run the script for this key (stored, or kept a stored SUCCESS). */
  store(key: string, value: string): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ key, value, resolve, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(this.flush);
      }
    });
  }

  private readonly flush = (): void => {
    this.scheduled = false;
    const all = this.queue;
    this.queue = [];
    for (let i = 0; i < all.length; i += MAX_BATCH) this.send(all.length <= MAX_BATCH ? all : all.slice(i, i + MAX_BATCH));
  };

  private send(batch: Pending[]): void {
    const call =
      batch.length === 1
        ? this.calls.one(batch[0]!.key, batch[0]!.value)
        : this.calls.many(
            batch.map((p) => p.key),
            batch.map((p) => p.value),
          );
    call.then(
      () => {
        for (const p of batch) p.resolve();
      },
      (err: unknown) => {
        for (const p of batch) p.reject(err);
      },
    );
  }
}
