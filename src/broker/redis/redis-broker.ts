/**
 * The Redis transport (`redis://`, `rediss://`, `sentinel://`), wire-compatible
 * with kombu's: Python and TypeScript producers and workers share its queues.
 *
 * - Publish: LPUSH of kombu's JSON envelope onto the queue's list (or the
 *   priority sub-queue `<queue>\x06\x16<step>`); a named exchange routes
 *   through the `_kombu.binding.<exchange>` set, as kombu does. Resolves once
 *   Redis replied; a message no queue takes is refused, not dropped.
 * - Consume: see fetcher.ts (atomic pop + `unacked` record, blocking peeks).
 * - Ack emulation: see ack-emulation.ts (acks, requeues, lease renewal) and
 *   restore.ts (kombu's restore of messages older than the visibility timeout).
 * - Reconnects: ioredis reconnects by itself with capped exponential backoff;
 *   deliveries survive it (their records are in Redis), and pending acks are
 *   sent once the connection is back.
 * - Fanout exchanges (remote control, events): PUBLISH/PSUBSCRIBE on
 *   `/<db>.<exchange>[/<routing key>]` over one subscriber connection, as
 *   kombu does; see fanout.ts and topics.ts.
 * - Bindings: kombu 5.7's tables, with deadlines for queues with x-expires;
 *   see bindings.ts.
 *
 * No `park()`: RabbitMQ needs parking because it kills a channel that holds a
 * message longer than `consumer_timeout`. Redis has no such limit, and this
 * worker renews the lease of every ETA task it holds, so holding is safe; a
 * delay store only TypeScript workers knew about would also hide those tasks
 * from the Python workers sharing the queue.
 */
import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { PublishRetryPolicy, TlsOptions } from '../../app/config.js';
import { BrokerError, PublishError } from '../../errors.js';
import type { WireMessage } from '../../protocol/message.js';
import { backoffDelay } from '../../support/backoff.js';
import { getLogger } from '../../support/log.js';
import { maskUrl, safeCause } from '../../support/url.js';
import type { Broker, BrokerEvents, ConsumeOptions, Consumer, PublishOptions, PublishRoute, QueueDeclaration, ReconnectInfo } from '../types.js';
import { AckEmulation } from './ack-emulation.js';
import { Bindings } from './bindings.js';
import { createBlockingClient, createCommandClient, type ScriptedRedis } from './client.js';
import { RedisConsumer, type ConsumerHost } from './consumer.js';
import { buildEnvelope } from './envelope.js';
import { FanoutConsumer, FanoutHub, type FanoutHost } from './fanout.js';
import { Fetcher } from './fetcher.js';
import { bindingKey, queueKey, routeThroughBindings, type KeySpace } from './keys.js';
import { parseTransportOptions, type RedisTransportOptions } from './options.js';
import { RestoreSweeper, sweepIntervalMs } from './restore.js';
import { publishTopics, subscribePatterns, topicSpace, type TopicSpace } from './topics.js';
import { connectionOptions, parseRedisUrl } from './url.js';

const log = getLogger('MainProcess');

export interface RedisBrokerOptions {
  url: string;
  /** `broker_transport_options` (kombu's names: visibility_timeout, global_keyprefix, ...). */
  transportOptions: Record<string, unknown>;
  /** `broker_use_ssl`, for rediss:// (and sentinel:// with TLS). */
  tls?: TlsOptions | boolean | null;
  /** CLIENT SETNAME of its connections, unless `client_name` is set (spaces become dashes). */
  connectionName?: string;
  /** `broker_connection_timeout`, seconds. */
  connectTimeout: number;
  /** `task_publish_retry_policy` (null = no retry): how long a publish waits through a reconnect. */
  publishRetry: PublishRetryPolicy | null;
  /**
   * Reconnects (`broker_connection_retry`, `broker_connection_max_retries`; null = forever), and
   * whether to retry a first connection too (`broker_connection_retry_on_startup`, default true).
   */
  reconnect: { enabled: boolean; onStartup?: boolean; maxRetries: number | null };
}

const RECONNECT_BASE_MS = 500;
const RECONNECT_MAX_MS = 10_000;
/** Redis >= 6.2 has BLMOVE, which the fetcher's blocking peek needs. */
const MIN_REDIS: [number, number] = [6, 2];

type ExchangeType = 'direct' | 'topic' | 'fanout';

/**
 * An auto-delete queue is deleted when its consumer closes if it is a fanout
 * queue (kombu deletes those when its channel closes) or exclusive (only this
 * connection used it: remote control's reply queue, which kombu deletes after
 * each collect). A shared auto-delete list may still have consumers elsewhere.
 */
