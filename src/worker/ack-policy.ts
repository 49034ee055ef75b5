/**
 * The one function that decides what happens to a delivery: ack it, reject it
 * (drop or dead-letter), requeue it, or keep holding it. Every branch says why.
 *
 * Python Celery is the reference: early ack (the default) acks when the task
 * starts, so a crash mid-task loses it; `acks_late` acks after it finishes, so
 * a crash redelivers it (at least once).
 */

/** Something that happened to a delivery. */
export type DeliveryEvent =
  /** Not a task message we can read: bad JSON, wrong shape, not JSON at all. */
  | { kind: 'invalid' }
  /** A task name nobody registered here. */
  | { kind: 'unregistered' }
  /** Past its `expires`: REVOKED has been stored. */
  | { kind: 'expired' }
  /** A copy was confirmed in a delay queue that returns it when due. */
  | { kind: 'parked' }
  /** The worker is shutting down before the task started (waiting for a slot or its eta). */
  | { kind: 'not-started' }
  /** The task is about to run. */
  | { kind: 'starting'; acksLate: boolean }
  /** The task ran; its state has been stored (or the store was attempted). */
  | { kind: 'finished'; acksLate: boolean; outcome: RunOutcome; acksOnFailureOrTimeout: boolean; rejectOnWorkerLost?: boolean };

/**
 * How a run ended. `worker-lost`: the pool thread running it died first (it crashed, or
 * ran out of memory), Celery's WorkerLostError.
 */
export type RunOutcome =
  | 'success'
  | 'failure'
  | 'time-limit'
  | 'retry'
  | 'retry-not-published'
  | 'terminated'
  | 'ignored'
  | 'worker-lost'
  /** The task threw `Reject(reason, false)`: FAILURE stored, the message is to be dropped. */
  | 'rejected'
  /** The task threw `Reject(reason, true)`: nothing stored, the message is to go back to the queue. */
  | 'rejected-requeue';

/**
 * True when a task whose pool thread died goes back to the queue to run again, as Celery's
 * `task_reject_on_worker_lost` does under acks_late. The run then stores no FAILURE (Celery
 * marks it failed only when it is not requeued), so this is asked before storing.
 */
export function requeuesLostTask(acksLate: boolean, rejectOnWorkerLost: boolean): boolean {
  return acksLate && rejectOnWorkerLost;
}

export type AckDecision = 'ack' | 'reject' | 'requeue' | 'keep';

export function decideAck(event: DeliveryEvent): AckDecision {
  switch (event.kind) {
    case 'invalid':
      // It can never run, and a requeue would hand it back forever (a poison message):
      // reject without requeue. RabbitMQ drops it, or dead-letters it if the queue has a DLX.
      return 'reject';
    case 'unregistered':
      // As Python: FAILURE NotRegistered is stored and the message discarded. Requeueing would
      // loop on this worker; a worker that knows the task must consume a queue routed to it.
      return 'reject';
    case 'expired':
      // As Python: REVOKED is stored and the message acked; running it late is what expires forbids.
      return 'ack';
    case 'parked':
      // The broker confirmed the copy in the delay queue; holding the original too would run it twice.
      return 'ack';
    case 'not-started':
      // Never ran: give it back so another worker (or this one after restart) runs it.
      return 'requeue';
    case 'starting':
      // Early ack (Celery's default): acknowledged as the task starts; a crash from here on loses it.
      // With acks_late the message stays unacked until the task finished.
      return event.acksLate ? 'keep' : 'ack';
    case 'finished':
      // Early ack: acked when it started. A Reject then changes nothing either: Celery's
      // Request.reject() is a no-op on an acknowledged message (a requeue is lost, as in Python).
      if (!event.acksLate) return 'keep';
      switch (event.outcome) {
        case 'success':
          // The result is stored first, so a crash before this ack re-runs the task, never loses it.
          return 'ack';
        case 'retry':
          // The retry message is confirmed by the broker; this one is done.
          return 'ack';
        case 'terminated':
          // revoke(terminate=True): REVOKED is stored; Python's _announce_revoked acks it. Requeueing
          // would run a task the operator stopped.
          return 'ack';
        case 'ignored':
          // Replaced (self.replace): the replacement is confirmed by the broker and carries on.
          return 'ack';
        case 'rejected':
          // Reject(requeue=False): the task asked for its message to be dropped (or dead-lettered,
          // with a DLX), whatever task_acks_on_failure_or_timeout says; as Celery's on_failure, which
          // calls reject(requeue=False) for it before the ack-on-failure logic.
          return 'reject';
        case 'rejected-requeue':
          // Reject(requeue=True): the task asked to be redelivered (to any consumer, this one too).
          return 'requeue';
        case 'retry-not-published':
          // The retry could not be scheduled: requeue the original so the task is not lost.
          return 'requeue';
        case 'failure':
          // task_acks_on_failure_or_timeout (default true) acks failures like Python; when off,
          // the message is rejected without requeue (dead-lettered if the queue has a DLX).
          return event.acksOnFailureOrTimeout ? 'ack' : 'reject';
        case 'time-limit':
          // As Celery 5.7 (acks_on_timeout, which defaults to acks_on_failure_or_timeout): a task
          // stopped by its hard time limit is acked, or, with the setting off, requeued to run
          // again (test/fixtures/celery-5.7/worker_lost.json). FAILURE TimeLimitExceeded is stored either way.
          return event.acksOnFailureOrTimeout ? 'ack' : 'requeue';
        case 'worker-lost':
          // As Celery's on_failure for WorkerLostError: with task_reject_on_worker_lost the message
          // goes back to run again (nothing was stored); otherwise FAILURE WorkerLostError is
          // stored and the message acked, or rejected without requeue when
          // task_acks_on_failure_or_timeout is off (test/fixtures/celery-5.7/worker_lost.json).
          if (requeuesLostTask(event.acksLate, event.rejectOnWorkerLost === true)) return 'requeue';
          return event.acksOnFailureOrTimeout ? 'ack' : 'reject';
      }
  }
}
