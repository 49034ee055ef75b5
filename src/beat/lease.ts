/**
 * High availability: several beats may run; one holds a lease in Redis and
 * sends, the others stand by and take over when it goes away.
 *
 * - The lease is a key set with `SET NX PX <ttl>` whose value carries a
 *   fencing token (a counter incremented on every acquisition), renewed every
 *   ttl/3 by its holder while its value is still that token.
 * - The schedule state lives in a Redis hash next to it. Every batch of runs
 *   is recorded there by a script that first checks that the lease still
 *   holds this beat's token, and only then is the batch sent. A beat that
 *   lost the lease (it paused past the ttl, or Redis expired it) cannot
 *   record, so it sends nothing: two beats never send the same run.
 * - The standby beats try to acquire every ttl/5. A holder that stops cleanly
 *   deletes the lease, so a standby takes over within ttl/5; one that dies
 *   leaves it to expire: takeover within ttl + ttl/5 (12 s by default).
 */
import type { Redis } from 'ioredis';
import { isoCached, type EntryState, type RunRecord, type SavedSchedule, type ScheduleStore } from './store.js';

const ACQUIRE = `
if redis.call('EXISTS', KEYS[1]) == 1 then return false end
local token = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], token .. ' ' .. ARGV[2], 'NX', 'PX', ARGV[1])
return token
`;
/** KEYS[1] lease; ARGV[1] our value; ARGV[2] ttl ms. */
const RENEW = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
`;
const RELEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 1
`;
/** KEYS[1] lease, KEYS[2] state hash; ARGV[1] our value, ARGV[2] 1 = replace the hash; then field, value pairs. */
const FENCED_WRITE = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[2] == '1' then redis.call('DEL', KEYS[2]) end
for i = 3, #ARGV, 2 do redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1]) end
return 1
`;

type LeaseClient = Redis & {
  beatAcquire(lease: string, fence: string, ttlMs: number, holder: string): Promise<number | null>;
  beatRenew(lease: string, value: string, ttlMs: number): Promise<number>;
  beatRelease(lease: string, value: string): Promise<number>;
  beatFencedWrite(lease: string, hash: string, value: string, replace: string, ...fields: string[]): Promise<number>;
};

/** The lease key, the fencing counter and the state hash of one beat schedule. */
export interface LeaseKeys {
  lease: string;
  fence: string;
  state: string;
}

/** Key names under `prefix` (`beat_lease_key`). */
export function leaseKeys(prefix: string): LeaseKeys {
  return { lease: prefix, fence: `${prefix}:fence`, state: `${prefix}:schedule` };
}

/** A lease in Redis. `holder` names this beat in the value (host, pid) for the logs. */
export class RedisLease {
  /** The fencing token while this beat holds the lease, else null. */
  token: number | null = null;
  private value: string | null = null;
  readonly client: LeaseClient;

  constructor(
    client: Redis,
    readonly keys: LeaseKeys,
    readonly ttlMs: number,
    readonly holder: string,
  ) {
    this.client = client as LeaseClient;
    this.client.defineCommand('beatAcquire', { numberOfKeys: 2, lua: ACQUIRE });
    this.client.defineCommand('beatRenew', { numberOfKeys: 1, lua: RENEW });
    this.client.defineCommand('beatRelease', { numberOfKeys: 1, lua: RELEASE });
    this.client.defineCommand('beatFencedWrite', { numberOfKeys: 2, lua: FENCED_WRITE });
  }

  /** The value this beat writes while it holds the lease (null when it does not). */
  get heldValue(): string | null {
    return this.value;
  }

  /** Tries once; true when this beat now holds the lease (with a new token). */
  async tryAcquire(): Promise<boolean> {
    const token = await this.client.beatAcquire(this.keys.lease, this.keys.fence, this.ttlMs, this.holder);
    if (token === null) return false;
    this.token = Number(token);
    this.value = `${this.token} ${this.holder}`;
    return true;
  }

  /** Extends the lease; false when it is no longer this beat's (expired, taken over). */
  async renew(): Promise<boolean> {
    if (this.value === null) return false;
    const ok = (await this.client.beatRenew(this.keys.lease, this.value, this.ttlMs)) === 1;
    if (!ok) this.forget();
    return ok;
  }

  /** Who holds it now (`<token> <holder>`), for the standby's log line. */
  current(): Promise<string | null> {
    return this.client.get(this.keys.lease);
  }

  /** Gives the lease up so a standby takes over at once. */
  async release(): Promise<void> {
    const value = this.value;
    this.forget();
    if (value !== null) await this.client.beatRelease(this.keys.lease, value);
  }

  /** Drops the local claim (after a failed renewal). */
  forget(): void {
    this.token = null;
    this.value = null;
  }
}

/** An entry's state as stored in the hash (the JSON of `{ last_run_at, total_run_count }`). */
const encode = (s: EntryState, iso: (ms: number) => string): string => `{"last_run_at":"${iso(s.lastRunAt)}","total_run_count":${s.totalRunCount}}`;
const META = '__meta__';

/** The schedule state in a Redis hash; every write is fenced by the lease. */
export class RedisStore implements ScheduleStore {
  /** Every run of a batch has the same last-run time: one ISO string per batch, not per run. */
  private readonly iso = isoCached();
  constructor(
    private readonly lease: RedisLease,
    readonly description: string,
  ) {}

  async load(): Promise<SavedSchedule | null> {
    const hash = await this.lease.client.hgetall(this.lease.keys.state);
    const meta = hash[META];
    if (!meta) return null;
    const m = JSON.parse(meta) as { timezone: string; utc_enabled: boolean };
    const state: SavedSchedule = { timezone: m.timezone, utcEnabled: m.utc_enabled, entries: {} };
    for (const [name, raw] of Object.entries(hash)) {
      if (name === META) continue;
      const e = JSON.parse(raw) as { last_run_at: string; total_run_count: number };
      state.entries[name] = { lastRunAt: Date.parse(e.last_run_at), totalRunCount: e.total_run_count };
    }
    return state;
  }

  private write(replace: boolean, fields: string[]): Promise<boolean> {
    const value = this.lease.heldValue;
    if (value === null) return Promise.resolve(false);
    return this.lease.client
      .beatFencedWrite(this.lease.keys.lease, this.lease.keys.state, value, replace ? '1' : '0', ...fields)
      .then((ok) => ok === 1);
  }

  save(state: SavedSchedule): Promise<boolean> {
    const fields = [META, JSON.stringify({ timezone: state.timezone, utc_enabled: state.utcEnabled })];
    const iso = isoCached();
    for (const [name, s] of Object.entries(state.entries)) fields.push(name, encode(s, iso));
    return this.write(true, fields);
  }

  record(runs: readonly RunRecord[]): Promise<boolean> {
    const fields: string[] = [];
    for (const [name, s] of runs) fields.push(name, encode(s, this.iso));
    return this.write(false, fields);
  }

  async close(): Promise<void> {
    /* the client belongs to the beat */
  }
}
