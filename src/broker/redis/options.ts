/**
 * `broker_transport_options` for the Redis broker: kombu's option names and
 * defaults. A name kombu does not know is an error that suggests the closest
 * one; a kombu option this transport does not implement is accepted with a
 * warning saying why.
 */
import { ImproperlyConfigured } from '../../errors.js';
import { didYouMean } from '../../support/suggest.js';
import { DEFAULT_PRIORITY_STEPS, DEFAULT_SEP, type QueueOrderStrategy } from './keys.js';

/** The Redis transport's options, resolved. Times in seconds, as kombu takes them. */
export interface RedisTransportOptions {
  /** Seconds a delivered, unacked message may go without its lease being renewed before any worker restores it. */
  visibility_timeout: number;
  global_keyprefix: string;
  priority_steps: number[];
  sep: string;
  queue_order_strategy: QueueOrderStrategy;
  unacked_key: string;
  unacked_index_key: string;
  unacked_mutex_key: string;
  /** Seconds the restore lock lives at most. */
  unacked_mutex_expire: number;
  /** Messages restored per sweep at most (null = all that are due). */
  unacked_restore_limit: number | null;
  /** Seconds between sweeps is interval × throttle, as in kombu's event loop. */
  unacked_restore_interval: number;
  unacked_restore_throttle: number;
  /** Seconds a blocking wait lasts before it is re-issued (kombu's `brpop_timeout`, set by `polling_interval`). */
  polling_interval: number;
  /** Sentinel: the name of the monitored master. */
  master_name: string | null;
  /** Sentinel: options for the connections to the sentinels (`password`, `username`). */
  sentinel_kwargs: { password?: string; username?: string } | null;
  socket_timeout: number | null;
  socket_connect_timeout: number | null;
  client_name: string | null;
  /** Fanout topics start with `/<db>.` (true), this prefix (`{db}` formatted), or nothing (false). */
  fanout_prefix: boolean | string;
  /** The routing key is part of a fanout topic (`/<db>.<exchange>/<key>`), so bindings can filter. */
  fanout_patterns: boolean;
  /** sentinel:// only: also publish to and read from kombu < 5.4's literal `/{db}.` topic (rolling upgrades). */
  sentinel_fanout_compat: boolean;
}

export const DEFAULT_TRANSPORT_OPTIONS: Readonly<RedisTransportOptions> = Object.freeze({
  visibility_timeout: 3600,
  global_keyprefix: '',
  priority_steps: [...DEFAULT_PRIORITY_STEPS],
  sep: DEFAULT_SEP,
  queue_order_strategy: 'round_robin',
  unacked_key: 'unacked',
  unacked_index_key: 'unacked_index',
  unacked_mutex_key: 'unacked_mutex',
  unacked_mutex_expire: 300,
  unacked_restore_limit: null,
  unacked_restore_interval: 10,
  unacked_restore_throttle: 10,
  polling_interval: 1,
  master_name: null,
  sentinel_kwargs: null,
  socket_timeout: null,
  socket_connect_timeout: null,
  client_name: null,
  fanout_prefix: true,
  fanout_patterns: true,
  sentinel_fanout_compat: false,
});

/** kombu options accepted but not acted on, with the reason (printed once as a warning). */
const IGNORED: Record<string, string> = {
  ack_emulation: 'ack emulation (unacked + visibility timeout) is always on: without it a crash loses messages',
  socket_keepalive: 'TCP keep-alive is always on',
  socket_keepalive_options: 'TCP keep-alive is always on',
  retry_on_timeout: 'commands are not retried after a timeout (a publish could be stored twice)',
  max_connections: 'the broker uses one command connection, one per watched queue list and one pub/sub connection (fanout exchanges)',
  health_check_interval:
    'blocking waits are re-issued every polling_interval seconds, and the pub/sub connection is pinged every 25 s (kombu\'s default), which detects dead connections',
  reauth_check_interval: 'streaming credential providers are not supported',
  credential_provider: 'streaming credential providers are not supported',
  min_other_sentinels: 'not checked',
  body_encoding: 'bodies are always sent base64-encoded, as kombu does by default (any encoding is read)',
  deadletter_queue: 'a message no queue takes is refused at publish time instead',
  max_retries: 'publishes retry per task_publish_retry_policy',
  interval_start: 'publishes retry per task_publish_retry_policy',
  interval_step: 'publishes retry per task_publish_retry_policy',
  interval_max: 'publishes retry per task_publish_retry_policy',
  confirm_publish: 'a publish resolves once Redis replied to the LPUSH',
};

function fail(key: string, expected: string, value: unknown): never {
  throw new ImproperlyConfigured(`broker_transport_options.${key} must be ${expected}, got ${JSON.stringify(value) ?? typeof value}`);
}

