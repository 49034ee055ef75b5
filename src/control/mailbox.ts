/**
 * kombu's pidbox on the wire, as pure functions: the exchanges and queues of
 * Celery's remote control, the request and reply messages, and who a request
 * is for. Shapes from `kombu/pidbox.py` and the Celery 5.7 fixtures
 * (`test/fixtures/celery-5.7/pidbox_requests_replies.json`):
 *
 * - requests go to the fanout exchange `celery.pidbox` (non-durable), body
 *   `{method, arguments, destination, pattern, matcher}` plus `ticket` and
 *   `reply_to: {exchange, routing_key}` when a reply is wanted; headers
 *   `clock` and `expires` (epoch seconds);
 * - each worker consumes `<nodename>.celery.pidbox` (auto-delete, exclusive in
 *   5.7, `x-message-ttl` 300 s, `x-expires` 10 s), without acks;
 * - replies go to the direct exchange `reply.celery.pidbox` with the client's
 *   oid as routing key, headers `ticket` and `clock`, body `{nodename: reply}`.
 */
import type { CelerySettings } from '../app/config.js';
import type { ExchangeDeclaration, QueueDeclaration } from '../broker/types.js';
import { ImproperlyConfigured, ProtocolError } from '../errors.js';
import { decodeJson } from '../protocol/json.js';
import type { IncomingMessage, WireMessage } from '../protocol/message.js';

/** Where a worker sends its reply. */
export interface ReplyTo {
  exchange: string;
  routing_key: string;
}

/** A remote-control request, as kombu's `Mailbox._publish` builds it. */
export interface ControlRequest {
  method: string;
  arguments: Record<string, unknown>;
  /** Node names it is for; null or empty = every worker. */
  destination: string[] | null;
  pattern: string | null;
  /** `glob` (default) or `pcre`. */
  matcher: string | null;
  /** Present when a reply is wanted. */
  ticket?: string;
  reply_to?: ReplyTo;
}

/** The names of the pidbox entities for an app's settings (`control_exchange`). */
export interface MailboxNames {
  exchange: ExchangeDeclaration;
  replyExchange: ExchangeDeclaration;
}

export function mailboxNames(conf: CelerySettings): MailboxNames {
  return {
    exchange: { name: `${conf.control_exchange}.pidbox`, type: 'fanout', durable: false },
    replyExchange: { name: `reply.${conf.control_exchange}.pidbox`, type: 'direct', durable: false },
  };
}

function queueArguments(ttl: number | null, expires: number | null): Record<string, unknown> {
  // kombu sends both as integer milliseconds; x-expires first, as kombu orders them.
  const args: Record<string, unknown> = {};
  if (expires) args['x-expires'] = Math.round(expires * 1000);
  if (ttl) args['x-message-ttl'] = Math.round(ttl * 1000);
  return args;
}

function checkDurability(conf: CelerySettings): void {
  if (conf.control_queue_durable && conf.control_queue_exclusive) {
    throw new ImproperlyConfigured(
      'control_queue_durable and control_queue_exclusive cannot both be True (exclusive queues are automatically deleted and cannot be durable).',
    );
  }
}

/** A worker's mailbox: `<nodename>.<control_exchange>.pidbox`, bound to the fanout exchange. */
export function nodeQueue(conf: CelerySettings, hostname: string): QueueDeclaration {
  checkDurability(conf);
  return {
    name: `${hostname}.${conf.control_exchange}.pidbox`,
    durable: conf.control_queue_durable,
    autoDelete: !conf.control_queue_durable,
    exclusive: conf.control_queue_exclusive,
    arguments: queueArguments(conf.control_queue_ttl, conf.control_queue_expires),
    exchange: mailboxNames(conf).exchange,
    routingKey: '',
  };
}

/** A client's reply queue: `<oid>.reply.<control_exchange>.pidbox`, bound with its oid. */
export function replyQueue(conf: CelerySettings, oid: string): QueueDeclaration {
  checkDurability(conf);
  const replyExchange = mailboxNames(conf).replyExchange;
  return {
    name: `${oid}.${replyExchange.name}`,
    durable: conf.control_queue_durable,
    autoDelete: !conf.control_queue_durable,
    exclusive: conf.control_queue_exclusive,
    // reply_queue_ttl = control_queue_ttl, reply_queue_expires = control_queue_expires (celery/app/control.py)
    arguments: queueArguments(conf.control_queue_ttl, conf.control_queue_expires),
    exchange: replyExchange,
    routingKey: oid,
  };
}

