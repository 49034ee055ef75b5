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
 * - Fanout exchanges (kombu: PUBLISH/PSUBSCRIBE on `/<db>.<exchange>`) are
 *   refused with a clear error for now; `lookup()` and `consume()` are where
 *   they plug in.
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
import { createBlockingClient, createCommandClient, type ScriptedRedis } from './client.js';
import { RedisConsumer, type ConsumerHost } from './consumer.js';
import { buildEnvelope } from './envelope.js';
import { Fetcher } from './fetcher.js';
import { bindingKey, bindingMember, bindingPermanentKey, queueKey, routeThroughBindings, topicPattern, type KeySpace } from './keys.js';
import { parseTransportOptions, type RedisTransportOptions } from './options.js';
import { RestoreSweeper, sweepIntervalMs } from './restore.js';
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

function fanoutNotSupported(exchange: string): BrokerError {
  return new BrokerError(
    `Exchange ${JSON.stringify(exchange)} is a fanout exchange: fanout over Redis pub/sub is not implemented ` +
      'yet in the Redis broker (direct and topic exchanges are); route tasks to queues instead',
  );
}

export class RedisBroker extends EventEmitter<BrokerEvents> implements Broker {
  readonly displayUrl: string;
  readonly transport: RedisTransportOptions;
  private readonly keySpace: KeySpace;
  private readonly client: ScriptedRedis;
  private readonly fetcher: Fetcher;
  private readonly acks: AckEmulation;
  private readonly sweeper: RestoreSweeper;
  private readonly consumers = new Map<RedisConsumer, QueueDeclaration>();
  private readonly declared = new Map<string, Promise<void>>();
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
    const conn = connectionOptions(parseRedisUrl(options.url), transport, { tls: options.tls, connectTimeout: options.connectTimeout });
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
      (exchange, routingKey) => this.lookup(exchange, routingKey, true),
    );
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
      const info: ReconnectInfo = { attempt: times, maxRetries, delayMs, error: this.lastError ?? new Error('connection closed') };
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
      this.declared.clear();
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

  /** Direct and topic exchanges route through kombu's binding sets; fanout (pub/sub) is not implemented. */
  supportsExchangeType(type: ExchangeType): boolean {
    return type !== 'fanout';
  }

  /**
   * Records the queue's binding in `_kombu.binding.<exchange>` (and 5.7's
   * `_kombu.binding_permanent.<exchange>`), as kombu's `queue_bind` does, so
   * Python producers and restores route through it. The default exchange
   * needs no binding. Once per connection.
   */
  private declare(q: QueueDeclaration): Promise<void> {
    const exchange = q.exchange.name;
    if (exchange === '') return Promise.resolve();
    if (q.exchange.type === 'fanout') return Promise.reject(fanoutNotSupported(exchange));
    this.exchangeTypes.set(exchange, q.exchange.type);
    const cacheKey = JSON.stringify([exchange, q.exchange.type, q.routingKey, q.name]);
    let done = this.declared.get(cacheKey);
    if (!done) {
      const pattern = q.exchange.type === 'topic' ? topicPattern(q.routingKey) : '';
      const member = bindingMember(this.keySpace.sep, q.routingKey, pattern, q.name);
      done = Promise.all([
        this.client.sadd(bindingKey(this.keySpace, exchange), member),
        this.client.sadd(bindingPermanentKey(this.keySpace, exchange), member),
      ]).then(
        () => undefined,
        (err: unknown) => {
          this.declared.delete(cacheKey);
          throw new BrokerError(`Declaring the binding of queue ${JSON.stringify(q.name)} on ${this.displayUrl} failed: ${this.reason(err)}`, { cause: safeCause(err) });
        },
      );
      this.declared.set(cacheKey, done);
    }
    return done;
  }

  /** kombu's `_lookup`: the queues (exchange, routing key) leads to; the default exchange leads to the queue named by the key. */
  private async lookup(exchange: string, routingKey: string, forRestore = false, typeHint?: ExchangeType): Promise<string[]> {
    if (exchange === '') return [routingKey];
    const type = typeHint ?? this.exchangeTypes.get(exchange) ?? 'direct';
    if (type === 'fanout' && !forRestore) throw fanoutNotSupported(exchange);
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
   * drops it (no `deadletter_queue`).
   */
  async publish(message: WireMessage, route: PublishRoute, options?: PublishOptions): Promise<void> {
    this.ensureConnecting();
    if (route.declare) await this.declare(route.declare);
    const declared = route.declare?.exchange.name === route.exchange ? route.declare.exchange : route.declareExchange;
    if (declared && declared.name !== '') {
      if (declared.type === 'fanout') throw fanoutNotSupported(declared.name);
      this.exchangeTypes.set(declared.name, declared.type);
    }
    let queues: string[];
    try {
      queues = await this.lookup(route.exchange, route.routingKey, false, declared?.name === route.exchange ? declared.type : undefined);
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
    flush: async () => {
      const left = await this.acks.drain(5_000);
      if (left > 0) log.warning(`${left} ack(s)/requeue(s) could not be sent to ${this.displayUrl}: those messages are restored after visibility_timeout`);
    },
  };

  async consume(queue: QueueDeclaration, options: ConsumeOptions): Promise<Consumer> {
    if (this.closed) throw new BrokerError('The broker connection was closed by the application');
    if (queue.exchange.name !== '' && queue.exchange.type === 'fanout') throw fanoutNotSupported(queue.exchange.name);
    await this.waitReady();
    await this.checkServer();
    await this.declare(queue);
    const consumer = new RedisConsumer(queue.name, options.prefetch, options.onDelivery, this.host, ++this.consumerIds);
    this.consumers.set(consumer, queue);
    this.acks.startRenewing();
    this.sweeper.start();
    this.fetcher.add(consumer);
    return consumer;
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
    await Promise.allSettled([...this.consumers.keys()].map((c) => c.close()));
    this.sweeper.stop();
    await this.host.flush();
    this.acks.stop();
    this.closed = true;
    const status = this.client.status;
    if (status === 'ready') await this.client.quit().catch(() => undefined);
    this.client.disconnect();
  }
}
