/**
 * Beyond Celery: `--metrics-port` (Prometheus counters, histogram, gauges,
 * and a /healthz that fails while the worker is alive but not consuming,
 * then recovers), and `--statedb` (revoked ids survive a restart).
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { Celery, TaskError } from '../../src/index.js';
import { rabbitmqctl } from '../helpers/services.js';
import { startTsCtlWorker, tsCelery, until, type CtlWorker } from './support.js';
import { CONTROL_AMQP_URL, CONTROL_REDIS_URL, CONTROL_VHOST, deleteControlQueues } from './services.js';

async function metricsPort(w: CtlWorker): Promise<number> {
  const m = await w.waitFor(/metrics: serving http:\/\/[^:]+:(\d+)\/metrics/);
  return Number(m[1]);
}

async function healthz(port: number): Promise<{ status: number; body: Record<string, unknown> }> {
  const r = await fetch(`http://127.0.0.1:${port}/healthz`);
  return { status: r.status, body: (await r.json()) as Record<string, unknown> };
}

async function metric(port: number, line: string): Promise<number | null> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const found = text.split('\n').find((l) => l.startsWith(`${line} `));
  return found === undefined ? null : Number(found.slice(line.length + 1));
}

/** Closes every connection to the control vhost from the broker side (only this suite uses it). */
async function closeControlConnections(): Promise<void> {
  await rabbitmqctl(['close_all_connections', '-p', CONTROL_VHOST, 'test: cut the worker off']);
}

describe('--metrics-port and --statedb', function () {
  this.timeout(90_000);
  let dir: string;
  let app: Celery;
  const workers: CtlWorker[] = [];

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'ts-celery-statedb-'));
  });
  after(async () => {
    await rabbitmqctl(['set_permissions', '-p', CONTROL_VHOST, 'guest', '.*', '.*', '.*']).catch(() => undefined);
    await app?.close();
    for (const w of workers) await w.stop();
    await deleteControlQueues(...new Set(workers.map((w) => w.queue)));
    rmSync(dir, { recursive: true, force: true });
  });

  it('counts tasks per name in Prometheus format, and keeps revoked ids across a restart', async () => {
    const statedb = join(dir, 'worker.state');
    const w = await startTsCtlWorker({ args: ['--metrics-port', '0', '--statedb', statedb] });
    workers.push(w);
    const port = await metricsPort(w);
    app = new Celery('metricsclient', { broker_url: CONTROL_AMQP_URL, result_backend: CONTROL_REDIS_URL, task_default_queue: w.queue });
    for (const r of await Promise.all([1, 2, 3].map((i) => app.sendTask('ctl.add', [i, i])))) await r.get({ timeout: 10_000 });
    await (await app.sendTask('ctl.fail', [])).get({ timeout: 10_000, propagate: false });
    await (await app.sendTask('ctl.retry_once', [])).get({ timeout: 10_000 });
    expect(await metric(port, 'celery_tasks_received_total{task="ctl.add"}')).to.equal(3);
    expect(await metric(port, 'celery_tasks_succeeded_total{task="ctl.add"}')).to.equal(3);
    expect(await metric(port, 'celery_tasks_failed_total{task="ctl.fail"}')).to.equal(1);
    expect(await metric(port, 'celery_tasks_retried_total{task="ctl.retry_once"}')).to.equal(1);
    expect(await metric(port, 'celery_task_runtime_seconds_count{task="ctl.add"}')).to.equal(3);
    expect(await metric(port, 'celery_task_runtime_seconds_bucket{task="ctl.add",le="+Inf"}')).to.equal(3);
    expect(await metric(port, 'celery_tasks_active')).to.equal(0);
    expect(await metric(port, 'celery_worker_consuming')).to.equal(1);
    expect(await healthz(port)).to.deep.include({ status: 200 });

    // Revoke an id nobody sent yet; a warm shutdown saves it.
    const id = `statedb-${randomUUID()}`;
    await app.control.revoke(id, { reply: true, destination: [w.nodename], timeout: 2 });
    const code = await w.stop();
    expect(code, w.output().slice(-2000)).to.equal(0);
    expect((JSON.parse(readFileSync(statedb, 'utf8')) as { revoked: string[] }).revoked).to.include(id);

    const again = await startTsCtlWorker({ queue: w.queue, args: ['--statedb', statedb] });
    workers.push(again);
    expect((await app.control.inspect({ destination: [again.nodename], timeout: 2 }).revoked())![again.nodename]).to.include(id);
    const r = await app.sendTask('ctl.add', [4, 4], {}, { taskId: id });
    await again.waitFor(new RegExp(`Discarding revoked task: ctl\\.add\\[${id}\\]`));
    const err = (await r.get({ timeout: 10_000, propagate: false })) as TaskError;
    expect(err.excType).to.equal('TaskRevokedError');
    await again.stop();
  });

  it('/healthz fails while the worker is alive but cut off from the broker, and recovers', async () => {
    const w = await startTsCtlWorker({ args: ['--metrics-port', '0'] });
    workers.push(w);
    const port = await metricsPort(w);
    expect((await healthz(port)).status).to.equal(200);
    // Take guest's access away and cut the connection: reconnects fail, the process lives on.
    await rabbitmqctl(['clear_permissions', '-p', CONTROL_VHOST, 'guest']);
    try {
      await closeControlConnections();
      await until(async () => (await healthz(port)).status === 503, '/healthz to fail', 20_000);
      const down = await healthz(port);
      expect(down.body).to.deep.include({ ok: false, status: 'not-consuming' });
      expect(String(down.body.reason)).to.contain(w.queue);
      expect(await metric(port, 'celery_worker_consuming')).to.equal(0);
      expect(w.child.exitCode).to.equal(null);
    } finally {
      await rabbitmqctl(['set_permissions', '-p', CONTROL_VHOST, 'guest', '.*', '.*', '.*']);
    }
    await until(async () => (await healthz(port)).status === 200, '/healthz to recover', 30_000);
    expect(await metric(port, 'celery_broker_reconnects_total')).to.be.at.least(1);

    // Told to stop consuming its only queue, it is not healthy either.
    const r = await tsCelery(['control', 'cancel_consumer', w.queue, '-d', w.nodename]);
    expect(r.stdout).to.equal(`->  ${w.nodename}: OK\n        no longer consuming from ${w.queue}\n`);
    await until(async () => (await healthz(port)).status === 503, '/healthz to fail after cancel_consumer');
    expect((await healthz(port)).body.reason).to.equal('the worker consumes no queue');
  });
});
