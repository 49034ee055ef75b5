/**
 * Celery events on the wire (`celery/events/event.py`, `dispatcher.py`), as
 * pure functions. An event is a JSON object with Celery's fields in Celery's
 * order: `hostname, utcoffset, pid, clock, <fields>, timestamp, type`. It is
 * published to the `celeryev` topic exchange with routing key = the type with
 * dashes as dots (`worker.heartbeat`), header `hostname`, delivery mode 1; a
 * worker's task events go out batched, as a JSON list with routing key
 * `task.multi` (test/fixtures/celery-5.7/events_all_types.json).
 */
import type { CelerySettings } from '../app/config.js';
import type { ExchangeDeclaration, QueueDeclaration } from '../broker/types.js';
import { decodeJson } from '../protocol/json.js';
import type { IncomingMessage, WireMessage } from '../protocol/message.js';

/** One event. */
export type CeleryEvent = Record<string, unknown> & { type: string; hostname?: string; timestamp?: number };

/** `task-sent` -> `task`. */
export function groupOf(type: string): string {
  const i = type.indexOf('-');
  return i < 0 ? type : type.slice(0, i);
}

/** Celery's `utcoffset()`: hours west of UTC (`time.timezone // 3600`). */
export function utcOffsetHours(date = new Date()): number {
  return Math.floor((date.getTimezoneOffset() * 60) / 3600);
}

/**
 * The `celeryev` exchange (`event_exchange`): a durable topic exchange, or a
 * fanout one on Redis (`driverType` `'redis'`), where Celery's `get_exchange`
 * switches it to fanout so events go over pub/sub instead of lists.
 */
export function eventExchange(conf: CelerySettings, driverType?: string): ExchangeDeclaration {
  return { name: conf.event_exchange, type: driverType === 'redis' ? 'fanout' : 'topic', durable: true };
}

/**
 * An event receiver's queue, as Celery 5.7 declares it: `celeryev.<uuid>`,
 * auto-delete, exclusive, `x-message-ttl` 5 s, `x-expires` 60 s, bound with
 * `routingKey` (`#` = every event) to the exchange for `driverType`.
 */
export function receiverQueue(conf: CelerySettings, id: string, routingKey = '#', driverType?: string): QueueDeclaration {
  const args: Record<string, unknown> = {};
  if (conf.event_queue_expires) args['x-expires'] = Math.round(conf.event_queue_expires * 1000);
  if (conf.event_queue_ttl) args['x-message-ttl'] = Math.round(conf.event_queue_ttl * 1000);
  return {
    name: `${conf.event_queue_prefix}.${id}`,
    durable: conf.event_queue_durable,
    autoDelete: !conf.event_queue_durable,
    exclusive: conf.event_queue_exclusive && !conf.event_queue_durable,
    arguments: args,
    exchange: eventExchange(conf, driverType),
    routingKey,
  };
}

/** The message carrying one event or a batch (a list), given as JSON text. */
export function buildEventMessage(json: string, hostname: string): WireMessage {
  return {
    body: Buffer.from(json, 'utf8'),
    contentType: 'application/json',
    contentEncoding: 'utf-8',
    headers: { hostname },
    deliveryMode: 1,
    priority: 0,
  };
}

/** The events in a message (a batch is a list); [] when it is not JSON events. */
export function parseEventMessage(message: IncomingMessage): CeleryEvent[] {
  if ((message.contentType ?? 'application/json') !== 'application/json') return [];
  let body: unknown;
  try {
    body = decodeJson(message.body.toString('utf8'));
  } catch {
    return [];
  }
  const list = Array.isArray(body) ? body : [body];
  return list.filter((e): e is CeleryEvent => e !== null && typeof e === 'object' && !Array.isArray(e) && typeof (e as CeleryEvent).type === 'string');
}
