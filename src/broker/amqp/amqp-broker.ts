/**
 * The AMQP 0-9-1 transport (RabbitMQ), on amqplib.
 *
 * - Publishing uses a confirm channel: `publish()` resolves only once RabbitMQ
 *   has the message, and rejects with a clear error otherwise (never a silent loss).
 *   A publish the connection lost before its confirm (or RabbitMQ nacked) is sent
 *   again under `task_publish_retry`, on the next node when there are several.
 * - Declarations run on a separate channel (topology.ts).
 * - Consumers survive connection loss: a supervisor reconnects with backoff
 *   (to the next node of `broker_url` first, see targets.ts), redeclares,
 *   restores each consumer's prefetch and resumes consuming.
 */
import { EventEmitter } from 'node:events';
import type { Channel, ChannelModel, ConfirmChannel, Options } from 'amqplib';
import type { PublishRetryPolicy } from '../../app/config.js';
import { BrokerError, HeaderDecoderError, PublishError, UnconfirmedPublishError } from '../../errors.js';
import { republishable, type WireMessage } from '../../protocol/message.js';
import { backoffDelay, sleep } from '../../support/backoff.js';
import { maskUrl } from '../../support/url.js';
import type { Broker, BrokerEvents, ConsumeOptions, Consumer, Delivery, ExchangeDeclaration, PublishOptions, PublishRoute, QueueDeclaration, ReconnectInfo, TopologyDeclaration } from '../types.js';
import { delayQueueDeclaration, delayStep } from './delay-queues.js';
import { AmqpConsumer, type ConsumerHost } from './amqp-consumer.js';
import { ChannelSlot } from './channel-slot.js';
import { openAmqpConnection, type AmqpConnectOptions } from './connection.js';
import { BrokerTargets, type FailoverStrategy } from './targets.js';
import { HeaderTables } from './header-tables.js';
import { Declarations } from './topology.js';

export interface AmqpBrokerOptions extends AmqpConnectOptions {
  /** How `publish()` retries opening a connection (`task_publish_retry_policy`); null = one attempt. */
  publishRetry: PublishRetryPolicy | null;
  /**
   * Consumers' connection retries: after a loss (`broker_connection_retry`), before consumers
   * first attached (`broker_connection_retry_on_startup`), at most `maxRetries` in a row
   * (`broker_connection_max_retries`; null = forever).
   */
  reconnect: { enabled: boolean; onStartup: boolean; maxRetries: number | null };
  /** `broker_failover_strategy` when `url` lists several nodes (default round-robin). */
  failoverStrategy?: FailoverStrategy | null;
}

export type { ReconnectInfo } from '../types.js';

const RECONNECT_BASE_MS = 500;
const RECONNECT_MAX_MS = 10_000;

/** Seconds to wait before publish retry `attempt` (0-based), per `task_publish_retry_policy`. */
function publishRetryDelay(policy: PublishRetryPolicy, attempt: number): number {
  return Math.min(policy.interval_max, policy.interval_start + policy.interval_step * attempt);
}

/**
 * One publish waiting for its confirm. A small object rather than a closure over the
 * publish's locals: with 1,000 publishes in flight, a closure would keep each message's
 * body and header tables alive until RabbitMQ confirms it (and push them into the old
 * generation); this keeps only what the confirm needs.
 */
class PendingConfirm {
  resolve!: (routed: boolean) => void;
  reject!: (err: Error) => void;

  constructor(
    private readonly returned: Set<string>,
    private readonly token: string,
    private readonly routingKey: string,
    /** The node published to, for the error message (as it was when the message was sent). */
    private readonly nodeDisplay: string,
  ) {}

  /** amqplib's confirm callback: ack (routed, or returned first as unroutable), or nack / connection lost. */
  readonly settle = (err: unknown): void => {
    if (!err) {
      this.resolve(!(this.returned.size > 0 && this.returned.delete(this.token)));
      return;
    }
    this.reject(unconfirmedError(err, this.routingKey, this.nodeDisplay));
  };
}

