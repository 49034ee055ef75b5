/**
 * Celery's Redis result backend (`redis://host:port/db`, `rediss://` for TLS).
 *
 * Storage, as Python Celery does it: key `celery-task-meta-<id>` (after the
 * `global_keyprefix` transport option, when set) holds the JSON
 * meta with a TTL of `result_expires`, and the same bytes are PUBLISHed on a
 * channel named like the key. A stored SUCCESS is never overwritten. The
 * check, the write and the publish run as one Lua script, atomic per key; the
 * states of all tasks that finish in the same event-loop turn share one script
 * call (redis-store-batch.ts), pipelined with other writes by ioredis.
 *
 * Waiting (`get()`): SUBSCRIBE to the key's channel first, then GET, so a
 * result that landed before the subscription is still seen; no polling. After
 * the subscriber reconnects, every awaited key is read again, so a result
 * published during the outage is not missed.
 */
import { createRequire } from 'node:module';
import type { Redis, RedisOptions } from 'ioredis';
import type { TlsOptions } from '../app/config.js';
import { BackendError } from '../errors.js';
import { decodeJson } from '../protocol/json.js';
import { READY_STATES, type ResultMeta } from '../protocol/result-meta.js';
import { isResultTuple, type ResultTuple } from '../protocol/result-tuple.js';
import { tlsConnectOptions } from '../support/tls.js';
import { maskUrl, safeCause } from '../support/url.js';
import { defineChordScripts, GROUP_KEY_PREFIX, RedisChords, type ChordSettings, type RedisWithChordScripts } from './redis-chord.js';
import type { ChordJoin, ChordPart, ResultBackend } from './types.js';
import { ReadyWaiters } from './waiters.js';
import { StoreBatcher, STORE_MANY_SCRIPT } from './redis-store-batch.js';

export const TASK_KEY_PREFIX = 'celery-task-meta-';

/**
 * The key prefix of task results: `celery-task-meta-`, after Celery's
 * `global_keyprefix` (result_backend_transport_options) when one is set,
 * joined by `_` unless it already ends with one of `:_-.`, as Celery does.
 */
export function taskKeyPrefix(globalKeyprefix?: string | null): string {
  return withGlobalKeyprefix(TASK_KEY_PREFIX, globalKeyprefix);
}

/** `prefix` after Celery's `global_keyprefix` (joined with `_` unless it ends in one of `:_-.`). */
export function withGlobalKeyprefix(prefix: string, globalKeyprefix?: string | null): string {
  if (!globalKeyprefix) return prefix;
  return `${globalKeyprefix}${':_-.'.includes(globalKeyprefix.at(-1)!) ? '' : '_'}${prefix}`;
}

/** KEYS[1] = key; ARGV[1] = meta JSON; ARGV[2] = TTL in ms (0 = none). */
const STORE_SCRIPT = `
local current = redis.call('GET', KEYS[1])
if current then
  local ok, doc = pcall(cjson.decode, current)
  if ok and type(doc) == 'table' and doc['status'] == 'SUCCESS' then return 0 end
end
local ttl = tonumber(ARGV[2])
if ttl and ttl > 0 then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ttl)
else
  redis.call('SET', KEYS[1], ARGV[1])
end
redis.call('PUBLISH', KEYS[1], ARGV[1])
return 1
`;

export interface RedisBackendOptions {
  url: string;
  /** `result_expires` in seconds; null/0 = keep forever. */
  expires: number | null;
  /** Celery's `global_keyprefix` (result_backend_transport_options): prepended to every key. */
  globalKeyprefix?: string | null;
  /** `redis_backend_use_ssl` for `rediss://`. */
  tls?: TlsOptions | boolean | null;
  /** Seconds to wait for a connection. */
  connectTimeout?: number;
  /**
   * How long a waiting `get()` survives a lost Redis connection before it
   * rejects with `BackendError` (milliseconds; default 5000).
   */
  outageTimeoutMs?: number;
  /** Chord settings (seconds); Celery's defaults when absent. */
  chords?: Partial<ChordSettings>;
}

/** ioredis, loaded when a Redis backend is made: `import 'ts-celery'` stays quick without one. */
const loadRedis = (): typeof Redis => (createRequire(import.meta.url)('ioredis') as typeof import('ioredis')).Redis;

type RedisWithStore = RedisWithChordScripts & {
  celeryStore(key: string, value: string, ttlMs: number): Promise<number>;
  /** numkeys, keys..., ttlMs, values... (STORE_MANY_SCRIPT). */
  celeryStoreMany(...args: Array<string | number>): Promise<number[]>;
};

