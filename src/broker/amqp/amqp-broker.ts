/**
 * The AMQP 0-9-1 transport (RabbitMQ), on amqplib.
 *
 * - Publishing uses a confirm channel: `publish()` resolves only once RabbitMQ
 *   has the message, and rejects with a clear error otherwise (never a silent loss).
 * - Declarations run on a separate channel, so a 406 PRECONDITION_FAILED (a queue
 *   declared differently elsewhere) fails that publish with an explanation
 *   instead of killing the channel every pending confirm waits on.
 * - Consumers survive connection loss: a supervisor reconnects with backoff,
 *   redeclares, restores each consumer's prefetch and resumes consuming.
 */
import { EventEmitter } from 'node:events';
import type { Channel, ChannelModel, ConfirmChannel, Options } from 'amqplib';
import type { PublishRetryPolicy } from '../../app/config.js';
import { BrokerError, HeaderDecoderError, PublishError } from '../../errors.js';
import { encodeAmqpTable } from '../../protocol/amqp-headers.js';
import { withoutBrokerHeaders, type WireMessage } from '../../protocol/message.js';
import { backoffDelay, sleep } from '../../support/backoff.js';
import { maskUrl } from '../../support/url.js';
import type { Broker, BrokerEvents, ConsumeOptions, Consumer, Delivery, ExchangeDeclaration, PublishOptions, PublishRoute, QueueDeclaration, ReconnectInfo } from '../types.js';
import { delayQueueDeclaration, delayStep } from './delay-queues.js';
import { AmqpConsumer, type ConsumerHost } from './amqp-consumer.js';
import { ChannelSlot } from './channel-slot.js';
import { openAmqpConnection, type AmqpConnectOptions } from './connection.js';

export interface AmqpBrokerOptions extends AmqpConnectOptions {
  /** How `publish()` retries opening a connection (`task_publish_retry_policy`); null = one attempt. */
  publishRetry: PublishRetryPolicy | null;
  /**
   * Consumers' connection retries: after a loss (`broker_connection_retry`), before consumers
   * first attached (`broker_connection_retry_on_startup`), at most `maxRetries` in a row
   * (`broker_connection_max_retries`; null = forever).
   */
  reconnect: { enabled: boolean; onStartup: boolean; maxRetries: number | null };
}

export type { ReconnectInfo } from '../types.js';

const RECONNECT_BASE_MS = 500;
const RECONNECT_MAX_MS = 10_000;

function declarationKey(q: QueueDeclaration): string {
  return JSON.stringify([q.name, q.durable, q.autoDelete, q.exclusive ?? false, q.arguments, q.exchange, q.routingKey]);
}

function describeDeclareError(err: unknown, q: QueueDeclaration): BrokerError {
  const msg = String((err as Error)?.message ?? err);
  if (/PRECONDITION[-_]FAILED|406/.test(msg)) {
    return new BrokerError(
      `RabbitMQ refused to declare queue ${JSON.stringify(q.name)}: it already exists with different ` +
        `settings (${msg.replace(/^.*PRECONDITION_FAILED - /, '')}). Declare it exactly as the other ` +
        `producers and workers do (durable, no arguments by default; check task_queues and ` +
        `task_queue_max_priority), or delete the queue.`,
      { cause: err },
    );
  }
  return new BrokerError(`Declaring queue ${JSON.stringify(q.name)} failed: ${msg}`, { cause: err });
}