function deletedOnClose(q: QueueDeclaration): boolean {
  return q.autoDelete && (q.exchange.type === 'fanout' || q.exclusive === true);
}

export class RedisBroker extends EventEmitter<BrokerEvents> implements Broker {
  /** kombu's `driver_type`: Celery declares its event exchange as fanout on Redis. */
  readonly driverType = 'redis';
  readonly displayUrl: string;
  readonly transport: RedisTransportOptions;
  private readonly keySpace: KeySpace;
  private readonly topics: TopicSpace;
  private readonly client: ScriptedRedis;
  private readonly fetcher: Fetcher;
  private readonly acks: AckEmulation;
  private readonly sweeper: RestoreSweeper;
  private readonly bindings: Bindings;
  private readonly fanout: FanoutHub;
  /** Consumers not cancelled, with their queue. */
  private readonly consumers = new Map<RedisConsumer | FanoutConsumer, QueueDeclaration>();
  /** Consumers not closed: their queue, and what ends its binding refresh. */
  private readonly open = new Map<RedisConsumer | FanoutConsumer, { decl: QueueDeclaration; release: () => void }>();
  private readonly exchangeTypes = new Map<string, ExchangeType>();
  private serverChecked: Promise<void> | null = null;
  private consumerIds = 0;
  private everReady = false;
  private down = false;
  private fatal = false;
  private lastError: Error | null = null;
  private lastFetchError: string | null = null;
  private closed = false;

  constructor(private readonly options: RedisBrokerOptions) {
    super();
    this.displayUrl = maskUrl(options.url);
    const { options: transport, warnings } = parseTransportOptions(options.transportOptions);
    for (const w of warnings) process.emitWarning(w, 'TsCeleryWarning');
    this.transport = transport;
    this.keySpace = { prefix: transport.global_keyprefix, sep: transport.sep, steps: transport.priority_steps };
    const endpoint = parseRedisUrl(options.url);
    this.topics = topicSpace(transport, endpoint.scheme === 'sentinel', endpoint.db);
    const conn = connectionOptions(endpoint, transport, { tls: options.tls, connectTimeout: options.connectTimeout });
    if (!conn.connectionName && options.connectionName) conn.connectionName = options.connectionName.replace(/\s+/g, '-');
    this.client = createCommandClient({
      ...conn,
      maxRetriesPerRequest: options.publishRetry ? options.publishRetry.max_retries : 0,
      socketTimeout: transport.socket_timeout !== null ? Math.round(transport.socket_timeout * 1000) : 30_000,
      retryStrategy: (times) => this.retryDelay(times),
    });
    this.client.on('error', (err: Error) => {
      this.lastError = err;
    });
    this.client.on('ready', () => this.onReady());
    this.client.on('close', () => this.onClose());
    this.client.on('end', () => this.onEnd());
    const keys = {
      indexKey: transport.global_keyprefix + transport.unacked_index_key,
      hashKey: transport.global_keyprefix + transport.unacked_key,
    };
    this.acks = new AckEmulation(this.client, { ...keys, keySpace: this.keySpace, visibilityTimeout: transport.visibility_timeout });
    this.sweeper = new RestoreSweeper(
      this.client,
      {
        ...keys,
        keySpace: this.keySpace,
        mutexKey: transport.global_keyprefix + transport.unacked_mutex_key,
        visibilityTimeout: transport.visibility_timeout,
        mutexExpire: transport.unacked_mutex_expire,
        limit: transport.unacked_restore_limit,
        everyMs: sweepIntervalMs(transport.unacked_restore_interval, transport.unacked_restore_throttle),
      },
      (exchange, routingKey) => this.lookup(exchange, routingKey),
    );
    this.bindings = new Bindings(this.client, { keySpace: this.keySpace, displayUrl: this.displayUrl, reason: (err) => this.reason(err) });
    this.fanout = new FanoutHub(conn);
    this.fetcher = new Fetcher(this.client, {
      ...keys,
      keySpace: this.keySpace,
      strategy: transport.queue_order_strategy,
      blockSeconds: transport.polling_interval,
      blockingClient: () => {
        const c = createBlockingClient(conn, transport.polling_interval);
        c.on('error', () => undefined); // reported through the command connection
        return c;
      },
      onError: (err) => this.onFetchError(err),
    });
  }

  // -------------------------------------------------------------------------
  // Connection

