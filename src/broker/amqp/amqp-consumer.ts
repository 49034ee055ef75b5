/**
 * One queue subscription on its own channel, surviving reconnects.
 *
 * Each consumer has a channel of its own, with `basic.qos global=true`
 * (per channel on RabbitMQ), so its prefetch is "per consumer" and can be
 * raised or lowered at once (the worker does that for held ETA tasks, as
 * Python Celery does). Quorum (and stream) queues refuse global QoS: RabbitMQ
 * 3.10 closes the whole *connection* with 540 NOT_IMPLEMENTED when one is
 * consumed on such a channel. Their consumers set `basic.qos global=false`
 * before `basic.consume` (Celery's `worker_detect_quorum_queues`), which binds
 * the limit to the consumer for its lifetime: a new limit takes a new
 * consumer on the same channel. When the channel or the connection is lost,
 * the deliveries it handed out become dead (settling them is a no-op:
 * RabbitMQ has already requeued them) and the broker attaches a fresh channel.
 */
import type { Channel, ChannelModel, ConsumeMessage } from 'amqplib';
import { decodeAmqpTable } from '../../protocol/amqp-headers.js';
import type { IncomingMessage } from '../../protocol/message.js';
import { clampPrefetch, type Consumer, type Delivery, type DeliveryInfo, type QueueDeclaration } from '../types.js';
import { AckBatcher } from './ack-batcher.js';
import { RepeatedStrings } from './repeated-strings.js';

/** What a consumer needs from its broker. */
export interface ConsumerHost {
  declare(queue: QueueDeclaration, force?: boolean): Promise<void>;
  /** The channel closed while the connection may still be up: attach again soon. */
  consumerLost(consumer: AmqpConsumer): void;
}

class AmqpDelivery implements Delivery {
  private infoObject: DeliveryInfo | null = null;
  /** What `info` is built from, copied out of amqplib's delivery fields (repeating strings shared: repeated-strings.ts). */
  private readonly exchange: string;
  private readonly routingKey: string;
  private readonly consumerTag: string;
  private readonly tag: number;
  private readonly redelivered: boolean;

  constructor(
    readonly message: IncomingMessage,
    fields: ConsumeMessage['fields'],
    shared: RepeatedStrings,
    private readonly batcher: AckBatcher,
    private readonly owner: AmqpConsumer,
    private readonly generation: number,
  ) {
    this.exchange = shared.exchange(fields.exchange);
    this.routingKey = shared.routingKey(fields.routingKey);
    this.consumerTag = shared.consumerTag(fields.consumerTag);
    this.tag = fields.deliveryTag;
    this.redelivered = fields.redelivered;
  }

  /**
   * Built on first use (a task's `request.deliveryInfo`, a retry's route, inspect): up to
   * prefetch-count deliveries wait in memory, and most are never asked.
   */
  get info(): DeliveryInfo {
    return (this.infoObject ??= {
      exchange: this.exchange,
      routingKey: this.routingKey,
      redelivered: this.redelivered,
      consumerTag: this.consumerTag,
      queue: this.owner.queue,
      priority: this.message.priority ?? null,
    });
  }

  get live(): boolean {
    return this.owner.isCurrent(this.generation);
  }

  ack(): void {
    if (this.live) this.batcher.ack(this.tag);
  }

  reject(requeue: boolean): void {
    if (this.live) this.batcher.reject(this.tag, requeue);
  }
}

/** A delivery of a no-ack subscription: RabbitMQ settled it when it sent it. */
class SettledDelivery implements Delivery {
  readonly live = true;
  constructor(
    readonly message: IncomingMessage,
    readonly info: DeliveryInfo,
  ) {}
  ack(): void {}
  reject(): void {}
}

/** Queue types whose consumers must use per-consumer (not channel-global) QoS. */
export function usesPerConsumerQos(q: QueueDeclaration): boolean {
  const type = q.arguments['x-queue-type'];
  return type === 'quorum' || type === 'stream';
}

