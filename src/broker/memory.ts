/**
 * The embedded in-memory broker (`memory://`): the first-run demo and unit
 * tests, in one process. It behaves like a single RabbitMQ node for what the
 * worker relies on (prefetch, ack, reject with and without requeue,
 * redelivered flag), but nothing survives the process.
 */
import { EventEmitter } from 'node:events';
import type { IncomingMessage, WireMessage } from '../protocol/message.js';
import type {
  Broker,
  BrokerEvents,
  ConsumeOptions,
  Consumer,
  Delivery,
  DeliveryInfo,
  ExchangeDeclaration,
  PublishOptions,
  PublishRoute,
  QueueDeclaration,
} from './types.js';

interface StoredMessage {
  message: IncomingMessage;
  exchange: string;
  routingKey: string;
  redelivered: boolean;
}

class MemoryQueue {
  readonly ready: StoredMessage[] = [];
  readonly consumers: MemoryConsumer[] = [];
  private next = 0;
  /** Deleted (with its bindings) when its last consumer goes, as RabbitMQ does with auto-delete. */
  autoDelete = false;
  /** Set by the broker: removes this queue. */
  onUnused: () => void = () => undefined;

  push(m: StoredMessage, front = false): void {
    if (front) this.ready.unshift(m);
    else this.ready.push(m);
    this.dispatch();
  }

  /** Hands ready messages to consumers with room, round-robin. */
  dispatch(): void {
    while (this.ready.length > 0) {
      const consumer = this.pickConsumer();
      if (!consumer) return;
      consumer.deliver(this.ready.shift()!);
    }
  }

  private pickConsumer(): MemoryConsumer | null {
    for (let i = 0; i < this.consumers.length; i++) {
      const c = this.consumers[(this.next + i) % this.consumers.length]!;
      if (c.hasRoom()) {
        this.next = (this.next + i + 1) % this.consumers.length;
        return c;
      }
    }
    return null;
  }
}

class MemoryConsumer implements Consumer {
  private unacked = 0;
  private tag = 0;
  private active = true;
  private readonly consumerTag: string;

  constructor(
    private readonly q: MemoryQueue,
    readonly queue: string,
    private prefetch: number,
    private readonly onDelivery: (d: Delivery) => void,
    id: number,
    /** `no_ack`: settled as delivered, no prefetch window. */
    private readonly noAck = false,
  ) {
    this.consumerTag = `memory-${id}`;
  }

  get consuming(): boolean {
    return this.active;
  }

  hasRoom(): boolean {
    return this.active && (this.noAck || this.prefetch === 0 || this.unacked < this.prefetch);
  }

  deliver(stored: StoredMessage): void {
    const info: DeliveryInfo = {
      exchange: stored.exchange,
      routingKey: stored.routingKey,
      redelivered: stored.redelivered,
      consumerTag: this.consumerTag,
      queue: this.queue,
      priority: stored.message.priority ?? null,
    };
    if (this.noAck) {
      this.onDelivery({ message: stored.message, info, live: true, ack: () => undefined, reject: () => undefined });
      return;
    }
    this.unacked++;
    this.tag++;
    let settled = false;
    const settle = (): boolean => {
      if (settled) return false;
      settled = true;
      this.unacked--;
      // Give the freed slot away after the current call stack, like a network round trip would.
      queueMicrotask(() => this.q.dispatch());
      return true;
    };
    const delivery: Delivery = {
      message: stored.message,
      info,
      live: true,
      ack: () => {
        settle();
      },
      reject: (requeue: boolean) => {
        if (settle() && requeue) this.q.push({ ...stored, redelivered: true }, true);
      },
    };
    this.onDelivery(delivery);
  }

  async setPrefetch(count: number): Promise<void> {
    this.prefetch = count;
    this.q.dispatch();
  }

  async cancel(): Promise<void> {
    this.active = false;
    const i = this.q.consumers.indexOf(this);
    if (i >= 0) this.q.consumers.splice(i, 1);
    if (i >= 0 && this.q.consumers.length === 0 && this.q.autoDelete) this.q.onUnused();
  }

  async close(): Promise<void> {
    await this.cancel();
  }
}

