/**
 * A worker's events: `worker-online`, `worker-heartbeat` every 2 s and
 * `worker-offline` always (as Celery, even without `-E`), and the task
 * events with `-E` / `worker_send_task_events`, or after an `enable_events`
 * broadcast (Flower sends one every few seconds): `task-received`,
 * `task-started`, `task-succeeded`, `task-failed`, `task-retried`,
 * `task-revoked`, `task-rejected`, with Celery's fields
 * (celery/worker/strategy.py, request.py, heartbeat.py). It listens to the
 * worker's lifecycle events; nothing in the consume loop knows about it.
 */
import { loadavg, type as osType } from 'node:os';
import type { Celery } from '../app/celery.js';
import { serializeException } from '../protocol/exceptions.js';
import type { TaskMessage } from '../protocol/message.js';
import { argsRepr, kwargsRepr, pyRepr } from '../protocol/repr.js';
import { formatIsoTime } from '../protocol/time.js';
import { VERSION } from '../support/version.js';
import type { TaskLifecycle, TaskLifecycleEvents } from '../worker/lifecycle.js';
import type { WorkerState } from '../worker/state.js';
import { EventDispatcher } from './dispatcher.js';
import { eventExchange } from './event.js';

/** Celery's `SOFTWARE_INFO`, for this implementation. */
export const SOFTWARE_INFO = { sw_ident: 'ts-celery', sw_ver: VERSION, sw_sys: osType() } as const;

/** Longest result repr in `task-succeeded` (Celery's `resultrepr_maxsize`). */
const RESULT_REPR_MAX = 1024;

/** Python's `repr()` of an exception, e.g. `ValueError('boom')`. */
export function exceptionRepr(err: unknown): string {
  if (err === null || err === undefined) return 'None';
  const { exc_type, exc_message } = serializeException(err);
  return `${exc_type}(${exc_message.map((a) => pyRepr(a)).join(', ')})`;
}

function traceback(err: unknown): string {
  if (err instanceof Error) return err.stack ?? `${err.name}: ${err.message}`;
  return String(err);
}

function truncate(s: string, max: number): string {
  return s.length > max ? `${s.slice(0, max - 3)}...` : s;
}

export interface WorkerEventsOptions {
  hostname: string;
  /** `-E`: send task events from the start. */
  taskEvents: boolean;
  /** Seconds between heartbeats (2); null = no heartbeats (`--without-heartbeat`). */
  heartbeatInterval: number | null;
}

export class WorkerEvents {
  readonly dispatcher: EventDispatcher;
  private timer: NodeJS.Timeout | null = null;
  private readonly freq: number;
  private started = false;
  /** The lifecycle listeners, attached only while task events are on (an emit without them costs less). */
  private readonly listeners: Array<[keyof TaskLifecycleEvents, (...args: never[]) => void]>;
  private attached = false;

  constructor(
    private readonly app: Celery,
    private readonly lifecycle: TaskLifecycle,
    private readonly state: WorkerState,
    private readonly options: WorkerEventsOptions,
  ) {
    this.freq = options.heartbeatInterval ?? 2;
    this.dispatcher = new EventDispatcher({
      hostname: options.hostname,
      broker: () => app.broker,
      clock: app.clock,
      exchange: () => eventExchange(app.conf, app.broker.driverType),
      // Celery: groups=None (all) with -E, else only worker events until enable_events.
      groups: options.taskEvents ? null : ['worker'],
      bufferGroups: ['task'],
    });
    this.listeners = this.taskListeners();
    this.sync();
  }

  /** Attaches or detaches the task listeners to match whether task events are on. */
  private sync(): void {
    const on = this.dispatcher.wants('task');
    if (on === this.attached) return;
    for (const [event, listener] of this.listeners) {
      if (on) this.lifecycle.on(event, listener as never);
      else this.lifecycle.off(event, listener as never);
    }
    this.attached = on;
  }

  /** True while task events are being sent. */
  get taskEvents(): boolean {
    return this.dispatcher.wants('task');
  }

  /** `enable_events`: returns false when they were on already. */
  enableTaskEvents(): boolean {
    const groups = this.dispatcher.groups;
    if (groups === null || groups.has('task')) return false;
    groups.add('task');
    this.sync();
    return true;
  }

