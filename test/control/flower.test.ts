/**
 * Flower 2.2 (from PyPI, the monitoring UI most Celery teams run) against a
 * ts-celery worker: its API lists the worker and its tasks with the right
 * states, its dashboard shows them in headless Chromium (screenshots in
 * test/artifacts/), and its Terminate button stops a running task.
 *
 * The worker starts without -E: task events begin when Flower's periodic
 * `enable_events` broadcast reaches it, as with a Python worker.
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { chromium, type BrowserContext } from 'playwright-core';
import { Celery, TaskError } from '../../src/index.js';
import { ROOT } from '../helpers/ts-worker.js';
import { startFlower, startTsCtlWorker, until, type CtlWorker, type FlowerProcess } from './support.js';
import { CONTROL_AMQP_URL, CONTROL_REDIS_URL, deleteControlQueues } from './services.js';

const CHROMIUM = '/usr/bin/chromium';
// The flags test/e2e/meiduo-browser.test.ts found to work here.
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const ARTIFACTS = join(ROOT, 'test', 'artifacts');

interface FlowerTask {
  uuid: string;
  name: string;
  state: string;
  worker: string;
  result: string | null;
  exception: string | null;
}

describe('Flower 2.2 with a ts-celery worker', function () {
  this.timeout(90_000);
  let w: CtlWorker;
  let flower: FlowerProcess;
  let base: string;
  let app: Celery;
  let browser: BrowserContext;
  let profile: string;

  const api = <T>(path: string, init?: RequestInit): Promise<T> => flower.api<T>(path, init);
  const tasks = (): Promise<Record<string, FlowerTask>> => api('/api/tasks');

  before(async function () {
    this.timeout(90_000);
    mkdirSync(ARTIFACTS, { recursive: true });
    w = await startTsCtlWorker({ concurrency: 2 });
    app = new Celery('flowerclient', { broker_url: CONTROL_AMQP_URL, result_backend: CONTROL_REDIS_URL, task_default_queue: w.queue });
    flower = await startFlower();
    base = flower.base;
    profile = mkdtempSync(join(tmpdir(), 'flower-chromium-'));
    browser = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
  });
  after(async () => {
    await browser?.close();
    if (profile) rmSync(profile, { recursive: true, force: true });
    flower?.stop();
    await app?.close();
    await w?.stop();
    await deleteControlQueues(w.queue);
  });

  it('/api/workers lists the worker with its stats, registered tasks and queues', async () => {
    let workers: Record<string, Record<string, any>> = {};
    await until(async () => {
      workers = await api('/api/workers?refresh=1');
      return Boolean(workers[w.nodename]?.stats && workers[w.nodename]?.registered);
    }, 'the worker in /api/workers', 30_000);
    const info = workers[w.nodename]!;
    expect(info.stats.pool['max-concurrency']).to.equal(2);
    expect(info.registered).to.include('ctl.add');
    expect(info.active_queues.map((q: { name: string }) => q.name)).to.deep.equal([w.queue]);
  });

  it('/api/tasks lists its tasks with the right states once Flower enabled task events', async () => {
    // Flower broadcasts enable_events every 5 s; until it reached the worker, tasks do not show.
    let ok = await app.sendTask('ctl.add', [2, 3]);
    await until(async () => {
      if ((await tasks())[ok.id]?.state === 'SUCCESS') return true;
      ok = await app.sendTask('ctl.add', [2, 3]);
      await ok.get({ timeout: 10_000 });
      return false;
    }, 'a task in /api/tasks', 30_000);
    const failed = await app.sendTask('ctl.fail', ['flower saw it']);
    await failed.get({ timeout: 10_000, propagate: false });
    await until(async () => (await tasks())[failed.id]?.state === 'FAILURE', 'the failure in /api/tasks');
    const all = await tasks();
    expect(all[ok.id]).to.deep.include({ name: 'ctl.add', state: 'SUCCESS', worker: w.nodename, result: '5' });
    expect(all[failed.id]).to.deep.include({ name: 'ctl.fail', state: 'FAILURE', worker: w.nodename, exception: "RangeError('flower saw it')" });
  });

  it('the dashboard and the tasks page show them in Chromium (screenshots in test/artifacts)', async () => {
    const page = await browser.newPage();
    try {
      await page.goto(`${base}/workers`);
      await page.getByText(w.nodename).first().waitFor({ timeout: 20_000 });
      expect(await page.content()).to.contain(w.nodename);
      await page.screenshot({ path: join(ARTIFACTS, 'flower-workers.png'), fullPage: true });
      await page.goto(`${base}/tasks`);
      await page.getByText('ctl.fail').first().waitFor({ timeout: 20_000 });
      const text = await page.textContent('body');
      expect(text).to.contain('ctl.add').and.to.contain('SUCCESS').and.to.contain('FAILURE');
      await page.screenshot({ path: join(ARTIFACTS, 'flower-tasks.png'), fullPage: true });
    } finally {
      await page.close();
    }
  });

  it("Flower's Terminate button stops a running task: REVOKED, terminated", async () => {
    const long = await app.sendTask('ctl.sleep', [60]);
    await until(async () => (await tasks())[long.id]?.state === 'STARTED', 'the task STARTED in Flower', 20_000);
    const page = await browser.newPage();
    try {
      await page.goto(`${base}/task/${long.id}`);
      await page.click('#task-terminate');
      await page.getByText(`Revoked '${long.id}'`).first().waitFor({ timeout: 10_000 });
      const err = (await long.get({ timeout: 10_000, propagate: false })) as TaskError;
      expect(err).to.be.instanceOf(TaskError);
      expect(err.excType).to.equal('TaskRevokedError');
      expect(err.excArgs).to.deep.equal(['terminated']);
      await until(async () => (await tasks())[long.id]?.state === 'REVOKED', 'REVOKED in Flower');
      await page.goto(`${base}/task/${long.id}`);
      await page.getByText('REVOKED').first().waitFor({ timeout: 10_000 });
      await page.screenshot({ path: join(ARTIFACTS, 'flower-task-terminated.png'), fullPage: true });
    } finally {
      await page.close();
    }
  });
});