/** amqplib's confirm error (a nack, or the channel closed first) as the caller sees it. */
function unconfirmedError(err: unknown, routingKey: string, nodeDisplay: string): UnconfirmedPublishError {
  return new UnconfirmedPublishError(
    /nack/i.test(String((err as Error)?.message ?? err))
      ? `RabbitMQ did not accept the message for ${routingKey} (nack): it was not stored`
      : `The connection to ${nodeDisplay} was lost before RabbitMQ confirmed the message: ` +
          `it may not have been stored; send it again (the task id can stay the same)`,
    { cause: err },
  );
}

/** publishRetrying's `failed` for "RabbitMQ returned the first attempt as unroutable". */
const UNROUTED = Symbol('unrouted');

/** What `new Promise(captureResolve)` hands over: no executor closure per publish. */
let capturedResolve: ((value: void | Promise<void>) => void) | null = null;
function captureResolve(resolve: (value: void | Promise<void>) => void): void {
  capturedResolve = resolve;
}

/**
 * The confirm of a publish made on publish()'s common path, settling the caller's promise itself:
 * resolved when RabbitMQ confirms and a queue took the message; otherwise resolved with the rest of
 * publish() (declare again on NO_ROUTE, retry per `task_publish_retry_policy`), which rejects when
 * that fails. It keeps the message and route for that, as the retry loop of an async publish()
 * would; one object and one promise per call instead of a chain of async frames.
 */
class DirectConfirm {
  readonly promise: Promise<void>;
  private readonly resolve: (value: void | Promise<void>) => void;

  constructor(
    private readonly broker: AmqpBroker,
    private readonly message: WireMessage,
    private readonly route: PublishRoute,
    private readonly token: string,
    /** The node published to, for the error message (as it was when the message was sent). */
    private readonly nodeDisplay: string,
  ) {
    this.promise = new Promise<void>(captureResolve);
    this.resolve = capturedResolve!;
    capturedResolve = null;
  }

