/**
 * Fanout exchanges over Redis pub/sub, as kombu's Redis transport does them:
 * remote control (`celery.pidbox`) and events (`celeryev`, fanout on Redis).
 *
 * - One subscriber connection per broker, opened with the first fanout
 *   consumer. Each queue bound to a fanout exchange PSUBSCRIBEs to its topic
 *   (topics.ts); a pattern shared by several queues is subscribed once and
 *   every one of them gets each message, as each queue of a RabbitMQ fanout
 *   exchange gets a copy.
 * - A broadcast is settled when it is sent: no `unacked` record, nothing to
 *   redeliver (pub/sub keeps nothing), so `ack`/`reject` are no-ops and the
 *   prefetch is not applied. Celery consumes these queues with no_ack anyway.
 * - A message published while the connection is down is missed, as with
 *   kombu; ioredis reconnects and subscribes again by itself. A PING every
 *   25 s (kombu's health_check_interval) with a socket timeout finds a
 *   half-open connection, which kombu also drops after two missed checks.
 * - An entry that is not kombu's envelope is logged and dropped, as kombu's
 *   `_receive_one` does ("Cannot process event on channel").
 */
import { Redis, type RedisOptions } from 'ioredis';
import type { Consumer, Delivery, DeliveryInfo, QueueDeclaration } from '../types.js';
import type { IncomingMessage } from '../../protocol/message.js';
import { getLogger } from '../../support/log.js';
import { readEnvelope } from './envelope.js';

const log = getLogger('MainProcess');

/** kombu's DEFAULT_HEALTH_CHECK_INTERVAL: how often the subscriber connection is pinged. */
export const SUBSCRIBER_PING_MS = 25_000;
/** Two unanswered pings, as kombu's SUBSCRIBER_MAX_MISSED_HEALTH_CHECKS: then the connection is dropped. */
const SUBSCRIBER_SOCKET_TIMEOUT_MS = 2 * SUBSCRIBER_PING_MS;
/** Delivery tags remembered per queue to drop the second copy of a Sentinel compatibility broadcast (kombu's size). */
const DEDUP_SIZE = 1000;

/** A broadcast: settled when it was sent, so settling it here does nothing. */
class FanoutDelivery implements Delivery {
  readonly live = true;

  constructor(
    readonly message: IncomingMessage,
    readonly info: DeliveryInfo,
  ) {}

  ack(): void {}

  reject(): void {}
}

/** What a fanout consumer needs from its broker. */
export interface FanoutHost {
  /** The consumer takes no more messages. */
  cancelled(consumer: FanoutConsumer): void;
  /** The consumer stopped for good: drop it (and delete its queue's binding if auto-delete). */
  closed(consumer: FanoutConsumer): Promise<void>;
}

/** One queue bound to a fanout exchange: its PSUBSCRIBE patterns and its handler. */
export class FanoutConsumer implements Consumer {
  private cancelled = false;
  private readonly seen: Set<string> | null;

  constructor(
    readonly declaration: QueueDeclaration,
    /** The patterns it PSUBSCRIBEs to (two with the Sentinel compatibility topic). */
    readonly patterns: readonly string[],
    private readonly onDelivery: (delivery: Delivery) => void,
    private readonly hub: FanoutHub,
    private readonly host: FanoutHost,
    readonly consumerTag: string,
  ) {
    // The same message arrives once per pattern: with two topics, deliver it once.
    this.seen = patterns.length > 1 ? new Set() : null;
  }

  get queue(): string {
    return this.declaration.name;
  }

  /** True while subscribed on a connected subscriber. */
  get consuming(): boolean {
    return !this.cancelled && this.hub.ready;
  }

  /** Pub/sub has no flow control: every broadcast is handed over as it arrives. */
  async setPrefetch(): Promise<void> {}

  async cancel(): Promise<void> {
    if (this.cancelled) return;
    this.cancelled = true;
    this.host.cancelled(this);
    await this.hub.unsubscribe(this);
  }

  /** Unsubscribes; nothing is unsettled (broadcasts are settled when sent). */
  async close(): Promise<void> {
    const first = !this.cancelled;
    await this.cancel();
    if (first) await this.host.closed(this);
  }

