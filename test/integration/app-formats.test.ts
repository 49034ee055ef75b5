/**
 * `ts-celery worker -A` loads an app as its own package says: ESM or CommonJS, JavaScript or
 * TypeScript, top-level await included, and the app shares the worker's ts-celery instance.
 * (This runs the checkout's CLI, from source; test/package/ runs the built one.)
 */
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { Celery } from '../../src/index.js';
import { AMQP_URL, deleteQueues, REDIS_URL, uniqueName } from '../helpers/services.js';
import { startTsWorker, type TsWorker } from '../helpers/ts-worker.js';

const settings = `{ broker_url: process.env.APP_BROKER, result_backend: process.env.APP_BACKEND, task_default_queue: process.env.APP_QUEUE }`;

/** The same app in four shapes. `whoami` returns the id the worker's own context gives the task. */
const APPS: Record<string, { pkg: string | null; file: string; source: string }> = {
  'ESM JavaScript with top-level await': {
    pkg: 'module',
    file: 'tasks.js',
    source: `import { Celery, currentTaskRequest } from 'ts-celery';
const conf = await Promise.resolve(${settings});
export const app = new Celery('esm-js', conf);
app.task({ name: 'formats.esm_js' }, () => currentTaskRequest()?.id ?? 'another ts-celery');
`,
  },
  'CommonJS JavaScript (module.exports = app)': {
    pkg: 'commonjs',
    file: 'tasks.cjs',
    source: `const { Celery, currentTaskRequest } = require('ts-celery');
const app = new Celery('cjs-js', ${settings});
app.task({ name: 'formats.cjs_js' }, () => currentTaskRequest()?.id ?? 'another ts-celery');
module.exports = app;
`,
  },
  'ESM TypeScript (.mts) with top-level await': {
    pkg: null,
    file: 'tasks.mts',
    source: `import { Celery, currentTaskRequest } from 'ts-celery';
const conf: Record<string, unknown> = await Promise.resolve(${settings});
export const app = new Celery('esm-ts', conf);
app.task({ name: 'formats.esm_ts' }, (): string => currentTaskRequest()?.id ?? 'another ts-celery');
`,
  },
  'CommonJS TypeScript (.ts in a package without "type")': {
    pkg: 'none',
    file: 'tasks.ts',
    source: `import { Celery, currentTaskRequest } from 'ts-celery';
export const app = new Celery('cjs-ts', ${settings} as Record<string, unknown>);
app.task({ name: 'formats.cjs_ts' }, (): string => currentTaskRequest()?.id ?? 'another ts-celery');
export const format: string = typeof module === 'object' ? 'commonjs' : 'esm';
`,
  },
};

describe('ts-celery worker -A: app formats (process, RabbitMQ + Redis)', function () {
  this.timeout(60_000);
  const dirs: string[] = [];
  const queues: string[] = [];
  let client: Celery;

  before(() => {
    client = new Celery('formats-client', { broker_url: AMQP_URL, result_backend: REDIS_URL });
  });
  after(async () => {
    await client.close();
    await deleteQueues(...queues);
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });

  for (const pool of ['async', 'threads'] as const) {
    const where = pool === 'threads' ? ' in a worker thread (-P threads: each thread loads the app itself)' : '';
    it(`loads each as Node would and runs its task with the worker's ts-celery${where}`, async () => {
      const started: Array<{ name: string; task: string; queue: string; worker: Promise<TsWorker> }> = [];
      for (const [name, app] of Object.entries(APPS)) {
        const dir = mkdtempSync(join(tmpdir(), 'ts-celery-formats-'));
        dirs.push(dir);
        mkdirSync(join(dir, 'app'));
        if (app.pkg === 'module' || app.pkg === 'commonjs') writeFileSync(join(dir, 'app', 'package.json'), JSON.stringify({ type: app.pkg }));
        if (app.pkg === 'none') writeFileSync(join(dir, 'app', 'package.json'), JSON.stringify({ name: 'no-type' }));
        writeFileSync(join(dir, 'app', app.file), app.source);
        const queue = uniqueName('formats');
        queues.push(queue);
        const task = /name: '(formats\.\w+)'/.exec(app.source)![1]!;
        const env = { APP_BROKER: AMQP_URL, APP_BACKEND: REDIS_URL, APP_QUEUE: queue };
        const extraArgs = pool === 'threads' ? ['-P', 'threads', '-c', '1'] : [];
        started.push({ name, task, queue, worker: startTsWorker({ app: join(dir, 'app', app.file), queues: [queue], env, extraArgs, timeoutMs: 45_000 }) });
      }
      const workers = await Promise.allSettled(started.map((s) => s.worker));
      try {
        for (const [i, w] of workers.entries()) if (w.status === 'rejected') throw new Error(`${started[i]!.name}: ${String(w.reason)}`);
        await Promise.all(
          started.map(async ({ name, task, queue }) => {
            const result = await client.sendTask<string>(task, [], {}, { queue });
            expect(await result.get({ timeout: 20_000 }), name).to.equal(result.id);
          }),
        );
      } finally {
        await Promise.all(workers.map((w) => (w.status === 'fulfilled' ? w.value.stop() : undefined)));
      }
    });
  }
});
