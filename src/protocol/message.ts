/**
 * Celery task messages, protocol v2 (and v1 on the way in), as pure functions.
 *
 * `buildTaskMessage` produces exactly what Python 5.x puts on the wire
 * (properties, the 16 standard headers in Python's order, body
 * `[args, kwargs, embed]`); `parseTaskMessage` turns any Celery producer's
 * message into a {@link TaskMessage} or throws a {@link ProtocolError} saying
 * why, so the worker can reject it without crashing.
 */
import { inflateSync } from 'node:zlib';
import { ContentDisallowed, ProtocolError } from '../errors.js';
import { decodeJson, encodeTaskArgument } from './json.js';
import { argsRepr, kwargsRepr } from './repr.js';
import { formatIsoTime, parseOptionalTime } from './time.js';

export const JSON_CONTENT_TYPE = 'application/json';

/**
 * A canvas signature as Celery serializes it (`link=`, chains, chords): the
 * wire form. `options` use Celery's option names (`task_id`, `link_error`...).
 */
export interface SignatureDict {
  task: string;
  args: unknown[];
  kwargs: Record<string, unknown>;
  options: Record<string, unknown>;
  subtask_type: string | null;
  immutable: boolean;
  [key: string]: unknown;
}

/** The third element of a v2 body. */
export interface Embed {
  callbacks: SignatureDict[] | null;
  errbacks: SignatureDict[] | null;
  chain: SignatureDict[] | null;
  chord: SignatureDict | null;
}

/** Everything a task message says, transport-neutral, in TypeScript's naming. */
export interface TaskMessage {
  /** Task id (header `id`, also the AMQP `correlation_id`). */
  id: string;
  /** Registered task name (header `task`). */
  task: string;
  args: unknown[];
  kwargs: Record<string, unknown>;
  embed: Embed;
  /** How many times this task has been retried so far. */
  retries: number;
  /** Earliest execution time, epoch milliseconds, or null to run at once. */
  eta: number | null;
  /** Expiry time, epoch milliseconds, or null. */
  expires: number | null;
  rootId: string | null;
  parentId: string | null;
  group: string | null;
  groupIndex: number | null;
  shadow: string | null;
  /** `[hard, soft]` seconds, per-message override of the task's time limits. */
  timeLimit: [number | null, number | null];
  ignoreResult: boolean;
  origin: string | null;
  argsrepr: string | null;
  kwargsrepr: string | null;
  /** AMQP `reply_to` (the rpc:// backend's reply queue). */
  replyTo: string | null;
  /** AMQP `priority`, when the producer set one. */
  priority: number | null;
  /** Headers this library does not model (custom headers, stamps...); carried over on retry. */
  extraHeaders: Record<string, unknown>;
  /** Which protocol the message arrived in (we always send 2). */
  protocol: 1 | 2;
}

/** A message ready for any broker. Headers are plain values; the AMQP broker types them. */
export interface WireMessage {
  body: Buffer;
  contentType: string;
  contentEncoding: string;
  headers: Record<string, unknown>;
  correlationId?: string;
  replyTo?: string;
  /** 2 = persistent. */
  deliveryMode: 1 | 2;
  priority?: number;
  /** Per-message TTL in milliseconds, as a decimal string (AMQP `expiration`). */
  expiration?: string;
}

/** Fields a producer chooses; the rest of {@link TaskMessage} gets Celery's defaults. */
export type TaskMessageInput = Pick<TaskMessage, 'id' | 'task'> & Partial<TaskMessage>;

/** The embed of a message without canvas: shared, so `embed === EMPTY_EMBED` is a cheap test. */
export const EMPTY_EMBED: Embed = Object.freeze({ callbacks: null, errbacks: null, chain: null, chord: null }) as Embed;

const STANDARD_HEADERS = new Set([
  'lang', 'task', 'id', 'shadow', 'eta', 'expires', 'group', 'group_index', 'retries', 'timelimit',
  'root_id', 'parent_id', 'argsrepr', 'kwargsrepr', 'origin', 'ignore_result', 'compression',
]);

