/**
 * `ts-celery worker` as a real process on RabbitMQ: concurrency, bad messages,
 * warm shutdown, and the command line's errors.
 */
import amqp from 'amqplib';
import { expect } from 'chai';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Celery, type AsyncResult } from '../../src/index.js';
import { AMQP_URL, REDIS_URL, deleteQueues, listQueue, RABBIT_VHOST, uniqueName } from '../helpers/services.js';
import { runCli, startTsWorker } from '../helpers/ts-worker.js';

describe('ts-celery worker (process, RabbitMQ + Redis)', function () {
  this.timeout(60_000);
  let app: Celery;
  const queues: string[] = [];
  const queue = (prefix: string): string => {
    const q = uniqueName(prefix);
    queues.push(q);
    return q;
  };

  before(() => {
    app = new Celery('cli-test', { broker_url: AMQP_URL, result_backend: REDIS_URL });
  });
  after(async () => {
    await app.close();
    await deleteQueues(...queues);
  });

  it('-c 10: never more than 10 tasks run at once, and 10 do', async () => {
    const q = queue('conc');
    const worker = await startTsWorker({ queues: [q], concurrency: 10 });
    try {
      const results = await Promise.all(Array.from({ length: 50 }, () => app.sendTask<number>('ts.concurrency_probe', [200], {}, { queue: q })));
      const peaks = await Promise.all(results.map((r) => r.get({ timeout: 30_000 })));
      expect(Math.max(...peaks)).to.equal(10);
    } finally {
      await worker.stop();
    }
  });

  it('logs and rejects malformed, unknown and pickle messages, and keeps processing', async () => {
    const q = queue('bad');
    const worker = await startTsWorker({ queues: [q], concurrency: 4 });
    const conn = await amqp.connect(AMQP_URL);
    try {
      const ch = await conn.createConfirmChannel();
      const publish = (body: string | Buffer, headers: Record<string, unknown>, contentType = 'application/json') =>
        ch.publish('', q, Buffer.isBuffer(body) ? body : Buffer.from(body), { contentType, contentEncoding: 'utf-8', headers, persistent: true });
      publish('[[1, 2], {}', { task: 'ts.add', id: 'truncated-json' });
      publish('[[1, 2], {}]', { task: 'ts.add', id: 'two-element-body' });
      publish('[[1, 2], {}, null]', { task: 'ts.add' });
      publish('[[1, 2], {}, null]', { task: 'ts.nobody.registered.this', id: 'unknown-task' });
      publish(Buffer.from([0x80, 0x04, 0x95, 0x00]), { task: 'ts.add', id: 'pickled' }, 'application/x-python-serialize');
      publish(Buffer.from([0xde, 0xad, 0xbe, 0xef]), {}, '');
      await ch.waitForConfirms();
      const ok: AsyncResult<number> = await app.sendTask('ts.add', [40, 2], {}, { queue: q });
      expect(await ok.get({ timeout: 20_000 })).to.equal(42);
      const out = worker.output();
      expect(out).to.match(/Rejected a message \(invalid task message: invalid JSON[^\n]*id=truncated-json/);
      expect(out).to.match(/Rejected a message \(invalid task message: protocol 2 body must be \[args, kwargs, embed\]\)[^\n]*id=two-element-body/);
      expect(out).to.match(/Rejected a message \(invalid task message: header id must be a non-empty string\)/);
      expect(out).to.match(/Received unregistered task of type 'ts\.nobody\.registered\.this'/);
      expect(out).to.match(/Refusing to deserialize untrusted content of type application\/x-python-serialize[^\n]*id=pickled/);
      expect(out).to.match(/Refusing to deserialize untrusted content of type \(none\)/);
      const stats = await listQueue(RABBIT_VHOST, q);
      expect(stats).to.deep.include({ messages_ready: 0, messages_unacknowledged: 0 });
      const err = await app.asyncResult('unknown-task').get({ timeout: 5000 }).catch((e: unknown) => e);
      expect(err).to.deep.include({ excType: 'NotRegistered', excModule: 'celery.exceptions' });
    } finally {
      await conn.close();
      await worker.stop();
    }
  });

  it('SIGTERM with 20 tasks running: all 20 finish and are acked, waiting ones go back, exit 0', async () => {
    const q = queue('term');
    const worker = await startTsWorker({ queues: [q], concurrency: 20, env: { TSAPP_TRACK_STARTED: '1' } });
    const results = await Promise.all(Array.from({ length: 30 }, () => app.sendTask<number>('ts.sleepy', [1.5], {}, { queue: q })));
    // Wait until 20 have started (STARTED stored), then stop the worker.
    const deadline = Date.now() + 20_000;
    let started = 0;
    while (Date.now() < deadline) {
      const states = await Promise.all(results.map((r) => r.state()));
      started = states.filter((s) => s === 'STARTED').length;
      if (started === 20) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(started).to.equal(20);
    expect(await worker.stop()).to.equal(0);
    const states = await Promise.all(results.map((r) => r.state()));
    expect(states.filter((s) => s === 'SUCCESS').length, 'the 20 running tasks finished').to.equal(20);
    expect(states.filter((s) => s === 'PENDING').length, 'the 10 waiting never started').to.equal(10);
    expect(await listQueue(RABBIT_VHOST, q)).to.deep.include({ messages_ready: 10, messages_unacknowledged: 0 });
    expect(worker.output()).to.match(/Warm shutdown/);
    // Nothing lost: another worker runs the 10 that went back.
    const next = await startTsWorker({ queues: [q], concurrency: 20 });
    try {
      const values = await Promise.all(results.map((r) => r.get({ timeout: 20_000 })));
      expect(values).to.have.length(30);
    } finally {
      await next.stop();
    }
  });

  describe('command line errors', () => {
    it('a wrong or missing flag prints usage and exits 1', async () => {
      const missing = await runCli(['worker']);
      expect(missing.code).to.equal(1);
      expect(missing.stderr).to.match(/ts-celery worker -A <app>[\s\S]*Missing required argument: app/);
      const unknown = await runCli(['worker', '-A', 'tasks', '--frobnicate']);
      expect(unknown.code).to.equal(1);
      expect(unknown.stderr).to.match(/Unknown argument: frobnicate\n/);
      const typo = await runCli(['worker', '-A', 'tasks', '--concurency', '5', '--prefetch-multiplyer', '2']);
      expect(typo.code).to.equal(1);
      expect(typo.stderr).to.include('concurency (did you mean --concurrency?)');
      expect(typo.stderr).to.include('prefetch-multiplyer (did you mean --prefetch-multiplier?)');
      const command = await runCli(['wroker', '-A', 'tasks']);
      expect(command.code).to.equal(1);
      expect(command.stderr).to.match(/Did you mean worker\?/);
      const level = await runCli(['worker', '-A', 'tasks', '-l', 'loud']);
      expect(level.code).to.equal(1);
      expect(level.stderr).to.match(/Invalid log level "loud"/);
      const noCommand = await runCli([]);
      expect(noCommand.code).to.equal(1);
    });

    it('a bad -A path, a module that fails to load, or one without an app: one line, exit 1', async () => {
      const dir = mkdtempSync(join(tmpdir(), 'ts-celery-cli-'));
      writeFileSync(join(dir, 'noapp.ts'), 'export const answer = 42;\n');
      writeFileSync(join(dir, 'broken.ts'), 'throw new Error("config exploded");\n');
      const bad = await runCli(['worker', '-A', join(dir, 'missing')]);
      expect(bad.code).to.equal(1);
      expect(bad.stderr.trim()).to.match(/^Error: Cannot load app ".*missing": no such folder or module/);
      expect(bad.stderr.trim().split('\n')).to.have.length(1);
      const noApp = await runCli(['worker', '-A', join(dir, 'noapp.ts')]);
      expect(noApp.code).to.equal(1);
      expect(noApp.stderr).to.match(/noapp\.ts exports no Celery app \(expected an export named "app" or "celery", or a default export\)/);
      const broken = await runCli(['worker', '-A', join(dir, 'broken')]);
      expect(broken.code).to.equal(1);
      expect(broken.stderr).to.match(/broken\.ts failed to load: config exploded/);
    });

    it('refuses the in-memory default broker in a separate worker process', async () => {
      const r = await runCli(['worker', '-A', 'tasks'], { CELERY_BROKER_URL: '' });
      expect(r.code).to.equal(1);
      expect(r.stderr).to.match(/broker_url is memory:\/\/.*Set CELERY_BROKER_URL=amqp:\/\//);
    });

    it('broker_connection_retry_on_startup false: a broker down at start-up fails at once, exit 1, no retries', async () => {
      const r = await runCli(
        ['worker', '-A', 'test/interop/ts-app', '-Q', queue('no-startup-retry')],
        { TSAPP_BROKER: 'amqp://guest:hunter2@127.0.0.1:1/ts-celery-test', TSAPP_RETRY_ON_STARTUP: '0' },
        15_000,
      );
      expect(r.code).to.equal(1);
      expect(r.stderr).to.match(
        /Error: worker could not start: Cannot connect to amqp:\/\/guest:\*\*@127\.0\.0\.1:1\/ts-celery-test, and broker_connection_retry_on_startup is off: RabbitMQ refused the connection/,
      );
      expect(r.stdout + r.stderr).not.to.match(/Trying again/);
    });

    it('start-up retries stop after broker_connection_max_retries: exit 1 saying so', async () => {
      const r = await runCli(
        ['worker', '-A', 'test/interop/ts-app', '-Q', queue('startup-budget')],
        { TSAPP_BROKER: 'amqp://guest:hunter2@127.0.0.1:1/ts-celery-test', TSAPP_MAX_RETRIES: '1' },
        15_000,
      );
      expect(r.code).to.equal(1);
      expect(r.stdout + r.stderr).to.match(/Trying again in \d+\.\d\d seconds\.\.\. \(1\/1\)/);
      expect(r.stderr).to.match(/Error: worker could not start: Gave up connecting to amqp:\/\/guest:\*\*@127\.0\.0\.1:1\/ts-celery-test after 1 retry/);
      expect(r.stdout + r.stderr).not.to.contain('hunter2');
    });

    it('a broker that is down gives a readable message and retries; SIGTERM still exits 0', async () => {
      const worker = await startTsWorker({
        queues: [queue('down')],
        waitReady: false,
        env: { TSAPP_BROKER: 'amqp://guest:hunter2@127.0.0.1:1/ts-celery-test' },
      });
      const deadline = Date.now() + 15_000;
      while (!/Trying again in/.test(worker.output()) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      expect(worker.output()).to.match(/consumer: Cannot connect to amqp:\/\/guest:\*\*@127\.0\.0\.1:1\/ts-celery-test: RabbitMQ refused the connection[^\n]*\nTrying again in \d+\.\d\d seconds\.\.\. \(1\/100\)/);
      expect(worker.output()).not.to.contain('hunter2');
      expect(await worker.stop()).to.equal(0);
    });
  });
});
