/**
 * kombu's message envelope on Redis, as pure functions: the JSON document a
 * producer LPUSHes onto a queue list, the `[envelope, exchange, routing_key]`
 * record the ack emulation keeps in `unacked`, and the `redelivered` marks a
 * restore adds. Shapes from test/fixtures/celery-5.7/redis_broker_*.json.
 *
 *   {"body": "<base64 of [args, kwargs, embed]>", "content-encoding": "utf-8",
 *    "content-type": "application/json", "headers": {...},
 *    "properties": {"correlation_id", "reply_to", "delivery_mode", ["expiration"],
 *                   "delivery_info": {"exchange", "routing_key"}, "priority",
 *                   "body_encoding": "base64", "delivery_tag": "<uuid>"}}
 */
import type { IncomingMessage, WireMessage } from '../../protocol/message.js';
import { messagePriority } from './keys.js';

type Json = Record<string, unknown>;

function isObject(v: unknown): v is Json {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/**
 * The envelope for one message, in the key order Python writes it. The body
 * is base64 (kombu's default `body_encoding`); `priority` is always present
 * (kombu fills in 0), and `expiration` is carried although Redis ignores it,
 * as kombu does.
 */
export function buildEnvelope(message: WireMessage, exchange: string, routingKey: string, deliveryTag: string): string {
  const properties: Json = {};
  if (message.correlationId !== undefined) properties.correlation_id = message.correlationId;
  if (message.replyTo !== undefined) properties.reply_to = message.replyTo;
  properties.delivery_mode = message.deliveryMode;
  if (message.expiration !== undefined) properties.expiration = message.expiration;
  properties.delivery_info = { exchange, routing_key: routingKey };
  properties.priority = message.priority ?? 0;
  properties.body_encoding = 'base64';
  properties.delivery_tag = deliveryTag;
  return JSON.stringify({
    body: message.body.toString('base64'),
    'content-encoding': message.contentEncoding,
    'content-type': message.contentType,
    headers: message.headers,
    properties,
  });
}

/** What a consumer needs from one envelope. */
export interface ReadEnvelope {
  message: IncomingMessage;
  exchange: string;
  routingKey: string;
  redelivered: boolean;
  /** kombu's `delivery_tag` (the key of the ack emulation), or null when the envelope has none. */
  deliveryTag: string | null;
}

function unreadable(raw: string, queue: string, why: string): ReadEnvelope {
  return {
    message: { body: Buffer.from(raw, 'utf8'), headers: {}, unreadable: why },
    exchange: '',
    routingKey: queue,
    redelivered: false,
    deliveryTag: null,
  };
}

function decodeBody(body: unknown, encoding: unknown): Buffer | string {
  if (body === null || body === undefined || body === '') return Buffer.alloc(0);
  if (typeof body !== 'string') return 'the body is not a string';
  if (encoding === 'base64') return Buffer.from(body, 'base64');
  if (encoding === null || encoding === undefined || (typeof encoding === 'string' && /^utf-?8$/i.test(encoding))) {
    return Buffer.from(body, 'utf8');
  }
  return `unsupported body_encoding ${JSON.stringify(encoding)}`;
}

/**
 * Reads an envelope popped from `queue`. Never throws: an entry that is not
 * kombu's envelope comes back as a message marked `unreadable` with the
 * reason, so the worker logs and rejects it like any other bad message.
 */
export function readEnvelope(raw: string, queue: string): ReadEnvelope {
  let env: unknown;
  try {
    env = JSON.parse(raw);
  } catch (err) {
    return unreadable(raw, queue, `not JSON (${(err as Error).message})`);
  }
  if (!isObject(env)) return unreadable(raw, queue, 'not a JSON object');
  const props = env.properties;
  if (!isObject(props)) return unreadable(raw, queue, 'no "properties" object');
  const headers = env.headers ?? {};
  if (!isObject(headers)) return unreadable(raw, queue, '"headers" is not an object');
  const body = decodeBody(env.body, props.body_encoding);
  if (typeof body === 'string') return unreadable(raw, queue, body);
  const info = isObject(props.delivery_info) ? props.delivery_info : {};
  const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);
  return {
    message: {
      body,
      contentType: str(env['content-type']),
      contentEncoding: str(env['content-encoding']),
      headers,
      correlationId: str(props.correlation_id),
      replyTo: str(props.reply_to),
      priority: typeof props.priority === 'number' ? props.priority : undefined,
      kombuProperties: props,
    },
    exchange: str(info.exchange) ?? '',
    routingKey: str(info.routing_key) ?? queue,
    redelivered: info.redelivered === true,
    deliveryTag: typeof props.delivery_tag === 'string' && props.delivery_tag !== '' ? props.delivery_tag : null,
  };
}

/**
 * The envelope as a restore pushes it back: `headers.redelivered` and
 * `properties.delivery_info.redelivered` set to true (kombu's
 * `_do_restore_message`). Returns the JSON text and the priority that picks
 * the sub-queue, or null when `envelope` is not an object.
 */
export function redeliveredEnvelope(envelope: unknown): { json: string; priority: number } | null {
  if (!isObject(envelope)) return null;
  if (isObject(envelope.headers)) envelope.headers.redelivered = true;
  const props = isObject(envelope.properties) ? envelope.properties : null;
  if (props && isObject(props.delivery_info)) props.delivery_info.redelivered = true;
  return { json: JSON.stringify(envelope), priority: messagePriority(props?.priority) };
}

/** One entry of the `unacked` hash: `[envelope, exchange, routing_key]`. */
export interface UnackedRecord {
  envelope: Json;
  exchange: string;
  routingKey: string;
}

/** Parses an `unacked` hash value, or null when it is not kombu's record. */
export function parseUnackedRecord(raw: string): UnackedRecord | null {
  let doc: unknown;
  try {
    doc = JSON.parse(raw);
  } catch {
    return null;
  }
  if (!Array.isArray(doc) || doc.length !== 3 || !isObject(doc[0])) return null;
  const [envelope, exchange, routingKey] = doc as [Json, unknown, unknown];
  if (typeof exchange !== 'string' || typeof routingKey !== 'string') return null;
  return { envelope, exchange, routingKey };
}