  private retryDelay(times: number): number | null {
    if (this.closed) return null;
    const { enabled, onStartup = true, maxRetries } = this.options.reconnect;
    if ((this.everReady ? !enabled : !onStartup) || (maxRetries !== null && times > maxRetries)) return null;
    const delayMs = backoffDelay(times - 1, RECONNECT_BASE_MS, RECONNECT_MAX_MS);
    if (this.consumers.size > 0 || !this.everReady) {
      const info: ReconnectInfo = { attempt: times, maxRetries, delayMs, error: this.lastError ?? new Error('connection closed'), url: this.displayUrl, failover: false };
      this.emit('reconnect-scheduled', info);
    }
    return delayMs;
  }

  private onReady(): void {
    const again = this.everReady;
    this.everReady = true;
    this.down = false;
    this.fatal = false;
    this.lastFetchError = null;
    this.emit('connected', this.displayUrl);
    if (again) {
      // Redis may have restarted empty: declare the bindings again, as on a new AMQP connection.
      this.bindings.reset();
      for (const decl of this.consumers.values()) void this.declare(decl).catch(() => undefined);
      if (this.consumers.size > 0) this.emit('resumed', this.displayUrl);
    }
    this.acks.retryPending();
    this.fetcher.poke();
  }

  private onClose(): void {
    if (!this.everReady || this.down || this.closed) return;
    this.down = true;
    this.emit('disconnected', new BrokerError(`Lost the connection to ${this.displayUrl}${this.lastError ? `: ${this.lastError.message}` : ''}`, { cause: this.lastError ? safeCause(this.lastError) : undefined }));
  }

  private onEnd(): void {
    if (this.closed) return;
    if (this.consumers.size > 0 && !this.fatal) {
      this.fatal = true;
      const err = new BrokerError(`Gave up reconnecting to ${this.displayUrl}${this.lastError ? `: ${this.lastError.message}` : ''}`);
      void this.fetcher.stop();
      this.emit('fatal', err);
    }
  }

  /** An error's message, with the last connection error when that says more (a TLS or auth failure). */
  private reason(err: unknown): string {
    const msg = (err as Error)?.message ?? String(err);
    return this.lastError && this.lastError.message !== msg ? `${msg}; last connection error: ${this.lastError.message}` : msg;
  }

  private onFetchError(err: Error): void {
    if (this.closed || this.down) return; // a connection problem is reported by 'disconnected'
    if (err.message === this.lastFetchError) return;
    this.lastFetchError = err.message;
    log.error(`consumer: Redis refused a fetch from ${this.displayUrl}: ${err.message}`);
  }

  /** Starts connecting if no connection is open or opening (a producer reconnects on its next publish). */
  private ensureConnecting(): void {
    if (this.closed) throw new BrokerError('The broker connection was closed by the application');
    const status = this.client.status;
    if (status === 'wait' || status === 'end') this.client.connect().catch(() => undefined);
  }

  /** Resolves once connected; rejects when reconnecting was given up (broker_connection_max_retries). */
  private waitReady(): Promise<void> {
    this.ensureConnecting();
    if (this.client.status === 'ready') return Promise.resolve();
    return new Promise((resolve, reject) => {
      const done = (): void => {
        this.client.off('ready', onReady);
        this.client.off('end', onEnd);
      };
      const onReady = (): void => {
        done();
        resolve();
      };
      const onEnd = (): void => {
        done();
        reject(new BrokerError(`Cannot connect to ${this.displayUrl}${this.lastError ? `: ${this.lastError.message}` : ''}. Is Redis running and reachable?`));
      };
      this.client.on('ready', onReady);
      this.client.on('end', onEnd);
    });
  }

  async connect(): Promise<void> {
    await this.waitReady();
  }

  /** The fetcher's blocking peek needs BLMOVE: refuse an older server clearly, once. */
  private checkServer(): Promise<void> {
    this.serverChecked ??= this.client.info('server').then((info) => {
      const m = /redis_version:(\d+)\.(\d+)/.exec(info);
      if (!m) return; // a Redis-compatible server that does not say: let BLMOVE speak for itself
      const [major, minor] = [Number(m[1]), Number(m[2])];
      if (major < MIN_REDIS[0] || (major === MIN_REDIS[0] && minor < MIN_REDIS[1])) {
        throw new BrokerError(`${this.displayUrl} runs Redis ${m[1]}.${m[2]}: the Redis broker needs Redis 6.2 or later (BLMOVE)`);
      }
    });
    this.serverChecked.catch(() => {
      this.serverChecked = null;
    });
    return this.serverChecked;
  }

  // -------------------------------------------------------------------------
  // Exchanges and bindings

