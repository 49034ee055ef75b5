/**
 * TypeScript producer -> real Python Celery worker: what TS sends, Python runs,
 * and TS reads Python's results back (issue: core protocol).
 */
import { expect } from 'chai';
import { Celery, signature, TaskError } from '../../src/index.js';
import { startPythonWorker, type PythonKind, type PythonWorker } from '../helpers/python.js';
import { AMQP_URL, REDIS_URL, deleteQueues, uniqueName } from '../helpers/services.js';

function suite(python: PythonKind, full: boolean): void {
  describe(`TypeScript producer -> Python Celery worker (${python === 'pypi' ? 'Celery 5.7 from PyPI' : "Debian's Celery 5.2.6"})`, function () {
    this.timeout(60_000);
    const queue = uniqueName(`tsprod-${python}`);
    let worker: PythonWorker;
    let app: Celery;
    let add: ReturnType<typeof declareAdd>;
    /** A Python task, declared on the TypeScript side so calls to it are typed. */
    const declareAdd = (a: Celery) => a.task({ name: 'py.add' }, (x: number, y: number) => x + y);

    before(async () => {
      worker = await startPythonWorker({ python, queues: [queue], concurrency: 4, pool: 'threads' });
      app = new Celery('ts-producer', { broker_url: AMQP_URL, result_backend: REDIS_URL, task_default_queue: queue });
      add = declareAdd(app);
    });
    after(async () => {
      await app.close();
      await worker.stop();
      await deleteQueues(queue);
    });

    it('runs a typed task declared in TypeScript with positional args', async () => {
      const result = await add.delay(2, 3);
      expect(await result.get({ timeout: 20_000 })).to.equal(5);
      expect(await result.state()).to.equal('SUCCESS');
    });

    it('passes kwargs and mixed args by name', async () => {
      expect(await (await app.sendTask('py.add', [], { x: 2, y: 40 })).get({ timeout: 20_000 })).to.equal(42);
      const echoed = await (await app.sendTask('py.echo', ['a', 1, null, [true]], { k: { nested: 'é' } })).get({ timeout: 20_000 });
      expect(echoed).to.deep.equal({ args: ['a', 1, null, [true]], kwargs: { k: { nested: 'é' } } });
    });

    it("a Python exception comes back as a rejection with Python's type and message", async () => {
      const err = await (await app.sendTask('py.fail', ['the number is wrong'])).get({ timeout: 20_000 }).catch((e: unknown) => e);
      expect(err).to.be.instanceOf(TaskError);
      expect(err).to.deep.include({ excType: 'ValueError', excMessage: 'the number is wrong', excModule: 'builtins', state: 'FAILURE' });
      expect((err as TaskError).remoteTraceback).to.match(/Traceback \(most recent call last\)[\s\S]*ValueError: the number is wrong/);
    });

    it('a Python task that retries twice comes back with its final value', async () => {
      expect(await (await app.sendTask('py.retry_twice')).get({ timeout: 30_000 })).to.equal(2);
    });

    if (!full) return;

    it('rejects with the custom exception class name', async () => {
      const err = await (await app.sendTask('py.fail_custom', ['provider down'])).get({ timeout: 20_000 }).catch((e: unknown) => e);
      expect(err).to.deep.include({ excType: 'SmsProviderError', excMessage: 'provider down', excModule: 'pytasks' });
    });

    it('retries exhausted: FAILURE with the original exception', async () => {
      const err = await (await app.sendTask('py.retry_forever')).get({ timeout: 30_000 }).catch((e: unknown) => e);
      expect(err).to.deep.include({ excType: 'ValueError', excMessage: 'still failing' });
    });

    it('honours countdown and eta', async () => {
      const sent = Date.now() / 1000;
      const viaCountdown = await app.sendTask<number>('py.now', [], {}, { countdown: 2 });
      const viaEta = await app.sendTask<number>('py.now', [], {}, { eta: new Date(Date.now() + 1500) });
      const immediate = await app.sendTask<number>('py.now');
      const [c, e, i] = await Promise.all([viaCountdown.get({ timeout: 20_000 }), viaEta.get({ timeout: 20_000 }), immediate.get({ timeout: 20_000 })]);
      expect(c).to.be.at.least(sent + 2);
      expect(e).to.be.at.least(sent + 1.5);
      expect(i).to.be.below(sent + 1.5);
    });

    it('honours expires: a task due after its expiry is REVOKED, not run', async () => {
      const err = await (await app.sendTask('py.now', [], {}, { countdown: 2, expires: 1 })).get({ timeout: 20_000 }).catch((e: unknown) => e);
      expect(err).to.be.instanceOf(TaskError);
      expect(err).to.deep.include({ excType: 'TaskRevokedError', state: 'REVOKED' });
    });

    it('sets parent and root ids the way Python reads them', async () => {
      const info = await (await app.sendTask<Record<string, unknown>>('py.request_info', [], {}, { parentId: 'parent-1', rootId: 'root-1' })).get({ timeout: 20_000 });
      expect(info).to.deep.include({ parent_id: 'parent-1', root_id: 'root-1', retries: 0 });
      expect((info.delivery_info as { routing_key: string }).routing_key).to.equal(queue);
    });

    it('a link callback set in TypeScript runs on the Python worker with the result', async () => {
      const callbackId = uniqueName('callback');
      const r = await add.applyAsync([2, 3], {}, { link: signature('py.mul', [10], {}, { task_id: callbackId, queue }) });
      expect(await r.get({ timeout: 20_000 })).to.equal(5);
      expect(await app.asyncResult(callbackId).get({ timeout: 20_000 })).to.equal(50);
    });

    it("the example's ccpSendSmsCode.delay() publishes a message the Python worker runs", async () => {
      const { ccpSendSmsCode } = await import('../../tasks/sms/tasks.js');
      const { app: meiduo } = await import('../../tasks/main.js');
      // The module may already be loaded (and connected) by another test: point it at RabbitMQ here.
      await meiduo.close();
      meiduo.configFromObject({ broker_url: AMQP_URL, result_backend: REDIS_URL });
      try {
        const r = await ccpSendSmsCode.applyAsync(['13800138000', '123456'], {}, { queue });
        expect(await r.get({ timeout: 20_000 })).to.deep.equal({ mobile: '13800138000', sms_code: '123456', worker: 'py' });
      } finally {
        await meiduo.close();
      }
    });
  });
}

suite('pypi', true);
suite('debian', false);
