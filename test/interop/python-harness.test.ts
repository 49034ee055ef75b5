/**
 * Smoke test of the Python side of the interop harness itself: a real Python
 * Celery worker (pytasks) and a real Python producer (pyclient), for both
 * Celery 5.7 (.venv) and Debian's 5.2.6.
 */
import { expect } from 'chai';
import { PYTHON, runPythonClient, startPythonWorker, type PythonKind, type PythonWorker } from '../helpers/python.js';
import { RABBIT_VHOST, deleteQueues, listQueue, uniqueName } from '../helpers/services.js';

const EXPECTED_VERSION: Record<PythonKind, RegExp> = {
  pypi: /^5\.7\./,
  debian: /^5\.2\./,
};

for (const python of Object.keys(PYTHON) as PythonKind[]) {
  describe(`python harness (${python}: ${PYTHON[python]})`, function () {
    this.timeout(60_000);
    const queue = uniqueName('harness');
    let worker: PythonWorker | undefined;

    before(async function () {
      worker = await startPythonWorker({ python, queues: [queue] });
    });

    after(async function () {
      await worker?.stop();
      await deleteQueues(queue);
    });

    it('worker consumes from its unique queue', async function () {
      const stats = await listQueue(RABBIT_VHOST, queue);
      expect(stats, `queue ${queue} exists`).to.not.equal(null);
      expect(stats?.consumers).to.equal(1);
      expect(worker?.nodename).to.match(/^py-.+@.+/);
    });

    it('pyclient sends py.add and gets 5', async function () {
      const r = await runPythonClient<number>(
        ['send', 'py.add', '--args', '[2, 3]', '--queue', queue, '--get', '--timeout', '20'],
        { python },
      );
      expect(r.celery_version).to.match(EXPECTED_VERSION[python]);
      expect(r.state).to.equal('SUCCESS');
      expect(r.result).to.equal(5);
      expect(r.exc_type).to.equal(null);
    });

    it('py.fail comes back as ValueError', async function () {
      const r = await runPythonClient(
        ['send', 'py.fail', '--args', '["boom"]', '--queue', queue, '--get', '--timeout', '20'],
        { python },
      );
      expect(r.state).to.equal('FAILURE');
      expect(r.exc_type).to.equal('ValueError');
      expect(r.exc_module).to.equal('builtins');
      expect(r.exc_message).to.equal('boom');
      expect(r.exc_args).to.deep.equal(['boom']);
      // `state` on the same id reads the stored exception back
      const s = await runPythonClient(['state', r.id], { python });
      expect(s.state).to.equal('FAILURE');
      expect(s.exc_type).to.equal('ValueError');
    });
  });
}