function redisOptions(opts: RedisBackendOptions): RedisOptions {
  const base: RedisOptions = {
    lazyConnect: true,
    enableAutoPipelining: true,
    // Fail a command after a few reconnect attempts instead of queueing it forever:
    // callers get a clear error while Redis is down.
    maxRetriesPerRequest: 2,
    // A command with no answer (a silent peer) fails instead of hanging: the worker's state
    // writes are then retried in the background, and get() reports the problem.
    commandTimeout: 5_000,
    connectTimeout: Math.round((opts.connectTimeout ?? 4) * 1000),
    retryStrategy: (times) => Math.min(100 * 2 ** Math.min(times, 5), 2000),
  };
  const tlsOptions = tlsConnectOptions(opts.tls);
  if (tlsOptions) base.tls = tlsOptions as RedisOptions['tls'];
  return base;
}

export class RedisBackend implements ResultBackend {
  readonly displayUrl: string;
  /** @internal The command connection (the chord join runs its scripts on it). */
  readonly client: RedisWithStore;
  private readonly chords: RedisChords;
  private subscriber: Redis | null = null;
  /** Waiting get() calls by key; an idle key is unsubscribed. */
  private readonly waiters = new ReadyWaiters((key) => this.subscriber?.unsubscribe(key).catch(() => undefined));
  private readonly ttlMs: number;
  private readonly keyPrefix: string;
  /** `celery-taskset-meta-`, after the global key prefix when one is set. */
  private readonly groupPrefix: string;
  private lastError: Error | null = null;
  /** Task states stored in the same event-loop turn go out as one script call. */
  private readonly batcher: StoreBatcher;
  private outageTimer: NodeJS.Timeout | null = null;

  constructor(private readonly options: RedisBackendOptions) {
    this.displayUrl = maskUrl(options.url);
    this.ttlMs = options.expires ? Math.round(options.expires * 1000) : 0;
    this.keyPrefix = taskKeyPrefix(options.globalKeyprefix);
    this.groupPrefix = withGlobalKeyprefix(GROUP_KEY_PREFIX, options.globalKeyprefix);
    this.client = new (loadRedis())(options.url, redisOptions(options)) as RedisWithStore;
    this.client.defineCommand('celeryStore', { numberOfKeys: 1, lua: STORE_SCRIPT });
    this.client.defineCommand('celeryStoreMany', { lua: STORE_MANY_SCRIPT });
    this.batcher = new StoreBatcher({
      one: (key, value) => this.client.celeryStore(key, value, this.ttlMs),
      many: (keys, values) => this.client.celeryStoreMany(keys.length, ...keys, this.ttlMs, ...values),
    });
    defineChordScripts(this.client);
    this.client.on('error', (err: Error) => {
      this.lastError = err;
    });
    const expires = options.expires ?? 0;
    this.chords = new RedisChords(this, {
      chordExpires: expires,
      resultExpires: expires,
      joinTimeout: 3,
      ordered: true,
      publishSeconds: 0,
      ...options.chords,
    }, this.groupPrefix);
  }

  private describe(err: unknown, what: string): BackendError {
    const cause = (err as Error)?.message ?? String(err);
    const last = this.lastError && this.lastError.message !== cause ? ` (last connection error: ${this.lastError.message})` : '';
    return new BackendError(
      `Result backend ${this.displayUrl} failed to ${what}: ${cause}${last}. Is Redis running and reachable?`,
      { cause: safeCause(err) },
    );
  }

  async store(meta: ResultMeta): Promise<void> {
    try {
      await this.batcher.store(this.keyPrefix + meta.task_id, JSON.stringify(meta));
    } catch (err) {
      throw this.describe(err, `store the ${meta.status} state of task ${meta.task_id}`);
    }
  }

  async get(taskId: string): Promise<ResultMeta | null> {
    let raw: string | null;
    try {
      raw = await this.client.get(this.keyPrefix + taskId);
    } catch (err) {
      throw this.describe(err, `read task ${taskId}`);
    }
    return raw === null ? null : (decodeJson(raw) as ResultMeta);
  }

  private subscriberClient(): Redis {
    if (!this.subscriber) {
      const sub = this.client.duplicate({ enableAutoPipelining: false, maxRetriesPerRequest: 2 });
      sub.on('error', (err: Error) => {
        this.lastError = err;
      });
      sub.on('message', (channel: string, data: string) => this.onMessage(channel, data));
      // ioredis resubscribes on reconnect; results published meanwhile are read back.
      sub.on('ready', () => {
        if (this.outageTimer) clearTimeout(this.outageTimer);
        this.outageTimer = null;
        for (const key of this.waiters.ids()) void this.recheck(key);
      });
      // Waiting through an outage is fine for a moment, not forever: past the limit,
      // every waiting get() rejects with a clear error (Python gives up after ~20 s too).
      sub.on('close', () => {
        if (this.outageTimer || this.waiters.size === 0) return;
        this.outageTimer = setTimeout(() => this.failWaiters(), this.options.outageTimeoutMs ?? 5_000);
        this.outageTimer.unref();
      });
      this.subscriber = sub;
    }
    return this.subscriber;
  }

