import { expect } from 'chai';
import type { Delivery } from '../../../src/broker/types.js';
import { completeTaskMessage } from '../../../src/protocol/message.js';
import { TaskLifecycle } from '../../../src/worker/lifecycle.js';
import { WorkerState } from '../../../src/worker/state.js';

const delivery = { info: { exchange: '', routingKey: 'q', redelivered: false, consumerTag: 't', queue: 'q', priority: 0 } } as unknown as Delivery;

describe('WorkerState follows the task lifecycle', () => {
  it("a retry's next message arriving before the first run finished leaves the counts right", () => {
    const w = new TaskLifecycle();
    const s = new WorkerState('w@h');
    s.follow(w);
    const first = completeTaskMessage({ id: 'same', task: 't' });
    const second = completeTaskMessage({ id: 'same', task: 't', retries: 1 });
    w.emit('task-received', first, delivery);
    w.emit('task-started', first, true);
    w.emit('task-received', second, delivery); // published by first's retry(), delivered at once
    w.emit('task-scheduled', second);
    w.emit('task-retried', first, null);
    expect(s.active).to.equal(0);
    expect(s.list('scheduled').map((r) => r.message)).to.deep.equal([second]);
    expect(s.byId('same')?.message).to.equal(second);
    expect(s.processed).to.equal(1);
    expect(Object.fromEntries(s.totalCount)).to.deep.equal({ t: 1 });
    w.emit('task-released', second);
    expect(s.waiting).to.equal(0);
    expect(s.size).to.equal(0);
  });

  it('revokes by id and by stamp', () => {
    const s = new WorkerState('w@h');
    s.revoke(['a']);
    expect(s.isRevoked(completeTaskMessage({ id: 'a', task: 't' }))).to.equal(true);
    expect(s.isRevoked(completeTaskMessage({ id: 'b', task: 't' }))).to.equal(false);
    s.revokeStamps({ batch: ['b1', 'b2'] });
    const stamped = completeTaskMessage({ id: 'c', task: 't', extraHeaders: { stamped_headers: ['batch'], stamps: { batch: 'b2' } } });
    expect(s.revokingStamp(stamped)).to.deep.equal({ batch: 'b2' });
    expect(s.isRevoked(completeTaskMessage({ id: 'd', task: 't', extraHeaders: { stamped_headers: ['batch'], stamps: { batch: 'b3' } } }))).to.equal(false);
  });
});
