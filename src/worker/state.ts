/**
 * The worker's state, as Celery's `celery.worker.state`: the requests it
 * holds (scheduled for an ETA, reserved waiting for a slot, active), the
 * revoked task ids (bounded and expiring like Celery's `REVOKES_MAX` and
 * `REVOKE_EXPIRES`, saved with `--statedb`), stamps revoked with
 * `revoke_by_stamped_headers`, and counters. It follows the worker through
 * its lifecycle events; remote control and heartbeats read it.
 */
import type { Delivery } from '../broker/types.js';
import type { TaskMessage } from '../protocol/message.js';
import type { TaskLifecycle } from './lifecycle.js';
import { LimitedSet } from './limited-set.js';

/** Celery's defaults, overridable through the same environment variables. */
function envNumber(name: string, fallback: number): number {
  const v = process.env[name];
  const n = v === undefined ? NaN : Number(v);
  return Number.isFinite(n) && n >= 0 ? n : fallback;
}
/** Most revoked ids kept (`CELERY_WORKER_REVOKES_MAX`). */
export const REVOKES_MAX = envNumber('CELERY_WORKER_REVOKES_MAX', 50_000);
/** Seconds a revoked id is kept once purging starts (`CELERY_WORKER_REVOKE_EXPIRES`). */
export const REVOKE_EXPIRES = envNumber('CELERY_WORKER_REVOKE_EXPIRES', 10_800);

/** A request as `inspect active|reserved|scheduled|query_task` report it (Celery's `Request.info()`). */
export interface RequestInfo {
  id: string;
  name: string;
  /** The decoded args, or their repr with `safe`. */
  args: unknown;
  kwargs: unknown;
  type: string;
  hostname: string;
  /** Epoch seconds when it started, or null. */
  time_start: number | null;
  acknowledged: boolean;
  delivery_info: { exchange: string; routing_key: string; priority: number | null; redelivered: boolean };
  worker_pid: number | null;
}

export type RequestPhase = 'received' | 'scheduled' | 'reserved' | 'active';

/** One task this worker holds. */
export class TrackedRequest {
  phase: RequestPhase = 'received';
  timeStart: number | null = null;
  acknowledged = false;

  constructor(
    readonly message: TaskMessage,
    readonly delivery: Delivery,
    readonly hostname: string,
  ) {}

  get id(): string {
    return this.message.id;
  }

  get name(): string {
    return this.message.task;
  }

  info(safe = false): RequestInfo {
    const m = this.message;
    const d = this.delivery.info;
    return {
      id: m.id,
      name: m.task,
      args: safe ? (m.argsrepr ?? null) : m.args,
      kwargs: safe ? (m.kwargsrepr ?? null) : m.kwargs,
      type: m.task,
      hostname: this.hostname,
      time_start: this.timeStart,
      acknowledged: this.acknowledged,
      delivery_info: { exchange: d.exchange, routing_key: d.routingKey, priority: d.priority, redelivered: d.redelivered },
      worker_pid: this.phase === 'active' ? process.pid : null,
    };
  }
}

function asList(v: unknown): unknown[] {
  return Array.isArray(v) ? v : v === undefined || v === null ? [] : [v];
}

export class WorkerState {
  /**
   * Requests held, by message, oldest first. Keyed by the message, not the
   * id: a retried task's next message (same id) can arrive while the run
   * that sent it is still finishing. One map operation per step keeps this
   * off the hot path's profile; lookups by id (remote control) scan it.
   */
  private readonly tracked = new Map<TaskMessage, TrackedRequest>();
  /** Revoked task ids. */
  readonly revoked = new LimitedSet(REVOKES_MAX, REVOKE_EXPIRES);
  /** Stamp header -> values revoked with `revoke_by_stamped_headers`. */
  readonly revokedStamps = new Map<string, unknown[]>();
  /** Tasks started, by name (`stats` -> `total`). */
  readonly totalCount = new Map<string, number>();
  /** Tasks started, all names (`processed` in heartbeats). */
  processed = 0;
  /** Tasks running now. */
  active = 0;
  /** Called after the revoked set changed (the state file saves it). */
  onRevokedChange: (() => void) | null = null;