/** A no-ack delivery's info, built at once (pidbox and event queues: nothing waits there). */
function deliveryInfo(fields: ConsumeMessage['fields'], message: IncomingMessage, queue: string): DeliveryInfo {
  return {
    exchange: fields.exchange,
    routingKey: fields.routingKey,
    redelivered: fields.redelivered,
    consumerTag: fields.consumerTag,
    queue,
    priority: message.priority ?? null,
  };
}

/** True when amqplib decoded a property that IncomingMessage does not carry itself. */
function hasOtherProperties(p: ConsumeMessage['properties']): boolean {
  return (
    p.expiration !== undefined || p.messageId !== undefined || p.timestamp !== undefined || p.type !== undefined ||
    p.userId !== undefined || p.appId !== undefined || p.clusterId !== undefined
  );
}

function toIncoming(m: ConsumeMessage, shared: RepeatedStrings): IncomingMessage {
  const p = m.properties;
  const headers = decodeAmqpTable(p.headers as Record<string, unknown> | undefined);
  shared.headers(headers);
  const id = headers.id;
  const correlationId = p.correlationId as string | undefined;
  return {
    // A copy: amqplib's content is a view into the socket chunk it arrived in (64 KB), and a held
    // delivery would keep that whole chunk alive, until a full collection once it was promoted.
    body: Buffer.from(m.content),
    contentType: shared.contentType(p.contentType as string | undefined),
    contentEncoding: shared.contentEncoding(p.contentEncoding as string | undefined),
    headers,
    // Celery sets the correlation id to the task id: one string for both.
    correlationId: correlationId !== undefined && correlationId === id ? (id as string) : correlationId,
    replyTo: p.replyTo as string | undefined,
    priority: p.priority as number | undefined,
    deliveryMode: p.deliveryMode as number | undefined,
    // amqplib's whole property object only when it holds more than the fields above (request.properties reads it).
    amqpProperties: hasOtherProperties(p) ? (p as unknown as Record<string, unknown>) : undefined,
  };
}

export class AmqpConsumer implements Consumer {
  private channel: Channel | null = null;
  private batcher: AckBatcher | null = null;
  private consumerTag: string | null = null;
  private generation = 0;
  private cancelled = false;
  private attaching: Promise<void> | null = null;
  /** basic.qos global=false before each basic.consume (quorum queues); see the file comment. */
  private readonly perConsumerQos: boolean;
  /** The current channel's delivery handler (kept to consume again with a new limit). */
  private handler: ((m: ConsumeMessage | null) => void) | null = null;

  constructor(
    readonly declaration: QueueDeclaration,
    private prefetch: number,
    private readonly onDelivery: (delivery: Delivery) => void,
    private readonly host: ConsumerHost,
    private readonly onClosed: (consumer: AmqpConsumer) => void = () => undefined,
    /** `no_ack`: RabbitMQ settles each message as it sends it (pidbox and event queues). */
    private readonly noAck = false,
  ) {
    this.perConsumerQos = usesPerConsumerQos(declaration);
  }

  get queue(): string {
    return this.declaration.name;
  }

  /** True while attached to a channel and not cancelled. */
  get consuming(): boolean {
    return this.channel !== null && this.consumerTag !== null && !this.cancelled;
  }

  /** True while deliveries of `generation` can still be settled. */
  isCurrent(generation: number): boolean {
    return generation === this.generation && this.channel !== null;
  }

  /** True once it has consumed at least once (a later attach is a resumption). */
  get everAttached(): boolean {
    return this.generation > 0;
  }

  /** True when this consumer needs a channel (after a loss), and is still wanted. */
  get detached(): boolean {
    return this.channel === null && !this.cancelled;
  }

