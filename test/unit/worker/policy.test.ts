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