  /** @internal One message on one of its patterns. */
  deliver(raw: string, channel: string): void {
    if (this.cancelled || raw === '') return;
    const env = readEnvelope(raw, this.queue);
    if (env.message.unreadable) {
      log.warning(`Cannot process event on channel ${JSON.stringify(channel)}: ${env.message.unreadable}: ${raw.slice(0, 200)}`);
      return;
    }
    if (this.seen && env.deliveryTag) {
      if (this.seen.has(env.deliveryTag)) return;
      this.seen.add(env.deliveryTag);
      if (this.seen.size > DEDUP_SIZE) this.seen.delete(this.seen.values().next().value!);
    }
    const info: DeliveryInfo = {
      exchange: env.exchange,
      routingKey: env.routingKey,
      redelivered: false,
      consumerTag: this.consumerTag,
      queue: this.queue,
      priority: env.message.priority ?? null,
    };
    this.onDelivery(new FanoutDelivery(env.message, info));
  }
}

/** The subscriber connection and which consumers each pattern feeds. */
export class FanoutHub {
  private client: Redis | null = null;
  private readonly byPattern = new Map<string, Set<FanoutConsumer>>();
  private ping: NodeJS.Timeout | null = null;
  private closed = false;

  /** `connection`: the broker's ioredis options (host, db, TLS, Sentinel...). */
  constructor(private readonly connection: RedisOptions) {}

  /** The subscriber connection is up. */
  get ready(): boolean {
    return this.client?.status === 'ready';
  }

  private open(): Redis {
    if (this.client) return this.client;
    const client = new Redis({
      ...this.connection,
      enableAutoPipelining: false,
      autoResubscribe: true,
      autoResendUnfulfilledCommands: true,
      maxRetriesPerRequest: null,
      socketTimeout: SUBSCRIBER_SOCKET_TIMEOUT_MS,
      retryStrategy: (times) => (this.closed ? null : Math.min(250 * 2 ** Math.min(times, 6), 5_000)),
    });
    client.on('error', () => undefined); // the command connection reports connection problems
    client.on('pmessage', (pattern: string, channel: string, message: string) => {
      const consumers = this.byPattern.get(pattern);
      if (consumers) for (const c of [...consumers]) c.deliver(message, channel);
    });
    this.ping = setInterval(() => {
      if (client.status === 'ready') client.ping().catch(() => undefined);
    }, SUBSCRIBER_PING_MS).unref();
    this.client = client;
    return client;
  }

  /** PSUBSCRIBEs the consumer's patterns (those not subscribed yet); resolves once Redis confirmed. */
  async subscribe(consumer: FanoutConsumer): Promise<void> {
    const client = this.open();
    const fresh: string[] = [];
    for (const p of consumer.patterns) {
      let set = this.byPattern.get(p);
      if (!set) {
        this.byPattern.set(p, (set = new Set()));
        fresh.push(p);
      }
      set.add(consumer);
    }
    if (client.status === 'wait') client.connect().catch(() => undefined);
    if (fresh.length === 0) return;
    try {
      await client.psubscribe(...fresh);
    } catch (err) {
      await this.unsubscribe(consumer);
      throw err;
    }
  }

  /** Drops the consumer; patterns no other consumer uses are PUNSUBSCRIBEd. */
  async unsubscribe(consumer: FanoutConsumer): Promise<void> {
    const gone: string[] = [];
    for (const p of consumer.patterns) {
      const set = this.byPattern.get(p);
      if (!set?.delete(consumer) || set.size > 0) continue;
      this.byPattern.delete(p);
      gone.push(p);
    }
    if (gone.length === 0 || !this.client || this.closed) return;
    // Not subscribed again after a reconnect either way: ioredis forgets the pattern once Redis confirms.
    await this.client.punsubscribe(...gone).catch(() => undefined);
  }

  /** Closes the subscriber connection. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.ping) clearInterval(this.ping);
    this.byPattern.clear();
    const client = this.client;
    this.client = null;
    if (!client) return;
    if (client.status === 'ready') await client.quit().catch(() => undefined);
    client.disconnect();
  }
}
