import { expect } from 'chai';
import { Celery, Reject, TaskError, Worker } from '../../../src/index.js';
import { setLogSink } from '../../../src/support/log.js';

/**
 * `Reject` from a task, the events a monitor sees (as Celery 5.7's Request.on_failure sends them):
 * requeue=False -> task-failed, then task-rejected only when the message was still unacked
 * (acks_late); requeue=True -> task-rejected(requeue) with acks_late, nothing with early ack.
 */
describe('Reject from a task: states and lifecycle events (memory broker)', () => {
  let app: Celery;
  let worker: Worker;
  const events: string[] = [];
  let restoreSink: (l: string) => void;

  before(async () => {
    restoreSink = setLogSink(() => undefined);
    app = new Celery('rej', { broker_url: 'memory://' });
    app.task({ name: 'drop_late', acksLate: true }, () => { throw new Reject('bad', false); });
    app.task({ name: 'drop_early' }, () => { throw new Reject('bad', false); });
    app.task({ name: 'requeue_late', bind: true, acksLate: true }, (self) => {
      if (!self.request.deliveryInfo.redelivered) throw new Reject(null, true);
      return 'again';
    });
    app.task({ name: 'requeue_early' }, () => { throw new Reject('lost', true); });
    worker = new Worker(app, { hostname: 'rej@test', concurrency: 2 });
    for (const kind of ['task-failed', 'task-rejected', 'task-succeeded', 'task-ignored'] as const) {
      const record = (m: { task: string }, arg?: unknown): void => void events.push(`${m.task} ${kind}${kind === 'task-rejected' ? ` requeue=${String(arg)}` : ''}`);
      worker.lifecycle.on(kind, record as never);
    }
    await worker.start();
  });
  after(async () => {
    await worker.stop();
    await app.close();
    setLogSink(restoreSink);
  });

  const settle = () => new Promise((r) => setTimeout(r, 50));

  it('requeue=False: FAILURE with the Reject (Celery\'s args), task-failed, and task-rejected only under acks_late', async () => {
    for (const name of ['drop_late', 'drop_early']) {
      const err = await (await app.sendTask(name, [])).get({ timeout: 2000 }).catch((e: unknown) => e);
      expect(err).to.be.instanceOf(TaskError);
      expect(err).to.deep.include({ excType: 'Reject', excModule: 'celery.exceptions', excArgs: ['bad', false] });
    }
    await settle();
    expect(events).to.include.members(['drop_late task-failed', 'drop_late task-rejected requeue=false', 'drop_early task-failed']);
    expect(events).not.to.include('drop_early task-rejected requeue=false');
  });

  it('requeue=True: acks_late redelivers (task-rejected requeue=true); early ack loses it, and it is no longer active', async () => {
    expect(await (await app.sendTask('requeue_late', [])).get({ timeout: 2000 })).to.equal('again');
    const lost = await app.sendTask('requeue_early', []);
    await settle();
    expect(events).to.include.members(['requeue_late task-rejected requeue=true', 'requeue_late task-succeeded', 'requeue_early task-ignored']);
    expect(events.filter((e) => e.startsWith('requeue_early'))).to.deep.equal(['requeue_early task-ignored']);
    expect(await lost.state()).to.equal('PENDING');
    expect(worker.active).to.equal(0);
  });
});
