/**
 * The broker interface: publish, consume, ack/reject, close.
 *
 * A broker moves {@link WireMessage}s and knows nothing about tasks. Each
 * transport (amqp, memory) implements this; the worker is the only place that
 * decides what to ack, reject or requeue.
 */
import type { EventEmitter } from 'node:events';
import type { IncomingMessage, WireMessage } from '../protocol/message.js';

/** An exchange as Celery declares it (durable by default). */
export interface ExchangeDeclaration {
  name: string;
  type: 'direct' | 'topic' | 'fanout';
  durable: boolean;
}

/**
 * A queue and how it is bound. Declared identically to kombu's defaults
 * (durable, not auto-delete, no arguments) so Python and TypeScript
 * declaring the same queue never conflict.
 */
export interface QueueDeclaration {
  name: string;
  durable: boolean;
  autoDelete: boolean;
  arguments: Record<string, unknown>;
  exchange: ExchangeDeclaration;
  /** Binding key between `exchange` and the queue. */
  routingKey: string;
  /**
   * Only the declaring connection may use the queue, and the broker deletes
   * it when that connection closes (kombu's `exclusive`). Celery 5.7 declares
   * its pidbox and event-receiver queues this way. Default false.
   */
  exclusive?: boolean;
}

/**
 * A binding beyond a queue's own (its `exchange` + `routingKey`): from an
 * exchange to a queue, or from an exchange to another exchange (RabbitMQ's
 * exchange-to-exchange bindings, which native delayed delivery chains).
 */
export interface BindingDeclaration {
  /** The exchange messages come from. */
  source: string;
  destination: string;
  destinationKind: 'queue' | 'exchange';
  routingKey: string;
}

/**
 * Exchanges, queues (each with its own binding) and extra bindings declared
 * together, in that order, once per connection: e.g. the `celery_delayed_*`
 * topology of native delayed delivery and the bindings that lead its
 * messages back to a task queue.
 */
export interface TopologyDeclaration {
  exchanges: ExchangeDeclaration[];
  queues: QueueDeclaration[];
  bindings: BindingDeclaration[];
}

/** Where one message goes. */
export interface PublishRoute {
  /** `''` = the default exchange (routing key = queue name), as Python does for direct queues. */
  exchange: string;
  routingKey: string;
  /** Declared (once per connection) before publishing, as kombu does. */
  declare?: QueueDeclaration | null;
  /**
   * An exchange declared (once per connection) before publishing, when there
   * is no queue to declare: the fanout/topic exchanges of remote control
   * (`celery.pidbox`) and events (`celeryev`), declared as kombu does.
   */
  declareExchange?: ExchangeDeclaration | null;
  /**
   * Declared (once per connection) before publishing: the exchanges, queues and
   * bindings the message travels through (native delayed delivery). A broker
   * without {@link Broker.declareTopology} ignores it.
   */
  declareTopology?: TopologyDeclaration | null;
}

/** How one message is published. */
export interface PublishOptions {
  /**
   * `false` is fire-and-forget, for monitoring traffic (events, remote-control
   * requests and replies), as kombu publishes it: no publisher confirm and no
   * `mandatory`, so a message no queue takes is dropped silently. The promise
   * then resolves once the message was handed to the connection. Default true:
   * resolves only once the broker confirmed that a queue holds the message.
   */
  confirm?: boolean;
}

/** Where a delivery came from (Celery's `delivery_info`). */
export interface DeliveryInfo {
  exchange: string;
  routingKey: string;
  redelivered: boolean;
  consumerTag: string;
  /** The queue the consumer reads. */
  queue: string;
  priority: number | null;
}

/** One message handed to a consumer. Settle it exactly once. */
export interface Delivery {
  readonly message: IncomingMessage;
  readonly info: DeliveryInfo;
  /** Done with it: the broker forgets the message. */
  ack(): void;
  /** Give it back: `requeue` true = redeliver (to any consumer), false = drop or dead-letter. */
  reject(requeue: boolean): void;
  /**
   * False once the connection that delivered this message is gone: settling
   * it is then a no-op and the broker has already made it available again.
   */
  readonly live: boolean;
}

export interface ConsumeOptions {
  /** Unacked deliveries this consumer may hold (0 = unlimited; clamped to 65,535). */
  prefetch: number;
  /** Called for every delivery, in order. Must not throw. */
  onDelivery(delivery: Delivery): void;
  /**
   * The broker considers a message settled as soon as it sent it (kombu's
   * `no_ack`, used for pidbox and event queues): `ack`/`reject` are no-ops and
   * `prefetch` is ignored. A broker without this mode may ignore it, so
   * consumers that set it still ack every delivery. Default false.
   */
  noAck?: boolean;
}