  constructor(readonly hostname: string) {}

  /** Adds ids to the revoked set (`revoke`, `hello`, the state file). */
  revoke(ids: Iterable<string>): void {
    this.revoked.update(ids);
    this.onRevokedChange?.();
  }

  /** Follows a worker's lifecycle events. */
  follow(worker: TaskLifecycle): void {
    worker.on('task-received', (m, d) => {
      this.tracked.set(m, new TrackedRequest(m, d, this.hostname));
    });
    worker.on('task-scheduled', (m) => this.setPhase(m, 'scheduled'));
    worker.on('task-reserved', (m) => this.setPhase(m, 'reserved'));
    worker.on('task-started', (m, acknowledged) => {
      const r = this.tracked.get(m);
      if (!r) return;
      r.phase = 'active';
      r.timeStart = Date.now() / 1000;
      r.acknowledged = acknowledged;
      this.active++;
      this.processed++;
      this.totalCount.set(m.task, (this.totalCount.get(m.task) ?? 0) + 1);
    });
    const ready = (m: TaskMessage): void => this.ready(m);
    worker.on('task-succeeded', ready);
    worker.on('task-failed', ready);
    worker.on('task-retried', ready);
    worker.on('task-revoked', ready);
    worker.on('task-rejected', ready);
    worker.on('task-released', ready);
    // Celery's task_ready() for Ignore too: a replaced task must not stay in `inspect active`.
    worker.on('task-ignored', ready);
  }

  private setPhase(m: TaskMessage, phase: RequestPhase): void {
    const r = this.tracked.get(m);
    if (r) r.phase = phase;
  }

  private ready(m: TaskMessage): void {
    const r = this.tracked.get(m);
    if (!r) return;
    this.tracked.delete(m);
    if (r.phase === 'active') this.active--;
  }

  /** The latest request held for a task id (remote control's lookups), or undefined. */
  byId(id: string): TrackedRequest | undefined {
    let found: TrackedRequest | undefined;
    for (const r of this.tracked.values()) if (r.message.id === id) found = r;
    return found;
  }

  /** Requests held. */
  get size(): number {
    return this.tracked.size;
  }

  /** Requests in one phase, oldest first. */
  list(phase: RequestPhase): TrackedRequest[] {
    const out: TrackedRequest[] = [];
    for (const r of this.tracked.values()) if (r.phase === phase) out.push(r);
    return out;
  }

  /** Messages waiting here (received, scheduled or reserved, not running): the prefetched tasks. */
  get waiting(): number {
    return this.tracked.size - this.active;
  }

  /**
   * Is this message revoked here: its id is in the revoked set, or one of
   * its stamps (`stamped_headers`/`stamps`, Celery 5.3+) was revoked.
   */
  isRevoked(m: TaskMessage): boolean {
    if (this.revoked.size > 0 && this.revoked.has(m.id)) return true;
    return this.revokedStamps.size > 0 && this.revokingStamp(m) !== null;
  }

  /** The `{stamp: value}` that revokes a message, or null. */
  revokingStamp(m: TaskMessage): Record<string, unknown> | null {
    const names = asList(m.extraHeaders.stamped_headers);
    const stamps = (m.extraHeaders.stamps ?? {}) as Record<string, unknown>;
    for (const name of names) {
      if (typeof name !== 'string') continue;
      const revoked = this.revokedStamps.get(name);
      if (!revoked) continue;
      const value = stamps[name];
      if (value === undefined || value === null) continue;
      for (const v of asList(value)) if (revoked.some((r) => r === v)) return { [name]: v };
    }
    return null;
  }

  /** `revoke_by_stamped_headers`: adds values to each header's revoked list. */
  revokeStamps(headers: Record<string, unknown>): void {
    for (const [name, values] of Object.entries(headers)) {
      this.revokedStamps.set(name, [...(this.revokedStamps.get(name) ?? []), ...asList(values)]);
    }
  }
}
