/**
 * Chords on Redis, exactly as Celery 5.7's Redis backend keeps them, so a
 * chord whose header runs partly on Python workers and partly on TypeScript
 * workers fires its body once, with its results in header order:
 *
 * - `celery-taskset-meta-<gid>.s`: the chord size, set by the producer;
 * - `.j`: a sorted set of `[1, task_id, state, result]`, scored by `group_index`;
 * - `.d`: the set of `"<task_id>:<group_index>"` already counted, so a header
 *   task run twice (redelivered under acks_late) counts once;
 * - `.t`: extra members added with `add_to_chord`;
 * - `.c`: the claim of the worker sending the body, then `"done"` for a few
 *   minutes, so a late duplicate can neither recreate the chord nor send the
 *   body again;
 * - `celery-taskset-meta-<gid>`: the header's result tuple, when it nests groups.
 *
 * The three Lua scripts are Celery 5.7's, character for character.
 */
import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { ChordError } from '../errors.js';
import { deserializeException, exceptionRepr, serializeException } from '../protocol/exceptions.js';
import { decodeJson } from '../protocol/json.js';
import { PROPAGATE_STATES, type ResultMeta } from '../protocol/result-meta.js';
import { isResultTuple, type ResultTuple } from '../protocol/result-tuple.js';
import { getLogger } from '../support/log.js';
import type { ChordJoin, ChordPart } from './types.js';

const log = getLogger('celery.backends.redis');

/** Celery's group key prefix (`GroupResult.save()`, chord keys). */
export const GROUP_KEY_PREFIX = 'celery-taskset-meta-';

/** Celery 5.7's CHORD_PART_RETURN_LUA (celery/backends/redis.py). */
export const CHORD_PART_RETURN_LUA = `
local jkey, tkey, skey, dkey, gkey, ckey = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local tid, value, ordered, score = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local expires, group_expires = tonumber(ARGV[5]), tonumber(ARGV[6])
local claim_expires = tonumber(ARGV[7])
local claim_token = ARGV[8]

-- Prevent late duplicates from recreating chord state after successful cleanup.
local done_marker = redis.call('GET', ckey)
if done_marker == 'done' then
    return {-1, 0, 0, 0}
end

-- Key the check on the task id and header index, so it doesn't merge two
-- header entries that share the task id of a reused frozen signature.
local member = tid .. ':' .. score
if redis.call('SISMEMBER', dkey, member) == 0 then
    if ordered == '1' then
        redis.call('ZADD', jkey, score, value)
    else
        redis.call('RPUSH', jkey, value)
    end
    redis.call('SADD', dkey, member)
end
local readycount
if ordered == '1' then
    readycount = redis.call('ZCOUNT', jkey, '-inf', '+inf')
else
    readycount = redis.call('LLEN', jkey)
end
if expires > 0 then
    for _, key in ipairs({jkey, tkey, skey, dkey}) do
        redis.call('EXPIRE', key, expires)
    end
    if group_expires > 0 then
        redis.call('EXPIRE', gkey, group_expires)
    end
end

local totaldiff = redis.call('GET', tkey)
local size = redis.call('GET', skey)
local claimed = 0
if size and readycount == tonumber(size) + tonumber(totaldiff or 0) then
    if redis.call('SET', ckey, claim_token, 'NX', 'EX', claim_expires) then
        claimed = 1
    end
end

return {readycount, totaldiff, size, claimed}
`;

/** Celery 5.7's CHORD_CLEANUP_LUA. */
export const CHORD_CLEANUP_LUA = `
local ckey = KEYS[1]
local jkey = KEYS[2]
local tkey = KEYS[3]
local skey = KEYS[4]
local dkey = KEYS[5]
local token = ARGV[1]
local done_expires = tonumber(ARGV[2])

if redis.call('GET', ckey) == token then
    redis.call('DEL', jkey, tkey, skey, dkey)
    if done_expires and done_expires > 0 then
        redis.call('SET', ckey, 'done', 'EX', done_expires)
    end
    return 1
end
return 0
`;

/** Celery 5.7's CHORD_CLAIM_EXTEND_LUA. */
export const CHORD_CLAIM_EXTEND_LUA = `
local ckey, skey = KEYS[1], KEYS[2]
local token = ARGV[1]
local expires = tonumber(ARGV[2])
if redis.call('GET', ckey) == token then
    return redis.call('EXPIRE', ckey, expires)
end
if not redis.call('GET', ckey) and redis.call('EXISTS', skey) == 1 then
    return redis.call('SET', ckey, token, 'EX', expires, 'NX') and 1 or 0
end
return 0
`;

export type RedisWithChordScripts = Redis & {
  chordPartReturn(...keysAndArgs: Array<string | number>): Promise<[number, string | null, string | null, number]>;
  chordCleanup(...keysAndArgs: Array<string | number>): Promise<number>;
  chordClaimExtend(...keysAndArgs: Array<string | number>): Promise<number>;
};

