/**
 * Celery's `rpc://` result messages: each state change of a task is sent to
 * the caller's reply queue (the task's `reply_to`) through the default
 * exchange, with `correlation_id` = task id and body
 * `{task_id, status, result, traceback, children}` (Celery >= 5.7 adds the
 * rest of the meta, e.g. `date_done`; readers accept both).
 */
import type { QueueDeclaration } from '../broker/types.js';
import type { WireMessage } from './message.js';
import type { ResultMeta } from './result-meta.js';

/** The reply message for one state change. */
export function buildRpcReply(meta: ResultMeta, correlationId: string, persistent: boolean): WireMessage {
  const body = { task_id: meta.task_id, status: meta.status, result: meta.result, traceback: meta.traceback, children: meta.children };
  return {
    body: Buffer.from(JSON.stringify(body), 'utf8'),
    contentType: 'application/json',
    contentEncoding: 'utf-8',
    headers: {},
    correlationId,
    deliveryMode: persistent ? 2 : 1,
    priority: 0,
  };
}

/**
 * The caller's reply queue, declared as Python declares it: named after the
 * app's oid, transient, deleted when unused, expiring after `result_expires`.
 */
export function rpcReplyQueue(oid: string, expiresSeconds: number | null): QueueDeclaration {
  return {
    name: oid,
    durable: false,
    autoDelete: true,
    arguments: expiresSeconds ? { 'x-expires': Math.round(expiresSeconds * 1000) } : {},
    exchange: { name: '', type: 'direct', durable: true },
    routingKey: oid,
  };
}
