/**
 * TypeScript and Python workers side by side: one queue shared by both, and
 * retries scheduled by one language's worker completing on the other's.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { expect } from 'chai';
import { Redis } from 'ioredis';
import { Celery } from '../../src/index.js';
import { PY_DIR, PYTHON, startPythonWorker, type PythonWorker } from '../helpers/python.js';
import { AMQP_URL, REDIS_URL, deleteQueues, uniqueName } from '../helpers/services.js';
import { startTsWorker, type TsWorker } from '../helpers/ts-worker.js';

const run = promisify(execFile);

describe('TypeScript and Python workers together', function () {
  this.timeout(90_000);
  let redis: Redis;
  let app: Celery;

  before(() => {
    redis = new Redis(REDIS_URL);
    app = new Celery('mixed', { broker_url: AMQP_URL, result_backend: REDIS_URL });
  });
  after(async () => {
    await app.close();
    redis.disconnect();
  });

  describe('on the same queue', () => {
    const queue = uniqueName('shared');
    let ts: TsWorker;
    let py: PythonWorker;

    before(async () => {
      [ts, py] = await Promise.all([
        startTsWorker({ queues: [queue], concurrency: 8 }),
        startPythonWorker({ queues: [queue], concurrency: 4, pool: 'threads' }),
      ]);
    });
    after(async () => {
      await Promise.all([ts.stop(), py.stop()]);
      await deleteQueues(queue);
    });

    it('tasks sent from both sides all complete exactly once', async () => {
      const tag = uniqueName('mix');
      const key = `pytasks:record:${tag}`;
      const n = 150;
      const fromTs = Array.from({ length: n }, (_, i) => app.sendTask('shared.record', [`${tag}:ts-${i}`], {}, { queue }));
      const pyScript = `import pytasks\nfor i in range(${n}):\n    pytasks.app.send_task('shared.record', args=['${tag}:py-%d' % i], queue='${queue}')\n`;
      await Promise.all([Promise.all(fromTs), run(PYTHON.pypi, ['-c', pyScript], { cwd: PY_DIR })]);
      const deadline = Date.now() + 60_000;
      while ((await redis.llen(key)) < 2 * n && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      await new Promise((r) => setTimeout(r, 500)); // a duplicate would show up now
      const ran = await redis.lrange(key, 0, -1);
      const tags = ran.map((e) => e.replace(/^(ts|py):/, ''));
      const byTs = ran.filter((e) => e.startsWith('ts:')).length;
      console.log(`      shared queue: sent=${2 * n} completed=${ran.length} unique=${new Set(tags).size} ran-on-ts=${byTs} ran-on-py=${ran.length - byTs}`);
      expect(ran.length, 'each task ran once').to.equal(2 * n);
      expect(new Set(tags).size).to.equal(2 * n);
      expect(byTs, 'the TypeScript worker took a share').to.be.greaterThan(0);
      expect(ran.length - byTs, 'the Python worker took a share').to.be.greaterThan(0);
      await redis.del(key);
    });
  });

  describe('retries across languages', () => {
    const tsQueue = uniqueName('hop-ts');
    const pyQueue = uniqueName('hop-py');
    let ts: TsWorker;
    let py: PythonWorker;

    before(async () => {
      [ts, py] = await Promise.all([
        startTsWorker({ queues: [tsQueue], concurrency: 4 }),
        startPythonWorker({ queues: [pyQueue], concurrency: 2, pool: 'threads' }),
      ]);
    });
    after(async () => {
      await Promise.all([ts.stop(), py.stop()]);
      await deleteQueues(tsQueue, pyQueue);
    });

    it('a retry scheduled by the TypeScript worker completes on a Python worker', async () => {
      const r = await app.sendTask('shared.hop', [pyQueue], {}, { queue: tsQueue });
      expect(await r.get({ timeout: 30_000 })).to.deep.equal({ worker: 'py', retries: 1, parent_id: r.id });
      expect(ts.output()).to.match(new RegExp(`shared\\.hop\\[${r.id}\\] retry: Retry in 0\\.5s`));
    });

    it('a retry scheduled by the Python worker completes on the TypeScript worker', async () => {
      const r = await app.sendTask('shared.hop', [tsQueue], {}, { queue: pyQueue });
      expect(await r.get({ timeout: 30_000 })).to.deep.equal({ worker: 'ts', retries: 1, parent_id: r.id });
    });
  });
});