/** Fills Celery's defaults into a partial message. */
export function completeTaskMessage(input: TaskMessageInput): TaskMessage {
  const args = input.args ?? [];
  const kwargs = input.kwargs ?? {};
  return {
    id: input.id,
    task: input.task,
    args,
    kwargs,
    embed: input.embed ?? EMPTY_EMBED,
    retries: input.retries ?? 0,
    eta: input.eta ?? null,
    expires: input.expires ?? null,
    rootId: input.rootId ?? input.id,
    parentId: input.parentId ?? null,
    group: input.group ?? null,
    groupIndex: input.groupIndex ?? null,
    shadow: input.shadow ?? null,
    timeLimit: input.timeLimit ?? [null, null],
    ignoreResult: input.ignoreResult ?? false,
    origin: input.origin ?? null,
    argsrepr: input.argsrepr ?? null,
    kwargsrepr: input.kwargsrepr ?? null,
    replyTo: input.replyTo ?? null,
    priority: input.priority ?? null,
    extraHeaders: input.extraHeaders ?? {},
    protocol: 2,
  };
}

/**
 * Builds the protocol v2 wire message for a task, as Python Celery 5 does.
 * Throws {@link EncodeError} (before anything is published) when args or kwargs
 * are not JSON-serializable.
 */
export function buildTaskMessage(input: TaskMessageInput, now: number = Date.now(), timeZone = 'UTC'): WireMessage {
  // The defaults of completeTaskMessage, read in place: delay() calls this once per message, and an
  // intermediate TaskMessage object per call was garbage only.
  const id = input.id;
  const task = input.task;
  const args = input.args ?? [];
  const kwargs = input.kwargs ?? {};
  const embed = input.embed ?? EMPTY_EMBED;
  const eta = input.eta ?? null;
  const expires = input.expires ?? null;
  const argsJson = encodeTaskArgument(args, task, 'args');
  const kwargsJson = isEmptyObject(kwargs) ? '{}' : encodeTaskArgument(kwargs, task, 'kwargs');
  const embedJson = embed === EMPTY_EMBED ? EMPTY_EMBED_JSON : JSON.stringify(embed);
  const body = `[${argsJson}, ${kwargsJson}, ${embedJson}]`;
  const headers: Record<string, unknown> = {
    lang: 'py',
    task,
    id,
    shadow: input.shadow ?? null,
    // In the app's timezone, as Celery writes them (the same instant whatever the offset).
    eta: eta === null ? null : formatIsoTime(eta, timeZone),
    expires: expires === null ? null : formatIsoTime(expires, timeZone),
    group: input.group ?? null,
    group_index: input.groupIndex ?? null,
    retries: input.retries ?? 0,
    timelimit: input.timeLimit ?? [null, null],
    root_id: input.rootId ?? id,
    parent_id: input.parentId ?? null,
    argsrepr: input.argsrepr ?? argsRepr(args),
    kwargsrepr: input.kwargsrepr ?? kwargsRepr(kwargs),
    origin: input.origin ?? null,
    ignore_result: input.ignoreResult ?? false,
  };
  const extra = input.extraHeaders;
  if (extra) {
    for (const key in extra) if (Object.hasOwn(extra, key) && !STANDARD_HEADERS.has(key)) headers[key] = extra[key];
  }
  const wire: WireMessage = {
    body: Buffer.from(body, 'utf8'),
    contentType: JSON_CONTENT_TYPE,
    contentEncoding: 'utf-8',
    headers,
    correlationId: id,
    deliveryMode: 2,
  };
  if (input.replyTo) wire.replyTo = input.replyTo;
  // Python sends priority 0 by default; absent only when a queue was named explicitly.
  const priority = input.priority ?? null;
  if (priority !== null) wire.priority = priority;
  if (expires !== null) wire.expiration = String(Math.max(0, Math.round(expires - now)));
  return wire;
}