/** Adds the chord scripts to a client (EVALSHA, loaded on first use). */
export function defineChordScripts(client: Redis): void {
  client.defineCommand('chordPartReturn', { numberOfKeys: 6, lua: CHORD_PART_RETURN_LUA });
  client.defineCommand('chordCleanup', { numberOfKeys: 5, lua: CHORD_CLEANUP_LUA });
  client.defineCommand('chordClaimExtend', { numberOfKeys: 2, lua: CHORD_CLAIM_EXTEND_LUA });
}

/** The chord settings, in seconds, from Celery's settings. */
export interface ChordSettings {
  /** `result_chord_expires` (else `result_expires`); 0 = no TTL. */
  chordExpires: number;
  /** `result_expires`; 0 = no TTL. */
  resultExpires: number;
  /** `result_chord_join_timeout`. */
  joinTimeout: number;
  /** `result_backend_transport_options.result_chord_ordered` (default true). */
  ordered: boolean;
  /** How long the body's publish may take, with its retries (Celery's `_chord_publish_claim_expires`). */
  publishSeconds: number;
}

/** What the chord join needs from the backend around it. */
export interface ChordHost {
  readonly client: RedisWithChordScripts;
  waitForReady(taskId: string, timeoutMs: number | null): Promise<ResultMeta>;
}


/** The failure of a header member, as Celery words it: `Dependency <id> raised ValueError('...')`. */
export function dependencyError(taskId: string, exc: unknown): ChordError {
  const cause = deserializeException(exc, { state: 'FAILURE', taskId, traceback: null });
  return new ChordError(`Dependency ${taskId} raised ${exceptionRepr(exc)}`, { cause });
}

/** How long a member that found a chord "done" watches for a new run of it (~6 s in all). */
const NEW_RUN_WAIT_MS = [50, 100, 200, 400, 800, 1600, 3200];

/** A chord's keys: the saved group, `.j`, `.t`, `.s`, `.d`, `.c`. */
type ChordKeys = [string, string, string, string, string, string];

export class RedisChords {
  /** The keys of the chords being counted lately: every member of a chord uses the same six. */
  private readonly keys = new Map<string, ChordKeys>();

  constructor(
    private readonly host: ChordHost,
    private readonly settings: ChordSettings,
    /** `celery-taskset-meta-`, after the backend's global key prefix when one is set. */
    private readonly groupPrefix: string = GROUP_KEY_PREFIX,
  ) {}

  private key(gid: string, suffix = ''): string {
    return this.groupPrefix + gid + suffix;
  }

  private get client(): RedisWithChordScripts {
    return this.host.client;
  }

  private keysOf(gid: string): ChordKeys {
    let keys = this.keys.get(gid);
    if (!keys) {
      keys = [this.key(gid), this.key(gid, '.j'), this.key(gid, '.t'), this.key(gid, '.s'), this.key(gid, '.d'), this.key(gid, '.c')];
      if (this.keys.size >= 1000) this.keys.delete(this.keys.keys().next().value as string);
      this.keys.set(gid, keys);
    }
    return keys;
  }

  /** Header results and a saved group are read by users too: never kept for less than result_expires. */
  private get chordResultExpires(): number {
    const { chordExpires, resultExpires } = this.settings;
    return !chordExpires || !resultExpires ? 0 : Math.max(chordExpires, resultExpires);
  }

  private async setKey(k: string, value: string): Promise<void> {
    if (this.settings.chordExpires) await this.client.set(k, value, 'EX', this.settings.chordExpires);
    else await this.client.set(k, value);
  }

  /** `.s` = size; a reapplied frozen chord reuses its group id but is a new run, so `.c` goes. */
  async setChordSize(gid: string, size: number): Promise<void> {
    await this.client.del(this.key(gid, '.c'));
    await this.setKey(this.key(gid, '.s'), String(size));
  }

  /** Saves the header's tuple when it nests groups, so the join keeps that structure. */
  async applyChord(gid: string, header: ResultTuple): Promise<void> {
    const nodes = header[1] ?? [];
    if (nodes.some((n) => n[1] !== null)) await this.setKey(this.key(gid), JSON.stringify({ result: header }));
  }

  async addToChord(gid: string): Promise<void> {
    await this.client.incr(this.key(gid, '.t'));
  }

  onChordPartReturn(part: ChordPart, join: ChordJoin): Promise<void> {
    return this.countPart(part, join, true);
  }