export class AmqpBroker extends EventEmitter<BrokerEvents> implements Broker, ConsumerHost {
  readonly displayUrl: string;
  private conn: ChannelModel | null = null;
  private opening: Promise<ChannelModel> | null = null;
  /** Confirm channel for publishing; records the messages RabbitMQ returns as unroutable. */
  private readonly publisher = new ChannelSlot<ConfirmChannel>(async () => {
    const ch = await (await this.openWithPolicy()).createConfirmChannel();
    ch.on('return', (m: { properties: { messageId?: string } }) => {
      if (m.properties.messageId) this.returned.add(m.properties.messageId);
    });
    return ch;
  });
  /** message_id of publishes RabbitMQ returned (basic.return comes before their confirm). */
  private readonly returned = new Set<string>();
  private publishSeq = 0;
  /**
   * A plain channel for fire-and-forget publishes (events, remote control):
   * no confirms, no `mandatory`, as kombu sends them. Kept apart from the
   * confirm channel so monitoring traffic never delays a task's confirm.
   */
  private readonly casts = new ChannelSlot<Channel>(async () => (await this.open()).createChannel());
  /** Unconfirmed publishes wait here while the casts channel's socket buffer is full. */
  private castsDrained: Promise<void> | null = null;
  /** Declarations live on their own channel: a 406 closes it, not the one confirms wait on. */
  private readonly topology = new ChannelSlot<Channel>(async () => (await this.open()).createChannel());
  /** Declarations done on the current connection (kombu caches them the same way). */
  private declared = new Map<string, Promise<void>>();
  private readonly consumers = new Set<AmqpConsumer>();
  private supervising: Promise<void> | null = null;
  /** True once consumers attached: later connection failures follow broker_connection_retry. */
  private consumedOnce = false;
  /** Set once consumers could not be kept attached (see the `fatal` event). */
  private fatalError: Error | null = null;
  private drained: Promise<void> | null = null;
  private closed = false;

  constructor(private readonly options: AmqpBrokerOptions) {
    super();
    this.displayUrl = maskUrl(options.url);
  }

  // -------------------------------------------------------------------------
  // Connection

  /** One connection attempt, shared by concurrent callers. */
  private open(): Promise<ChannelModel> {
    if (this.conn) return Promise.resolve(this.conn);
    if (this.closed) return Promise.reject(new BrokerError('The broker connection was closed by the application'));
    if (!this.opening) {
      this.opening = openAmqpConnection(this.options).then(
        (conn) => {
          this.opening = null;
          if (this.closed) {
            conn.close().catch(() => undefined);
            throw new BrokerError('The broker connection was closed by the application');
          }
          this.conn = conn;
          conn.on('error', () => {
            /* the 'close' event that follows carries the error */
          });
          conn.on('close', (err?: Error) => this.onConnectionLost(conn, err));
          conn.on('blocked', (reason: string) => this.emit('blocked', reason));
          conn.on('unblocked', () => this.emit('unblocked'));
          this.emit('connected', this.displayUrl);
          return conn;
        },
        (err: unknown) => {
          this.opening = null;
          throw err;
        },
      );
    }
    return this.opening;
  }

  private onConnectionLost(conn: ChannelModel, err?: Error): void {
    if (this.conn !== conn) return;
    this.conn = null;
    this.publisher.reset();
    this.casts.reset();
    this.topology.reset();
    this.declared.clear();
    if (this.closed) return;
    const reason = new BrokerError(
      `Lost the connection to ${this.displayUrl}${err ? `: ${err.message}` : ''}`,
      { cause: err },
    );
    this.emit('disconnected', reason);
    if (this.consumers.size > 0) this.superviseInBackground();
  }

  async connect(): Promise<void> {
    await this.openWithPolicy();
  }

  /** Opens a connection, retrying per `task_publish_retry_policy` (fast: about a second in all). */
  private async openWithPolicy(): Promise<ChannelModel> {
    const policy = this.options.publishRetry;
    const attempts = policy ? policy.max_retries + 1 : 1;
    let lastError: unknown;
    for (let attempt = 0; attempt < attempts; attempt++) {
      if (attempt > 0 && policy) {
        const delay = Math.min(policy.interval_max, policy.interval_start + policy.interval_step * (attempt - 1));
        await sleep(delay * 1000);
      }
      try {
        return await this.open();
      } catch (err) {
        lastError = err;
        if (this.closed) break;
      }
    }
    throw lastError;
  }

