/**
 * The result backend interface: store a task's state, read it, wait for it.
 * One implementation per backend (redis, memory, disabled); the worker and
 * `AsyncResult` only talk to this.
 */
import type { ChordError } from '../errors.js';
import type { ResultMeta } from '../protocol/result-meta.js';
import type { ResultTuple } from '../protocol/result-tuple.js';

/** What a worker knows about the task whose state it stores (rpc:// replies need it). */
export interface StoreContext {
  /** The task message's `reply_to` (the caller's reply queue for rpc://). */
  replyTo: string | null;
  /** The task message's `correlation_id` (the task id). */
  correlationId: string;
}

/** A chord header task that finished: what the backend counts (Celery's `on_chord_part_return`). */
export interface ChordPart {
  /** The chord's group id (header `group` of the member). */
  groupId: string;
  /** The member's task id. */
  taskId: string;
  /** Its position in the header (`group_index`), which orders the body's argument; null = unordered. */
  groupIndex: number | null;
  /** SUCCESS, FAILURE or REVOKED. */
  state: string;
  /** The return value, or the serialized exception (`{exc_type, exc_message, exc_module}`). */
  result: unknown;
}

/** What the backend calls once a chord's header is complete (provided by the canvas layer). */
export interface ChordJoin {
  /** Publishes the body with the header's results, in header order. */
  fire(results: unknown[]): Promise<void>;
  /** Fails the body (and calls its errbacks) when the header failed or the body could not be sent. */
  fail(error: ChordError): Promise<void>;
}

export interface ResultBackend {
  /** The backend URL with the password masked. */
  readonly displayUrl: string;
  /** Stores a state change. Never overwrites a stored SUCCESS (as Celery). */
  store(meta: ResultMeta, context?: StoreContext): Promise<void>;
  /**
   * Called before a task is published (rpc:// declares and consumes the reply
   * queue then, so no reply can arrive before anyone listens).
   */
  beforePublish?(): Promise<void>;
  /** The stored meta, or null when nothing is stored (Celery's PENDING). */
  get(taskId: string): Promise<ResultMeta | null>;
  /**
   * Resolves with the meta once the task reaches a ready state (SUCCESS,
   * FAILURE, REVOKED). Rejects with `TimeoutError` after `timeoutMs`
   * (null = wait forever) and with `BackendError` when the backend is unreachable.
   * Aborting `signal` stops waiting (rejects with the signal's reason).
   */
  waitForReady(taskId: string, timeoutMs: number | null, signal?: AbortSignal): Promise<ResultMeta>;
  /** Deletes the stored result. */
  forget(taskId: string): Promise<void>;
  /** The stored metas of many tasks at once (null where nothing is stored). */
  getMany?(taskIds: string[]): Promise<Array<ResultMeta | null>>;

  // Groups and chords. A backend without them cannot save groups or run chords.

  /** Stores a group's result tuple (`GroupResult.save()`: `celery-taskset-meta-<id>`). */
  saveGroup?(groupId: string, tuple: ResultTuple): Promise<void>;
  /** The saved tuple of a group, or null. */
  restoreGroup?(groupId: string): Promise<ResultTuple | null>;
  deleteGroup?(groupId: string): Promise<void>;
  /**
   * Throws `ImproperlyConfigured`, naming the setting, when this backend cannot
   * join chords (rpc://, none). Called before anything of a chord is published.
   */
  ensureChordsAllowed?(): void;
  /** Records how many header results complete the chord (before the header is published). */
  setChordSize?(groupId: string, size: number): Promise<void>;
  /** Called when a chord is applied; saves the header's tuple when it nests groups. */
  applyChord?(groupId: string, header: ResultTuple): Promise<void>;
  /** `self.addToChord()`: one more header result to wait for. */
  addToChord?(groupId: string): Promise<void>;
  /**
   * Counts a finished header member; when it completes the header, joins the
   * results and calls `join.fire` (or `join.fail`). Exactly one caller fires
   * the body, whichever worker (Python or TypeScript) finishes last.
   */
  onChordPartReturn?(part: ChordPart, join: ChordJoin): Promise<void>;
  close(): Promise<void>;
}
