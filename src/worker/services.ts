/**
 * What runs beside the consume loop, started and stopped in Celery's order:
 * the state file (`--statedb`), events (`worker-online`, heartbeats, task
 * events), remote control (the pidbox), and the metrics endpoint. Each
 * follows the worker's lifecycle events; the loop itself knows none of them.
 */
import { ControlNode } from '../control/node.js';
import type { CommandContext } from '../control/commands.js';
import { WorkerEvents } from '../events/worker-events.js';
import { WorkerMetrics } from '../metrics/worker-metrics.js';
import { StateDb } from './statedb.js';
import type { Worker } from './worker.js';

export interface WorkerServiceOptions {
  /** `-E`: send task events from the start (default `worker_send_task_events`). */
  taskEvents?: boolean;
  /** Seconds between heartbeat events (default 2); null = none (`--without-heartbeat`). */
  heartbeatInterval?: number | null;
  /** `-S`/`--statedb`: a file that keeps revoked task ids across restarts (default `worker_state_db`). */
  statedb?: string | null;
  /** Answer remote control (default `worker_enable_remote_control`). */
  remoteControl?: boolean;
  /** `--metrics-port`: serve Prometheus `/metrics` and `/healthz` on this port (0 = any free port). */
  metricsPort?: number | null;
  /** Address the metrics endpoint listens on (default all interfaces). */
  metricsHost?: string;
}

export class WorkerServices {
  /** Events: heartbeats always (as Celery), task events with -E or after enable_events. */
  readonly events: WorkerEvents;
  private control: ControlNode | null = null;
  private statedb: StateDb | null = null;
  /** Set once `--metrics-port` is listening. */
  metrics: WorkerMetrics | null = null;
  /** The metrics endpoint's port, once listening. */
  metricsPort: number | null = null;

  constructor(
    private readonly worker: Worker,
    private readonly options: WorkerServiceOptions,
  ) {
    const conf = worker.app.conf;
    this.events = new WorkerEvents(worker.app, worker.lifecycle, worker.workerState, {
      hostname: worker.hostname,
      taskEvents: options.taskEvents ?? conf.worker_send_task_events,
      heartbeatInterval: options.heartbeatInterval === undefined ? 2 : options.heartbeatInterval,
    });
  }

  /** The remote-control command context. */
  private commandContext(): CommandContext {
    const w = this.worker;
    return { app: w.app, worker: w, hostname: w.hostname, state: w.workerState, events: this.events, rateLimits: new Map(), memSamples: [] };
  }

  /** Before the task queues are consumed: revoked ids from the state file, `worker-online`, metrics. */
  async beforeConsume(): Promise<void> {
    const w = this.worker;
    const path = this.options.statedb ?? w.app.conf.worker_state_db;
    if (path) {
      this.statedb = new StateDb(path, w.workerState, w.app.clock);
      this.statedb.load();
      w.workerState.onRevokedChange = () => this.statedb?.scheduleSave();
    }
    if (this.options.metricsPort !== undefined && this.options.metricsPort !== null) {
      this.metrics = new WorkerMetrics(w);
      this.metricsPort = await this.metrics.listen(this.options.metricsPort, this.options.metricsHost);
    }
    this.events.start();
  }

  /** Once consuming: remote control. */
  async afterConsume(): Promise<void> {
    if (!(this.options.remoteControl ?? this.worker.app.conf.worker_enable_remote_control)) return;
    this.control = new ControlNode(this.worker, this.commandContext());
    await this.control.start();
  }

  /** Warm shutdown begins: no more commands. */
  async beforeStop(): Promise<void> {
    await this.control?.stop().catch(() => undefined);
    this.control = null;
  }

  /** Warm shutdown ends: `worker-offline`, the state file saved, metrics closed. */
  async afterStop(): Promise<void> {
    await this.events.stop().catch(() => undefined);
    this.statedb?.close();
    await this.metrics?.close();
  }
}