/** Does a topic binding key (`*` one word, `#` zero or more) match a routing key? */
export function topicMatches(pattern: string, key: string): boolean {
  const p = pattern.split('.');
  const k = key.split('.');
  const match = (i: number, j: number): boolean => {
    if (i === p.length) return j === k.length;
    if (p[i] === '#') return match(i + 1, j) || (j < k.length && match(i, j + 1));
    return j < k.length && (p[i] === '*' || p[i] === k[j]) && match(i + 1, j + 1);
  };
  return match(0, 0);
}

/** Emits none of the {@link BrokerEvents}: there is no connection to lose. */
export class MemoryBroker extends EventEmitter<BrokerEvents> implements Broker {
  readonly displayUrl = 'memory://';
  private readonly queues = new Map<string, MemoryQueue>();
  /** exchange -> routing key -> queue names. */
  private readonly bindings = new Map<string, Map<string, Set<string>>>();
  /** Exchange types; an exchange never declared routes as direct. */
  private readonly exchanges = new Map<string, ExchangeDeclaration['type']>();
  private consumerIds = 0;

  private queue(name: string): MemoryQueue {
    let q = this.queues.get(name);
    if (!q) {
      q = new MemoryQueue();
      this.queues.set(name, q);
    }
    return q;
  }

  private declare(decl: QueueDeclaration): void {
    const q = this.queue(decl.name);
    if (decl.autoDelete && !q.autoDelete) {
      q.autoDelete = true;
      q.onUnused = () => {
        if (this.queues.get(decl.name) !== q) return;
        this.queues.delete(decl.name);
        for (const keys of this.bindings.values()) for (const names of keys.values()) names.delete(decl.name);
      };
    }
    if (decl.exchange.name === '') return;
    this.exchanges.set(decl.exchange.name, decl.exchange.type);
    let keys = this.bindings.get(decl.exchange.name);
    if (!keys) this.bindings.set(decl.exchange.name, (keys = new Map()));
    let names = keys.get(decl.routingKey);
    if (!names) keys.set(decl.routingKey, (names = new Set()));
    names.add(decl.name);
  }

  async connect(): Promise<void> {}

  /** Queues a publish to `exchange` with `routingKey` reaches, by the exchange's type. */
  private route(exchange: string, routingKey: string): string[] {
    if (exchange === '') return [routingKey];
    const keys = this.bindings.get(exchange);
    if (!keys) return [];
    const type = this.exchanges.get(exchange) ?? 'direct';
    if (type === 'direct') return [...(keys.get(routingKey) ?? [])];
    const out = new Set<string>();
    for (const [pattern, names] of keys) {
      if (type === 'fanout' || topicMatches(pattern, routingKey)) for (const n of names) out.add(n);
    }
    return [...out];
  }

  async publish(message: WireMessage, route: PublishRoute, _options?: PublishOptions): Promise<void> {
    if (route.declare) this.declare(route.declare);
    if (route.declareExchange) this.exchanges.set(route.declareExchange.name, route.declareExchange.type);
    const incoming: IncomingMessage = {
      body: message.body,
      contentType: message.contentType,
      contentEncoding: message.contentEncoding,
      headers: message.headers,
      correlationId: message.correlationId,
      replyTo: message.replyTo,
      priority: message.priority,
    };
    for (const name of this.route(route.exchange, route.routingKey)) {
      // Unroutable messages vanish, as on RabbitMQ without `mandatory`.
      this.queues.get(name)?.push({ message: incoming, exchange: route.exchange, routingKey: route.routingKey, redelivered: false });
    }
  }

  async consume(decl: QueueDeclaration, options: ConsumeOptions): Promise<Consumer> {
    this.declare(decl);
    const q = this.queue(decl.name);
    const consumer = new MemoryConsumer(q, decl.name, options.prefetch, options.onDelivery, ++this.consumerIds, options.noAck ?? false);
    q.consumers.push(consumer);
    queueMicrotask(() => q.dispatch());
    return consumer;
  }

  /** Messages waiting in a queue (for tests and the demo). */
  size(queue: string): number {
    return this.queues.get(queue)?.ready.length ?? 0;
  }

  async close(): Promise<void> {
    for (const q of this.queues.values()) for (const c of [...q.consumers]) await c.cancel();
  }
}