function jsonMessage(body: unknown, headers: Record<string, unknown>, deliveryMode: 1 | 2): WireMessage {
  return {
    body: Buffer.from(JSON.stringify(body), 'utf8'),
    contentType: 'application/json',
    contentEncoding: 'utf-8',
    headers,
    deliveryMode,
    // kombu's Producer sends priority 0 on every publish
    priority: 0,
  };
}

/** The request message; `expiresAt` is epoch ms (now + timeout). */
export function buildRequest(request: ControlRequest, clock: number, expiresAt: number): WireMessage {
  // Python's key order: method, arguments, destination, pattern, matcher, then ticket, reply_to.
  const body: ControlRequest = {
    method: request.method,
    arguments: request.arguments,
    destination: request.destination,
    pattern: request.pattern,
    matcher: request.matcher,
  };
  if (request.ticket) {
    body.ticket = request.ticket;
    body.reply_to = request.reply_to!;
  }
  return jsonMessage(body, { clock, expires: expiresAt / 1000 }, 2);
}

/** A worker's reply: `{nodename: reply}` with the request's ticket. */
export function buildReply(hostname: string, reply: unknown, ticket: string, clock: number): WireMessage {
  return jsonMessage({ [hostname]: reply === undefined ? null : reply }, { ticket, clock }, 1);
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** Reads a request; throws {@link ProtocolError} saying why it is not one. */
export function parseRequest(message: IncomingMessage): ControlRequest {
  const ct = message.contentType ?? '';
  if (ct !== 'application/json') throw new ProtocolError(`remote-control message of content type ${ct || '(none)'}: only application/json is read`);
  const body = decodeJson(message.body.toString('utf8'));
  if (!isRecord(body) || typeof body.method !== 'string') throw new ProtocolError('remote-control message without a method');
  const args = body.arguments ?? {};
  if (!isRecord(args)) throw new ProtocolError('remote-control arguments must be an object');
  const destination = body.destination ?? null;
  if (destination !== null && !(Array.isArray(destination) && destination.every((d) => typeof d === 'string'))) {
    throw new ProtocolError('remote-control destination must be a list of node names');
  }
  const out: ControlRequest = {
    method: body.method,
    arguments: args,
    destination: destination as string[] | null,
    pattern: typeof body.pattern === 'string' ? body.pattern : null,
    matcher: typeof body.matcher === 'string' ? body.matcher : null,
  };
  const replyTo = body.reply_to;
  if (typeof body.ticket === 'string' && isRecord(replyTo) && typeof replyTo.exchange === 'string' && typeof replyTo.routing_key === 'string') {
    out.ticket = body.ticket;
    out.reply_to = { exchange: replyTo.exchange, routing_key: replyTo.routing_key };
  }
  return out;
}

function globToRegExp(glob: string): RegExp {
  let re = '';
  for (const ch of glob) {
    if (ch === '*') re += '.*';
    else if (ch === '?') re += '.';
    else re += ch.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

/**
 * Is a request for this node? kombu's `Node.handle_message`: a non-empty
 * `destination` must name it; otherwise `pattern` with `matcher` (`glob`, the
 * default, or `pcre`: a regular expression searched in the name) must match;
 * otherwise it is for everyone.
 */
export function isForNode(request: ControlRequest, hostname: string): boolean {
  if (request.destination && request.destination.length > 0) return request.destination.includes(hostname);
  if (request.pattern && request.matcher) {
    try {
      if (request.matcher === 'pcre') return new RegExp(request.pattern).test(hostname);
      if (request.matcher === 'glob') return globToRegExp(request.pattern).test(hostname);
    } catch {
      return false;
    }
    return false; // kombu raises MatcherNotInstalled: no such matcher here either
  }
  return true;
}

/** Reads a reply message: the node names and replies it carries, and its ticket. */
export function parseReply(message: IncomingMessage): { ticket: string | null; clock: number; body: Record<string, unknown> } | null {
  let body: unknown;
  try {
    body = decodeJson(message.body.toString('utf8'));
  } catch {
    return null;
  }
  if (!isRecord(body)) return null;
  const ticket = typeof message.headers.ticket === 'string' ? message.headers.ticket : null;
  const clock = typeof message.headers.clock === 'number' ? message.headers.clock : 0;
  return { ticket, clock, body };
}