  private failWaiters(): void {
    this.outageTimer = null;
    if (this.subscriber?.status === 'ready') return;
    const reason = this.lastError ? `: ${this.lastError.message}` : '';
    this.waiters.failAll(
      (key) =>
        new BackendError(
          `Result backend ${this.displayUrl} failed to read task ${key.slice(this.keyPrefix.length)}: ` +
            `the connection was lost${reason}. Is Redis running and reachable?`,
        ),
    );
  }

  private onMessage(channel: string, data: string): void {
    let meta: ResultMeta;
    try {
      meta = decodeJson(data) as ResultMeta;
    } catch {
      return; // not ours to interpret; the stored value is read on the next check
    }
    if (meta && READY_STATES.has(meta.status)) this.settle(channel, meta);
  }

  private async recheck(key: string): Promise<void> {
    try {
      const raw = await this.client.get(key);
      if (raw === null) return;
      const meta = decodeJson(raw) as ResultMeta;
      if (READY_STATES.has(meta.status)) this.settle(key, meta);
    } catch {
      /* the waiter's own GET or timeout reports problems */
    }
  }

  private settle(key: string, meta: ResultMeta): void {
    this.waiters.settle(key, meta);
  }

  waitForReady(taskId: string, timeoutMs: number | null, signal?: AbortSignal): Promise<ResultMeta> {
    const key = this.keyPrefix + taskId;
    const wait = this.waiters.wait(key, timeoutMs, signal);
    const sub = this.subscriberClient();
    // Subscribe first, then read: a result stored in between is caught by one or the other.
    (wait.first ? sub.subscribe(key) : Promise.resolve())
      .then(() => this.client.get(key))
      .then((raw) => {
        if (raw === null) return;
        const meta = decodeJson(raw) as ResultMeta;
        if (READY_STATES.has(meta.status)) this.settle(key, meta);
      })
      .catch((err: unknown) => wait.fail(this.describe(err, `read task ${taskId}`)));
    return wait.promise;
  }

  async getMany(taskIds: string[]): Promise<Array<ResultMeta | null>> {
    if (taskIds.length === 0) return [];
    let raws: Array<string | null>;
    try {
      raws = await this.client.mget(taskIds.map((id) => this.keyPrefix + id));
    } catch (err) {
      throw this.describe(err, `read ${taskIds.length} task results`);
    }
    return raws.map((raw) => (raw === null ? null : (decodeJson(raw) as ResultMeta)));
  }

  /** `celery-taskset-meta-<id>` = `{"result": tuple}`, with the results' TTL, published like a state. */
  async saveGroup(groupId: string, tuple: ResultTuple): Promise<void> {
    const value = JSON.stringify({ result: tuple });
    try {
      await this.client.celeryStore(this.groupPrefix + groupId, value, this.ttlMs);
    } catch (err) {
      throw this.describe(err, `save group ${groupId}`);
    }
  }

  async restoreGroup(groupId: string): Promise<ResultTuple | null> {
    let raw: string | null;
    try {
      raw = await this.client.get(this.groupPrefix + groupId);
    } catch (err) {
      throw this.describe(err, `restore group ${groupId}`);
    }
    if (raw === null) return null;
    const doc = decodeJson(raw) as { result?: unknown };
    return isResultTuple(doc?.result) ? doc.result : null;
  }

  async deleteGroup(groupId: string): Promise<void> {
    try {
      await this.client.del(this.groupPrefix + groupId);
    } catch (err) {
      throw this.describe(err, `delete group ${groupId}`);
    }
  }

  async setChordSize(groupId: string, size: number): Promise<void> {
    try {
      await this.chords.setChordSize(groupId, size);
    } catch (err) {
      throw this.describe(err, `store the size of chord ${groupId}`);
    }
  }

  async applyChord(groupId: string, header: ResultTuple): Promise<void> {
    try {
      await this.chords.applyChord(groupId, header);
    } catch (err) {
      throw this.describe(err, `store the header of chord ${groupId}`);
    }
  }

  async addToChord(groupId: string): Promise<void> {
    try {
      await this.chords.addToChord(groupId);
    } catch (err) {
      throw this.describe(err, `add to chord ${groupId}`);
    }
  }

  onChordPartReturn(part: ChordPart, join: ChordJoin): Promise<void> {
    return this.chords.onChordPartReturn(part, join);
  }

  async forget(taskId: string): Promise<void> {
    try {
      await this.client.del(this.keyPrefix + taskId);
    } catch (err) {
      throw this.describe(err, `forget task ${taskId}`);
    }
  }

  async close(): Promise<void> {
    this.waiters.failAll(() => new BackendError('The result backend was closed while waiting for a result'));
    // A lazy client that never connected must not connect just to say goodbye.
    const quit = (c: Redis | null): Promise<unknown> | undefined =>
      c && c.status !== 'wait' && c.status !== 'end' ? c.quit() : undefined;
    await Promise.allSettled([quit(this.client), quit(this.subscriber)]);
    this.client.disconnect();
    this.subscriber?.disconnect();
  }
}