function positiveNumber(key: string, v: unknown, allowZero = false): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0 || (!allowZero && v === 0)) fail(key, allowZero ? 'a number >= 0' : 'a number > 0', v);
  return v;
}

function nonEmptyString(key: string, v: unknown): string {
  if (typeof v !== 'string' || v === '') fail(key, 'a non-empty string', v);
  return v;
}

/** The parsed options and the warnings to print for accepted-but-ignored ones. */
export interface ParsedTransportOptions {
  options: RedisTransportOptions;
  warnings: string[];
}

/** Validates `broker_transport_options` for the Redis broker against kombu's names. */
export function parseTransportOptions(raw: Record<string, unknown>): ParsedTransportOptions {
  const o: RedisTransportOptions = { ...DEFAULT_TRANSPORT_OPTIONS, priority_steps: [...DEFAULT_TRANSPORT_OPTIONS.priority_steps] };
  const warnings: string[] = [];
  for (const [key, v] of Object.entries(raw)) {
    if (v === undefined) continue;
    switch (key) {
      case 'visibility_timeout':
        o.visibility_timeout = positiveNumber(key, v);
        break;
      case 'global_keyprefix':
        if (typeof v !== 'string') fail(key, 'a string', v);
        o.global_keyprefix = v;
        break;
      case 'priority_steps': {
        if (!Array.isArray(v) || v.length === 0 || !v.every((n) => Number.isInteger(n) && n >= 0 && n <= 9)) {
          fail(key, 'a non-empty list of integers from 0 to 9', v);
        }
        o.priority_steps = [...new Set(v as number[])].sort((a, b) => a - b);
        break;
      }
      case 'sep':
        o.sep = nonEmptyString(key, v);
        break;
      case 'queue_order_strategy':
        if (v !== 'round_robin' && v !== 'sorted' && v !== 'priority') fail(key, "'round_robin', 'sorted' or 'priority'", v);
        o.queue_order_strategy = v;
        break;
      case 'unacked_key':
      case 'unacked_index_key':
      case 'unacked_mutex_key':
        o[key] = nonEmptyString(key, v);
        break;
      case 'unacked_mutex_expire':
        o.unacked_mutex_expire = positiveNumber(key, v);
        break;
      case 'unacked_restore_limit':
        if (v !== null && !(Number.isInteger(v) && (v as number) > 0)) fail(key, 'a positive integer or null', v);
        o.unacked_restore_limit = v as number | null;
        break;
      case 'unacked_restore_interval':
        // kombu falls back to its default for values <= 0.
        o.unacked_restore_interval = (v as number) > 0 ? positiveNumber(key, v) : DEFAULT_TRANSPORT_OPTIONS.unacked_restore_interval;
        break;
      case 'unacked_restore_throttle':
        // kombu treats 0 as 1 ("scan on every call").
        o.unacked_restore_throttle = Math.max(1, Math.floor(positiveNumber(key, v, true)));
        break;
      case 'polling_interval':
        o.polling_interval = positiveNumber(key, v);
        break;
      case 'master_name':
        o.master_name = nonEmptyString(key, v);
        break;
      case 'sentinel_kwargs':
        if (v !== null && (typeof v !== 'object' || Array.isArray(v))) fail(key, 'an object such as {"password": "..."}', v);
        o.sentinel_kwargs = v as RedisTransportOptions['sentinel_kwargs'];
        break;
      case 'socket_timeout':
      case 'socket_connect_timeout':
        o[key] = v === null ? null : positiveNumber(key, v);
        break;
      case 'client_name':
        o.client_name = v === null ? null : nonEmptyString(key, v);
        break;
      case 'fanout_prefix':
        if (typeof v !== 'boolean' && typeof v !== 'string') fail(key, "true, false or a prefix such as '/{db}.'", v);
        o.fanout_prefix = v;
        break;
      case 'fanout_patterns':
      case 'sentinel_fanout_compat':
        if (typeof v !== 'boolean') fail(key, 'true or false', v);
        o[key] = v;
        break;
      default: {
        if (key in IGNORED) {
          if (key === 'ack_emulation' && v === true) break; // kombu's default: nothing to warn about
          warnings.push(`broker_transport_options.${key} is ignored by the Redis broker: ${IGNORED[key]}`);
          break;
        }
        const known = [...Object.keys(DEFAULT_TRANSPORT_OPTIONS), ...Object.keys(IGNORED)];
        throw new ImproperlyConfigured(`Unknown broker_transport_options key ${JSON.stringify(key)} for the Redis broker${didYouMean(key, known)}`);
      }
    }
  }
  return { options: o, warnings };
}
