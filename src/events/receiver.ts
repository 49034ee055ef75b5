/**
 * Receiving events, as Celery's `EventReceiver`: a queue of its own
 * (`celeryev.<uuid>`, auto-delete, exclusive, short TTL) bound to the
 * `celeryev` topic exchange (fanout on Redis), consumed without acks. Batched messages are
 * unpacked, and each event is stamped like Python's `event_from_message`:
 * the Lamport clock is adjusted, the timestamp moved into this host's UTC
 * offset, and `local_received` added. `ts-celery events --dump` and the tests
 * use it; it sees Python and TypeScript workers alike.
 */
import { randomUUID } from 'node:crypto';
import type { Celery } from '../app/celery.js';
import type { Consumer, QueueDeclaration } from '../broker/types.js';
import { parseEventMessage, receiverQueue, utcOffsetHours, type CeleryEvent } from './event.js';

/** `task-sent` clocks come from clients that never sync: placed just before ours (Celery's CLIENT_CLOCK_SKEW). */
const CLIENT_CLOCK_SKEW = -1;

export interface EventReceiverOptions {
  /** Handlers by event type; `'*'` gets every event without a handler of its own. */
  handlers: Record<string, (event: CeleryEvent) => void>;
  /** Binding key on the topic exchange (default `#`, everything; `worker.#` = worker events only). */
  routingKey?: string;
  /** The queue's id (default a new uuid). */
  nodeId?: string;
}

export class EventReceiver {
  /** The receiver's queue, `celeryev.<uuid>`. */
  readonly queue: QueueDeclaration;
  private consumer: Consumer | null = null;

  constructor(
    private readonly app: Celery,
    private readonly options: EventReceiverOptions,
  ) {
    this.queue = receiverQueue(app.conf, options.nodeId ?? randomUUID(), options.routingKey ?? '#', app.broker.driverType);
  }

  /** Declares the queue and starts delivering events to the handlers. */
  async start(): Promise<void> {
    this.consumer = await this.app.broker.consume(this.queue, {
      prefetch: 0,
      noAck: true,
      onDelivery: (delivery) => {
        delivery.ack(); // a no-op with no-ack
        for (const event of parseEventMessage(delivery.message)) this.dispatch(this.stamp(event));
      },
    });
  }

  /** Python's `event_from_message`. */
  private stamp(event: CeleryEvent): CeleryEvent {
    const clock = this.app.clock;
    if (event.type === 'task-sent') {
      event.clock = (clock.value || 1) + CLIENT_CLOCK_SKEW;
      clock.adjust(event.clock as number);
    } else if (typeof event.clock === 'number') {
      clock.adjust(event.clock);
    } else {
      event.clock = clock.forward();
    }
    if (typeof event.utcoffset === 'number' && typeof event.timestamp === 'number') {
      event.timestamp = event.timestamp - (event.utcoffset - utcOffsetHours()) * 3600;
    }
    event.local_received = Date.now() / 1000;
    return event;
  }

  private dispatch(event: CeleryEvent): void {
    const handler = this.options.handlers[event.type] ?? this.options.handlers['*'];
    handler?.(event);
  }

  /** Stops consuming; the auto-delete queue goes with it. */
  async close(): Promise<void> {
    const consumer = this.consumer;
    this.consumer = null;
    await consumer?.close();
  }
}