/** The JSON of {@link EMPTY_EMBED}, as the body carries it. */
const EMPTY_EMBED_JSON = JSON.stringify(EMPTY_EMBED);

/** `{}` (own enumerable keys only, as JSON.stringify sees them), without allocating. */
function isEmptyObject(o: Record<string, unknown>): boolean {
  if (Object.getPrototypeOf(o) !== Object.prototype) return false;
  for (const key in o) if (Object.hasOwn(o, key)) return false;
  return true;
}

/**
 * Headers without the ones RabbitMQ adds when it dead-letters a message
 * (`x-death`, `x-first-death-*`, `x-last-death-*`) or a quorum queue delivers
 * it (`x-delivery-count`): they describe the old message's trips, not a new
 * one's. Used when a message is published again.
 */
export function withoutBrokerHeaders(headers: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(headers)) if (!/^x-(death|first-death-|last-death-|delivery-count$)/.test(k)) out[k] = v;
  return out;
}

/**
 * A delivered message as a new publish of the same bytes (persistent, broker
 * headers removed): for moving a not-yet-due ETA task into the broker's delay
 * queues. The `expiration` TTL is not carried over: the task's `expires`
 * header still applies when it comes back.
 */
export function republishable(m: IncomingMessage): WireMessage {
  const copy: WireMessage = {
    body: m.body,
    contentType: m.contentType ?? JSON_CONTENT_TYPE,
    contentEncoding: m.contentEncoding ?? 'utf-8',
    headers: withoutBrokerHeaders(m.headers), // RabbitMQ adds fresh ones
    deliveryMode: 2,
  };
  if (m.correlationId !== undefined) copy.correlationId = m.correlationId;
  if (m.replyTo !== undefined) copy.replyTo = m.replyTo;
  if (m.priority !== undefined) copy.priority = m.priority;
  return copy;
}

// ---------------------------------------------------------------------------
// Parsing

/** What the broker hands over for one delivery, before the protocol layer reads it. */
export interface IncomingMessage {
  body: Buffer;
  contentType?: string | undefined;
  contentEncoding?: string | undefined;
  headers: Record<string, unknown>;
  correlationId?: string | undefined;
  replyTo?: string | undefined;
  priority?: number | undefined;
  /** AMQP `delivery_mode` (2 = persistent), when the transport has one. */
  deliveryMode?: number | undefined;
  /**
   * amqplib's `MessageProperties` of an AMQP delivery, referenced as received
   * (not copied: only `self.request.properties` reads it, see properties.ts).
   * Left out when the message has no property beyond the fields above.
   */
  amqpProperties?: Readonly<Record<string, unknown>> | undefined;
  /** The `properties` object of a kombu Redis envelope, referenced as received. */
  kombuProperties?: Readonly<Record<string, unknown>> | undefined;
  /**
   * Set by a transport that could not read its own envelope (a Redis list
   * entry that is not kombu's JSON, say): why. Such a message is never a task.
   */
  unreadable?: string | undefined;
}

/** Largest body we inflate from a compressed message (guards against zip bombs). */
const MAX_INFLATED_BYTES = 64 * 1024 * 1024;

function bodyText(msg: IncomingMessage): string {
  const compression = msg.headers.compression;
  let body = msg.body;
  if (compression !== undefined && compression !== null) {
    if (compression === 'application/x-gzip' || compression === 'zlib' || compression === 'gzip') {
      try {
        body = inflateSync(body, { maxOutputLength: MAX_INFLATED_BYTES });
      } catch (err) {
        throw new ProtocolError(`cannot decompress ${String(compression)} body: ${(err as Error).message}`);
      }
    } else {
      throw new ProtocolError(`unsupported compression ${JSON.stringify(compression)}: only zlib is supported`);
    }
  }
  const enc = msg.contentEncoding;
  if (enc && !/^utf-?8$/i.test(enc) && enc !== 'binary') {
    throw new ProtocolError(`unsupported content encoding ${JSON.stringify(enc)}`);
  }
  try {
    // Strict: invalid UTF-8 would otherwise become U+FFFD and run the task with altered arguments.
    return UTF8.decode(body);
  } catch {
    throw new ProtocolError('body is not valid UTF-8');
  }
}

