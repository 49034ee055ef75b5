/**
 * Python Celery 5.7 client -> ts-celery worker, on RabbitMQ: what Celery's own
 * integration suite found missing or wrong. `Reject` from a task (requeue or
 * drop, acks_late or early ack), `self.request.properties`, which args/kwargs
 * `self.retry({ args })` / `({ kwargs })` keep, expiry while waiting for a
 * concurrency slot, and `revoke()` on results rebuilt from what a task sent.
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { expect } from 'chai';
import { Celery, GroupResult } from '../../src/index.js';
import { PY_DIR, PYTHON } from '../helpers/python.js';
import { AMQP_URL, REDIS_URL, deleteQueues, listQueue, RABBIT_VHOST, uniqueName } from '../helpers/services.js';
import { startTsWorker, type TsWorker } from '../helpers/ts-worker.js';

const run = promisify(execFile);
const fixture = JSON.parse(readFileSync(new URL('../fixtures/celery-5.7/reject_and_request_properties.json', import.meta.url), 'utf8')) as {
  request_properties_amqp: Record<string, unknown>;
  reject_without_requeue_meta: { result: unknown };
};

describe('Celery 5.7 client -> ts-celery worker: Reject, request.properties, retry arguments, expiry (Celery suite fixes)', function () {
  this.timeout(60_000);
  const queue = uniqueName('predicates');
  let worker: TsWorker;

  /** Runs Python (Celery 5.7) with `pytasks` on this queue; returns the JSON its last line prints. */
  async function py(lines: string[]): Promise<any> {
    const script = ['import json, pytasks', 'app = pytasks.app', ...lines].join('\n');
    const { stdout } = await run(PYTHON.pypi, ['-c', script], { cwd: PY_DIR, env: { ...process.env, PYTASKS_QUEUE: queue } });
    return JSON.parse(stdout.trim().split('\n').at(-1)!);
  }

  before(async () => {
    worker = await startTsWorker({ app: 'test/interop/predicates-app', queues: [queue], concurrency: 1, env: { PREDAPP_QUEUE: queue } });
  });
  after(async () => {
    expect(await worker.stop()).to.equal(0);
    await deleteQueues(queue);
  });

  it('Reject(requeue=True) with acks_late: the message comes back redelivered and the second run succeeds', async () => {
    const r = await py([
      "r = app.send_task('pred.reject_then_succeed')",
      'print(json.dumps({"id": r.id, "value": r.get(timeout=20), "state": r.state}))',
    ]);
    expect(r).to.deep.include({ value: 'second-pass', state: 'SUCCESS' });
    // Logged as Celery logs it (a warning), once: the second delivery did not reject.
    expect(worker.output().match(new RegExp(`WARNING.*pred\\.reject_then_succeed\\[${r.id}\\] reject requeue=True: try again`, 'g'))).to.have.length(1);
  });

  it("Reject(requeue=False): FAILURE, and Python's get() raises celery.exceptions.Reject with Celery's args", async () => {
    for (const name of ['pred.reject_drop', 'pred.reject_drop_late']) {
      const r = await py([
        `r = app.send_task('${name}')`,
        'from celery.exceptions import Reject',
        'try:\n    r.get(timeout=20); out = {"raised": None}',
        'except Reject as e:\n    out = {"raised": type(e).__module__ + "." + type(e).__name__, "args": list(e.args)}',
        'out.update(state=r.state, failed=r.failed())',
        'print(json.dumps(out))',
      ]);
      expect(r).to.deep.include({ raised: 'celery.exceptions.Reject', state: 'FAILURE', failed: true });
      expect(r.args[1]).to.equal(false);
    }
    // The stored exception is what Celery 5.7's own worker stores for Reject('no', requeue=False).
    const stored = await py([
      "r = app.send_task('pred.reject_drop')",
      'import redis; r.get(timeout=20, propagate=False)',
      `print(redis.Redis.from_url('${REDIS_URL}').get('celery-task-meta-' + r.id).decode())`,
    ]);
    expect(stored.result).to.deep.equal(fixture.reject_without_requeue_meta.result);
    // Dropped, not requeued: nothing waits in the queue and neither ran twice.
    const stats = await listQueue(RABBIT_VHOST, queue);
    expect((stats?.messages_ready ?? 0) + (stats?.messages_unacknowledged ?? 0)).to.equal(0);
    expect(worker.output().match(/pred\.reject_drop_late\[[^\]]+\] reject requeue=False: dropped/g)).to.have.length(1);
  });

  it('Reject(requeue=True) with early ack: the message was acked already, so it is gone and the state stays PENDING (as Celery)', async () => {
    const r = await py(["r = app.send_task('pred.reject_requeue_early')", 'print(json.dumps({"id": r.id}))']);
    const line = new RegExp(`pred\\.reject_requeue_early\\[${r.id}\\] reject requeue=True`);
    for (let i = 0; i < 200 && !line.test(worker.output()); i++) await new Promise((res) => setTimeout(res, 50));
    expect(worker.output()).to.match(line);
    const state = await py([`r = app.AsyncResult('${r.id}')`, 'print(json.dumps(r.state))']);
    expect(state).to.equal('PENDING');
    expect(worker.output().match(line)).to.have.length(1);
  });

  it("self.request.properties are the message's AMQP properties as Celery 5.7 exposes them (app_id and all)", async () => {
    const props = await py([
      "r = app.send_task('pred.properties', app_id='1234')",
      'print(json.dumps(r.get(timeout=20)))',
    ]);
    expect(props).to.have.property('app_id', '1234');
    // The same names as Celery's own worker gives (captured from Celery 5.7, fixture).
    expect(Object.keys(props).sort()).to.deep.equal(Object.keys(fixture.request_properties_amqp).sort());
    expect(props).to.deep.include({ content_type: 'application/json', content_encoding: 'utf-8', delivery_mode: 2 });
    expect(props.application_headers).to.include({ task: 'pred.properties', lang: 'py' });
  });

  it("self.retry({ args }) drops the kwargs the new args replace, and ({ kwargs }) the args, as Celery 5.7's Task.retry", async () => {
    const r = await py([
      "a = app.send_task('pred.retry_with_args_after_kwargs', kwargs={'foo': 1, 'bar': 2, 'label': 'kept'})",
      "b = app.send_task('pred.retry_with_kwargs_after_args', args=(1, 2))",
      'print(json.dumps([a.get(timeout=20), b.get(timeout=20)]))',
    ]);
    expect(r).to.deep.equal([
      { foo: 2, bar: 3, label: 'kept', retries: 1 },
      { foo: 2, bar: 2, retries: 1 },
    ]);
  });

  it("self.retry({ expires }) sets the retried run's expiry, as Celery's retry(expires=...)", async () => {
    const r = await py([
      "r = app.send_task('pred.retry_expires')",
      'r.get(timeout=20, propagate=False)',
      'print(json.dumps({"state": r.state}))',
    ]);
    expect(r).to.deep.equal({ state: 'REVOKED' });
  });

  it('a task that expires while it waits for a concurrency slot is not run: REVOKED, as Celery', async () => {
    const r = await py([
      "busy = [app.send_task('pred.sleep', args=(1.5,)) for _ in range(2)]",
      "r = app.send_task('pred.add', args=(1, 1), expires=1)",
      'from celery.exceptions import TaskRevokedError',
      'try:\n    r.get(timeout=20); out = {"raised": None}',
      'except TaskRevokedError:\n    out = {"raised": "TaskRevokedError"}',
      'out.update(id=r.id, state=r.state)',
      '[b.get(timeout=20) for b in busy]',
      'print(json.dumps(out))',
    ]);
    expect(r).to.deep.include({ raised: 'TaskRevokedError', state: 'REVOKED' });
    expect(worker.output()).not.to.match(new RegExp(`pred\\.add\\[${r.id}\\] succeeded`));
  });

  it("results rebuilt from what a task sent (children()) carry the app: revoke() works on them as on delay()'s", async () => {
    const app = new Celery('predclient', { broker_url: AMQP_URL, result_backend: REDIS_URL, task_default_queue: queue });
    try {
      const parent = await app.sendTask('pred.spawn_later', [], {});
      expect(await parent.get({ timeout: 20_000 })).to.equal('sent');
      const [child] = await parent.children();
      expect(child).to.be.instanceOf(GroupResult);
      const members = (child as GroupResult).results;
      expect(members).to.have.length(2);
      // Before, these threw "has no app"; now each reaches the worker, which confirms the revoke.
      const replies = await members[0]!.revoke({ reply: true });
      expect(JSON.stringify(replies)).to.include(members[0]!.id);
      await (child as GroupResult).revoke();
      const flagged = new RegExp(`Tasks flagged as revoked: (${members[0]!.id}, ${members[1]!.id}|${members[1]!.id}, ${members[0]!.id})`);
      for (let i = 0; i < 100 && !flagged.test(worker.output()); i++) await new Promise((res) => setTimeout(res, 50));
      expect(worker.output()).to.match(flagged);
    } finally {
      await app.close();
    }
  });
});

