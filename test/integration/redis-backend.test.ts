import { expect } from 'chai';
import { Redis } from 'ioredis';
import { RedisBackend } from '../../src/backend/redis.js';
import { AsyncResult, BackendError, TaskError, TimeoutError } from '../../src/index.js';
import { buildExceptionMeta, buildResultMeta } from '../../src/protocol/result-meta.js';
import { REDIS_URL, uniqueName } from '../helpers/services.js';

describe('Redis result backend (integration)', () => {
  let redis: Redis;
  let backend: RedisBackend;

  before(() => {
    redis = new Redis(REDIS_URL);
    backend = new RedisBackend({ url: REDIS_URL, expires: 3600 });
  });
  after(async () => {
    await backend.close();
    redis.disconnect();
  });

  it("stores Celery's key and value, with result_expires as TTL, and publishes it", async () => {
    const id = uniqueName('r');
    const key = `celery-task-meta-${id}`;
    const sub = redis.duplicate();
    const published = new Promise<string>((resolve) => sub.on('message', (_c: string, data: string) => resolve(data)));
    await sub.subscribe(key);
    await backend.store(buildResultMeta(id, 'SUCCESS', { ok: [1, 2] }));
    const raw = await redis.get(key);
    expect(JSON.parse(raw!)).to.deep.include({ status: 'SUCCESS', result: { ok: [1, 2] }, traceback: null, task_id: id });
    expect(await redis.ttl(key)).to.be.within(3590, 3600);
    expect(await published).to.equal(raw);
    sub.disconnect();
  });

  it('never overwrites a stored SUCCESS (a duplicate delivery cannot undo it)', async () => {
    const id = uniqueName('r');
    await backend.store(buildResultMeta(id, 'SUCCESS', 1));
    await backend.store(buildExceptionMeta(id, 'FAILURE', new Error('late duplicate')));
    expect((await backend.get(id))!.status).to.equal('SUCCESS');
  });

  it('states stored in the same turn share one script call, each published, and a SUCCESS in the batch is kept', async () => {
    const ids = Array.from({ length: 600 }, () => uniqueName('b')); // more than one batch (MAX_BATCH = 512)
    const keep = uniqueName('b');
    await backend.store(buildResultMeta(keep, 'SUCCESS', 'first'));
    const sub = redis.duplicate();
    const seen = new Set<string>();
    sub.on('message', (channel: string) => seen.add(channel));
    await sub.subscribe(...ids.slice(0, 5).map((id) => `celery-task-meta-${id}`));
    // MONITOR shows every script call; other clients' calls are told apart by their keys.
    const ours = new Set(ids.map((id) => `celery-task-meta-${id}`));
    const calls: number[] = [];
    const mon = await redis.monitor();
    mon.on('monitor', (_time: string, args: string[]) => {
      if (/^eval(sha)?$/i.test(args[0] ?? '') && ours.has(args[3] ?? '')) calls.push(Number(args[2]));
    });
    await Promise.all([
      ...ids.map((id, i) => backend.store(buildResultMeta(id, 'SUCCESS', i))),
      backend.store(buildExceptionMeta(keep, 'FAILURE', new Error('late duplicate in a batch'))),
    ]);
    await new Promise((r) => setTimeout(r, 50));
    mon.disconnect();
    const stored = await redis.mget(ids.map((id) => `celery-task-meta-${id}`));
    expect(stored.map((raw) => JSON.parse(raw!).result)).to.deep.equal(ids.map((_, i) => i));
    expect((await backend.get(keep))!.result).to.equal('first');
    // 601 states in two script calls (512 + 89 keys), not 601.
    expect(calls.sort((a, b) => b - a)).to.deep.equal([512, 89]);
    expect(seen.size).to.equal(5);
    sub.disconnect();
  });

  it('get() returns a result that landed before anyone waited', async () => {
    const id = uniqueName('r');
    await backend.store(buildResultMeta(id, 'SUCCESS', 'early'));
    expect(await new AsyncResult(id, backend).get({ timeout: 2000 })).to.equal('early');
  });

  it('get() wakes on pub/sub for a result stored later, through STARTED and RETRY', async () => {
    const id = uniqueName('r');
    const result = new AsyncResult<number>(id, backend);
    expect(await result.state()).to.equal('PENDING');
    const waiting = result.get({ timeout: 5000 });
    await backend.store(buildResultMeta(id, 'STARTED', { pid: 1, hostname: 'w@h' }));
    await backend.store(buildResultMeta(id, 'RETRY', null));
    await new Promise((r) => setTimeout(r, 50));
    await backend.store(buildResultMeta(id, 'SUCCESS', 42));
    expect(await waiting).to.equal(42);
    expect(await result.state()).to.equal('SUCCESS');
  });

  it('many waiters on the same id all resolve, on one subscription', async () => {
    const id = uniqueName('r');
    const waits = Array.from({ length: 20 }, () => new AsyncResult(id, backend).get({ timeout: 5000 }));
    await backend.store(buildResultMeta(id, 'SUCCESS', 'x'));
    expect(await Promise.all(waits)).to.deep.equal(Array(20).fill('x'));
  });

  it('FAILURE rejects with the remote type, message, module and traceback', async () => {
    const id = uniqueName('r');
    await redis.set(`celery-task-meta-${id}`, JSON.stringify({
      status: 'FAILURE', result: { exc_type: 'ValueError', exc_message: ['bad number'], exc_module: 'builtins' },
      traceback: 'Traceback (most recent call last):\n  ...\nValueError: bad number\n', children: [], date_done: '2026-11-27T01:10:23.761143', task_id: id,
    }));
    const err = await new AsyncResult(id, backend).get({ timeout: 2000 }).then(() => null, (e: unknown) => e);
    expect(err).to.be.instanceOf(TaskError);
    expect(err).to.deep.include({ excType: 'ValueError', excMessage: 'bad number', excModule: 'builtins', state: 'FAILURE' });
    expect((err as TaskError).remoteTraceback).to.contain('ValueError: bad number');
    const soft = await new AsyncResult(id, backend).get({ timeout: 2000, propagate: false });
    expect(soft).to.be.instanceOf(TaskError);
  });

  it('times out with TimeoutError and stops listening', async () => {
    const err = await new AsyncResult(uniqueName('never'), backend).get({ timeout: 150 }).then(() => null, (e: unknown) => e);
    expect(err).to.be.instanceOf(TimeoutError);
  });

  it('forget() deletes the result', async () => {
    const id = uniqueName('r');
    await backend.store(buildResultMeta(id, 'SUCCESS', 1));
    await new AsyncResult(id, backend).forget();
    expect(await redis.exists(`celery-task-meta-${id}`)).to.equal(0);
  });

  it("re-applying a frozen chord runs its body again, even when a member overtakes the producer's set_chord_size", async () => {
    // Celery's producer clears the chord's "done" marker in set_chord_size, right before the
    // *last* member is sent; a fast worker can finish the first member before that.
    const gid = uniqueName('frozen-chord');
    const fired: unknown[][] = [];
    const join = { fire: async (results: unknown[]) => void fired.push(results), fail: async () => {} };
    const member = (index: number) => ({ groupId: gid, taskId: `${gid}-m${index}`, groupIndex: index, state: 'SUCCESS', result: index * 10 });
    await backend.setChordSize!(gid, 2);
    await backend.onChordPartReturn!(member(0), join);
    await backend.onChordPartReturn!(member(1), join);
    expect(fired).to.deep.equal([[0, 10]]);
    expect(await redis.get(`celery-taskset-meta-${gid}.c`)).to.equal('done');

    await backend.onChordPartReturn!(member(0), join); // overtakes the new run's set_chord_size
    await new Promise((resolve) => setTimeout(resolve, 120));
    await backend.setChordSize!(gid, 2);
    await backend.onChordPartReturn!(member(1), join);
    const deadline = Date.now() + 8000;
    while (fired.length < 2 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
    expect(fired).to.deep.equal([[0, 10], [0, 10]]);
  });

  it('reports an unreachable Redis clearly instead of hanging', async () => {
    const down = new RedisBackend({ url: 'redis://:pw-secret@127.0.0.1:1/0', expires: 60, connectTimeout: 0.5 });
    try {
      const started = Date.now();
      const err = await new AsyncResult('x', down).get().then(() => null, (e: unknown) => e);
      expect(err).to.be.instanceOf(BackendError);
      expect((err as Error).message).to.match(/redis:\/\/:\*\*@127\.0\.0\.1:1\/0.*Is Redis running/s);
      expect((err as Error).message).not.to.contain('pw-secret');
      expect(Date.now() - started).to.be.below(15_000);
      const storeErr = await down.store(buildResultMeta('x', 'SUCCESS', 1)).then(() => null, (e: unknown) => e);
      expect(storeErr).to.be.instanceOf(BackendError);
    } finally {
      await down.close();
    }
  });
});
