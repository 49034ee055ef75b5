/**
 * celery-node's own README examples (its "Getting started" client and worker, read from the
 * installed celery-node 0.5.9 package) run through ts-celery/celery-node. The only edits: the
 * require, and the connection arguments, pointed at the test services and a queue of the test's
 * own (the examples' `amqp://` would be the shared default vhost and queue).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { Redis } from 'ioredis';
import { Celery, ImproperlyConfigured } from 'ts-celery';
import { AMQP_URL, REDIS_URL, deleteQueues, uniqueName } from '../helpers/services.js';
import { ROOT } from '../helpers/ts-worker.js';
import { celeryNodeExample as example, migrateExample as migrate } from './readme.js';

interface Run {
  output(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  kill(signal: NodeJS.Signals): void;
}

/** `node --import tsx file` in the checkout, so `ts-celery/celery-node` is the source. */
function run(file: string): Run {
  const child = spawn(process.execPath, ['--import', 'tsx', file], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  return { output: () => out, exited, kill: (signal) => void child.kill(signal) };
}

async function waitFor(r: Run, pattern: RegExp, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!pattern.test(r.output())) {
    if (Date.now() > deadline) throw new Error(`no ${pattern} within ${timeoutMs} ms:\n${r.output()}`);
    await new Promise((res) => setTimeout(res, 50));
  }
}

describe("celery-node's README examples, run unchanged but for the import, through ts-celery/celery-node", function () {
  this.timeout(60_000);
  let dir: string;

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'ts-celery-cn-readme-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  /** Runs the worker example, then the client example; the client prints 3 and exits by itself. */
  async function clientAndWorker(broker: string, backend: string, queue: string): Promise<void> {
    const workerFile = join(dir, `${queue}-worker.cjs`);
    const clientFile = join(dir, `${queue}-client.cjs`);
    writeFileSync(workerFile, migrate(example('Worker'), broker, backend, queue));
    writeFileSync(clientFile, migrate(example('Client'), broker, backend, queue));
    const worker = run(workerFile);
    try {
      await waitFor(worker, / ready\.$/m);
      const client = run(clientFile);
      const { code } = await client.exited; // disconnect() closed everything: nothing keeps it alive
      expect(code, client.output()).to.equal(0);
      expect(client.output().trim()).to.equal('3');
      await waitFor(worker, new RegExp('Task tasks\\.add\\[[-0-9a-f]+\\] succeeded in [0-9.]+s: 3'));
      worker.kill('SIGTERM'); // warm shutdown, then the process ends as SIGTERM ends it
      const ended = await worker.exited;
      expect(ended.signal, worker.output()).to.equal('SIGTERM');
      expect(worker.output()).to.contain('Warm shutdown');
    } finally {
      worker.kill('SIGKILL');
    }
  }

  it('with RabbitMQ as the broker and amqp:// results (over the broker connection)', async () => {
    const queue = uniqueName('cn-readme');
    try {
      await clientAndWorker(AMQP_URL, AMQP_URL, queue);
    } finally {
      await deleteQueues(queue);
    }
  });

  it('with Redis as the broker and for results', async function () {
    try {
      void new Celery('probe', { broker_url: REDIS_URL }).broker;
    } catch (err) {
      if (!(err instanceof ImproperlyConfigured)) throw err;
      // celery-node's redis:// broker: runs once ts-celery has a Redis broker (branch redis-broker).
      this.skip();
    }
    const queue = uniqueName('cn-readme-redis');
    const redis = new Redis(REDIS_URL);
    try {
      await clientAndWorker(REDIS_URL, REDIS_URL, queue);
    } finally {
      await redis.del(queue);
      redis.disconnect();
    }
  });
});