  /**
   * Keeps consumers attached: reconnects with capped exponential backoff,
   * then attaches every consumer that lost its channel. Runs once at a time.
   */
  private supervise(): Promise<void> {
    if (!this.supervising) {
      this.supervising = this.superviseLoop().finally(() => {
        this.supervising = null;
      });
    }
    return this.supervising;
  }

  private async superviseLoop(): Promise<void> {
    const { maxRetries } = this.options.reconnect;
    // As Celery's consumer: until consumers have attached once, start-up rules apply.
    const startup = !this.consumedOnce;
    const enabled = startup ? this.options.reconnect.onStartup : this.options.reconnect.enabled;
    const setting = startup ? 'broker_connection_retry_on_startup' : 'broker_connection_retry';
    for (let attempt = 0; !this.closed; attempt++) {
      try {
        const conn = await this.open();
        let reattached = 0;
        for (const consumer of this.consumers) {
          if (consumer.detached && consumer.everAttached) reattached++;
          if (consumer.detached) await consumer.attach(conn);
        }
        if (reattached > 0) this.emit('resumed', this.displayUrl);
        if (this.consumers.size > 0) this.consumedOnce = true;
        return;
      } catch (err) {
        if (this.closed) return;
        const error = err instanceof Error ? err : new Error(String(err));
        // A queue declared differently elsewhere (406) stays so: retrying cannot help.
        if (error instanceof BrokerError && /refused to declare/.test(error.message)) throw error;
        if (error instanceof HeaderDecoderError) throw error; // the installed amqplib: retrying cannot fix it
        if (!enabled) {
          throw new BrokerError(`Cannot connect to ${this.displayUrl}, and ${setting} is off: ${error.message}`, { cause: error });
        }
        if (maxRetries !== null && attempt >= maxRetries) {
          throw new BrokerError(
            `Gave up connecting to ${this.displayUrl} after ${maxRetries} ${maxRetries === 1 ? 'retry' : 'retries'} ` +
              `(broker_connection_max_retries; null retries forever): ${error.message}`,
            { cause: error },
          );
        }
        const delayMs = backoffDelay(attempt, RECONNECT_BASE_MS, RECONNECT_MAX_MS);
        const info: ReconnectInfo = { attempt: attempt + 1, maxRetries, delayMs, error };
        this.emit('reconnect-scheduled', info);
        await sleep(delayMs);
      }
    }
  }

  /**
   * Supervising that nobody awaits (after a connection or channel loss): when
   * it gives up, nothing consumes any more, which is fatal for the owner.
   */
  private superviseInBackground(): void {
    this.supervise().catch((err: unknown) => this.fatal(err));
  }

  /** Reports that consumers cannot be kept attached (once; not after close()). */
  private fatal(err: unknown): void {
    if (this.closed || this.fatalError) return;
    this.fatalError = err instanceof Error ? err : new Error(String(err));
    this.emit('fatal', this.fatalError);
  }

  /** A consumer's channel closed; if the connection is still up, attach it again shortly. */
  consumerLost(consumer: AmqpConsumer): void {
    if (this.closed) return;
    setTimeout(() => {
      if (this.closed || !consumer.detached) return;
      // With the connection gone, the supervisor started by onConnectionLost does it.
      if (this.conn) this.superviseInBackground();
    }, 250).unref();
  }

  // -------------------------------------------------------------------------
  // Topology

  /**
   * Declares exchange, queue and binding, once per connection, as kombu does.
   * `force` declares again even if done before (the queue may have been deleted since).
   */
  declare(q: QueueDeclaration, force = false): Promise<void> {
    const key = declarationKey(q);
    let done = force ? undefined : this.declared.get(key);
    if (!done) {
      done = this.doDeclare(q);
      this.declared.set(key, done);
      done.catch(() => this.declared.delete(key));
    }
    return done;
  }

