/**
 * Redis as the broker, both directions, against Celery 5.7 (PyPI) and Debian's
 * 5.2.6: a TypeScript producer's tasks run on a Python worker and a Python
 * producer's tasks on `ts-celery worker`, with args/kwargs, errors,
 * countdown/ETA, priorities and task_routes to several queues; and both
 * workers on one queue run each task once. Broker: Redis DB 10; results and
 * counting lists: DB 11.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { expect } from 'chai';
import { Redis } from 'ioredis';
import { Celery, TaskError } from '../../src/index.js';
import { PY_DIR, PYTHON, runPythonClient, startPythonWorker, type PythonKind, type PythonWorker } from '../helpers/python.js';
import { REDIS_BROKER_RESULTS_URL, REDIS_BROKER_URL, uniqueName } from '../helpers/services.js';
import { startTsWorker, type TsWorker } from '../helpers/ts-worker.js';

const run = promisify(execFile);
const SEP = '\x06\x16';

function suite(python: PythonKind): void {
  const label = python === 'pypi' ? 'Celery 5.7 from PyPI' : "Debian's Celery 5.2.6";
  describe(`Redis broker interop with ${label}`, function () {
    this.timeout(90_000);
    const pyEnv = { PYTASKS_BROKER: REDIS_BROKER_URL, PYTASKS_BACKEND: REDIS_BROKER_RESULTS_URL };
    const tsEnv = { TSAPP_BROKER: REDIS_BROKER_URL, TSAPP_BACKEND: REDIS_BROKER_RESULTS_URL, TSAPP_REDIS: REDIS_BROKER_RESULTS_URL };
    // Python's queues (q*) and TypeScript's (t*); both consume the shared one.
    const q = { py: uniqueName('rpy'), pyA: uniqueName('rpy-a'), pyB: uniqueName('rpy-b'), ts: uniqueName('rts'), tsA: uniqueName('rts-a'), tsB: uniqueName('rts-b'), shared: uniqueName('rshared') };
    let py: PythonWorker;
    let ts: TsWorker;
    let app: Celery;
    let redis: Redis;
    let broker: Redis;
    const extraQueues: string[] = [];

    /** A Python script run with pytasks on the Redis broker (for sends pyclient cannot express). */
    const pyScript = (code: string, env: Record<string, string> = {}): Promise<unknown> =>
      run(PYTHON[python], ['-c', `import pytasks\n${code}`], { cwd: PY_DIR, env: { ...process.env, PYTHONPATH: PY_DIR, ...pyEnv, ...env } });
    const pyClient = (args: string[], env: Record<string, string> = {}) => runPythonClient(args, { python, env: { ...pyEnv, ...env } });

    before(async () => {
      redis = new Redis(REDIS_BROKER_RESULTS_URL);
      broker = new Redis(REDIS_BROKER_URL);
      [py, ts] = await Promise.all([
        startPythonWorker({ python, queues: [q.py, q.pyA, q.pyB, q.shared], concurrency: 4, pool: 'threads', env: pyEnv }),
        startTsWorker({ queues: [q.ts, q.tsA, q.tsB, q.shared], concurrency: 8, env: tsEnv }),
      ]);
      app = new Celery('rb-interop', {
        broker_url: REDIS_BROKER_URL,
        result_backend: REDIS_BROKER_RESULTS_URL,
        task_default_queue: q.py,
        task_routes: { 'py.mul': { queue: q.pyA }, 'py.request_info': { queue: q.pyB } },
      });
    });
    after(async () => {
      await app.close();
      await Promise.all([py.stop(), ts.stop()]);
      const all = [...Object.values(q), ...extraQueues];
      await broker.del(...all.flatMap((name) => [...['', `${SEP}3`, `${SEP}6`, `${SEP}9`].map((s) => name + s), `_kombu.binding.${name}`, `_kombu.binding_permanent.${name}`]));
      redis.disconnect();
      broker.disconnect();
    });

    describe('TypeScript producer -> Python worker', () => {
      it('runs positional args and kwargs, and get() returns the value', async () => {
        expect(await (await app.sendTask('py.add', [2, 3])).get({ timeout: 20_000 })).to.equal(5);
        expect(await (await app.sendTask('py.add', [], { x: 2, y: 40 })).get({ timeout: 20_000 })).to.equal(42);
        const echoed = await (await app.sendTask('py.echo', ['a', 1, null], { k: { nested: 'é' } })).get({ timeout: 20_000 });
        expect(echoed).to.deep.equal({ args: ['a', 1, null], kwargs: { k: { nested: 'é' } } });
      });

      it("comes back as a TaskError with Python's exception type", async () => {
        const err = await (await app.sendTask('py.fail', ['the number is wrong'])).get({ timeout: 20_000 }).catch((e: unknown) => e);
        expect(err).to.be.instanceOf(TaskError);
        expect(err).to.deep.include({ excType: 'ValueError', excMessage: 'the number is wrong', state: 'FAILURE' });
      });

      it('honours countdown and eta', async () => {
        const sent = Date.now() / 1000;
        const [c, e] = await Promise.all([
          app.sendTask<number>('py.now', [], {}, { countdown: 2 }).then((r) => r.get({ timeout: 20_000 })),
          app.sendTask<number>('py.now', [], {}, { eta: new Date(Date.now() + 1500) }).then((r) => r.get({ timeout: 20_000 })),
        ]);
        expect(c).to.be.at.least(sent + 2);
        expect(e).to.be.at.least(sent + 1.5);
      });

      it('task_routes send tasks to several queues, each consumed by the Python worker', async () => {
        expect(await (await app.sendTask('py.mul', [6, 7])).get({ timeout: 20_000 })).to.equal(42);
        const info = await (await app.sendTask<Record<string, any>>('py.request_info')).get({ timeout: 20_000 });
        expect(info.delivery_info).to.deep.include({ routing_key: q.pyB, exchange: '' });
      });

      it('runs priority 0 first and 9 last, as kombu orders them on Redis', async () => {
        const queue = uniqueName('rpy-prio');
        extraQueues.push(queue);
        const tag = uniqueName('prio');
        for (const p of [9, 6, 3, 0]) await app.sendTask('shared.record', [`${tag}:p${p}`], {}, { queue, priority: p });
        // Default prefetch (4): the worker reserves all four in priority order, then runs them in that order.
        // (5.2.6 with prefetch 1 fetches the next message only on its next timer tick, ~10 s later.)
        const worker = await startPythonWorker({ python, queues: [queue], concurrency: 1, pool: 'solo', env: pyEnv });
        try {
          const key = `pytasks:record:${tag}`;
          for (let i = 0; i < 200 && (await redis.llen(key)) < 4; i++) await new Promise((r) => setTimeout(r, 100));
          expect(await redis.lrange(key, 0, -1)).to.deep.equal(['p0', 'p3', 'p6', 'p9'].map((p) => `py:${tag}:${p}`));
          await redis.del(key);
        } finally {
          await worker.stop();
        }
      });
    });

    describe('Python producer -> TypeScript worker', () => {
      it("runs positional args and kwargs, and Python's get() returns the value", async () => {
        const r1 = await pyClient(['send', 'ts.add', '--args', '[2, 3]', '--queue', q.ts, '--get']);
        expect(r1).to.deep.include({ state: 'SUCCESS', result: 5 });
        const r2 = await pyClient(['send', 'ts.add', '--kwargs', '{"x": 40, "y": 2}', '--queue', q.ts, '--get']);
        expect(r2).to.deep.include({ state: 'SUCCESS', result: 42 });
      });

      it("a JS TypeError is raised as Python's TypeError", async () => {
        const r = await pyClient(['send', 'ts.fail_type', '--args', '["bad input"]', '--queue', q.ts, '--get']);
        expect(r).to.deep.include({ state: 'FAILURE', exc_type: 'TypeError', exc_message: 'bad input' });
      });

      it('honours countdown and eta', async () => {
        const sent = Date.now() / 1000;
        const c = await pyClient(['send', 'ts.now', '--countdown', '2', '--queue', q.ts, '--get']);
        expect(c.result as number).to.be.at.least(sent + 2);
        const eta = new Date(Date.now() + 1500).toISOString();
        const e = await pyClient(['send', 'ts.now', '--eta', eta, '--queue', q.ts, '--get']);
        expect(e.result as number).to.be.at.least(Date.parse(eta) / 1000);
      });

      it('task_routes set in Python reach the TypeScript worker on several queues', async () => {
        const routes = JSON.stringify({ 'ts.add': { queue: q.tsA }, 'ts.request_info': { queue: q.tsB } });
        const added = await pyClient(['send', 'ts.add', '--args', '[20, 22]', '--get'], { PYTASKS_ROUTES: routes });
        expect(added).to.deep.include({ state: 'SUCCESS', result: 42 });
        const info = await pyClient(['send', 'ts.request_info', '--get'], { PYTASKS_ROUTES: routes });
        expect((info.result as Record<string, any>).delivery_info).to.deep.include({ routingKey: q.tsB, queue: q.tsB, exchange: '' });
      });

      it('runs priority 0 first and 9 last', async () => {
        const queue = uniqueName('rts-prio');
        extraQueues.push(queue);
        const tag = uniqueName('prio');
        await pyScript(`for p in (9, 6, 3, 0):\n    pytasks.app.send_task('shared.record', args=['${tag}:p%d' % p], queue='${queue}', priority=p)`);
        const worker = await startTsWorker({ queues: [queue], concurrency: 1, env: tsEnv, extraArgs: ['--prefetch-multiplier', '1'] });
        try {
          const key = `pytasks:record:${tag}`;
          for (let i = 0; i < 200 && (await redis.llen(key)) < 4; i++) await new Promise((r) => setTimeout(r, 50));
          expect(await redis.lrange(key, 0, -1)).to.deep.equal(['p0', 'p3', 'p6', 'p9'].map((p) => `ts:${tag}:${p}`));
          await redis.del(key);
        } finally {
          await worker.stop();
        }
      });
    });

    it('TypeScript and Python workers on one queue run each task once', async () => {
      const tag = uniqueName('mix');
      const key = `pytasks:record:${tag}`;
      const n = 150;
      const fromTs = Promise.all(Array.from({ length: n }, (_, i) => app.sendTask('shared.record', [`${tag}:ts-${i}`], {}, { queue: q.shared })));
      const fromPy = pyScript(`for i in range(${n}):\n    pytasks.app.send_task('shared.record', args=['${tag}:py-%d' % i], queue='${q.shared}')`);
      await Promise.all([fromTs, fromPy]);
      for (let i = 0; i < 600 && (await redis.llen(key)) < 2 * n; i++) await new Promise((r) => setTimeout(r, 100));
      await new Promise((r) => setTimeout(r, 500)); // a duplicate would show up now
      const ran = await redis.lrange(key, 0, -1);
      const tags = ran.map((e) => e.replace(/^(ts|py):/, ''));
      const byTs = ran.filter((e) => e.startsWith('ts:')).length;
      console.log(`      shared Redis queue (${label}): sent=${2 * n} completed=${ran.length} unique=${new Set(tags).size} ran-on-ts=${byTs} ran-on-py=${ran.length - byTs}`);
      expect(ran.length, 'each task ran once').to.equal(2 * n);
      expect(new Set(tags).size).to.equal(2 * n);
      expect(byTs, 'the TypeScript worker took a share').to.be.greaterThan(0);
      expect(ran.length - byTs, 'the Python worker took a share').to.be.greaterThan(0);
      await redis.del(key);
    });
  });
}

suite('pypi');
suite('debian');
