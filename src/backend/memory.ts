/**
 * The embedded in-memory result backend (`memory://`): one process, nothing
 * persisted. Groups and chords work as on Redis (same counting and ordering),
 * within the process.
 */
import { ChordError } from '../errors.js';
import { deserializeException, exceptionRepr, serializeException } from '../protocol/exceptions.js';
import { PROPAGATE_STATES, READY_STATES, States, type ResultMeta } from '../protocol/result-meta.js';
import type { ResultTuple } from '../protocol/result-tuple.js';
import { dependencyError } from './redis-chord.js';
import type { ChordJoin, ChordPart, ResultBackend } from './types.js';
import { ReadyWaiters } from './waiters.js';

interface ChordState {
  size: number | null;
  /** Members added with addToChord. */
  extra: number;
  /** Counted members by `<task_id>:<group_index>`, so a member run twice counts once. */
  parts: Map<string, ChordPart>;
  claimed: boolean;
}

/** How long the join waits for a nested header's results (ms). */
const JOIN_TIMEOUT_MS = 3_000;

export class MemoryBackend implements ResultBackend {
  readonly displayUrl = 'memory://';
  private readonly results = new Map<string, ResultMeta>();
  private readonly waiters = new ReadyWaiters();
  private readonly groups = new Map<string, ResultTuple>();
  private readonly chords = new Map<string, ChordState>();
  /** Chords whose body was sent: a late duplicate member must not send it again. */
  private readonly done = new Set<string>();

  async store(meta: ResultMeta): Promise<void> {
    if (this.results.get(meta.task_id)?.status === States.SUCCESS) return;
    this.results.set(meta.task_id, meta);
    if (READY_STATES.has(meta.status)) this.waiters.settle(meta.task_id, meta);
  }

  async get(taskId: string): Promise<ResultMeta | null> {
    return this.results.get(taskId) ?? null;
  }

  async getMany(taskIds: string[]): Promise<Array<ResultMeta | null>> {
    return taskIds.map((id) => this.results.get(id) ?? null);
  }

  waitForReady(taskId: string, timeoutMs: number | null, signal?: AbortSignal): Promise<ResultMeta> {
    const current = this.results.get(taskId);
    if (current && READY_STATES.has(current.status)) return Promise.resolve(current);
    return this.waiters.wait(taskId, timeoutMs, signal).promise;
  }

  async forget(taskId: string): Promise<void> {
    this.results.delete(taskId);
  }

  async saveGroup(groupId: string, tuple: ResultTuple): Promise<void> {
    this.groups.set(groupId, tuple);
  }

  async restoreGroup(groupId: string): Promise<ResultTuple | null> {
    return this.groups.get(groupId) ?? null;
  }

  async deleteGroup(groupId: string): Promise<void> {
    this.groups.delete(groupId);
  }

  private chord(gid: string): ChordState {
    let state = this.chords.get(gid);
    if (!state) this.chords.set(gid, (state = { size: null, extra: 0, parts: new Map(), claimed: false }));
    return state;
  }

  async setChordSize(groupId: string, size: number): Promise<void> {
    this.done.delete(groupId);
    const state = this.chord(groupId);
    state.size = size;
    state.claimed = false;
  }

  async applyChord(groupId: string, header: ResultTuple): Promise<void> {
    if ((header[1] ?? []).some((n) => n[1] !== null)) this.groups.set(groupId, header);
  }

  async addToChord(groupId: string): Promise<void> {
    this.chord(groupId).extra++;
  }

  async onChordPartReturn(part: ChordPart, join: ChordJoin): Promise<void> {
    const gid = part.groupId;
    if (!gid || !part.taskId || this.done.has(gid)) return;
    const state = this.chord(gid);
    const member = `${part.taskId}:${part.groupIndex ?? '+inf'}`;
    if (!state.parts.has(member)) state.parts.set(member, part);
    if (state.size === null || state.claimed || state.parts.size !== state.size + state.extra) return;
    state.claimed = true;
    let results: unknown[];
    try {
      const saved = this.groups.get(gid);
      results = saved ? ((await this.joinTuple(saved)) as unknown[]) : this.ordered(state);
    } catch (err) {
      const error = err instanceof ChordError ? err : new ChordError(`Join error: ${exceptionRepr(serializeException(err))}`, { cause: err });
      state.size = null; // a late duplicate must not fail the chord again
      await join.fail(error);
      return;
    }
    try {
      await join.fire(results);
    } catch (err) {
      await join.fail(new ChordError(`Callback error: ${exceptionRepr(serializeException(err))}`, { cause: err }));
    } finally {
      this.chords.delete(gid);
      this.done.add(gid);
    }
  }

  /** The members' results by group index (a member without one last, as Redis scores it +inf). */
  private ordered(state: ChordState): unknown[] {
    const parts = [...state.parts.values()].sort((a, b) => (a.groupIndex ?? Infinity) - (b.groupIndex ?? Infinity));
    return parts.map((p) => {
      if (PROPAGATE_STATES.has(p.state)) throw dependencyError(p.taskId, p.result);
      return p.result;
    });
  }

  private async joinTuple(tuple: ResultTuple): Promise<unknown> {
    const [[id], nodes] = tuple;
    if (nodes !== null) return Promise.all(nodes.map((n) => this.joinTuple(n)));
    const meta = await this.waitForReady(id, JOIN_TIMEOUT_MS);
    if (PROPAGATE_STATES.has(meta.status)) throw deserializeException(meta.result, { state: meta.status, taskId: id, traceback: meta.traceback });
    return meta.result;
  }

  async close(): Promise<void> {}
}
