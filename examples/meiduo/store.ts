/**
 * Where the shop keeps SMS codes, send flags and rate-limit counters: Redis in production (as the
 * Meiduo project does, in its `verify_code` database), or a Map on the embedded default, where
 * everything runs in one process and nothing has to survive it.
 *
 * Both implementations expose the same few primitives, each of which is one atomic Redis command
 * (or one Lua script), so two web processes sharing a Redis can never both win a race the code
 * relies on (the 60-s send flag, the single use of a code).
 */
import { Redis } from 'ioredis';

/** Key of the SMS code of `mobile`, as in the Meiduo project (`sms_%s`). */
export const smsCodeKey = (mobile: string): string => `sms_${mobile}`;

/** Key of the "an SMS was sent to `mobile` less than 60 s ago" flag, as in Meiduo (`send_flag_%s`). */
export const sendFlagKey = (mobile: string): string => `send_flag_${mobile}`;

/** Key counting wrong verification attempts against the current code of `mobile`. */
export const smsAttemptsKey = (mobile: string): string => `sms_attempts_${mobile}`;

/** Counter state after {@link ShopStore.increment}. */
export interface Count {
  /** Hits in the current window, this one included. */
  count: number;
  /** Milliseconds until the window (and the counter) expires. */
  ttlMs: number;
}

/** The primitives the shop needs. Every method is atomic on its key. */
export interface ShopStore {
  /** Stores `value` for `ttlSec` seconds unless the key exists (SET NX EX); true when stored. */
  setIfAbsent(key: string, value: string, ttlSec: number): Promise<boolean>;
  /** Stores `value` for `ttlSec` seconds (SET EX), replacing any value. */
  set(key: string, value: string, ttlSec: number): Promise<void>;
  /** The value, or null when absent or expired. */
  get(key: string): Promise<string | null>;
  /** Deletes the key; true when it existed (so exactly one of two racing callers gets true). */
  delete(key: string): Promise<boolean>;
  /** Adds one to a counter whose window of `ttlSec` seconds starts with its first hit. */
  increment(key: string, ttlSec: number): Promise<Count>;
  close(): Promise<void>;
}

interface Entry {
  value: string;
  expiresAt: number;
}

/**
 * The embedded store: a Map with expiry times. Expired entries are dropped when read and by a
 * sweep every 30 s (an unref'd timer, so it never keeps the process alive).
 */
export class MemoryStore implements ShopStore {
  private readonly entries = new Map<string, Entry>();
  private readonly sweeper: NodeJS.Timeout;

  constructor(private readonly now: () => number = Date.now) {
    this.sweeper = setInterval(() => this.sweep(), 30_000).unref();
  }

  private live(key: string): Entry | null {
    const entry = this.entries.get(key);
    if (!entry) return null;
    if (entry.expiresAt <= this.now()) {
      this.entries.delete(key);
      return null;
    }
    return entry;
  }

  private sweep(): void {
    const now = this.now();
    for (const [key, entry] of this.entries) if (entry.expiresAt <= now) this.entries.delete(key);
  }

  async setIfAbsent(key: string, value: string, ttlSec: number): Promise<boolean> {
    if (this.live(key)) return false;
    this.entries.set(key, { value, expiresAt: this.now() + ttlSec * 1000 });
    return true;
  }

  async set(key: string, value: string, ttlSec: number): Promise<void> {
    this.entries.set(key, { value, expiresAt: this.now() + ttlSec * 1000 });
  }

  async get(key: string): Promise<string | null> {
    return this.live(key)?.value ?? null;
  }

  async delete(key: string): Promise<boolean> {
    const existed = this.live(key) !== null;
    this.entries.delete(key);
    return existed;
  }

  async increment(key: string, ttlSec: number): Promise<Count> {
    const entry = this.live(key) ?? { value: '0', expiresAt: this.now() + ttlSec * 1000 };
    entry.value = String(Number(entry.value) + 1);
    this.entries.set(key, entry);
    return { count: Number(entry.value), ttlMs: entry.expiresAt - this.now() };
  }

  async close(): Promise<void> {
    clearInterval(this.sweeper);
    this.entries.clear();
  }
}

/**
 * INCR and, on the first hit only, PEXPIRE: the window is fixed from its first request, so a
 * client that keeps retrying does not push its own window forward (it would never end).
 * KEYS[1] = counter; ARGV[1] = window in ms. Returns [count, ms left].
 */
const INCREMENT_SCRIPT = `
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {n, ttl}
`;

type RedisWithIncrement = Redis & { shopIncrement(key: string, windowMs: number): Promise<[number, number]> };

/** `RedisStore` options. */
export interface RedisStoreOptions {
  /** e.g. `redis://127.0.0.1:6379/2` (Meiduo keeps codes in DB 2, `verify_code`). */
  url: string;
  /** Prepended to every key (ioredis `keyPrefix`): lets tests and several shops share a DB. */
  keyPrefix?: string;
}

/** The production store, on ioredis. Commands fail (instead of queueing forever) while Redis is down. */
export class RedisStore implements ShopStore {
  readonly redis: Redis;
  readonly keyPrefix: string;

  constructor(options: RedisStoreOptions) {
    this.keyPrefix = options.keyPrefix ?? '';
    this.redis = new Redis(options.url, {
      keyPrefix: this.keyPrefix,
      // A request should get a 503 quickly rather than hang while Redis is unreachable.
      maxRetriesPerRequest: 1,
      connectTimeout: 4000,
      retryStrategy: (times) => Math.min(100 * 2 ** Math.min(times, 5), 2000),
    });
    // Without a listener ioredis prints every reconnect error; failed commands report it instead.
    this.redis.on('error', () => undefined);
    this.redis.defineCommand('shopIncrement', { numberOfKeys: 1, lua: INCREMENT_SCRIPT });
  }

  async setIfAbsent(key: string, value: string, ttlSec: number): Promise<boolean> {
    return (await this.redis.set(key, value, 'EX', ttlSec, 'NX')) === 'OK';
  }

  async set(key: string, value: string, ttlSec: number): Promise<void> {
    await this.redis.set(key, value, 'EX', ttlSec);
  }

  get(key: string): Promise<string | null> {
    return this.redis.get(key);
  }

  async delete(key: string): Promise<boolean> {
    return (await this.redis.del(key)) > 0;
  }

  async increment(key: string, ttlSec: number): Promise<Count> {
    const [count, ttlMs] = await (this.redis as RedisWithIncrement).shopIncrement(key, Math.round(ttlSec * 1000));
    return { count: Number(count), ttlMs: Number(ttlMs) };
  }

  async close(): Promise<void> {
    await this.redis.quit().catch(() => this.redis.disconnect());
  }
}
