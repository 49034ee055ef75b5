import { execFileSync } from 'node:child_process';
import { expect } from 'chai';
import { Celery, ImproperlyConfigured, Worker } from '../../../src/index.js';

/**
 * What the worker's allocation-free hot path must not change for a task: the parsed message
 * shares frozen defaults for its time limits and custom headers, but a task's own request gets
 * objects it may change.
 */
describe('worker hot path: shared defaults stay private to the worker', () => {
  let app: Celery;
  let worker: Worker;

  before(async () => {
    app = new Celery('hot', { broker_url: 'memory://' });
    app.task({ name: 'mutate', bind: true }, (self) => {
      const { headers, timeLimit } = self.request;
      const before = { headers: { ...headers }, timeLimit: [...timeLimit] };
      headers.seen = true; // a task may note things on its request
      timeLimit[0] = 5;
      return before;
    });
    worker = new Worker(app, { hostname: 'hot@test', concurrency: 2 });
    await worker.start();
  });
  after(async () => {
    await worker.stop();
    await app.close();
  });

  it('gives each run request.headers and request.timeLimit it can change, without leaking into the next run', async () => {
    for (let i = 0; i < 3; i++) {
      const value = await (await app.sendTask('mutate', [])).get({ timeout: 2000 });
      expect(value).to.deep.equal({ headers: {}, timeLimit: [null, null] });
    }
  });
});

describe('worker_heap_growing_percent', () => {
  const run = (execArgv: string[], value: string): string =>
    execFileSync(process.execPath, [...execArgv, '--import', 'tsx', '--input-type=module', '-e',
      `import { tuneWorkerHeap } from './src/worker/heap.ts'; process.stdout.write(String(tuneWorkerHeap(${value})));`], { encoding: 'utf8' });

  it('sets V8\'s heap growing factor for the CLI worker, unless node was given one, or the setting is null', () => {
    expect(run([], '50')).to.equal('50');
    expect(run(['--heap-growing-percent=20'], '50')).to.equal('null');
    expect(run([], 'null')).to.equal('null');
  });

  it('is checked like every setting', () => {
    expect(() => new Celery('x', { broker_url: 'memory://', worker_heap_growing_percent: 0 })).to.throw(ImproperlyConfigured, /worker_heap_growing_percent must be between 1 and 300/);
    expect(new Celery('x', { broker_url: 'memory://', worker_heap_growing_percent: null }).conf.worker_heap_growing_percent).to.equal(null);
    expect(new Celery('x', { broker_url: 'memory://' }).conf.worker_heap_growing_percent).to.equal(100);
  });
});