  /** Opens a channel on `conn`, sets prefetch, declares the queue and consumes. */
  attach(conn: ChannelModel): Promise<void> {
    if (!this.attaching) {
      this.attaching = this.doAttach(conn).finally(() => {
        this.attaching = null;
      });
    }
    return this.attaching;
  }

  private async doAttach(conn: ChannelModel): Promise<void> {
    const ch = await conn.createChannel();
    const generation = ++this.generation;
    ch.on('error', () => {
      /* reported through 'close'; an unhandled 'error' would crash the process */
    });
    ch.on('close', () => this.onChannelClosed(generation));
    try {
      if (!this.noAck) await ch.prefetch(clampPrefetch(this.prefetch), !this.perConsumerQos);
      // Always declared again: the queue may have been deleted while we were away.
      await this.host.declare(this.declaration, true);
      const batcher = this.noAck ? null : new AckBatcher(ch);
      const shared = new RepeatedStrings();
      this.channel = ch;
      this.batcher = batcher;
      this.handler = (m) => {
        if (m === null) {
          // RabbitMQ cancelled us (queue deleted): drop this channel and attach again.
          ch.close().catch(() => undefined);
          return;
        }
        const message = toIncoming(m, shared);
        if (!batcher) return this.onDelivery(new SettledDelivery(message, deliveryInfo(m.fields, message, this.declaration.name)));
        batcher.track(m.fields.deliveryTag);
        this.onDelivery(new AmqpDelivery(message, m.fields, shared, batcher, this, generation));
      };
      const reply = await ch.consume(this.declaration.name, this.handler, { noAck: this.noAck });
      this.consumerTag = reply.consumerTag;
      if (this.cancelled) await ch.cancel(reply.consumerTag);
    } catch (err) {
      if (this.generation === generation) {
        this.channel = null;
        this.batcher = null;
      }
      ch.close().catch(() => undefined);
      throw err;
    }
  }

  private onChannelClosed(generation: number): void {
    if (generation !== this.generation) return;
    this.channel = null;
    this.batcher?.discard(); // a flush may already be scheduled for the dead channel
    this.batcher = null;
    this.consumerTag = null;
    if (!this.cancelled) this.host.consumerLost(this);
  }

  async setPrefetch(count: number): Promise<void> {
    const changed = count !== this.prefetch;
    this.prefetch = count;
    const ch = this.channel;
    if (!ch || this.noAck) return;
    if (!this.perConsumerQos) {
      await ch.prefetch(clampPrefetch(count), true).catch(() => undefined);
      return;
    }
    // A per-consumer limit cannot change under a running consumer: start one with the new
    // limit on the same channel, then cancel the old one (its unacked deliveries stay valid:
    // delivery tags belong to the channel). Both may deliver for a moment; each delivery is settled once.
    const old = this.consumerTag;
    const handler = this.handler;
    if (!changed || !old || !handler || this.cancelled) return;
    try {
      await ch.prefetch(clampPrefetch(count), false);
      const reply = await ch.consume(this.declaration.name, handler, { noAck: false });
      if (this.channel !== ch || this.cancelled) {
        await ch.cancel(reply.consumerTag).catch(() => undefined);
        return;
      }
      this.consumerTag = reply.consumerTag;
      await ch.cancel(old);
    } catch {
      /* the channel closed meanwhile: the next attach uses the new prefetch */
    }
  }

  /** Sends acks waiting for the next flush (before a close). */
  flushAcks(): void {
    this.batcher?.flush();
  }

  async cancel(): Promise<void> {
    this.cancelled = true;
    const { channel, consumerTag } = this;
    if (channel && consumerTag) await channel.cancel(consumerTag).catch(() => undefined);
  }

  /** Flushes acks and closes the channel: unsettled deliveries go back to the queue. */
  async close(): Promise<void> {
    this.cancelled = true;
    this.onClosed(this);
    this.flushAcks();
    const ch = this.channel;
    this.channel = null;
    this.generation++;
    if (ch) await ch.close().catch(() => undefined);
  }
}