const UTF8 = new TextDecoder('utf-8', { fatal: true });

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function requireString(v: unknown, field: string): string {
  if (typeof v !== 'string' || v === '') throw new ProtocolError(`header ${field} must be a non-empty string`);
  return v;
}

/** Informational fields: a wrong type is ignored rather than failing the task. */
function optionalString(v: unknown): string | null {
  return typeof v === 'string' ? v : null;
}

function optionalInt(v: unknown, field: string): number | null {
  if (v === null || v === undefined) return null;
  if (typeof v !== 'number' || !Number.isInteger(v)) throw new ProtocolError(`${field} must be an integer`);
  return v;
}

function parseRetries(v: unknown): number {
  const n = optionalInt(v, 'retries') ?? 0;
  if (n < 0) throw new ProtocolError('retries must not be negative');
  return n;
}

// The helpers below are module-level functions, not closures made per call: they run for every
// delivery, and under tsx every named closure also costs a `__name` call (esbuild's keepNames).
function timeLimitValue(x: unknown): number | null {
  if (x === null) return null;
  if (typeof x !== 'number' || !Number.isFinite(x) || x < 0) {
    throw new ProtocolError('timelimit values must be non-negative numbers or null');
  }
  return x;
}

/**
 * `timeLimit` of every parsed message without limits (nearly all): shared and frozen, so a
 * prefetched message holds no array of its own. `self.request.timeLimit` gets a copy.
 */
export const NO_TIME_LIMIT: [number | null, number | null] = Object.freeze([null, null]) as unknown as [number | null, number | null];

/**
 * `extraHeaders` of every parsed message without custom headers (nearly all): shared and
 * frozen, for the same reason. `self.request.headers` gets a fresh object.
 */
export const NO_EXTRA_HEADERS: Record<string, unknown> = Object.freeze({}) as Record<string, unknown>;

function parseTimeLimit(v: unknown): [number | null, number | null] {
  if (v === null || v === undefined) return NO_TIME_LIMIT;
  if (!Array.isArray(v) || v.length !== 2) throw new ProtocolError('timelimit must be [hard, soft]');
  if (v[0] === null && v[1] === null) return NO_TIME_LIMIT;
  return [timeLimitValue(v[0]), timeLimitValue(v[1])];
}

/** The headers this library does not model, or the shared empty table (no key list, no object, in the common case). */
function extraHeadersOf(h: Record<string, unknown>): Record<string, unknown> {
  let extra: Record<string, unknown> | null = null;
  for (const key in h) if (!STANDARD_HEADERS.has(key)) (extra ??= {})[key] = h[key];
  return extra ?? NO_EXTRA_HEADERS;
}

function embedList(x: unknown, field: string): SignatureDict[] | null {
  if (x === null || x === undefined) return null;
  if (!Array.isArray(x) || !x.every(isPlainObject)) throw new ProtocolError(`embed.${field} must be a list`);
  return x as SignatureDict[];
}

function parseEmbed(v: unknown): Embed {
  if (v === null || v === undefined) return EMPTY_EMBED;
  if (!isPlainObject(v)) throw new ProtocolError('body[2] (embed) must be an object or null');
  const chord = v.chord;
  if (chord !== null && chord !== undefined && !isPlainObject(chord)) {
    throw new ProtocolError('embed.chord must be a signature or null');
  }
  const callbacks = embedList(v.callbacks, 'callbacks');
  const errbacks = embedList(v.errbacks, 'errbacks');
  const chainSteps = embedList(v.chain, 'chain');
  if (!callbacks && !errbacks && !chainSteps?.length && !chord) return EMPTY_EMBED; // the common case
  return { callbacks, errbacks, chain: chainSteps, chord: (chord as SignatureDict | null | undefined) ?? null };
}

