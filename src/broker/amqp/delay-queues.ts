/**
 * Delay queues for parking far-future ETA tasks on RabbitMQ.
 *
 * Holding an ETA message unacked for longer than RabbitMQ's
 * `consumer_timeout` (30 min by default) gets the channel killed
 * (celery/celery#6760), and holding thousands costs memory. Instead, a
 * message due later than the worker's hold limit is re-published into
 * `ts-celery.delay.<queue>.<N>s`: a durable queue with a fixed TTL of N
 * seconds that dead-letters expired messages back to `<queue>` through the
 * default exchange. Every message in one such queue has the same TTL, so
 * they expire in arrival order (RabbitMQ only expires at the head). The
 * ladder of N picks the longest step not past the due time, so a message is
 * never returned late; one due in 3 h takes a few hops.
 *
 * Python workers never see these queues; a message coming back is an
 * ordinary ETA task message, which either side can run.
 */
import type { QueueDeclaration } from '../types.js';

/** TTL steps in seconds. */
export const DELAY_STEPS_S = [1, 5, 30, 120, 600, 1800, 7200, 21600, 86400] as const;

/** The longest step that does not exceed `delayMs`, or null when under a second. */
export function delayStep(delayMs: number): number | null {
  let chosen: number | null = null;
  for (const s of DELAY_STEPS_S) if (s * 1000 <= delayMs) chosen = s;
  return chosen;
}

/** The delay queue that returns messages to `origin` after `stepS` seconds. */
export function delayQueueDeclaration(origin: string, stepS: number): QueueDeclaration {
  const name = `ts-celery.delay.${origin}.${stepS}s`;
  return {
    name,
    durable: true,
    autoDelete: false,
    arguments: {
      'x-message-ttl': stepS * 1000,
      'x-dead-letter-exchange': '',
      'x-dead-letter-routing-key': origin,
    },
    exchange: { name: '', type: 'direct', durable: true },
    routingKey: name,
  };
}
