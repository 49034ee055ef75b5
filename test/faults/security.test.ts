/**
 * Security properties.
 *
 * - Only JSON is ever deserialized: pickle, YAML and msgpack messages are
 *   rejected on their content type, unread (their bodies here are a valid
 *   JSON task, which would run if anything looked inside), and dead-lettered
 *   byte for byte; accepting them cannot even be configured.
 * - Results are data: a crafted `exc_type`/`exc_module` (or `__proto__` keys)
 *   read back from the backend makes `get()` build a plain TaskError and
 *   nothing else.
 * - Broker and backend passwords never appear in banners, logs, errors
 *   (including their `cause` chain as util.inspect prints it) or stored results.
 */
import { existsSync } from 'node:fs';
import amqp from 'amqplib';
import { Redis } from 'ioredis';
import { expect } from 'chai';
import { BackendError, BrokerError, Celery, ImproperlyConfigured, TaskError } from '../../src/index.js';
import { buildTaskMessage } from '../../src/protocol/message.js';
import { encodeAmqpTable } from '../../src/protocol/amqp-headers.js';
import {
  assertNoSecrets, entries, errorText, faultFixture, newRun, producerApp, report, settle, startFaultWorker, waitFor,
} from './support.js';

describe('security', function () {
  this.timeout(60_000);
  const fx = faultFixture();
  const { workers, apps, queues, runs } = fx;

  it('rejects pickle, YAML and msgpack messages unread, and cannot be configured to accept them', async () => {
    const run = newRun('unsafe');
    runs.push(run);
    const queue = `faults-${run}`;
    queues.push(queue, `${queue}.dlq`);
    const worker = await startFaultWorker({ broker: fx.svc.rabbit.url, queue, concurrency: 4, env: { FAULTS_DLX: '1' } });
    workers.push(worker);

    const conn = await amqp.connect(fx.svc.rabbit.url);
    try {
      const ch = await conn.createConfirmChannel();
      await ch.assertQueue(`${queue}.dlq`, { durable: true });
      const unsafe = ['application/x-python-serialize', 'application/x-yaml', 'application/x-msgpack'];
      const sent = new Map<string, Buffer>();
      for (const contentType of unsafe) {
        // The body is a valid JSON task: only the content type says "do not read me".
        const wire = buildTaskMessage({ id: `${run}-${contentType}`, task: 'faults.record', args: [`${run}:${contentType}`] });
        sent.set(contentType, wire.body);
        ch.publish('', queue, wire.body, { contentType, contentEncoding: 'binary', headers: encodeAmqpTable(wire.headers), persistent: true, messageId: contentType });
      }
      // A control message that must run: the queue and worker are alive.
      const control = buildTaskMessage({ id: `${run}-control`, task: 'faults.record', args: [`${run}:control`] });
      ch.publish('', queue, control.body, { contentType: control.contentType, contentEncoding: 'utf-8', headers: encodeAmqpTable(control.headers), persistent: true });
      await ch.waitForConfirms();

      await waitFor(async () => (await fx.svc.rabbit.queueStats(`${queue}.dlq`))?.ready === unsafe.length, 15_000, 'the unsafe messages to be dead-lettered');
      await waitFor(async () => (await entries(run)).length >= 1, 10_000, 'the control task');
      const dead = new Map<string, Buffer>();
      for (let m = await ch.get(`${queue}.dlq`, { noAck: true }); m; m = await ch.get(`${queue}.dlq`, { noAck: true })) {
        dead.set(String(m.properties.contentType), m.content);
      }
      const ran = (await entries(run)).map((e) => e.tag);
      report('unsafe-content', { sent: unsafe.length, ran: ran.filter((t) => !t.endsWith(':control')).length, 'dead-lettered': dead.size });
      expect(ran).to.deep.equal([`${run}:control`]);
      for (const contentType of unsafe) {
        expect(dead.get(contentType), `${contentType} dead-lettered unchanged`).to.deep.equal(sent.get(contentType));
        expect(worker.output()).to.include(`Refusing to deserialize untrusted content of type ${contentType}: only application/json is accepted`);
      }
    } finally {
      await conn.close();
    }

    for (const accept of [['pickle'], ['json', 'yaml'], ['application/x-msgpack']]) {
      expect(() => new Celery('x', { accept_content: accept }), `accept_content ${JSON.stringify(accept)}`).to.throw(ImproperlyConfigured, /only deserializes JSON/);
    }
    expect(() => new Celery('x', { task_serializer: 'pickle' })).to.throw(ImproperlyConfigured);
    expect(() => new Celery('x', { result_serializer: 'pickle' })).to.throw(ImproperlyConfigured);
  });

  it('reads results as data: a crafted exc_type makes get() build a plain TaskError and nothing else', async () => {
    const backendUrl = fx.svc.redis.url(5);
    const app = new Celery('reader', { result_backend: backendUrl });
    apps.push(app);
    const raw = new Redis(backendUrl);
    const marker = `/tmp/ts-celery-pwned-${process.pid}`;
    const crafted: Array<[string, unknown]> = [
      ['__proto__', { exc_type: '__proto__', exc_message: [{ polluted: true }], exc_module: 'builtins' }],
      ['constructor', { exc_type: 'constructor', exc_message: ['x'], exc_module: 'builtins' }],
      ['Function', { exc_type: 'Function', exc_message: [`require('fs').writeFileSync('${marker}', 'x')`], exc_module: 'builtins' }],
      ['eval', { exc_type: 'eval', exc_message: [`require('fs').writeFileSync('${marker}', 'x')`], exc_module: 'builtins' }],
      ['module path', { exc_type: 'child_process.exec', exc_message: [`touch ${marker}`], exc_module: 'child_process' }],
      ['os.system', { exc_type: 'system', exc_message: [`touch ${marker}`], exc_module: 'os' }],
      ['toString getter', { exc_type: 'toString', exc_message: { length: 1e9 }, exc_module: { toString: 'x' } }],
      ['non-string type', { exc_type: { name: 'Error' }, exc_message: ['x'] }],
      ['huge message', { exc_type: 'ValueError', exc_message: ['x'.repeat(100_000)], exc_module: 'builtins' }],
    ];
    let checked = 0;
    try {
      for (const [what, result] of crafted) {
        const id = `crafted-${newRun('x')}`;
        const meta = { status: 'FAILURE', result, traceback: 'Traceback...', children: [], date_done: '2026-01-01T00:00:00', task_id: id };
        // Raw JSON (not JSON.stringify of an object literal) so "__proto__" is a real key in the text.
        const text = JSON.stringify(meta).replace('"result":{', '"result":{"__proto__":{"polluted":true},');
        await raw.set(`celery-task-meta-${id}`, text);
        let error: unknown = null;
        try {
          await app.asyncResult(id).get({ timeout: 5000 });
        } catch (err) {
          error = err;
        }
        expect(error, what).to.be.instanceOf(TaskError);
        expect(Object.getPrototypeOf(error), what).to.equal(TaskError.prototype);
        expect((error as TaskError).name, what).to.be.a('string');
        expect((error as TaskError).state).to.equal('FAILURE');
        checked++;
      }
      // SUCCESS values are plain data too, even with __proto__ keys.
      const id = `crafted-${newRun('ok')}`;
      await raw.set(`celery-task-meta-${id}`, `{"status":"SUCCESS","result":{"__proto__":{"polluted":true},"a":1},"traceback":null,"children":[],"task_id":"${id}"}`);
      const value = (await app.asyncResult(id).get({ timeout: 5000 })) as Record<string, unknown>;
      expect(Object.getPrototypeOf(value)).to.equal(Object.prototype);
      expect(value.a).to.equal(1);
    } finally {
      await raw.quit();
    }
    report('crafted-results', { crafted: crafted.length, 'plain-task-errors': checked });
    expect(({} as Record<string, unknown>).polluted, 'Object.prototype polluted').to.equal(undefined);
    expect(existsSync(marker), 'crafted result executed code').to.equal(false);
  });

  it('keeps broker and backend passwords out of banners, logs, errors and results', async () => {
    const { rabbit, redis } = fx.svc;
    const secrets = [rabbit.password, redis.password];
    const run = newRun('secret');
    runs.push(run);
    const queue = `faults-${run}`;
    queues.push(queue);

    // 1. A working worker: banner and task logs, with a task that fails and one that succeeds.
    const worker = await startFaultWorker({ broker: rabbit.url, backend: redis.url(6), queue, concurrency: 2 });
    workers.push(worker);
    const app = producerApp({ broker_url: rabbit.url, result_backend: redis.url(6), task_default_queue: queue });
    apps.push(app);
    expect(await (await app.sendTask('faults.echo', ['hello'])).get({ timeout: 10_000 })).to.equal('hello');
    const failed = await app.sendTask('faults.fail', ['boom']);
    const failure = await failed.get({ timeout: 10_000, propagate: false });
    expect(failure).to.be.instanceOf(TaskError);
    expect(worker.output()).to.match(/transport: +amqp:\/\/faults:\*\*@127\.0\.0\.1:5681\//);
    expect(worker.output()).to.match(/results: +redis:\/\/:\*\*@127\.0\.0\.1:\d+\/6/);
    assertNoSecrets(worker.output(), secrets, 'the worker banner and logs');
    assertNoSecrets(errorText(failure), secrets, 'a task failure read back');

    // 3. A worker whose backend password is wrong: tasks run, the errors it logs name no password.
    const wrongRedis = `Wrong-Redis-${newRun('pw')}`;
    const badBackend = `redis://:${wrongRedis}@127.0.0.1:${redis.port}/6`;
    const worker2 = await startFaultWorker({ broker: rabbit.url, backend: badBackend, queue: `${queue}-2`, concurrency: 2 });
    workers.push(worker2);
    queues.push(`${queue}-2`);
    const app2 = producerApp({ broker_url: rabbit.url, result_backend: badBackend, task_default_queue: `${queue}-2` });
    apps.push(app2);
    await app2.sendTask('faults.record', [`${run}:wrongpass`]);
    await waitFor(async () => (await entries(run)).length >= 1, 10_000, 'the task to run despite the backend refusing us');
    await settle(() => /Result backend unavailable/.test(worker2.output()), 10_000);
    expect(worker2.output()).to.match(/Result backend unavailable/);
    assertNoSecrets(worker2.output(), [wrongRedis, ...secrets], 'the output of a worker whose backend refused it');
    // 4. delay() against a broker that refuses the login: a BrokerError without the password.
    const wrongAmqp = `Wrong-Amqp-${newRun('pw')}`;
    const refusingApp = producerApp({ broker_url: `amqp://faults:${wrongAmqp}@127.0.0.1:${rabbit.port}/`, task_default_queue: queue, task_publish_retry: false });
    apps.push(refusingApp);
    let sendError: unknown = null;
    try {
      await refusingApp.sendTask('faults.echo', ['x']);
    } catch (err) {
      sendError = err;
    }
    expect(sendError).to.be.instanceOf(BrokerError);
    expect((sendError as Error).message).to.match(/refused the login at amqp:\/\/faults:\*\*@127\.0\.0\.1:5681\//);
    assertNoSecrets(errorText(sendError), [wrongAmqp], 'a delay() error from a broker that refused the login');

    // 5. Every result stored on the fault tests' Redis so far (all databases used by these tests).
    const scanned = await scanResults(redis.url(0), [3, 4, 5, 6]);
    assertNoSecrets(scanned.text, secrets, 'stored results');
    report('secrets', { 'outputs-checked': 2, 'errors-checked': 4, 'results-scanned': scanned.count });

    // 6. get() against the refusing backend: a BackendError whose cause chain (as util.inspect, and so
    //    console.log or an unhandled rejection, prints it) does not carry the password.
    let getError: unknown = null;
    try {
      await app2.asyncResult('whatever').get({ timeout: 10_000 });
    } catch (err) {
      getError = err;
    }
    expect(getError).to.be.instanceOf(BackendError);
    assertNoSecrets(errorText(getError), [wrongRedis], 'a get() error from a backend that refused the password');
  });
  it('masks a password that contains an unencoded @ (the URL parser splits at the last @)', async () => {
    const { rabbit } = fx.svc;
    const run = newRun('atpw');
    const queue = `faults-${run}`;
    queues.push(queue);
    const atSecret = `Pa@ss-${newRun('x')}${newRun('y')}`;
    const url = `amqp://faults:${atSecret}@127.0.0.1:${rabbit.port}/`;
    expect(new URL(url).host, 'a valid URL: the host is after the last @').to.equal(`127.0.0.1:${rabbit.port}`);
    // A worker whose login is refused. At start-up it keeps retrying (broker_connection_retry_on_startup,
    // as Celery): read its output (banner and errors) once it has reported the refusal twice, then stop it.
    const refused = await startFaultWorker({ broker: url, queue, waitReady: false });
    workers.push(refused);
    await waitFor(() => (refused.output().match(/refused the login/g) ?? []).length >= 2, 15_000, 'the worker to report the refused login');
    refused.kill('SIGKILL');
    assertNoSecrets(refused.output(), [atSecret, rabbit.password], 'the output of a worker whose login was refused');

    // A delay() that fails the same way.
    const app = producerApp({ broker_url: url, task_default_queue: queue, task_publish_retry: false });
    apps.push(app);
    let sendError: unknown = null;
    try {
      await app.sendTask('faults.echo', ['x']);
    } catch (err) {
      sendError = err;
    }
    expect(sendError).to.be.instanceOf(BrokerError);
    assertNoSecrets(errorText(sendError), [atSecret], 'a delay() error (password with an @)');
  });
});

/** Every `celery-task-meta-*` value in the given databases, concatenated. */
async function scanResults(url: string, dbs: number[]): Promise<{ text: string; count: number }> {
  const client = new Redis(url);
  let text = '';
  let count = 0;
  try {
    for (const db of dbs) {
      await client.select(db);
      const keys = await client.keys('celery-task-meta-*');
      for (const key of keys) {
        text += `${(await client.get(key)) ?? ''}\n`;
        count++;
      }
    }
  } finally {
    await client.quit();
  }
  return { text, count };
}