function parseArgs(args: unknown, kwargs: unknown): [unknown[], Record<string, unknown>] {
  if (!Array.isArray(args)) throw new ProtocolError('args must be a list');
  if (kwargs === null || kwargs === undefined) return [args, {}];
  if (!isPlainObject(kwargs)) throw new ProtocolError('kwargs must be an object');
  return [args, kwargs];
}

function parseV2(msg: IncomingMessage, decoded: unknown): TaskMessage {
  const h = msg.headers;
  if (!Array.isArray(decoded) || decoded.length !== 3) {
    throw new ProtocolError('protocol 2 body must be [args, kwargs, embed]');
  }
  const [args, kwargs] = parseArgs(decoded[0], decoded[1]);
  const extraHeaders = extraHeadersOf(h);
  const id = requireString(h.id, 'id');
  return {
    id,
    task: requireString(h.task, 'task'),
    args,
    kwargs,
    embed: parseEmbed(decoded[2]),
    retries: parseRetries(h.retries),
    eta: parseOptionalTime(h.eta, 'eta'),
    expires: parseOptionalTime(h.expires, 'expires'),
    rootId: optionalString(h.root_id) ?? id,
    parentId: optionalString(h.parent_id),
    group: optionalString(h.group),
    groupIndex: typeof h.group_index === 'number' ? h.group_index : null,
    shadow: optionalString(h.shadow),
    timeLimit: parseTimeLimit(h.timelimit),
    ignoreResult: h.ignore_result === true,
    origin: optionalString(h.origin),
    argsrepr: optionalString(h.argsrepr),
    kwargsrepr: optionalString(h.kwargsrepr),
    replyTo: msg.replyTo || null,
    priority: typeof msg.priority === 'number' ? msg.priority : null,
    extraHeaders,
    protocol: 2,
  };
}

function parseV1(msg: IncomingMessage, body: Record<string, unknown>): TaskMessage {
  const [args, kwargs] = parseArgs(body.args ?? [], body.kwargs);
  const id = requireString(body.id, 'id');
  const tl = body.timelimit;
  return {
    id,
    task: requireString(body.task, 'task'),
    args,
    kwargs,
    embed: parseEmbed({ callbacks: body.callbacks, errbacks: body.errbacks, chain: null, chord: body.chord }),
    retries: parseRetries(body.retries),
    eta: parseOptionalTime(body.eta, 'eta'),
    expires: parseOptionalTime(body.expires, 'expires'),
    rootId: id,
    parentId: null,
    group: optionalString(body.group) ?? optionalString(body.taskset),
    groupIndex: null,
    shadow: null,
    timeLimit: parseTimeLimit(tl === undefined ? null : tl),
    ignoreResult: false,
    origin: null,
    argsrepr: null,
    kwargsrepr: null,
    replyTo: msg.replyTo || null,
    priority: typeof msg.priority === 'number' ? msg.priority : null,
    extraHeaders: NO_EXTRA_HEADERS,
    protocol: 1,
  };
}

/**
 * Reads a task message from any Celery producer. Only JSON is ever
 * deserialized: other content types throw {@link ContentDisallowed} unread.
 * Everything else that is wrong throws {@link ProtocolError} with the reason.
 */
export function parseTaskMessage(msg: IncomingMessage): TaskMessage {
  if (msg.unreadable !== undefined) throw new ProtocolError(`unreadable envelope: ${msg.unreadable}`);
  const contentType = msg.contentType ?? '';
  if (contentType !== JSON_CONTENT_TYPE && contentType !== 'json') throw new ContentDisallowed(contentType);
  const decoded = decodeJson(bodyText(msg));
  if (msg.headers.task !== undefined) return parseV2(msg, decoded);
  if (isPlainObject(decoded) && 'task' in decoded) return parseV1(msg, decoded);
  throw new ProtocolError('not a Celery task message: no task header and no protocol 1 body');
}
