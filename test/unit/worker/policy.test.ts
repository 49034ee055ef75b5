import { expect } from 'chai';
import { decideAck, requeuesLostTask } from '../../../src/worker/ack-policy.js';
import { retryCountdown } from '../../../src/worker/retry.js';

describe('retry countdown', () => {
  it('backs off b x 2^(n-1): 3, 6, 12 s for retryBackoff 3, capped by retryBackoffMax', () => {
    expect([0, 1, 2].map((n) => retryCountdown({ retryBackoff: 3 }, n))).to.deep.equal([3, 6, 12]);
    expect(retryCountdown({ retryBackoff: true }, 4)).to.equal(16);
    expect(retryCountdown({ retryBackoff: 3, retryBackoffMax: 10 }, 5)).to.equal(10);
    expect(retryCountdown({ retryBackoff: 3 }, 20)).to.equal(600);
  });
  it('uses defaultRetryDelay (180 s) without backoff, and full jitter when asked', () => {
    expect(retryCountdown({}, 0)).to.equal(180);
    expect(retryCountdown({ defaultRetryDelay: 5 }, 3)).to.equal(5);
    expect(retryCountdown({ retryBackoff: 3, retryJitter: true }, 2, () => 0.999)).to.equal(12);
    expect(retryCountdown({ retryBackoff: 3, retryJitter: true }, 2, () => 0)).to.equal(0);
  });
});

describe('the ack decision', () => {
  it('never requeues what cannot run, and acks expired and parked messages', () => {
    expect(decideAck({ kind: 'invalid' })).to.equal('reject');
    expect(decideAck({ kind: 'unregistered' })).to.equal('reject');
    expect(decideAck({ kind: 'expired' })).to.equal('ack');
    expect(decideAck({ kind: 'parked' })).to.equal('ack');
    expect(decideAck({ kind: 'not-started' })).to.equal('requeue');
  });
  it('acks early when the task starts, or late after it finished', () => {
    expect(decideAck({ kind: 'starting', acksLate: false })).to.equal('ack');
    expect(decideAck({ kind: 'starting', acksLate: true })).to.equal('keep');
    const finished = (outcome: 'success' | 'failure' | 'retry' | 'retry-not-published' | 'time-limit', acksLate = true, acksOnFailureOrTimeout = true) =>
      decideAck({ kind: 'finished', acksLate, outcome, acksOnFailureOrTimeout });
    expect(finished('success', false)).to.equal('keep');
    expect(finished('success')).to.equal('ack');
    expect(finished('retry')).to.equal('ack');
    expect(finished('retry-not-published')).to.equal('requeue');
    expect(finished('failure')).to.equal('ack');
    expect(finished('failure', true, false)).to.equal('reject');
    // Celery 5.7 requeues a timed-out acks_late task when acks_on_timeout (= acks_on_failure_or_timeout) is off.
    expect(finished('time-limit')).to.equal('ack');
    expect(finished('time-limit', true, false)).to.equal('requeue');
  });
  it("settles a task whose pool thread died as Celery's on_failure settles WorkerLostError", () => {
    const lost = (acksLate: boolean, rejectOnWorkerLost: boolean, acksOnFailureOrTimeout = true) =>
      decideAck({ kind: 'finished', acksLate, outcome: 'worker-lost', acksOnFailureOrTimeout, rejectOnWorkerLost });
    expect(lost(false, true)).to.equal('keep'); // early ack: acked when it started
    expect(lost(true, false)).to.equal('ack'); // acks_late: FAILURE stored, acked
    expect(lost(true, true)).to.equal('requeue'); // task_reject_on_worker_lost: runs again
    expect(lost(true, false, false)).to.equal('reject'); // acks_on_failure_or_timeout off: dropped (or dead-lettered)
    expect(requeuesLostTask(true, true)).to.equal(true);
    expect(requeuesLostTask(false, true)).to.equal(false);
  });
});

describe('the retry message', () => {
  it("keeps custom headers but drops RabbitMQ's dead-lettering ones, and points parent_id at the task", async () => {
    const { retryMessage } = await import('../../../src/worker/retry.js');
    const { completeTaskMessage } = await import('../../../src/protocol/message.js');
    const original = completeTaskMessage({
      id: 't1', task: 'sms', args: ['138'], retries: 1,
      extraHeaders: { 'x-custom': 'kept', 'x-death': [{ count: 1 }], 'x-first-death-queue': 'q', 'x-last-death-reason': 'expired' },
    });
    const next = retryMessage(original, 1_800_000_000_000, {});
    expect(next.extraHeaders).to.deep.equal({ 'x-custom': 'kept' });
    expect(next).to.deep.include({ id: 't1', retries: 2, parentId: 't1', eta: 1_800_000_000_000 });
  });
});

describe('Reject from a task (the ack decision)', () => {
  const finished = (outcome: 'rejected' | 'rejected-requeue', acksLate: boolean, acksOnFailureOrTimeout = true) =>
    decideAck({ kind: 'finished', acksLate, outcome, acksOnFailureOrTimeout });
  it('acks_late: requeue=True requeues, requeue=False rejects, whatever task_acks_on_failure_or_timeout says', () => {
    expect(finished('rejected-requeue', true)).to.equal('requeue');
    expect(finished('rejected', true)).to.equal('reject');
    expect(finished('rejected', true, false)).to.equal('reject');
  });
  it('early ack: nothing more to do, the message was acked when the task started (as Celery)', () => {
    expect(finished('rejected-requeue', false)).to.equal('keep');
    expect(finished('rejected', false)).to.equal('keep');
  });
});

describe("self.retry({ args }) / self.retry({ kwargs }) (Celery 5.7's Task.retry)", () => {
  const p = (name: string, kind: 'positional' | 'varargs' | 'kwonly' | 'varkw' = 'positional') => ({ name, optional: false, kind });
  it('new args drop the inherited kwargs that name the parameters they fill, and keep the rest', async () => {
    const { retryArguments } = await import('../../../src/worker/retry.js');
    const params = [p('foo'), p('bar'), p('label')];
    expect(retryArguments(params, { args: [], kwargs: { foo: 1, bar: 2, label: 'kept' } }, { args: [2, 3] })).to.deep.equal({ args: [2, 3], kwargs: { label: 'kept' } });
  });
  it('new kwargs replace the inherited positional args they name, in place', async () => {
    const { retryArguments } = await import('../../../src/worker/retry.js');
    const params = [p('foo'), p('bar')];
    expect(retryArguments(params, { args: [1, 2], kwargs: {} }, { kwargs: { foo: 2 } })).to.deep.equal({ args: [2, 2], kwargs: {} });
    // *args keep their positions; a kwarg naming no positional parameter stays a kwarg.
    const withVar = [p('a'), p('args', 'varargs'), p('kw', 'varkw')];
    expect(retryArguments(withVar, { args: [1, 2, 3], kwargs: {} }, { kwargs: { a: 9, other: 1 } })).to.deep.equal({ args: [9, 2, 3], kwargs: { other: 1 } });
  });
  it('args that do not fit the parameters are left to the next run, as Python leaves bind_partial errors', async () => {
    const { retryArguments } = await import('../../../src/worker/retry.js');
    expect(retryArguments([p('foo')], { args: [1, 2], kwargs: {} }, { kwargs: { foo: 3 } })).to.deep.equal({ args: [1, 2], kwargs: { foo: 3 } });
  });
});
