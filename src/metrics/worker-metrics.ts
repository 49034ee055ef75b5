/**
 * `--metrics-port N`: the worker's Prometheus endpoint (`/metrics`) and a
 * health check (`/healthz`). The health check fails (503) when the worker is
 * alive but not consuming: not running (stopping, or start never finished),
 * a queue's subscription detached (connection or channel lost and not yet
 * resumed, e.g. after reconnects gave up), or no queue consumed at all. It
 * answers 200 only while every queue it should consume is attached.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { TaskLifecycle } from '../worker/lifecycle.js';
import type { WorkerState } from '../worker/state.js';
import { getLogger } from '../support/log.js';
import { Counter, Gauge, Histogram, renderMetrics } from './prometheus.js';

const log = getLogger('MainProcess');

/** What the metrics read from the worker. */
export interface MetricsSource {
  readonly hostname: string;
  readonly concurrency: number;
  readonly running: boolean;
  readonly workerState: WorkerState;
  /** Every queue subscription the worker should have (null = not attached yet). */
  readonly consumers: Array<{ queue: string; consuming?: boolean } | null>;
  readonly lifecycle: TaskLifecycle;
  readonly app: { broker: { on(event: string, listener: (...args: unknown[]) => void): unknown } };
}

export interface HealthReport {
  ok: boolean;
  status: 'ok' | 'not-consuming';
  reason?: string;
  queues: Record<string, boolean>;
}

export class WorkerMetrics {
  private server: Server | null = null;
  private readonly received = new Counter('celery_tasks_received_total', 'Tasks received by this worker, by task name.');
  private readonly succeeded = new Counter('celery_tasks_succeeded_total', 'Tasks that returned, by task name.');
  private readonly failed = new Counter('celery_tasks_failed_total', 'Tasks that raised (hard time limits included), by task name.');
  private readonly retried = new Counter('celery_tasks_retried_total', 'Tasks that scheduled a retry, by task name.');
  private readonly revoked = new Counter('celery_tasks_revoked_total', 'Tasks not run or stopped: revoked, expired or terminated, by task name.');
  private readonly runtime = new Histogram('celery_task_runtime_seconds', 'How long tasks ran (succeeded or failed), by task name.');
  private readonly inFlight = new Gauge('celery_tasks_active', 'Tasks running now.');
  private readonly prefetched = new Gauge('celery_tasks_prefetched', 'Tasks received and waiting here (for a slot, a rate-limit token or their ETA).');
  private readonly concurrency = new Gauge('celery_worker_concurrency', 'Tasks that may run at once (-c).');
  private readonly up = new Gauge('celery_worker_consuming', '1 while every queue is consumed (what /healthz checks), else 0.');
  private readonly reconnects = new Counter('celery_broker_reconnects_total', 'Broker connections re-opened after a loss.');
  private lost = false;

  constructor(private readonly worker: MetricsSource) {
    const l = worker.lifecycle;
    l.on('task-received', (m) => this.received.inc({ task: m.task }));
    l.on('task-succeeded', (m, _r, runtime) => {
      this.succeeded.inc({ task: m.task });
      this.runtime.observe({ task: m.task }, runtime);
    });
    l.on('task-failed', (m, _e, runtime) => {
      this.failed.inc({ task: m.task });
      if (runtime > 0) this.runtime.observe({ task: m.task }, runtime);
    });
    l.on('task-retried', (m) => this.retried.inc({ task: m.task }));
    l.on('task-revoked', (m) => this.revoked.inc({ task: m.task }));
    worker.app.broker.on('disconnected', () => {
      this.lost = true;
    });
    worker.app.broker.on('connected', () => {
      if (this.lost) this.reconnects.inc();
      this.lost = false;
    });
  }

  /** Is the worker consuming every queue it should? */
  health(): HealthReport {
    const queues: Record<string, boolean> = {};
    let detached: string | null = null;
    for (const c of this.worker.consumers) {
      if (!c) continue;
      const consuming = c.consuming !== false;
      queues[c.queue] = consuming;
      if (!consuming) detached ??= c.queue;
    }
    let reason: string | undefined;
    if (!this.worker.running) reason = 'the worker is not running (starting, stopping or stopped)';
    else if (Object.keys(queues).length === 0) reason = 'the worker consumes no queue';
    else if (detached) reason = `not consuming ${detached}: its broker subscription is detached`;
    return reason ? { ok: false, status: 'not-consuming', reason, queues } : { ok: true, status: 'ok', queues };
  }

  /** The exposition document. */
  render(): string {
    const s = this.worker.workerState;
    this.inFlight.set({}, s.active);
    this.prefetched.set({}, s.waiting);
    this.concurrency.set({}, this.worker.concurrency);
    this.up.set({}, this.health().ok ? 1 : 0);
    return renderMetrics([this.received, this.succeeded, this.failed, this.retried, this.revoked, this.runtime, this.inFlight, this.prefetched, this.concurrency, this.up, this.reconnects]);
  }

  /** Serves `/metrics` and `/healthz`; resolves with the port (0 = any free port). */
  listen(port: number, host = '0.0.0.0'): Promise<number> {
    const server = createServer((req, res) => {
      const path = (req.url ?? '/').split('?')[0];
      if (path === '/metrics') {
        res.writeHead(200, { 'Content-Type': 'text/plain; version=0.0.4; charset=utf-8' });
        res.end(this.render());
      } else if (path === '/healthz') {
        const h = this.health();
        res.writeHead(h.ok ? 200 : 503, { 'Content-Type': 'application/json' });
        res.end(`${JSON.stringify({ ...h, worker: this.worker.hostname })}\n`);
      } else {
        res.writeHead(404, { 'Content-Type': 'text/plain' });
        res.end('Not found: try /metrics or /healthz\n');
      }
    });
    this.server = server;
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        const actual = (server.address() as AddressInfo).port;
        log.info(`metrics: serving http://${host}:${actual}/metrics and /healthz`);
        resolve(actual);
      });
    });
  }

  close(): Promise<void> {
    const server = this.server;
    this.server = null;
    if (!server) return Promise.resolve();
    server.closeAllConnections();
    return new Promise((resolve) => server.close(() => resolve()));
  }
}