describe('Celery 5.7 client -> ts-celery worker -P threads: Reject from a task in a worker thread', function () {
  this.timeout(60_000);
  const queue = uniqueName('predicates-threads');
  let worker: TsWorker;
  before(async () => {
    worker = await startTsWorker({ app: 'test/interop/predicates-app', queues: [queue], concurrency: 2, extraArgs: ['-P', 'threads'], env: { PREDAPP_QUEUE: queue } });
  });
  after(async () => {
    expect(await worker.stop()).to.equal(0);
    await deleteQueues(queue);
  });

  it('requeue=True redelivers (acks_late); requeue=False stores FAILURE with the Reject; the thread sees request.properties', async () => {
    const script = [
      'import json, pytasks',
      'from celery.exceptions import Reject',
      "a = pytasks.app.send_task('pred.reject_then_succeed')",
      "b = pytasks.app.send_task('pred.reject_drop_late')",
      "c = pytasks.app.send_task('pred.properties', app_id='in-a-thread')",
      'try:\n    b.get(timeout=20); raised = None',
      'except Reject as e:\n    raised = list(e.args)',
      'print(json.dumps({"a": a.get(timeout=20), "b": raised, "b_state": b.state, "app_id": c.get(timeout=20)["app_id"]}))',
    ].join('\n');
    const { stdout } = await run(PYTHON.pypi, ['-c', script], { cwd: PY_DIR, env: { ...process.env, PYTASKS_QUEUE: queue } });
    expect(JSON.parse(stdout.trim().split('\n').at(-1)!)).to.deep.equal({ a: 'second-pass', b: ['dropped', false], b_state: 'FAILURE', app_id: 'in-a-thread' });
  });
});
