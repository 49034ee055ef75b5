import { expect } from 'chai';
import { Celery, ImproperlyConfigured } from '../../../src/index.js';

/** Issue #9, item 9: a misspelt option is an error that names the right one, never silently ignored. */
describe('task and applyAsync options', () => {
  it('an unknown task option is an error suggesting the closest name', () => {
    const app = new Celery('t');
    expect(() => app.task({ name: 'x', maxRetrys: 5 } as never, () => 1)).to.throw(
      ImproperlyConfigured, /Unknown task option "maxRetrys" for task "x": did you mean "maxRetries"\?/,
    );
    // Celery's snake_case names point to the camelCase ones.
    expect(() => app.task({ name: 'y', autoretry_for: [Error] } as never, () => 1)).to.throw(ImproperlyConfigured, /did you mean "autoretryFor"/);
    expect(() => app.task({ name: 'z', acks_late: true } as never, () => 1)).to.throw(ImproperlyConfigured, /did you mean "acksLate"/);
    // Nothing close: the error lists no guess but still fails.
    expect(() => app.task({ name: 'w', frobnicate: 1 } as never, () => 1)).to.throw(ImproperlyConfigured, /Unknown task option "frobnicate" for task "w"$/);
    expect(app.tasks.has('x')).to.equal(false);
  });

  it('accepts every documented task option', () => {
    const app = new Celery('t');
    const task = app.task(
      {
        name: 'all', bind: false, maxRetries: 1, defaultRetryDelay: 1, retryBackoff: 2, retryBackoffMax: 10, retryJitter: false,
        autoretryFor: [Error], acksLate: true, rejectOnWorkerLost: false, ignoreResult: false, trackStarted: true, timeLimit: 5,
        softTimeLimit: 4, queue: 'q', routingKey: 'q', priority: 1, expires: 60, params: ['x'],
      },
      (x: number) => x,
    );
    expect(task.name).to.equal('all');
  });

  it('an unknown applyAsync option rejects the call before anything is sent, suggesting the closest name', async () => {
    const app = new Celery('t', { broker_url: 'memory://' });
    const add = app.task({ name: 'add' }, (x: number, y: number) => x + y);
    const err = await add.applyAsync([1, 2], {}, { countdwn: 5 } as never).catch((e: unknown) => e);
    expect(err).to.be.instanceOf(ImproperlyConfigured);
    expect((err as Error).message).to.match(/Unknown applyAsync option "countdwn": did you mean "countdown"\?/);
    const err2 = await app.sendTask('add', [1, 2], {}, { task_id: 'abc' } as never).catch((e: unknown) => e);
    expect((err2 as Error).message).to.match(/did you mean "taskId"/);
    await app.close();
  });
});