  /** amqplib's confirm callback: ack (routed, or returned first as unroutable), or nack / connection lost. */
  settle(err: unknown): void {
    const { broker, message, route } = this;
    if (!err) {
      if (broker.takeReturned(this.token)) this.resolve(broker.continueAfter(message, route, UNROUTED));
      else this.resolve();
      return;
    }
    this.resolve(broker.continueAfter(message, route, unconfirmedError(err, route.routingKey, this.nodeDisplay)));
  }
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
  /** The header tables handed to amqplib, one object per set of header names. */
  private readonly headerTables = new HeaderTables();
  /** The options object handed to amqplib for every confirmed publish (see publishOptions). */
  private readonly confirmOptions: Options.Publish = {
    headers: undefined, contentType: undefined, contentEncoding: undefined, deliveryMode: undefined, mandatory: true,
    messageId: undefined, correlationId: undefined, replyTo: undefined, priority: undefined, expiration: undefined,
  };
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
  private readonly declarations = new Declarations(() => this.topology.get());
  /** The node(s) of `broker_url` and which one is next. */
  private readonly targets: BrokerTargets;
  /** Set by a failed open(): every node of the round failed (back off before the next attempt). */
  private roundFailed = true;
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
    this.targets = new BrokerTargets(options.url, options.failoverStrategy ?? 'round-robin');
    this.displayUrl = maskUrl(this.targets.urls.join(';'));
  }

  /** The node connected now (password masked), or null while disconnected. */
  get connectedUrl(): string | null {
    return this.conn ? this.targets.currentDisplay : null;
  }

  // -------------------------------------------------------------------------
  // Connection

  /** One connection attempt, shared by concurrent callers. */
  private open(): Promise<ChannelModel> {
    if (this.conn) return Promise.resolve(this.conn);
    if (this.closed) return Promise.reject(new BrokerError('The broker connection was closed by the application'));
    if (!this.opening) {
      const url = this.targets.current;
      this.opening = openAmqpConnection({ ...this.options, url }).then(
        (conn) => {
          this.opening = null;
          this.targets.succeeded();
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
          this.emit('connected', maskUrl(url));
          return conn;
        },
        (err: unknown) => {
          this.opening = null;
          // The next attempt goes to the next node; callers back off only after a whole round.
          this.roundFailed = this.targets.failed();
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
    this.declarations.clear();
    const lostUrl = this.targets.currentDisplay;
    this.targets.lost();
    if (this.closed) return;
    const reason = new BrokerError(
      `Lost the connection to ${lostUrl}${err ? `: ${err.message}` : ''}`,
      { cause: err },
    );
    this.emit('disconnected', reason);
    if (this.consumers.size > 0) this.superviseInBackground();
  }

  async connect(): Promise<void> {
    await this.openWithPolicy();
  }

  /**
   * Opens a connection, retrying per `task_publish_retry_policy` (fast: about a
   * second in all). A failed node is followed by the next one at once; the
   * policy's wait applies once every node failed in a round.
   */
  private async openWithPolicy(): Promise<ChannelModel> {
    const policy = this.options.publishRetry;
    const attempts = policy ? policy.max_retries + 1 : 1;
    let lastError: unknown;
    let waits = 0;
    for (let attempt = 0; attempt < attempts; attempt++) {
      if (attempt > 0 && policy && this.roundFailed) await sleep(publishRetryDelay(policy, waits++) * 1000);
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
    let round = 0;
    for (let attempt = 0; !this.closed; attempt++) {
      const url = this.targets.currentDisplay;
      let opened = false;
      try {
        const conn = await this.open();
        opened = true;
        let reattached = 0;
        for (const consumer of this.consumers) {
          if (consumer.detached && consumer.everAttached) reattached++;
          if (consumer.detached) await consumer.attach(conn);
        }
        if (reattached > 0) this.emit('resumed', this.targets.currentDisplay);
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
        // As kombu: the next node at once; the backoff once the whole round failed.
        const failover = !opened && !this.roundFailed;
        const delayMs = failover ? 0 : backoffDelay(round++, RECONNECT_BASE_MS, RECONNECT_MAX_MS);
        const info: ReconnectInfo = { attempt: attempt + 1, maxRetries, delayMs, error, url, failover };
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
    return this.declarations.queue(q, force);
  }

  /** Declares an exchange alone (fanout/topic exchanges of remote control and events), once per connection. */
  declareExchange(x: ExchangeDeclaration): Promise<void> {
    return this.declarations.exchange(x);
  }

  /** Declares exchanges, queues and bindings together (native delayed delivery), once per connection. */
  declareTopology(t: TopologyDeclaration, force = false): Promise<void> {
    return this.declarations.topology(t, force);
  }

  // -------------------------------------------------------------------------
  // Publishing

  /**
   * Publishes with publisher confirms and `mandatory`: resolves only once a
   * queue holds the message. A publish the connection lost before its confirm
   * (or RabbitMQ nacked) is sent again per `task_publish_retry_policy`, on a
   * new connection (the next node when `broker_url` lists several); once the
   * retries ran out it rejects with {@link UnconfirmedPublishError}.
   */
  publish(message: WireMessage, route: PublishRoute, options?: PublishOptions): Promise<void> {
    if (options?.confirm === false) return this.castDeclared(message, route);
    // The common case (delay(), beat): the channel is open and writable and the queue declared on
    // this connection. One publish whose confirm settles the caller's promise directly: no retry
    // loop, no awaits, one promise per call. Anything else, and any failure of this publish, goes
    // through publishRetrying (the same declarations, NO_ROUTE handling and task_publish_retry).
    try {
      const ch = this.publisher.current;
      if (ch && !this.drained && !route.declareTopology && !route.declareExchange && (!route.declare || this.declarations.queueDeclared(route.declare))) {
        return this.publishDirect(ch, message, route);
      }
    } catch (err) {
      return Promise.reject(err); // never a synchronous throw: callers expect a promise
    }
    return this.publishRetrying(message, route, null);
  }

  private async castDeclared(message: WireMessage, route: PublishRoute): Promise<void> {
    await this.declareRoute(route, false);
    return this.cast(message, route);
  }

  /**
   * {@link publish} with its retries. `failed`: null, or the first attempt was already made (by
   * publishDirect) and failed with this error, or, when it is {@link UNROUTED}, RabbitMQ returned it.
   */
  private async publishRetrying(message: WireMessage, route: PublishRoute, failed: unknown): Promise<void> {
    const policy = this.options.publishRetry;
    let unconfirmed: UnconfirmedPublishError | null = null;
    for (let attempt = 0; ; attempt++) {
      try {
        if (failed === null) return await this.publishConfirmed(message, route);
        const first = failed;
        failed = null;
        if (first === UNROUTED) return await this.publishUnrouted(message, route);
        throw first;
      } catch (err) {
        // Not confirmed: it may or may not be stored. Sending it again is at-least-once (a copy the
        // dead connection did deliver then exists twice, with the same task id); giving up is a loss
        // the caller hears about. Never retried: NO_ROUTE (already retried) and refused declarations.
        const retryable = err instanceof UnconfirmedPublishError;
        if (retryable && !unconfirmed) unconfirmed = err;
        if (!retryable || !policy || attempt >= policy.max_retries || this.closed) {
          if (!unconfirmed || err === unconfirmed) throw err;
          // The first failure is the one that matters: it may have been stored.
          throw new UnconfirmedPublishError(`${unconfirmed.message}; sending it again failed: ${(err as Error).message}`, { cause: err });
        }
        await sleep(publishRetryDelay(policy, attempt) * 1000);
      }
    }
  }

  private async declareRoute(route: PublishRoute, force: boolean): Promise<void> {
    if (route.declareTopology) await this.declareTopology(route.declareTopology, force);
    if (route.declare) await this.declare(route.declare, force);
    if (route.declareExchange) await this.declareExchange(route.declareExchange);
  }

  /**
   * One confirmed publish. A message no queue takes (the queue was deleted
   * after we declared it) is declared again and sent once more; if nothing
   * takes it then either, the call rejects instead of reporting a lost message
   * as sent.
   */
  private publishConfirmed(message: WireMessage, route: PublishRoute): Promise<void> {
    // The common case (delay(), beat): the queue is declared on this connection already, so the
    // publish goes out now, without the awaits of the declaring path.
    if (!route.declareTopology && !route.declareExchange && (!route.declare || this.declarations.queueDeclared(route.declare))) {
      return this.publishOnce(message, route).then((routed) => (routed ? undefined : this.publishUnrouted(message, route)));
    }
    return this.declareAndPublish(message, route);
  }

  private async declareAndPublish(message: WireMessage, route: PublishRoute): Promise<void> {
    await this.declareRoute(route, false);
    if (await this.publishOnce(message, route)) return;
    return this.publishUnrouted(message, route);
  }

  /** RabbitMQ returned the message as unroutable: declare again and send once more, else fail. */
  private async publishUnrouted(message: WireMessage, route: PublishRoute): Promise<void> {
    if (route.declare || route.declareTopology) {
      await this.declareRoute(route, true);
      if (await this.publishOnce(message, route)) return;
    }
    throw new PublishError(
      `RabbitMQ could not route the message to ${route.exchange ? `exchange ${JSON.stringify(route.exchange)} with key ` : 'queue '}` +
        `${JSON.stringify(route.routingKey)} (NO_ROUTE): no queue took it, so it was not stored. ` +
        `Does the queue exist (was it deleted)?`,
    );
  }

  /** One publish; resolves true when confirmed, false when RabbitMQ returned it as unroutable. */
  private publishOnce(message: WireMessage, route: PublishRoute): Promise<boolean> {
    const ch = this.publisher.current;
    // Not an async function: the common case returns the confirm's own promise, no wrapper.
    return ch && !this.drained ? this.publishOn(ch, message, route) : this.publishOnceWaiting(message, route);
  }

  /** publishOnce while the channel is still opening or the socket buffer is full. */
  private async publishOnceWaiting(message: WireMessage, route: PublishRoute): Promise<boolean> {
    const ch = this.publisher.current ?? (await this.publisher.get());
    if (this.drained) await this.drained;
    return this.publishOn(ch, message, route);
  }

  private publishOn(ch: ConfirmChannel, message: WireMessage, route: PublishRoute): Promise<boolean> {
    const token = String(++this.publishSeq);
    const pending = new PendingConfirm(this.returned, token, route.routingKey, this.targets.currentDisplay);
    const confirmed = new Promise<boolean>((resolve, reject) => {
      pending.resolve = resolve;
      pending.reject = reject;
    });
    const options = this.publishOptions(message, token);
    try {
      this.watchDrain(ch, ch.publish(route.exchange, route.routingKey, message.body, options, pending.settle));
    } catch (err) {
      // The channel closed under us (the connection is going): nothing was written.
      return Promise.reject(this.notWritten(err));
    }
    return confirmed;
  }

  /**
   * publish()'s common case: one publish settled by its confirm (see {@link DirectConfirm}). A
   * failure, or RabbitMQ returning it as unroutable, continues in publishRetrying as if its first
   * attempt had failed there.
   */
  private publishDirect(ch: ConfirmChannel, message: WireMessage, route: PublishRoute): Promise<void> {
    const token = String(++this.publishSeq);
    let options: Options.Publish;
    try {
      options = this.publishOptions(message, token);
    } catch (err) {
      return Promise.reject(err); // a header amqplib cannot carry: nothing was sent, nothing to retry
    }
    const pending = new DirectConfirm(this, message, route, token, this.targets.currentDisplay);
    try {
      this.watchDrain(ch, ch.publish(route.exchange, route.routingKey, message.body, options, (err: unknown) => pending.settle(err)));
    } catch (err) {
      return this.publishRetrying(message, route, this.notWritten(err));
    }
    return pending.promise;
  }

  /** @internal For {@link DirectConfirm}: was the publish with this token returned as unroutable? */
  takeReturned(token: string): boolean {
    return this.returned.size > 0 && this.returned.delete(token);
  }

  /** @internal For {@link DirectConfirm}: the rest of publish() after its first attempt failed. */
  continueAfter(message: WireMessage, route: PublishRoute, failed: unknown): Promise<void> {
    return this.publishRetrying(message, route, failed);
  }

  /**
   * amqplib's publish options for a confirmed, `mandatory` publish tagged with `token`. One object,
   * refilled per publish: amqplib copies what it needs out of it and encodes the frames before
   * `publish()` returns (as for the header tables), so nothing reads it afterwards.
   */
  private publishOptions(message: WireMessage, token: string): Options.Publish {
    const options = this.confirmOptions;
    // Reused table: amqplib encodes it before publish() returns (header-tables.ts says why).
    options.headers = this.headerTables.fill(message.headers);
    options.contentType = message.contentType;
    options.contentEncoding = message.contentEncoding;
    options.deliveryMode = message.deliveryMode;
    options.messageId = token;
    // Optional ones are set to undefined when absent: amqplib leaves out undefined properties.
    options.correlationId = message.correlationId;
    options.replyTo = message.replyTo;
    options.priority = message.priority;
    options.expiration = message.expiration;
    return options;
  }

  /** ch.publish() threw: the channel closed under us (the connection is going), nothing was written. */
  private notWritten(err: unknown): UnconfirmedPublishError {
    return new UnconfirmedPublishError(`Cannot publish to ${this.targets.currentDisplay}: ${(err as Error).message}`, { cause: err });
  }

  /** After a publish: when the socket buffer is full, hold later publishes until it drains (bounded memory). */
  private watchDrain(ch: ConfirmChannel, writable: boolean): void {
    if (writable || this.drained) return;
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

  /**
   * Fire-and-forget: written to the casts channel, no confirm, no `mandatory`
   * (a message nobody is bound for is dropped, as for kombu's events and
   * pidbox messages). Waits only while the socket buffer is full.
   */
  private async cast(message: WireMessage, route: PublishRoute): Promise<void> {
    const ch = this.casts.current ?? (await this.casts.get());
    if (this.castsDrained) await this.castsDrained;
    const options: Options.Publish = {
      // Reused table: amqplib encodes it before publish() returns (header-tables.ts says why).
      headers: this.headerTables.fill(message.headers),
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
    const copy = republishable(delivery.message);
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
