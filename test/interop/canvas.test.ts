/**
 * Canvases across languages, on real RabbitMQ, Redis (DB 14) and Python
 * Celery 5.7: chords built in Python run on TypeScript workers, chords whose
 * header is split across both languages fire their body once, canvases built
 * in TypeScript run on Python workers, a failing header fails the chord as
 * Celery does, and groups saved by one language are restored by the other.
 * Canvases stamped in TypeScript show their stamps on Python workers, and
 * `revoke_by_stamped_headers` (from either language) revokes them here.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { expect } from 'chai';
import { Redis } from 'ioredis';
import { Celery, chain, chord, group, GroupResult, TaskError, type StampingVisitor } from '../../src/index.js';
import { PY_DIR, PYTHON, startPythonWorker, type PythonWorker } from '../helpers/python.js';
import { AMQP_URL, deleteQueues, uniqueName } from '../helpers/services.js';
import { startTsWorker, type TsWorker } from '../helpers/ts-worker.js';

const run = promisify(execFile);
const REDIS_URL = 'redis://127.0.0.1:6379/14';
const PY_ENV = { PYTASKS_BACKEND: REDIS_URL };
const TS_ENV = { TSAPP_BACKEND: REDIS_URL, TSAPP_REDIS: REDIS_URL };

/** Runs Python (Celery 5.7) with the pytasks app imported; resolves with the JSON it prints last. */
async function py<T>(code: string): Promise<T> {
  const script = `import json, pytasks\nfrom celery import chain, chord, group\nfrom celery.result import GroupResult\napp = pytasks.app\n${code}`;
  const { stdout } = await run(PYTHON.pypi, ['-c', script], {
    cwd: PY_DIR,
    env: { ...process.env, PYTHONPATH: PY_DIR, PYTHONDONTWRITEBYTECODE: '1', ...PY_ENV },
    timeout: 90_000,
  });
  return JSON.parse(stdout.trim().split('\n').pop()!) as T;
}