  /** Declares an exchange alone (fanout/topic exchanges of remote control and events), once per connection. */
  declareExchange(x: ExchangeDeclaration): Promise<void> {
    const key = JSON.stringify(['exchange', x.name, x.type, x.durable]);
    let done = this.declared.get(key);
    if (!done) {
      done = (async () => {
        const ch = await this.topology.get();
        try {
          await ch.assertExchange(x.name, x.type, { durable: x.durable, autoDelete: false });
        } catch (err) {
          throw new BrokerError(
            `Declaring exchange ${JSON.stringify(x.name)} (${x.type}, ${x.durable ? 'durable' : 'not durable'}) failed: ${(err as Error).message}`,
            { cause: err },
          );
        }
      })();
      this.declared.set(key, done);
      done.catch(() => this.declared.delete(key));
    }
    return done;
  }

  private async doDeclare(q: QueueDeclaration): Promise<void> {
    const ch = await this.topology.get();
    try {
      if (q.exchange.name !== '') {
        await ch.assertExchange(q.exchange.name, q.exchange.type, { durable: q.exchange.durable, autoDelete: false });
      }
      await ch.assertQueue(q.name, {
        durable: q.durable,
        autoDelete: q.autoDelete,
        exclusive: q.exclusive ?? false,
        arguments: encodeAmqpTable(q.arguments),
      });
      if (q.exchange.name !== '') await ch.bindQueue(q.name, q.exchange.name, q.routingKey);
    } catch (err) {
      throw describeDeclareError(err, q);
    }
  }

  // -------------------------------------------------------------------------
  // Publishing

  /**
   * Publishes with publisher confirms and `mandatory`: resolves only once a
   * queue holds the message. A message no queue takes (the queue was deleted
   * after we declared it) is declared again and sent once more; if nothing
   * takes it then either, the call rejects instead of reporting a lost message
   * as sent.
   */
  async publish(message: WireMessage, route: PublishRoute, options?: PublishOptions): Promise<void> {
    if (route.declare) await this.declare(route.declare);
    if (route.declareExchange) await this.declareExchange(route.declareExchange);
    if (options?.confirm === false) return this.cast(message, route);
    if (await this.publishOnce(message, route)) return;
    if (route.declare) {
      await this.declare(route.declare, true);
      if (await this.publishOnce(message, route)) return;
    }
    throw new PublishError(
      `RabbitMQ could not route the message to ${route.exchange ? `exchange ${JSON.stringify(route.exchange)} with key ` : 'queue '}` +
        `${JSON.stringify(route.routingKey)} (NO_ROUTE): no queue took it, so it was not stored. ` +
        `Does the queue exist (was it deleted)?`,
    );
  }

  /** One publish; resolves true when confirmed, false when RabbitMQ returned it as unroutable. */
  private async publishOnce(message: WireMessage, route: PublishRoute): Promise<boolean> {
    const ch = this.publisher.current ?? (await this.publisher.get());
    if (this.drained) await this.drained;
    const token = String(++this.publishSeq);
    const options: Options.Publish = {
      headers: encodeAmqpTable(message.headers),
      contentType: message.contentType,
      contentEncoding: message.contentEncoding,
      deliveryMode: message.deliveryMode,
      mandatory: true,
      messageId: token,
    };
    if (message.correlationId !== undefined) options.correlationId = message.correlationId;
    if (message.replyTo !== undefined) options.replyTo = message.replyTo;
    if (message.priority !== undefined) options.priority = message.priority;
    if (message.expiration !== undefined) options.expiration = message.expiration;
    return new Promise<boolean>((resolve, reject) => {
      let writable: boolean;
      try {
        writable = ch.publish(route.exchange, route.routingKey, message.body, options, (err) => {
          if (!err) {
            if (this.returned.size > 0 && this.returned.delete(token)) return resolve(false);
            return resolve(true);
          }
          reject(
            new PublishError(
              /nack/i.test(String(err?.message ?? err))
                ? `RabbitMQ did not accept the message for ${route.routingKey} (nack): it was not stored`
                : `The connection to ${this.displayUrl} was lost before RabbitMQ confirmed the message: ` +
                    `it may not have been stored; send it again (the task id can stay the same)`,
              { cause: err },
            ),
          );
        });
      } catch (err) {
        reject(new PublishError(`Cannot publish to ${this.displayUrl}: ${(err as Error).message}`, { cause: err }));
        return;
      }
      if (!writable && !this.drained) {
        // The socket buffer is full: hold later publishes until it drains (bounded memory).
        this.drained = new Promise<void>((release) => {
          const done = (): void => {
            ch.off('drain', done);
            ch.off('close', done);
            this.drained = null;
            release();
          };
          ch.on('drain', done);
          ch.on('close', done);
        });
      }
    });
  }

