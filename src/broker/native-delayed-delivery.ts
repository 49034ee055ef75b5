/**
 * RabbitMQ native delayed delivery, as kombu 5.7 declares and addresses it
 * (`kombu/transport/native_delayed_delivery.py`): pure functions, no I/O.
 *
 * 28 levels: `celery_delayed_<L>` is a topic exchange and a queue whose
 * messages expire after 2^L s into the exchange of level L-1 (level 0: into
 * `celery_delayed_delivery`). A delayed message is published to
 * `celery_delayed_27` with its delay written in front of its routing key as
 * 28 binary digits, most significant first (`0.….1.1.celery` waits 2 s + 1 s).
 * At each level, a `1` digit routes it into that level's queue (waiting 2^L s)
 * and a `0` digit through an exchange-to-exchange binding straight to the
 * next level; finally `celery_delayed_delivery` routes it on, by the original
 * routing key (binding `#.<key>`), to the task queue's own exchange, which
 * must therefore be a topic (or fanout) exchange: a direct exchange matches
 * keys exactly and cannot be reached. Python and TypeScript declare every
 * entity with identical arguments, so neither gets a 406 from the other.
 */
import type { BindingDeclaration, ExchangeDeclaration, QueueDeclaration, TopologyDeclaration } from './types.js';

/** Digits of the delay in the routing key (kombu's MAX_NUMBER_OF_BITS_TO_USE). */
export const DELAY_BITS = 28;
/** The highest level, where delayed messages enter (`celery_delayed_27`). */
export const MAX_LEVEL = DELAY_BITS - 1;
/** The longest delay the routing key can carry, in seconds (about 8.5 years). */
export const MAX_NATIVE_DELAY_S = 2 ** DELAY_BITS - 1;
/** The exchange delayed messages come out of, bound to each task queue's exchange. */
export const DELAYED_DELIVERY_EXCHANGE = 'celery_delayed_delivery';

/** Queue types kombu accepts for the delay queues (`broker_native_delayed_delivery_queue_type`). */
export type DelayQueueType = 'quorum' | 'classic';

const DELAY_PREFIX = new RegExp(`^(?:[01]\\.){${DELAY_BITS}}`);

/** `celery_delayed_<level>` (or `<prefix>_celery_delayed_<level>`). */
export function levelName(level: number, prefix?: string | null): string {
  if (!Number.isInteger(level) || level < 0) throw new RangeError('level must be a non-negative integer');
  return prefix ? `${prefix}_celery_delayed_${level}` : `celery_delayed_${level}`;
}

/** `celery_delayed_delivery` (or `<prefix>_celery_delayed_delivery`). */
export function deliveryExchangeName(prefix?: string | null): string {
  return prefix ? `${prefix}_${DELAYED_DELIVERY_EXCHANGE}` : DELAYED_DELIVERY_EXCHANGE;
}

/** The exchange a delayed message is published to: the top level. Celery 5.7 never prefixes it. */
export function entryExchangeName(): string {
  return levelName(MAX_LEVEL);
}

const topic = (name: string): ExchangeDeclaration => ({ name, type: 'topic', durable: true });

/** `*.*.….<digit>.#` with `stars` wildcards in front. */
function digitPattern(stars: number, digit: 0 | 1): string {
  return `${'*.'.repeat(stars)}${digit}.#`;
}

/**
 * Every exchange, queue and binding kombu's
 * `declare_native_delayed_delivery_exchanges_and_queues` declares.
 */
export function delayTopology(queueType: DelayQueueType, prefix?: string | null): TopologyDeclaration {
  const exchanges: ExchangeDeclaration[] = [];
  const queues: QueueDeclaration[] = [];
  const bindings: BindingDeclaration[] = [];
  for (let level = MAX_LEVEL; level >= 0; level--) {
    const name = levelName(level, prefix);
    exchanges.push(topic(name));
    const args: Record<string, unknown> = {
      'x-queue-type': queueType,
      'x-overflow': 'reject-publish',
      'x-message-ttl': 2 ** level * 1000,
      'x-dead-letter-exchange': level > 0 ? levelName(level - 1, prefix) : deliveryExchangeName(prefix),
    };
    // Quorum queues dead-letter at most once unless told otherwise: a node failing
    // between the expiry and the republish would lose the message.
    if (queueType === 'quorum') args['x-dead-letter-strategy'] = 'at-least-once';
    // The digit for this level is word number MAX_LEVEL - level of the routing key.
    queues.push({ name, durable: true, autoDelete: false, arguments: args, exchange: topic(name), routingKey: digitPattern(MAX_LEVEL - level, 1) });
    if (level > 0) {
      bindings.push({ source: name, destination: levelName(level - 1, prefix), destinationKind: 'exchange', routingKey: digitPattern(MAX_LEVEL - level, 0) });
    }
  }
  exchanges.push(topic(deliveryExchangeName(prefix)));
  bindings.push({ source: levelName(0, prefix), destination: deliveryExchangeName(prefix), destinationKind: 'exchange', routingKey: digitPattern(MAX_LEVEL, 0) });
  return { exchanges, queues, bindings };
}

/**
 * The bindings kombu's `bind_queue_to_native_delayed_delivery_exchange` adds
 * for one task queue: the delivery exchange to the queue's exchange, and that
 * exchange to the queue, both with `#.<binding key>`. Null for a queue behind
 * a direct exchange (or the default exchange), which delayed messages cannot
 * reach: Celery warns and such ETA tasks are held by the worker.
 */
export function deliveryBindings(queue: QueueDeclaration, prefix?: string | null): BindingDeclaration[] | null {
  if (queue.exchange.name === '' || queue.exchange.type === 'direct') return null;
  const key = queue.routingKey.startsWith('#') ? queue.routingKey : `#.${queue.routingKey}`;
  return [
    { source: deliveryExchangeName(prefix), destination: queue.exchange.name, destinationKind: 'exchange', routingKey: key },
    { source: queue.exchange.name, destination: queue.name, destinationKind: 'queue', routingKey: key },
  ];
}

/** A routing key without the delay digits a previous delayed publish put in front. */
export function stripDelayPrefix(routingKey: string): string {
  return routingKey.replace(DELAY_PREFIX, '');
}

/**
 * kombu's `calculate_routing_key`: the delay in whole seconds as 28 binary
 * digits, then the original routing key (any earlier delay prefix removed,
 * so a retried task's key does not grow).
 */
export function calculateRoutingKey(countdownS: number, routingKey: string): string {
  if (!Number.isInteger(countdownS) || countdownS < 1) throw new RangeError('countdown must be a positive whole number of seconds');
  if (countdownS > MAX_NATIVE_DELAY_S) throw new RangeError(`countdown must be at most ${MAX_NATIVE_DELAY_S} s (2^28 - 1) for native delayed delivery`);
  if (!routingKey) throw new RangeError('routing_key must be non-empty');
  const digits = countdownS.toString(2).padStart(DELAY_BITS, '0');
  return `${digits.split('').join('.')}.${stripDelayPrefix(routingKey)}`;
}