  /**
   * Records the queue's binding in `_kombu.binding.<exchange>`, as kombu's
   * `queue_bind` does (see bindings.ts), and remembers the exchange's type
   * as kombu's channel state does. Once per connection.
   */
  private declare(q: QueueDeclaration): Promise<void> {
    if (q.exchange.name !== '') this.exchangeTypes.set(q.exchange.name, q.exchange.type);
    return this.bindings.declare(q);
  }

  /**
   * kombu's `_lookup`: the queues (exchange, routing key) leads to; the
   * default exchange leads to the queue named by the key. A fanout exchange
   * leads to every bound queue's list: only restores of records kombu wrote
   * for a fanout queue consumed with acks get here (publishes go over pub/sub).
   */
  private async lookup(exchange: string, routingKey: string, typeHint?: ExchangeType): Promise<string[]> {
    if (exchange === '') return [routingKey];
    const type = typeHint ?? this.exchangeTypes.get(exchange) ?? 'direct';
    const members = await this.client.smembers(bindingKey(this.keySpace, exchange));
    return routeThroughBindings(type, this.keySpace.sep, members, routingKey);
  }

  // -------------------------------------------------------------------------
  // Publishing

  /**
   * LPUSHes kombu's envelope onto every queue the route leads to (one for a
   * direct route) and resolves once Redis replied. Rejects with a
   * PublishError when no queue takes it, or when Redis did not reply (then it
   * may or may not be stored). With `{ confirm: false }` (events, remote
   * control replies) a message no queue takes is dropped silently, as kombu
   * drops it (no `deadletter_queue`). A fanout exchange's message is
   * PUBLISHed to its subscribers instead (see publishFanout).
   */
  async publish(message: WireMessage, route: PublishRoute, options?: PublishOptions): Promise<void> {
    this.ensureConnecting();
    if (route.declare) await this.declare(route.declare);
    const declared = route.declare?.exchange.name === route.exchange ? route.declare.exchange : route.declareExchange;
    if (declared && declared.name !== '') this.exchangeTypes.set(declared.name, declared.type);
    const type = route.exchange === '' ? 'direct' : ((declared?.name === route.exchange ? declared.type : undefined) ?? this.exchangeTypes.get(route.exchange) ?? 'direct');
    if (type === 'fanout') return this.publishFanout(message, route, options);
    let queues: string[];
    try {
      queues = await this.lookup(route.exchange, route.routingKey, type);
    } catch (err) {
      if (err instanceof BrokerError) throw err;
      throw new PublishError(`Cannot publish to ${this.displayUrl}: ${this.reason(err)}`, { cause: safeCause(err) });
    }
    if (queues.length === 0) {
      if (options?.confirm === false) return;
      throw new PublishError(
        `No queue is bound to exchange ${JSON.stringify(route.exchange)} with key ${JSON.stringify(route.routingKey)} ` +
          `on ${this.displayUrl}: the message was not stored. Declare the queue (task_queues) or start a worker for it first.`,
      );
    }
    const envelope = buildEnvelope(message, route.exchange, route.routingKey, randomUUID());
    const priority = message.priority ?? 0;
    try {
      await Promise.all(queues.map((q) => this.client.lpush(queueKey(this.keySpace, q, priority), envelope)));
    } catch (err) {
      throw new PublishError(
        `Redis at ${this.displayUrl} did not confirm the message for ${JSON.stringify(route.routingKey)} ` +
          `(${this.reason(err)}): it may not have been stored; send it again (the task id can stay the same)`,
        { cause: safeCause(err) },
      );
    }
  }

  /**
   * kombu's `_put_fanout`: PUBLISHes the envelope (the same JSON a list gets)
   * on the exchange's topic. Nothing is stored: a queue whose consumer is not
   * subscribed right now misses it. Rejects with a PublishError when nobody
   * received it, unless sent with `{ confirm: false }` (remote control and
   * events, which kombu also sends into the void).
   */
  private async publishFanout(message: WireMessage, route: PublishRoute, options?: PublishOptions): Promise<void> {
    const envelope = buildEnvelope(message, route.exchange, route.routingKey, randomUUID());
    let receivers = 0;
    try {
      for (const n of await Promise.all(publishTopics(this.topics, route.exchange, route.routingKey).map((t) => this.client.publish(t, envelope)))) receivers += n;
    } catch (err) {
      throw new PublishError(`Cannot publish to fanout exchange ${JSON.stringify(route.exchange)} on ${this.displayUrl}: ${this.reason(err)}`, { cause: safeCause(err) });
    }
    if (receivers === 0 && options?.confirm !== false) {
      throw new PublishError(
        `No consumer is subscribed to fanout exchange ${JSON.stringify(route.exchange)} on ${this.displayUrl}: ` +
          'the message reached nobody (Redis pub/sub keeps nothing). Start a consumer of a queue bound to it first.',
      );
    }
  }

