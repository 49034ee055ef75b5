import { expect } from 'chai';
import { Celery, Retry, Worker } from '../../../src/index.js';
import { setLogLevel, setLogSink } from '../../../src/support/log.js';

/** Issue #9, item 1: every way of writing Celery's `raise self.retry()` ends the run as one retry. */
describe('self.retry() idioms (memory broker)', () => {
  let app: Celery;
  let worker: Worker;
  const logs: string[] = [];
  let restoreSink: (l: string) => void;
  let bareRuns = 0;
  let shape: Record<string, boolean> = {};

  before(async () => {
    restoreSink = setLogSink((l) => logs.push(l));
    setLogLevel('info');
    app = new Celery('retry-idioms', { broker_url: 'memory://' });
    // A bare call: the Retry is dropped and the function goes on to return.
    app.task({ name: 'bare', bind: true }, (self) => {
      bareRuns++;
      if (self.request.retries === 0) self.retry({ countdown: 0.01 });
      return `run ${self.request.retries}`;
    });
    app.task({ name: 'returns-retry', bind: true }, async (self) => {
      if (self.request.retries > 0) return shape;
      const retry = self.retry({ countdown: 0.01 });
      shape = { isRetry: retry instanceof Retry, isError: retry instanceof Error, thenable: typeof retry.then === 'function' };
      return retry;
    });
    worker = new Worker(app, { hostname: 'retry@test', concurrency: 2 });
    await worker.start();
  });
  after(async () => {
    await worker.stop();
    await app.close();
    setLogSink(restoreSink);
    setLogLevel('warning');
  });

  it('a self.retry() neither thrown, returned nor awaited still ends the run as that retry', async () => {
    const r = await app.sendTask('bare');
    // The first run's own value is not stored: the retried run's is.
    expect(await r.get({ timeout: 2000 })).to.equal('run 1');
    expect(bareRuns).to.equal(2);
    expect(logs.some((l) => /WARNING.*bare\[.*\] called self\.retry\(\) but then returned a value instead of ending with the Retry/.test(l))).to.equal(true);
  });

  it('self.retry() returns a Retry error that is also thenable', async () => {
    const r = await app.sendTask('returns-retry');
    expect(await r.get({ timeout: 2000 })).to.deep.equal({ isRetry: true, isError: true, thenable: true });
  });
});
