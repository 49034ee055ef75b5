/** Celery's rpc:// result backend between TypeScript and Python, both directions. */
import { expect } from 'chai';
import { Celery, TaskError } from '../../src/index.js';
import { runPythonClient, startPythonWorker, type PythonWorker } from '../helpers/python.js';
import { AMQP_URL, deleteQueues, uniqueName } from '../helpers/services.js';
import { startTsWorker, type TsWorker } from '../helpers/ts-worker.js';

describe('rpc:// results between TypeScript and Python (Celery 5.7)', function () {
  this.timeout(60_000);

  describe('TypeScript caller, Python worker', () => {
    const queue = uniqueName('rpc-py');
    let worker: PythonWorker;
    let app: Celery;
    before(async () => {
      worker = await startPythonWorker({ queues: [queue], concurrency: 2, pool: 'threads', env: { PYTASKS_BACKEND: 'rpc://' } });
      app = new Celery('rpc-ts', { broker_url: AMQP_URL, result_backend: 'rpc://', task_default_queue: queue });
    });
    after(async () => {
      await app.close();
      await worker.stop();
      await deleteQueues(queue);
    });

    it('receives the value and the failure over its reply queue', async () => {
      expect(await (await app.sendTask('py.add', [2, 3])).get({ timeout: 20_000 })).to.equal(5);
      const err = await (await app.sendTask('py.fail', ['bad'])).get({ timeout: 20_000 }).catch((e: unknown) => e);
      expect(err).to.be.instanceOf(TaskError);
      expect(err).to.deep.include({ excType: 'ValueError', excMessage: 'bad' });
      expect(await (await app.sendTask('py.retry_twice')).get({ timeout: 20_000 })).to.equal(2);
    });
  });

  describe('Python caller, TypeScript worker', () => {
    const queue = uniqueName('rpc-ts');
    let worker: TsWorker;
    before(async () => {
      worker = await startTsWorker({ queues: [queue], env: { TSAPP_BACKEND: 'rpc://' } });
    });
    after(async () => {
      await worker.stop();
      await deleteQueues(queue);
    });

    it("Python's get() receives the value, the TypeError and a retried result", async () => {
      const send = (name: string, ...flags: string[]) =>
        runPythonClient(['--backend', 'rpc://', 'send', name, '--queue', queue, '--get', '--timeout', '20', ...flags]);
      expect(await send('ts.add', '--args', '[2, 3]')).to.deep.include({ state: 'SUCCESS', result: 5 });
      expect(await send('ts.fail_type', '--args', '["bad"]')).to.deep.include({ exc_type: 'TypeError', exc_message: 'bad' });
      expect(await send('ts.retry_twice')).to.deep.include({ state: 'SUCCESS', result: 2 });
    });
  });
});