  /**
   * Fire-and-forget: written to the casts channel, no confirm, no `mandatory`
   * (a message nobody is bound for is dropped, as for kombu's events and
   * pidbox messages). Waits only while the socket buffer is full.
   */
  private async cast(message: WireMessage, route: PublishRoute): Promise<void> {
    const ch = this.casts.current ?? (await this.casts.get());
    if (this.castsDrained) await this.castsDrained;
    const options: Options.Publish = {
      headers: encodeAmqpTable(message.headers),
      contentType: message.contentType,
      contentEncoding: message.contentEncoding,
      deliveryMode: message.deliveryMode,
    };
    if (message.correlationId !== undefined) options.correlationId = message.correlationId;
    if (message.replyTo !== undefined) options.replyTo = message.replyTo;
    if (message.priority !== undefined) options.priority = message.priority;
    if (message.expiration !== undefined) options.expiration = message.expiration;
    let writable: boolean;
    try {
      writable = ch.publish(route.exchange, route.routingKey, message.body, options);
    } catch (err) {
      throw new PublishError(`Cannot publish to ${this.displayUrl}: ${(err as Error).message}`, { cause: err });
    }
    if (!writable && !this.castsDrained) {
      this.castsDrained = new Promise<void>((release) => {
        const done = (): void => {
          ch.off('drain', done);
          ch.off('close', done);
          this.castsDrained = null;
          release();
        };
        ch.on('drain', done);
        ch.on('close', done);
      });
    }
  }

  /** Parks a delivered message in a delay queue (see delay-queues.ts). */
  async park(delivery: Delivery, delayMs: number): Promise<number | null> {
    const step = delayStep(delayMs);
    if (step === null) return null;
    const queue = delayQueueDeclaration(delivery.info.queue, step);
    const m = delivery.message;
    const copy: WireMessage = {
      body: m.body,
      contentType: m.contentType ?? 'application/json',
      contentEncoding: m.contentEncoding ?? 'utf-8',
      headers: withoutBrokerHeaders(m.headers), // RabbitMQ adds fresh x-death ones

      deliveryMode: 2,
    };
    if (m.correlationId !== undefined) copy.correlationId = m.correlationId;
    if (m.replyTo !== undefined) copy.replyTo = m.replyTo;
    if (m.priority !== undefined) copy.priority = m.priority;
    await this.publish(copy, { exchange: '', routingKey: queue.name, declare: queue });
    return step * 1000;
  }

  // -------------------------------------------------------------------------
  // Consuming

  async consume(queue: QueueDeclaration, options: ConsumeOptions): Promise<Consumer> {
    const consumer = new AmqpConsumer(queue, options.prefetch, options.onDelivery, this, (c) => this.consumers.delete(c), options.noAck ?? false);
    this.consumers.add(consumer);
    try {
      await this.supervise();
      // Another supervise run may have been in flight before this consumer existed.
      if (consumer.detached) await consumer.attach(await this.open());
    } catch (err) {
      this.consumers.delete(consumer);
      throw err;
    }
    return consumer;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    // Let publishes already sent be confirmed before the connection goes.
    await this.publisher.current?.waitForConfirms().catch(() => undefined);
    this.closed = true;
    const results = await Promise.allSettled([...this.consumers].map((c) => c.close()));
    this.consumers.clear();
    const conn = this.conn ?? (await this.opening?.catch(() => null)) ?? null;
    this.conn = null;
    if (conn) await conn.close().catch(() => undefined);
    for (const r of results) if (r.status === 'rejected') this.emit('close-error', r.reason);
  }
}
