/**
 * celery-node's redis:// broker: celery-node 0.5.9, ts-celery/celery-node, ts-celery and Python
 * 5.7 with Redis as the broker (and for results), in Redis DB 9. Pending until ts-celery has a
 * Redis broker: the shim passes `redis://` through to it.
 */
import { expect } from 'chai';
import * as celeryNode from 'celery-node';
import { Redis } from 'ioredis';
import { Celery, ImproperlyConfigured } from 'ts-celery';
import { createClient } from 'ts-celery/celery-node';
import { startPythonWorker, type PythonWorker } from '../helpers/python.js';
import { REDIS_URL, uniqueName } from '../helpers/services.js';
import { startTsWorker, type TsWorker } from '../helpers/ts-worker.js';
import { startPeerWorker, waitForRecords, type PeerWorker } from './peers.js';

/** True when this ts-celery has a broker for redis:// URLs. */
function hasRedisBroker(): boolean {
  try {
    void new Celery('probe', { broker_url: REDIS_URL }).broker;
    return true;
  } catch (err) {
    if (err instanceof ImproperlyConfigured) return false;
    throw err;
  }
}

describe('celery-node with Redis as the broker: celery-node 0.5.9, the shim, ts-celery and Python 5.7', function () {
  this.timeout(90_000);
  const tsEnv = { TSAPP_BROKER: REDIS_URL, TSAPP_BACKEND: REDIS_URL, TSAPP_REDIS: REDIS_URL };
  const queues: string[] = [];
  const newQueue = (prefix: string): string => {
    const q = uniqueName(prefix);
    queues.push(q);
    return q;
  };
  let redis: Redis;
  let app: Celery;

  before(function () {
    // Runs once ts-celery has a Redis broker (branch redis-broker); until then, pending.
    if (!hasRedisBroker()) this.skip();
    redis = new Redis(REDIS_URL);
    app = new Celery('cn-redis', { broker_url: REDIS_URL, result_backend: REDIS_URL });
  });
  after(async () => {
    await app?.close();
    // The queues' lists and the bindings kombu keeps for them.
    if (redis && queues.length) await redis.del(...queues, ...queues.map((q) => `_kombu.binding.${q}`));
    redis?.disconnect();
  });

  it("celery-node's client -> a ts-celery worker, and ts-celery -> celery-node's worker", async () => {
    const tsQueue = newQueue('cn-redis-ts');
    const cnQueue = newQueue('cn-redis-cn');
    const [ts, cn] = await Promise.all([
      startTsWorker({ queues: [tsQueue], concurrency: 4, env: tsEnv }),
      startPeerWorker({ module: 'celery-node', queue: cnQueue, broker: REDIS_URL, backend: REDIS_URL }),
    ]);
    const client = celeryNode.createClient(REDIS_URL, REDIS_URL, tsQueue);
    try {
      const byName = client.createTask('ts.add').applyAsync([2], { y: 40 });
      const echo = client.createTask('ts.var_args').applyAsync([1], { k: 'v' });
      expect(await Promise.all([byName.get(20_000), echo.get(20_000)])).to.deep.equal([42, { args: [1], kwargs: { k: 'v' } }]);
      const toCn = await app.sendTask('cn.echo', [1, 2], { k: 'v' }, { queue: cnQueue });
      expect(await toCn.get({ timeout: 20_000 })).to.deep.equal([1, 2, { k: 'v' }]);
    } finally {
      await client.disconnect();
      await Promise.all([ts.stop(), cn.stop()]);
    }
  });

  it('a mixed fleet on one Redis queue: each task runs exactly once, on all four workers', async () => {
    const queue = newQueue('cn-redis-fleet');
    const tag = uniqueName('cn-redis-run');
    const n = 60;
    let workers: Array<PythonWorker | TsWorker | PeerWorker> = [];
    const oldClient = celeryNode.createClient(REDIS_URL, REDIS_URL, queue);
    const newClient = createClient(REDIS_URL, REDIS_URL, queue);
    try {
      workers = await Promise.all([
        startPythonWorker({ queues: [queue], concurrency: 4, pool: 'threads', env: { PYTASKS_BROKER: REDIS_URL, PYTASKS_BACKEND: REDIS_URL } }),
        startTsWorker({ queues: [queue], concurrency: 8, env: tsEnv }),
        startPeerWorker({ module: 'ts-celery/celery-node', queue, broker: REDIS_URL, backend: REDIS_URL, tsCelery: { worker_concurrency: 8 } }),
        startPeerWorker({ module: 'celery-node', queue, broker: REDIS_URL, backend: REDIS_URL }),
      ]);
      const fromOld = Array.from({ length: n }, (_, i) => oldClient.createTask('shared.record').applyAsync([`${tag}:cn-client-${i}`]));
      const fromNew = Array.from({ length: n }, (_, i) => newClient.createTask('shared.record').delay(`${tag}:shim-client-${i}`));
      await waitForRecords(redis, tag, 2 * n, 60_000);
      expect(await Promise.all(fromOld.map((r) => r.get(20_000)))).to.deep.equal(Array.from({ length: n }, (_, i) => `${tag}:cn-client-${i}`));
      expect(await Promise.all(fromNew.map((r) => r.get(20_000)))).to.deep.equal(Array.from({ length: n }, (_, i) => `${tag}:shim-client-${i}`));
      await new Promise((r) => setTimeout(r, 500)); // a duplicate would show up now
      const all = await redis.lrange(`pytasks:record:${tag}`, 0, -1);
      const byWorker: Record<string, number> = { py: 0, ts: 0, shim: 0, cn: 0 };
      for (const e of all) byWorker[e.slice(0, e.indexOf(':'))]!++;
      const tags = all.map((e) => e.slice(e.indexOf(':') + 1));
      console.log(`      one Redis queue: sent=${2 * n} ran=${all.length} unique=${new Set(tags).size} by worker ${JSON.stringify(byWorker)}`);
      expect(all.length, 'each task ran once').to.equal(2 * n);
      expect(new Set(tags).size).to.equal(2 * n);
      for (const [who, count] of Object.entries(byWorker)) expect(count, `the ${who} worker took a share`).to.be.greaterThan(0);
    } finally {
      await Promise.all([oldClient.disconnect(), newClient.disconnect()]);
      await Promise.all(workers.map((w) => w.stop()));
      await redis.del(`pytasks:record:${tag}`);
    }
  });
});