  // -------------------------------------------------------------------------
  // Consuming

  private readonly host: ConsumerHost = {
    track: (d) => this.acks.track(d),
    ack: (d) => this.acks.ack(d),
    requeue: (d) => this.acks.requeue(d),
    forget: (d) => this.acks.forget(d),
    poke: () => this.fetcher.poke(),
    detach: (c) => {
      this.consumers.delete(c);
      this.fetcher.remove(c);
    },
    closed: (c) => this.consumerClosed(c),
    flush: async () => {
      const left = await this.acks.drain(5_000);
      if (left > 0) log.warning(`${left} ack(s)/requeue(s) could not be sent to ${this.displayUrl}: those messages are restored after visibility_timeout`);
    },
  };

  private readonly fanoutHost: FanoutHost = {
    cancelled: (c) => {
      this.consumers.delete(c);
    },
    closed: (c) => this.consumerClosed(c),
  };

  /**
   * A queue bound to a fanout exchange is consumed over pub/sub (see
   * fanout.ts); any other from its lists. The binding is recorded first,
   * as kombu records it, and kept fresh while consumed when it expires.
   * `noAck` (kombu's no_ack) consumers leave no `unacked` records.
   */
  async consume(queue: QueueDeclaration, options: ConsumeOptions): Promise<Consumer> {
    if (this.closed) throw new BrokerError('The broker connection was closed by the application');
    await this.waitReady();
    await this.checkServer();
    await this.declare(queue);
    if (queue.exchange.name !== '' && queue.exchange.type === 'fanout') return this.consumeFanout(queue, options);
    const consumer = new RedisConsumer(queue.name, options.prefetch, options.onDelivery, this.host, ++this.consumerIds, options.noAck === true);
    this.consumers.set(consumer, queue);
    this.open.set(consumer, { decl: queue, release: this.bindings.keep(queue) });
    this.acks.startRenewing();
    this.sweeper.start();
    this.fetcher.add(consumer);
    return consumer;
  }

  private async consumeFanout(queue: QueueDeclaration, options: ConsumeOptions): Promise<Consumer> {
    const patterns = subscribePatterns(this.topics, queue.exchange.name, queue.routingKey);
    const consumer = new FanoutConsumer(queue, patterns, options.onDelivery, this.fanout, this.fanoutHost, `ts-celery-redis-${++this.consumerIds}`);
    this.consumers.set(consumer, queue);
    this.open.set(consumer, { decl: queue, release: this.bindings.keep(queue) });
    try {
      await this.fanout.subscribe(consumer);
    } catch (err) {
      await this.consumerClosed(consumer);
      throw new BrokerError(`Subscribing queue ${JSON.stringify(queue.name)} to ${patterns.join(', ')} on ${this.displayUrl} failed: ${this.reason(err)}`, { cause: safeCause(err) });
    }
    return consumer;
  }

  /** A consumer closed: its binding is no longer refreshed, and an auto-delete queue it owned is deleted. */
  private async consumerClosed(consumer: RedisConsumer | FanoutConsumer): Promise<void> {
    this.consumers.delete(consumer);
    const entry = this.open.get(consumer);
    if (!entry) return;
    this.open.delete(consumer);
    entry.release();
    const decl = entry.decl;
    if (!deletedOnClose(decl) || this.client.status !== 'ready') return;
    await this.bindings.delete(decl).catch((err: unknown) => log.debug(`Deleting queue ${JSON.stringify(decl.name)} on ${this.displayUrl} failed: ${this.reason(err)}`));
  }

  /** Runs kombu's restore of overdue `unacked` messages now (tests; workers also do it on a timer). */
  restoreVisible(): Promise<number> {
    return this.sweeper.sweep();
  }

  /**
   * Stops consuming, returns unsettled deliveries to their queues, sends
   * pending acks (waiting up to 5 s) and closes the connections.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    await this.fetcher.stop();
    await Promise.allSettled([...this.open.keys()].map((c) => c.close()));
    this.sweeper.stop();
    this.bindings.stop();
    await this.host.flush();
    this.acks.stop();
    this.closed = true;
    await this.fanout.close();
    const status = this.client.status;
    if (status === 'ready') await this.client.quit().catch(() => undefined);
    this.client.disconnect();
  }
}
