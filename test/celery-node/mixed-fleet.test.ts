/**
 * A fleet in mid-migration, on one queue: celery-node 0.5.9's client and worker, the same worker
 * program through ts-celery/celery-node, a ts-celery worker and a Python Celery 5.7 worker. Every
 * task runs exactly once, whoever sent it and whoever takes it, and celery-node's client reads
 * each result.
 */
import { expect } from 'chai';
import * as celeryNode from 'celery-node';
import { Redis } from 'ioredis';
import { createClient } from 'ts-celery/celery-node';
import { startPythonWorker, type PythonWorker } from '../helpers/python.js';
import { AMQP_URL, REDIS_URL, deleteQueues, uniqueName } from '../helpers/services.js';
import { startTsWorker, type TsWorker } from '../helpers/ts-worker.js';
import { startPeerWorker, waitForRecords, type PeerWorker } from './peers.js';

describe('a mixed fleet on one queue: celery-node, ts-celery/celery-node, ts-celery and Python 5.7', function () {
  this.timeout(90_000);
  const queue = uniqueName('fleet');
  let redis: Redis;
  let workers: { py: PythonWorker; ts: TsWorker; shim: PeerWorker; cn: PeerWorker };

  before(async () => {
    redis = new Redis(REDIS_URL);
    const [py, ts, shim, cn] = await Promise.all([
      startPythonWorker({ queues: [queue], concurrency: 4, pool: 'threads' }),
      startTsWorker({ queues: [queue], concurrency: 8 }),
      startPeerWorker({ module: 'ts-celery/celery-node', queue, tsCelery: { worker_concurrency: 8 } }),
      startPeerWorker({ module: 'celery-node', queue }),
    ]);
    workers = { py, ts, shim, cn };
  });
  after(async () => {
    await Promise.all(Object.values(workers ?? {}).map((w) => w.stop()));
    redis?.disconnect();
    await deleteQueues(queue);
  });

  it('tasks sent by celery-node and by the shim each run exactly once, on all four workers; celery-node reads every result', async () => {
    const tag = uniqueName('fleet-run');
    const n = 100;
    const oldClient = celeryNode.createClient(AMQP_URL, REDIS_URL, queue);
    const newClient = createClient(AMQP_URL, REDIS_URL, queue);
    try {
      const fromOld = Array.from({ length: n }, (_, i) => oldClient.createTask('shared.record').applyAsync([`${tag}:cn-client-${i}`]));
      const fromNew = Array.from({ length: n }, (_, i) => newClient.createTask('shared.record').delay(`${tag}:shim-client-${i}`));
      const entries = await waitForRecords(redis, tag, 2 * n, 60_000);
      // Every result, whichever worker stored it, as celery-node's own get() reads it.
      const values = await Promise.all(fromOld.map((r) => r.get(20_000)));
      expect(values).to.deep.equal(Array.from({ length: n }, (_, i) => `${tag}:cn-client-${i}`));
      expect(await Promise.all(fromNew.map((r) => r.status()))).to.deep.equal(Array(n).fill('SUCCESS'));
      await new Promise((r) => setTimeout(r, 500)); // a duplicate would show up now
      const all = await redis.lrange(`pytasks:record:${tag}`, 0, -1);
      const byWorker = { py: 0, ts: 0, shim: 0, cn: 0 };
      for (const e of all) byWorker[e.slice(0, e.indexOf(':')) as keyof typeof byWorker]++;
      const tags = all.map((e) => e.slice(e.indexOf(':') + 1));
      console.log(`      one queue: sent=${2 * n} ran=${all.length} unique=${new Set(tags).size} by worker ${JSON.stringify(byWorker)}`);
      expect(entries.length).to.be.at.least(2 * n);
      expect(all.length, 'each task ran once').to.equal(2 * n);
      expect(new Set(tags).size).to.equal(2 * n);
      for (const [who, count] of Object.entries(byWorker)) expect(count, `the ${who} worker took a share`).to.be.greaterThan(0);
    } finally {
      await Promise.all([oldClient.disconnect(), newClient.disconnect()]);
      await redis.del(`pytasks:record:${tag}`);
    }
  });
});