  /** `mayAwaitNewRun`: false once the member has watched for a new run (it watches once). */
  private async countPart(part: ChordPart, join: ChordJoin, mayAwaitNewRun: boolean): Promise<void> {
    const { groupId: gid, taskId: tid } = part;
    if (!gid || !tid) return;
    const score = part.groupIndex ?? '+inf';
    const [gkey, jkey, tkey, skey, dkey, ckey] = this.keysOf(gid);
    // Python's json.dumps([1, tid, state, result]) (same spacing; any JSON reads back the same).
    const encoded = `[1, ${JSON.stringify(tid)}, ${JSON.stringify(part.state)}, ${JSON.stringify(part.result ?? null)}]`;
    // The claim is tied to the join timeout, for crash recovery: a worker that dies while
    // sending the body loses it, and a redelivered member can claim it again.
    const claimExpires = Math.max(5, Math.floor(this.settings.joinTimeout * 2));
    const token = randomBytes(16).toString('hex');
    const doneExpires = Math.floor(Math.max(claimExpires * 2, 300));
    const [readycount, totaldiff, size, claimed] = await this.client.chordPartReturn(
      jkey, tkey, skey, dkey, gkey, ckey,
      tid, encoded, this.settings.ordered ? '1' : '0', score,
      this.settings.chordExpires, this.chordResultExpires, claimExpires, token,
    );
    if (readycount === -1) {
      if (mayAwaitNewRun) this.awaitNewRun(part, join, ckey);
      return;
    }
    if (!size) return;
    try {
      const total = Number(size) + Number(totaldiff ?? 0);
      if (readycount !== total || !claimed) return;
      const results = await this.join(gid, jkey, total);
      const extended = await this.client.chordClaimExtend(ckey, skey, token, Math.max(claimExpires, this.settings.publishSeconds));
      if (!extended) {
        log.warning(`Chord callback for '${gid}' not published: dispatch claim is no longer owned by this worker`);
        return;
      }
      try {
        await join.fire(results);
      } catch (err) {
        log.error(`Chord callback for '${gid}' raised: ${(err as Error).message}`);
        await join.fail(new ChordError(`Callback error: ${exceptionRepr(serializeException(err))}`, { cause: err }));
        return;
      } finally {
        const cleaned = await this.client.chordCleanup(ckey, jkey, tkey, skey, dkey, token, doneExpires);
        if (!cleaned) log.warning(`Chord callback claim for '${gid}' was lost before cleanup; chord data was left for expiry`);
      }
    } catch (err) {
      const error = err instanceof ChordError ? err : new ChordError(`Join error: ${exceptionRepr(serializeException(err))}`, { cause: err });
      log.error(`Chord '${gid}' raised: ${error.message}`);
      try {
        await join.fail(error);
      } finally {
        // A copy of a header task arriving later must not fail the chord again; the results stay.
        await this.client.del(skey);
      }
    }
  }

  /**
   * The chord's `.c` says "done": either this member is a late duplicate of a
   * finished run, or the producer is re-applying a frozen chord (same group id,
   * a new run) and this member overtook it. Celery's producer clears `.c` in
   * `set_chord_size`, which it calls just before sending the *last* header
   * member, so on a busy machine the first members of the new run can finish
   * before that and are dropped by Celery's own script; the body never runs.
   * Instead of dropping the member, this watches `.c` for a few seconds (in the
   * background: the member's own result is already stored) and counts it once
   * the marker is gone. A true late duplicate sees the marker stay (it lives
   * five minutes) and is dropped as before; if it were counted after all, the
   * `.d` set still counts its task id and index once per run.
   */
  private awaitNewRun(part: ChordPart, join: ChordJoin, ckey: string): void {
    const gid = part.groupId!;
    const watch = async (): Promise<void> => {
      for (const ms of NEW_RUN_WAIT_MS) {
        await new Promise((resolve) => setTimeout(resolve, ms).unref());
        if ((await this.client.get(ckey)) !== 'done') return this.countPart(part, join, false);
      }
      log.debug(`Chord '${gid}': member ${part.taskId} arrived after the chord finished; not counted again`);
    };
    watch().catch((err: unknown) => log.error(`Chord '${gid}': member ${part.taskId} could not be counted: ${(err as Error).message}`));
  }

  /** The header's results in order; throws ChordError for the first failed member. */
  private async join(gid: string, jkey: string, total: number): Promise<unknown[]> {
    const saved = await this.client.get(this.key(gid));
    if (saved !== null) {
      const doc = decodeJson(saved) as { result?: unknown };
      if (isResultTuple(doc.result)) return this.joinTuple(doc.result) as Promise<unknown[]>;
    }
    const members = this.settings.ordered ? await this.client.zrange(jkey, '0', '-1') : await this.client.lrange(jkey, '0', String(total));
    return members.map((raw) => {
      const [, id, state, value] = decodeJson(raw) as [number, string, string, unknown];
      if (PROPAGATE_STATES.has(state)) throw dependencyError(id, value);
      return value;
    });
  }

  /** A nested header's results, read from each task's stored result (Celery joins the saved GroupResult). */
  private async joinTuple(tuple: ResultTuple): Promise<unknown> {
    const [[id], nodes] = tuple;
    if (nodes !== null) return Promise.all(nodes.map((n) => this.joinTuple(n)));
    const meta = await this.host.waitForReady(id, this.settings.joinTimeout * 1000);
    if (PROPAGATE_STATES.has(meta.status)) {
      throw deserializeException(meta.result, { state: meta.status, taskId: id, traceback: meta.traceback });
    }
    return meta.result;
  }
}
