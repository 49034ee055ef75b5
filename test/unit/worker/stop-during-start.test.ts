import { expect } from 'chai';
import { Celery, Worker } from '../../../src/index.js';
import type { MemoryBroker } from '../../../src/broker/memory.js';

/** Issue #9, item 5: stop() called while start() is still running wins, whatever the timing. */
describe('Worker.stop() during start()', () => {
  const microtasks = async (n: number): Promise<void> => {
    for (let i = 0; i < n; i++) await Promise.resolve();
  };

  // Every yield count from "at once" to "after start() has finished" hits a different await in start().
  for (const ticks of [0, 1, 2, 3, 4, 5, 6, 8, 10, 15, 20, 40]) {
    it(`stopped after ${ticks} microtask(s): nothing consumed afterwards, start() settles, no 'ready' after 'stopped'`, async () => {
      const app = new Celery('stop-start', { broker_url: 'memory://' });
      let runs = 0;
      app.task({ name: 'count' }, () => ++runs);
      const worker = new Worker(app, { hostname: 'stop-start@test', concurrency: 2 });
      const events: string[] = [];
      worker.on('ready', () => events.push('ready'));
      worker.on('stopped', () => events.push('stopped'));
      const started = worker.start();
      await microtasks(ticks);
      await worker.stop();
      await started;
      expect(events.at(-1)).to.equal('stopped');
      await app.sendTask('count');
      await new Promise((r) => setTimeout(r, 30));
      expect(runs, 'a task sent after stop() resolved ran').to.equal(0);
      expect((app.broker as MemoryBroker).size('celery')).to.equal(1);
      await app.close();
    });
  }
});