  /** `disable_events`: returns false when they were off already. */
  disableTaskEvents(): boolean {
    const groups = this.dispatcher.groups;
    if (groups !== null && !groups.has('task')) return false;
    this.dispatcher.groups = new Set(groups === null ? ['worker'] : [...groups].filter((g) => g !== 'task'));
    this.sync();
    return true;
  }

  /** The heartbeat fields: Celery's `Heart._send`. */
  private heartbeatFields(): Record<string, unknown> {
    return {
      freq: this.freq,
      active: this.state.active,
      processed: this.state.processed,
      loadavg: loadavg().map((l) => Math.ceil(l * 100) / 100),
      ...SOFTWARE_INFO,
    };
  }

  /** `worker-online`, then a heartbeat every `freq` seconds. */
  start(): void {
    if (this.started) return;
    this.started = true;
    this.dispatcher.send('worker-online', this.heartbeatFields());
    if (this.options.heartbeatInterval !== null) {
      this.timer = setInterval(() => this.dispatcher.send('worker-heartbeat', this.heartbeatFields()), this.freq * 1000);
      this.timer.unref();
    }
  }

  /** The `heartbeat` command: one heartbeat now, with Celery's fields for it. */
  heartbeatNow(): void {
    this.dispatcher.send('worker-heartbeat', { freq: 5, ...SOFTWARE_INFO });
  }

  /** `worker-offline`, and everything buffered is sent. */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    if (this.started) this.dispatcher.send('worker-offline', this.heartbeatFields());
    this.started = false;
    await this.dispatcher.close();
  }

  private taskListeners(): Array<[keyof TaskLifecycleEvents, (...args: never[]) => void]> {
    const d = this.dispatcher;
    // The three events every task sends are written by hand (JSON.stringify of a string or a
    // number is what JSON text needs); the rare ones go through send().
    const listeners: { [K in keyof TaskLifecycleEvents]?: (...args: TaskLifecycleEvents[K]) => void } = {
      'task-received': (m) =>
        d.sendJson(
          'task-received',
          `"uuid":${json(m.id)},"name":${json(m.task)},"args":${json(m.argsrepr ?? argsRepr(m.args))},"kwargs":${json(m.kwargsrepr ?? kwargsRepr(m.kwargs))},` +
            `"root_id":${json(m.rootId)},"parent_id":${json(m.parentId)},"retries":${m.retries},` +
            `"eta":${m.eta === null ? 'null' : json(formatIsoTime(m.eta))},"expires":${m.expires === null ? 'null' : json(formatIsoTime(m.expires))}`,
        ),
      'task-started': (m) => d.sendJson('task-started', `"uuid":${json(m.id)}`),
      'task-succeeded': (m, result, runtime) =>
        d.sendJson('task-succeeded', `"uuid":${json(m.id)},"result":${json(truncate(pyRepr(result), RESULT_REPR_MAX))},"runtime":${runtime}`),
      'task-failed': (m, error) => d.send('task-failed', { uuid: m.id, exception: exceptionRepr(error), traceback: traceback(error) }),
      'task-retried': (m, exc) => d.send('task-retried', { uuid: m.id, exception: exceptionRepr(exc), traceback: exc == null ? 'None' : traceback(exc) }),
      'task-revoked': (m: TaskMessage, info) => d.send('task-revoked', { uuid: m.id, terminated: info.terminated, signum: info.signum, expired: info.expired }),
      'task-rejected': (m, requeue) => d.send('task-rejected', { uuid: m.id, requeue }),
    };
    return Object.entries(listeners) as Array<[keyof TaskLifecycleEvents, (...args: never[]) => void]>;
  }
}

/** What JSON.stringify would escape in a string. */
const NEEDS_ESCAPE = /["\\\u0000-\u001f\ud800-\udfff]/;

/** JSON text of a string (or null); ids and names rarely need escaping, so skip the serializer then. */
function json(v: string | null): string {
  if (v === null) return 'null';
  return NEEDS_ESCAPE.test(v) ? JSON.stringify(v) : `"${v}"`;
}
