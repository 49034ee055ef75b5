/** The worker: consume, run with bounded concurrency, hold ETAs, settle, shut down cleanly. */
export { Worker, type WorkerOptions, type WorkerStats } from './worker.js';
export { TimeLimitExceeded, SoftTimeLimitExceeded } from './execute.js';
export { decideAck, type AckDecision, type DeliveryEvent, type RunOutcome } from './ack-policy.js';
