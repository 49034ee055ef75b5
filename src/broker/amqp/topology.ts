/**
 * Declaring exchanges, queues and bindings, once per connection, as kombu
 * does (its `declared_entities` cache). Declarations run on a channel of
 * their own, so a 406 PRECONDITION_FAILED (a queue declared differently
 * elsewhere) closes that channel and fails that declaration with an
 * explanation, never the channel pending publisher confirms wait on.
 */
import type { Channel } from 'amqplib';
import { BrokerError } from '../../errors.js';
import { encodeAmqpTable } from '../../protocol/amqp-headers.js';
import type { ExchangeDeclaration, QueueDeclaration, TopologyDeclaration } from '../types.js';

function queueKey(q: QueueDeclaration): string {
  return JSON.stringify(['queue', q.name, q.durable, q.autoDelete, q.exclusive ?? false, q.arguments, q.exchange, q.routingKey]);
}

/** Same queue arguments, compared shallowly (numbers and strings: x-max-priority, x-queue-type...; an object never matches). */
function sameArguments(a: Record<string, unknown> | undefined, b: Record<string, unknown> | undefined): boolean {
  if (a === b) return true;
  if (!a || !b) return false;
  const keys = Object.keys(a);
  if (keys.length !== Object.keys(b).length) return false;
  for (const k of keys) if (a[k] !== b[k] || (typeof a[k] === 'object' && a[k] !== null)) return false;
  return true;
}

/** True when `a` declares exactly what `b` does (the fields {@link queueKey} covers). */
function sameQueue(a: QueueDeclaration, b: QueueDeclaration): boolean {
  return (
    a.name === b.name && a.durable === b.durable && a.autoDelete === b.autoDelete && (a.exclusive ?? false) === (b.exclusive ?? false) &&
    a.routingKey === b.routingKey && a.exchange.name === b.exchange.name && a.exchange.type === b.exchange.type &&
    a.exchange.durable === b.exchange.durable && sameArguments(a.arguments, b.arguments)
  );
}

/** A declare that RabbitMQ refused because the entity exists with other settings (406). */
export function describeDeclareError(err: unknown, q: QueueDeclaration): BrokerError {
  const msg = String((err as Error)?.message ?? err);
  if (/PRECONDITION[-_]FAILED|406/.test(msg)) {
    return new BrokerError(
      `RabbitMQ refused to declare queue ${JSON.stringify(q.name)}: it already exists with different ` +
        `settings (${msg.replace(/^.*PRECONDITION_FAILED - /, '')}). Declare it exactly as the other ` +
        `producers and workers do (durable, no arguments by default; check task_queues, ` +
        `task_queue_max_priority and the queue type: task_default_queue_type, x-queue-type), or delete the queue.`,
      { cause: err },
    );
  }
  return new BrokerError(`Declaring queue ${JSON.stringify(q.name)} failed: ${msg}`, { cause: err });
}

export class Declarations {
  /** Declarations done on the current connection, by key. */
  private done = new Map<string, Promise<void>>();
  /**
   * The last queue declaration seen per name and its key: routing makes a fresh declaration
   * object for every publish, and comparing its fields is much cheaper than building the
   * JSON key each time (delay() declares its queue on every call; only the first one does work).
   */
  private lastQueue = new Map<string, { q: QueueDeclaration; key: string }>();

  constructor(private readonly channel: () => Promise<Channel>) {}

  /** Keys whose declaration completed on this connection (a synchronous check for the publish path). */
  private completed = new Set<string>();

  /** The connection is gone: everything is declared again on the next one. */
  clear(): void {
    this.done.clear();
    this.completed.clear();
  }

  /** True when `q` was declared on this connection already: publishing needs no wait for it. */
  queueDeclared(q: QueueDeclaration): boolean {
    return this.completed.has(this.keyOf(q));
  }

  private keyOf(q: QueueDeclaration): string {
    const last = this.lastQueue.get(q.name);
    if (last && (last.q === q || sameQueue(last.q, q))) return last.key;
    const key = queueKey(q);
    this.lastQueue.set(q.name, { q, key });
    return key;
  }

  private once(key: string, force: boolean, run: () => Promise<void>): Promise<void> {
    let p = force ? undefined : this.done.get(key);
    if (!p) {
      p = run();
      this.done.set(key, p);
      this.completed.delete(key);
      const done = this.done;
      p.then(
        () => {
          // Not if the connection went (clear()) or a forced declare replaced this one meanwhile.
          if (this.done === done && done.get(key) === p) this.completed.add(key);
        },
        () => this.done.delete(key),
      );
    }
    return p;
  }

  /**
   * Exchange, queue and binding. `force` declares again even if done before
   * on this connection (the queue may have been deleted since).
   */
  queue(q: QueueDeclaration, force = false): Promise<void> {
    return this.once(this.keyOf(q), force, async () => {
      const ch = await this.channel();
      try {
        await this.declareQueueOn(ch, q);
      } catch (err) {
        throw describeDeclareError(err, q);
      }
    });
  }

  /** An exchange alone (the fanout/topic exchanges of remote control and events). */
  exchange(x: ExchangeDeclaration): Promise<void> {
    return this.once(JSON.stringify(['exchange', x.name, x.type, x.durable]), false, async () => {
      const ch = await this.channel();
      try {
        await ch.assertExchange(x.name, x.type, { durable: x.durable, autoDelete: false });
      } catch (err) {
        throw new BrokerError(
          `Declaring exchange ${JSON.stringify(x.name)} (${x.type}, ${x.durable ? 'durable' : 'not durable'}) failed: ${(err as Error).message}`,
          { cause: err },
        );
      }
    });
  }

  /**
   * Exchanges, then queues with their bindings, then the extra bindings (an
   * exchange-to-exchange binding needs both ends). About one round trip per
   * entity; the native delayed delivery topology is ~110 of them.
   */
  topology(t: TopologyDeclaration, force = false): Promise<void> {
    return this.once(JSON.stringify(['topology', t]), force, async () => {
      const ch = await this.channel();
      let what = '';
      try {
        for (const x of t.exchanges) {
          what = `exchange ${JSON.stringify(x.name)}`;
          await ch.assertExchange(x.name, x.type, { durable: x.durable, autoDelete: false });
        }
        for (const q of t.queues) {
          what = `queue ${JSON.stringify(q.name)}`;
          await this.declareQueueOn(ch, q);
        }
        for (const b of t.bindings) {
          what = `the binding ${JSON.stringify(b.source)} -> ${b.destinationKind} ${JSON.stringify(b.destination)} (${JSON.stringify(b.routingKey)})`;
          if (b.destinationKind === 'queue') await ch.bindQueue(b.destination, b.source, b.routingKey);
          else await ch.bindExchange(b.destination, b.source, b.routingKey);
        }
      } catch (err) {
        const q = t.queues.find((d) => what === `queue ${JSON.stringify(d.name)}`);
        if (q) throw describeDeclareError(err, q);
        throw new BrokerError(`Declaring ${what} failed: ${(err as Error).message}`, { cause: err });
      }
    });
  }

  private async declareQueueOn(ch: Channel, q: QueueDeclaration): Promise<void> {
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
  }
}