describe('canvas across TypeScript and Python workers (Celery 5.7)', function () {
  this.timeout(120_000);
  const tsQueue = uniqueName('cv-ts');
  const pyQueue = uniqueName('cv-py');
  const shared = uniqueName('cv-shared');
  let redis: Redis;
  let app: Celery;
  let ts: TsWorker;
  let tsShared: TsWorker;
  let pyWorker: PythonWorker;
  let pyShared: PythonWorker;

  before(async () => {
    redis = new Redis(REDIS_URL);
    app = new Celery('canvas-interop', { broker_url: AMQP_URL, result_backend: REDIS_URL });
    [ts, tsShared, pyWorker, pyShared] = await Promise.all([
      startTsWorker({ queues: [tsQueue], concurrency: 8, env: TS_ENV }),
      startTsWorker({ queues: [shared], concurrency: 4, env: TS_ENV }),
      startPythonWorker({ queues: [pyQueue], concurrency: 4, pool: 'threads', env: PY_ENV }),
      startPythonWorker({ queues: [shared], concurrency: 4, pool: 'threads', env: PY_ENV }),
    ]);
  });
  after(async () => {
    await Promise.all([ts?.stop(), tsShared?.stop(), pyWorker?.stop(), pyShared?.stop()]);
    await app.close();
    await deleteQueues(tsQueue, pyQueue, shared);
    redis.disconnect();
  });

  it('a Python chord with its header on the TypeScript worker and its body on Python', async () => {
    const out = await py<{ value: number }>(
      `c = chord([app.signature('ts.add', args=(i, i), queue='${tsQueue}') for i in range(10)], ` +
        `app.signature('py.tsum', queue='${pyQueue}'))\nr = c.apply_async()\nprint(json.dumps({'value': r.get(timeout=60)}))`,
    );
    expect(out.value).to.equal(90);
  });

  it('a Python chord run entirely by the TypeScript worker', async () => {
    const out = await py<{ value: number }>(
      `c = chord([app.signature('ts.add', args=(i, 1), queue='${tsQueue}') for i in range(20)], ` +
        `app.signature('ts.tsum', queue='${tsQueue}'))\nr = c.apply_async()\nprint(json.dumps({'value': r.get(timeout=60)}))`,
    );
    expect(out.value).to.equal(210);
  });

  it('a chord whose header is split across TypeScript and Python workers fires its body once, with results in header order', async () => {
    const tag = uniqueName('split');
    const n = 120;
    const out = await py<{ value: { values: number[]; worker: string } }>(
      `c = chord([app.signature('shared.square', args=('${tag}', i), queue='${shared}') for i in range(${n})], ` +
        `app.signature('shared.collect', args=('${tag}',), queue='${shared}'))\n` +
        `r = c.apply_async()\nprint(json.dumps({'value': r.get(timeout=60)}))`,
    );
    expect(out.value.values).to.deep.equal(Array.from({ length: n }, (_, i) => i * i));
    await new Promise((r) => setTimeout(r, 1000)); // a second body would show up now
    const ran = await redis.lrange(`pytasks:record:${tag}`, 0, -1);
    const bodies = ran.filter((e) => e.endsWith(':body'));
    const members = ran.filter((e) => !e.endsWith(':body'));
    const onTs = members.filter((e) => e.startsWith('ts:')).length;
    console.log(`      split header: members=${members.length} on-ts=${onTs} on-py=${members.length - onTs} bodies=${bodies.join(',')}`);
    expect(bodies, 'the body ran exactly once').to.have.length(1);
    expect(members).to.have.length(n);
    expect(onTs, 'TypeScript ran part of the header').to.be.greaterThan(0);
    expect(members.length - onTs, 'Python ran part of the header').to.be.greaterThan(0);
    await redis.del(`pytasks:record:${tag}`);
  });

  it('a chain, a group and a chord built in TypeScript run on a Python worker', async () => {
    const sig = (name: string, ...args: unknown[]) => app.signature(name, args, {}, { queue: pyQueue });
    const c = await chain(sig('py.add', 2, 2), sig('py.mul', 4), sig('py.add', 1)).applyAsync();
    expect(await c.get({ timeout: 30_000 })).to.equal(17);
    const g = await group([sig('py.add', 1, 1), sig('py.mul', 3, 3)]).applyAsync();
    expect(await g.get({ timeout: 30_000 })).to.deep.equal([2, 9]);
    const ch = await chord([sig('py.add', 1, 1), sig('py.add', 2, 2), sig('py.add', 3, 3)], sig('py.tsum')).applyAsync();
    expect(await ch.get({ timeout: 30_000 })).to.equal(12);
    // A chain with a group in it is upgraded to a chord by the TypeScript producer, run by Python.
    const up = await chain(sig('py.add', 1, 1), group(sig('py.add', 10), sig('py.add', 20)), sig('py.tsum')).applyAsync();
    expect(await up.get({ timeout: 30_000 })).to.equal(34);
  });

  it('a TypeScript chord with members on both languages and the body on TypeScript', async () => {
    const r = await chord(
      [app.signature('py.add', [1, 2], {}, { queue: pyQueue }), app.signature('ts.add', [3, 4], {}, { queue: tsQueue })],
      app.signature('ts.tsum', [], {}, { queue: tsQueue }),
    ).applyAsync();
    expect(await r.get({ timeout: 30_000 })).to.equal(10);
  });

  it('a failing header member: the body is not run, its result is ChordError, Python raises the member error, the errback runs', async () => {
    const out = await py<{ body: string; raised: string; module: string }>(
      `errback = app.signature('shared.record', queue='${pyQueue}')\n` +
        `c = chord([app.signature('ts.add', args=(1, 1), queue='${tsQueue}'), app.signature('ts.fail_type', args=('bad header',), queue='${tsQueue}')], ` +
        `app.signature('py.tsum', queue='${pyQueue}').on_error(errback))\nr = c.apply_async()\n` +
        `try:\n    r.get(timeout=60)\n    raised, module = 'nothing', ''\nexcept Exception as e:\n    raised, module = '%s: %s' % (type(e).__name__, e), type(e).__module__\n` +
        `print(json.dumps({'body': r.id, 'raised': raised, 'module': module}))`,
    );
    expect(out.raised).to.equal('TypeError: bad header');
    const body = app.asyncResult(out.body);
    const err = await body.get({ timeout: 10_000 }).catch((e: unknown) => e);
    expect(err).to.be.instanceOf(TaskError);
    expect(err).to.deep.include({ excType: 'ChordError', excModule: 'celery.exceptions' });
    expect((err as TaskError).excMessage).to.match(/^Dependency [0-9a-f-]+ raised TypeError\('bad header'\)$/);
    // The errback (shared.record) was sent with the body's id: it recorded `py:<body id>`.
    const key = `pytasks:record:${out.body}`;
    const deadline = Date.now() + 20_000;
    while ((await redis.llen(key)) === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    expect(await redis.lrange(key, 0, -1)).to.deep.equal([`py:${out.body}`]);
    await redis.del(key);
  });

  it('a TypeScript chord whose header fails on Python rejects with the member error', async () => {
    const r = await chord(
      [app.signature('py.add', [1, 2], {}, { queue: pyQueue }), app.signature('py.fail', ['py header'], {}, { queue: pyQueue })],
      app.signature('ts.tsum', [], {}, { queue: tsQueue }),
    ).applyAsync();
    const err = await r.get({ timeout: 30_000 }).catch((e: unknown) => e);
    expect(err).to.deep.include({ excType: 'ValueError', excMessage: 'py header' });
  });

  it('GroupResult.restore across languages', async () => {
    // TypeScript saves, Python restores and waits.
    const g = await group([app.signature('ts.add', [1, 2], {}, { queue: tsQueue }), app.signature('py.add', [3, 4], {}, { queue: pyQueue })]).applyAsync();
    await g.save();
    const fromPy = await py<{ ids: string[]; values: number[] }>(
      `g = GroupResult.restore('${g.id}', app=app)\nprint(json.dumps({'ids': [r.id for r in g.results], 'values': g.get(timeout=60)}))`,
    );
    expect(fromPy.ids).to.deep.equal(g.results.map((r) => r.id));
    expect(fromPy.values).to.deep.equal([3, 7]);
    // Python saves, TypeScript restores and waits.
    const saved = await py<{ id: string; ids: string[] }>(
      `g = group(app.signature('ts.add', args=(10, 1), queue='${tsQueue}'), app.signature('py.add', args=(20, 2), queue='${pyQueue}')).apply_async()\n` +
        `g.save()\nprint(json.dumps({'id': g.id, 'ids': [r.id for r in g.results]}))`,
    );
    const restored = await GroupResult.restore(app, saved.id);
    expect(restored?.results.map((r) => r.id)).to.deep.equal(saved.ids);
    expect(await restored!.get({ timeout: 30_000 })).to.deep.equal([11, 22]);
  });

  it('a TypeScript task replaced by a Python task: the Python result arrives under the TypeScript task id', async () => {
    const r = await app.sendTask('ts.replace_with_py', [40, 2, pyQueue], {}, { queue: tsQueue });
    expect(await r.get({ timeout: 30_000 })).to.equal(42);
  });

  it('a stamped chain and chord sent from TypeScript run on a Python worker, each task with its stamps in request.stamps', async () => {
    const sig = (name: string, ...args: unknown[]) => app.signature(name, args, {}, { queue: pyQueue });
    const visitor: StampingVisitor = { onSignature: (s) => ({ mon: `sig:${String(s.args[0] ?? 'body')}` }), onChordBody: () => ({ part: 'body' }) };
    const c = chain(sig('py.stamps', 'c1').set({ immutable: true }), sig('py.stamps'));
    c.stamp(visitor, { tenant: 't1' });
    const chained = (await (await c.applyAsync()).get({ timeout: 30_000 })) as Record<string, unknown>;
    // The second step got the first one's result (with its stamps) as its argument.
    expect(chained).to.deep.equal({
      tag: { tag: 'c1', stamped_headers: ['mon', 'tenant'], stamps: { tenant: 't1', mon: 'sig:c1' } },
      stamped_headers: ['mon', 'tenant'],
      stamps: { tenant: 't1', mon: 'sig:body' },
    });
    const ch = chord([sig('py.stamps', 'h1'), sig('py.stamps', 'h2')], sig('py.stamps'));
    ch.stamp(visitor, { tenant: 't1' });
    const body = (await (await ch.applyAsync()).get({ timeout: 30_000 })) as Record<string, unknown>;
    expect(body).to.deep.equal({
      tag: ['h1', 'h2'].map((h) => ({ tag: h, stamped_headers: ['mon', 'tenant'], stamps: { tenant: 't1', mon: `sig:${h}` } })),
      stamped_headers: ['mon', 'part', 'tenant'],
      stamps: { tenant: 't1', part: 'body', mon: 'sig:body' },
    });
  });

  it('revoke_by_stamped_headers, sent from TypeScript and from Python, revokes a TypeScript-stamped task on the TypeScript worker', async () => {
    const node = /(\S+@\S+) ready\./.exec(ts.output())?.[1];
    expect(node, 'the TypeScript worker printed its node name').to.be.a('string');
    const [fromTs, fromPy, kept] = [uniqueName('batch-ts'), uniqueName('batch-py'), uniqueName('batch-kept')];
    const replies = await app.control.revokeByStampedHeaders({ batch: fromTs }, { destination: [node!], reply: true, timeout: 5, limit: 1 });
    expect(replies).to.have.length(1);
    await py(`print(json.dumps(app.control.revoke_by_stamped_headers({'batch': '${fromPy}'}, destination=['${node}'], reply=True, timeout=5, limit=1)))`);
    const send = async (batch: string): Promise<unknown> => {
      const s = app.signature('ts.stamps', [batch], {}, { queue: tsQueue }).stamp({ onSignature: () => ({ batch }) });
      return (await s.applyAsync()).get({ timeout: 30_000, propagate: false });
    };
    for (const batch of [fromTs, fromPy]) {
      const err = (await send(batch)) as TaskError;
      expect(err, `stamp ${batch}`).to.be.instanceOf(TaskError);
      expect(err.excType).to.equal('TaskRevokedError');
    }
    // Another stamp value of the same header still runs, and sees its stamp.
    expect(await send(kept)).to.deep.equal({ tag: kept, stamped_headers: ['batch'], stamps: { batch: kept } });
  });
});
