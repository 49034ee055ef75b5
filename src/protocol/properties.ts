/**
 * A delivery's message properties as Celery's `self.request.properties` shows
 * them: kombu's `message.properties`. For AMQP that is py-amqp's property dict
 * (snake_case names, only the properties the message has, the headers under
 * `application_headers`); for Redis, the envelope's `properties` object. Built
 * only when a task reads `self.request.properties`, so no delivery pays for it.
 */
import type { IncomingMessage } from './message.js';

/** amqplib's property names -> py-amqp's (`basic.properties` in AMQP 0-9-1), in py-amqp's order. */
const AMQP_NAMES: ReadonlyArray<[string, string]> = [
  ['contentType', 'content_type'],
  ['contentEncoding', 'content_encoding'],
  ['headers', 'application_headers'],
  ['deliveryMode', 'delivery_mode'],
  ['priority', 'priority'],
  ['correlationId', 'correlation_id'],
  ['replyTo', 'reply_to'],
  ['expiration', 'expiration'],
  ['messageId', 'message_id'],
  ['timestamp', 'timestamp'],
  ['type', 'type'],
  ['userId', 'user_id'],
  ['appId', 'app_id'],
  ['clusterId', 'cluster_id'],
];

/** The message's properties, as Celery's `request.properties` (a new object the task may keep). */
export function messageProperties(msg: IncomingMessage): Record<string, unknown> {
  if (msg.kombuProperties) return { ...msg.kombuProperties };
  const out: Record<string, unknown> = {};
  const amqp = msg.amqpProperties;
  if (amqp) {
    for (const [from, to] of AMQP_NAMES) {
      // The headers as decoded for the task (py-amqp's int64 tags and all), not amqplib's raw table.
      const value = from === 'headers' ? msg.headers : amqp[from];
      if (value !== undefined) out[to] = value;
    }
    return out;
  }
  // What the message itself carries, in the same order: an AMQP delivery with no other property
  // (the consumer leaves amqplib's object out then), or the in-memory broker's message.
  if (msg.contentType !== undefined) out.content_type = msg.contentType;
  if (msg.contentEncoding !== undefined) out.content_encoding = msg.contentEncoding;
  out.application_headers = msg.headers;
  if (msg.deliveryMode !== undefined) out.delivery_mode = msg.deliveryMode;
  if (msg.priority !== undefined) out.priority = msg.priority;
  if (msg.correlationId !== undefined) out.correlation_id = msg.correlationId;
  if (msg.replyTo !== undefined) out.reply_to = msg.replyTo;
  return out;
}