/** A live subscription to one queue; it survives reconnects. */
export interface Consumer {
  readonly queue: string;
  /**
   * True while the broker delivers to this subscription; false while it is
   * detached (connection or channel lost, not yet resumed) or after it was
   * cancelled. The worker's health check reads it. Optional: a broker that
   * cannot tell leaves it undefined.
   */
  readonly consuming?: boolean;
  /** Changes how many unacked deliveries may be held, effective at once. */
  setPrefetch(count: number): Promise<void>;
  /** Stops new deliveries; deliveries already handed over can still be settled. */
  cancel(): Promise<void>;
  /** Sends pending acks and ends the subscription; unsettled deliveries go back to the queue. */
  close(): Promise<void>;
}

/** Payload of the `reconnect-scheduled` event. */
export interface ReconnectInfo {
  /** 1 for the first retry. */
  attempt: number;
  /** `broker_connection_max_retries` (null = forever). */
  maxRetries: number | null;
  /** Wait before this attempt. */
  delayMs: number;
  /** Why the previous attempt failed. */
  error: Error;
  /** The broker URL that attempt used, password masked (one of several with failover). */
  url: string;
  /**
   * True when the next attempt goes to another node of `broker_url` at once
   * (`delayMs` is 0: kombu's "Will retry using next failover"); false once
   * every node failed in this round and the backoff applies.
   */
  failover: boolean;
}

/**
 * Every event a broker emits, with its arguments. None is `error`: failures
 * surface through promises and `fatal`, so no listener is required.
 */
export interface BrokerEvents {
  /** A connection opened (the first one or after a loss); `url` has the password masked. */
  connected: [url: string];
  /** The connection dropped; consumers are reconnecting (`reconnect-scheduled` follows per failed attempt). */
  disconnected: [error: Error];
  /** Connecting for consumers failed; another attempt follows after `info.delayMs`. */
  'reconnect-scheduled': [info: ReconnectInfo];
  /** Consumers that had lost their channel consume again (after a reconnect or a redeclare). */
  resumed: [url: string];
  /**
   * Consumers cannot be kept attached any more: reconnect retries ran out
   * (`broker_connection_max_retries`), retrying is off (`broker_connection_retry`),
   * or RabbitMQ refused to redeclare a queue (406). Nothing consumes from here
   * on: the owner should shut down (the CLI worker exits non-zero). Emitted once.
   */
  fatal: [error: Error];
  /** RabbitMQ stopped reading from this connection (a resource alarm: memory or disk). */
  blocked: [reason: string];
  /** RabbitMQ reads from this connection again. */
  unblocked: [];
  /** Closing a consumer failed during `close()`; close went on with the rest. */
  'close-error': [error: unknown];
}

/** A transport: moves messages, emits {@link BrokerEvents}. */
export interface Broker extends EventEmitter<BrokerEvents> {
  /** The broker URL with the password masked. */
  readonly displayUrl: string;
  /**
   * Optional: kombu's `driver_type` of the transport (`'redis'`), for the
   * few places where Celery behaves differently per transport: on Redis it
   * declares the `celeryev` exchange as fanout instead of topic. Absent
   * means AMQP-like.
   */
  readonly driverType?: string;
  /**
   * Resolves once the message is safely with the broker (publisher confirm),
   * or, with `{ confirm: false }`, once it was handed to the connection.
   */
  publish(message: WireMessage, route: PublishRoute, options?: PublishOptions): Promise<void>;
  /** Declares the queue (if needed) and starts consuming it. */
  consume(queue: QueueDeclaration, options: ConsumeOptions): Promise<Consumer>;
  /**
   * Optional: stores a copy of a delivered message in the broker for about
   * `delayMs` (never longer), after which the broker puts it back on the
   * queue it came from. Resolves with the delay used once the copy is
   * confirmed (the caller then acks the original), or null when this delay
   * is too short to park. Lets the worker keep far-future ETA tasks out of
   * memory and out of RabbitMQ's consumer_timeout.
   */
  park?(delivery: Delivery, delayMs: number): Promise<number | null>;
  /**
   * Optional: declares exchanges, queues and bindings (see
   * {@link TopologyDeclaration}) on the current connection, once per
   * connection unless `force`. Brokers that route only by queue name leave it out.
   */
  declareTopology?(topology: TopologyDeclaration, force?: boolean): Promise<void>;
  /**
   * Optional: the URL of the node currently connected (password masked), when
   * `broker_url` lists several; null while disconnected.
   */
  readonly connectedUrl?: string | null;
  /** Opens the connection now (otherwise the first publish/consume does). */
  connect(): Promise<void>;
  /** Closes everything; unsettled deliveries go back to the queue. */
  close(): Promise<void>;
}

/** Largest value the AMQP prefetch-count field (16 bits) can carry. */
export const MAX_PREFETCH = 65_535;

/** Clamps a prefetch count to what AMQP can carry (0 stays "unlimited"). */
export function clampPrefetch(count: number): number {
  return Math.max(0, Math.min(MAX_PREFETCH, Math.floor(count)));
}
