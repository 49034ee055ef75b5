/**
 * Settings: Celery's own names and defaults, in one table.
 *
 * Every key a user can set is listed here with its default and type. An
 * unknown key is an error naming the closest known setting, never silently
 * ignored. `CELERY_BROKER_URL` and `CELERY_RESULT_BACKEND` in the
 * environment override whatever the config says, as in Celery.
 */
import type { BeatSchedule } from '../beat/types.js';
import { ImproperlyConfigured } from '../errors.js';
import { didYouMean } from '../support/suggest.js';
import { parseRate } from '../support/rate.js';
import { urlScheme } from '../support/url.js';
import { checkQueueDefinitions } from './routing.js';
import { checkTimezone } from './timezone.js';

/** A queue as `task_queues` declares it (kombu's `Queue(...)` in Python). */
export interface QueueDefinition {
  name: string;
  /** Exchange name; defaults to the queue name. */
  exchange?: string;
  /** `direct` (default), `topic` or `fanout`. */
  exchange_type?: 'direct' | 'topic' | 'fanout';
  /** Binding key; defaults to the queue name. */
  routing_key?: string;
  /** Extra `x-` arguments, e.g. `{ 'x-max-priority': 10 }`. Must match other declarers exactly. */
  queue_arguments?: Record<string, unknown>;
  durable?: boolean;
  auto_delete?: boolean;
}

/** Where a task goes: a `task_routes` entry or `applyAsync` options. */
export interface Route {
  queue?: string;
  exchange?: string;
  routing_key?: string;
  priority?: number;
}

/** A routing function, as `task_routes` accepts in Celery. */
export type RouterFn = (name: string, args: unknown[], kwargs: Record<string, unknown>) => Route | string | null | undefined;

/** `task_routes`: a map of task name (or glob) to route, a function, or a list of those. */
export type TaskRoutes = Record<string, Route | string> | RouterFn | Array<Record<string, Route | string> | RouterFn>;

/** `task_publish_retry_policy`, as in Celery (seconds). */
export interface PublishRetryPolicy {
  max_retries: number;
  interval_start: number;
  interval_step: number;
  interval_max: number;
}

/** TLS options for `amqps://` and `rediss://` (Node's `tls.connect` options). */
export interface TlsOptions {
  ca?: string | Buffer | Array<string | Buffer>;
  cert?: string | Buffer;
  key?: string | Buffer;
  passphrase?: string;
  servername?: string;
  rejectUnauthorized?: boolean;
}

/** The worker's pools (`-P`): `async` runs tasks on the main event loop, `threads` in worker threads. */
export type PoolName = 'async' | 'threads';

/** Node's `resourceLimits` for each worker thread of `-P threads` (megabytes). */
export interface ThreadResourceLimits {
  maxOldGenerationSizeMb?: number;
  maxYoungGenerationSizeMb?: number;
  codeRangeSizeMb?: number;
  stackSizeMb?: number;
}

const THREAD_RESOURCE_LIMITS = ['maxOldGenerationSizeMb', 'maxYoungGenerationSizeMb', 'codeRangeSizeMb', 'stackSizeMb'] as const;

/** Celery's pool names that ts-celery does not have, and what to use instead. */
const OTHER_POOLS: Record<string, string> = {
  prefork: 'threads (CPU-bound tasks in worker threads)',
  processes: 'threads (CPU-bound tasks in worker threads)',
  eventlet: 'async (the default: many tasks awaiting I/O on one event loop)',
  gevent: 'async (the default: many tasks awaiting I/O on one event loop)',
  solo: 'async with concurrency 1',
};

/** Checks a pool name, saying what to use for Celery's other pools (`-P prefork` -> threads). */
export function checkPoolName(value: unknown, where = 'worker_pool'): asserts value is PoolName {
  if (value === 'async' || value === 'threads') return;
  const instead = typeof value === 'string' ? OTHER_POOLS[value] : undefined;
  throw new ImproperlyConfigured(
    `${where} ${JSON.stringify(value)} is not available: ts-celery has the pools "async" and "threads"` + (instead ? `; use ${instead}` : ''),
  );
}

function checkResourceLimits(value: unknown): void {
  for (const [key, limit] of Object.entries(value as Record<string, unknown>)) {
    if (!(THREAD_RESOURCE_LIMITS as readonly string[]).includes(key)) {
      throw new ImproperlyConfigured(`Unknown key ${JSON.stringify(key)} in worker_thread_resource_limits${didYouMean(key, THREAD_RESOURCE_LIMITS)}`);
    }
    if (typeof limit !== 'number' || !(limit > 0)) {
      throw new ImproperlyConfigured(`worker_thread_resource_limits.${key} must be a positive number of megabytes, got ${JSON.stringify(limit)}`);
    }
  }
}

/** All settings, with Celery's names. */
export interface CelerySettings {
  /**
   * One URL, or kombu's failover list: `'amqp://a//;amqp://b//'`. A list given
   * in the config (`['amqp://a//', 'amqp://b//']`) is stored in that `;` form.
   */
  broker_url: string;
  broker_failover_strategy: 'round-robin' | 'shuffle' | null;
  broker_native_delayed_delivery_queue_type: 'quorum' | 'classic';
  broker_connection_retry: boolean;
  broker_connection_retry_on_startup: boolean | null;
  broker_connection_max_retries: number | null;
  broker_connection_timeout: number;
  broker_heartbeat: number;
  broker_pool_limit: number;
  broker_use_ssl: TlsOptions | boolean | null;
  broker_transport_options: Record<string, unknown>;
  result_backend: string | null;
  result_backend_transport_options: Record<string, unknown>;
  redis_backend_use_ssl: TlsOptions | boolean | null;
  result_expires: number | null;
  result_extended: boolean;
  result_persistent: boolean;
  result_chord_expires: number | null;
  result_chord_join_timeout: number;
  result_chord_retry_interval: number;
  result_serializer: string;
  result_accept_content: string[] | null;
  task_serializer: string;
  accept_content: string[];
  task_protocol: number;
  task_compression: string | null;
  task_default_queue: string;
  task_default_queue_type: 'classic' | 'quorum';
  task_create_missing_queue_type: 'classic' | 'quorum';
  task_create_missing_queue_exchange_type: 'direct' | 'topic' | 'fanout' | null;
  task_default_exchange: string | null;
  task_default_exchange_type: 'direct' | 'topic' | 'fanout';
  task_default_routing_key: string | null;
  task_default_delivery_mode: number | 'persistent' | 'transient';
  task_default_priority: number | null;
  task_queue_max_priority: number | null;
  task_queues: QueueDefinition[] | null;
  task_routes: TaskRoutes | null;
  task_create_missing_queues: boolean;
  task_acks_late: boolean;
  task_acks_on_failure_or_timeout: boolean;
  task_reject_on_worker_lost: boolean | null;
  task_track_started: boolean;
  task_ignore_result: boolean;
  task_time_limit: number | null;
  task_soft_time_limit: number | null;
  task_publish_retry: boolean;
  task_publish_retry_policy: PublishRetryPolicy;
  task_send_sent_event: boolean;
  task_default_rate_limit: string | number | null;
  task_inherit_parent_priority: boolean;
  task_allow_error_cb_on_chord_header: boolean;
  task_always_eager: boolean;
  task_eager_propagates: boolean;
  worker_concurrency: number | null;
  worker_prefetch_multiplier: number;
  worker_eta_task_limit: number | null;
  worker_eta_max_hold: number;
  worker_send_task_events: boolean;
  worker_detect_quorum_queues: boolean;
  worker_enable_remote_control: boolean;
  worker_cancel_long_running_tasks_on_connection_loss: boolean;
  worker_deduplicate_successful_tasks: boolean;
  worker_max_tasks_per_child: number | null;
  worker_max_memory_per_child: number | null;
  worker_pool: PoolName;
  worker_thread_resource_limits: ThreadResourceLimits | null;
  worker_hijack_root_logger: boolean;
  worker_log_color: boolean | null;
  worker_state_db: string | null;
  worker_disable_rate_limits: boolean;
  worker_heap_growing_percent: number | null;
  control_exchange: string;
  control_queue_ttl: number | null;
  control_queue_expires: number | null;
  control_queue_exclusive: boolean;
  control_queue_durable: boolean;
  event_exchange: string;
  event_queue_ttl: number | null;
  event_queue_expires: number | null;
  event_queue_prefix: string;
  event_queue_exclusive: boolean;
  event_queue_durable: boolean;
  event_serializer: string;
  timezone: string | null;
  enable_utc: boolean;
  imports: string[];
  include: string[];
  beat_schedule: BeatSchedule;
  beat_max_loop_interval: number;
  beat_schedule_filename: string;
  beat_cron_starting_deadline: number | null;
  beat_lease_url: string | false | null;
  beat_lease_key: string | null;
  beat_lease_ttl: number;
}

type Kind = 'string' | 'bool' | 'number' | 'int' | 'object' | 'list' | 'routes' | 'tls' | 'delivery_mode' | 'rate' | 'string_or_false' | 'urls';

interface SettingSpec {
  default: unknown;
  kind: Kind;
  nullable?: boolean;
  /** Allowed values, for enumerations. */
  oneOf?: readonly unknown[];
  /**
   * Accepted for compatibility but not implemented: setting it (to anything but
   * the default) warns, saying why. A function decides from the value (null = fine).
   */
  unsupported?: string | ((value: unknown, conf: CelerySettings) => string | null);
  /** Further checks of a (non-null) value beyond its kind; throws ImproperlyConfigured. */
  check?: (value: unknown) => void;
  /** The form the value is stored in (after the checks). */
  normalize?: (value: unknown) => unknown;
}

/** The keys of a transport-options object that ts-celery does not read (null when none). */
function ignoredOptions(setting: string, why: string, understood: (key: string, value: unknown) => boolean) {
  return (value: unknown): string | null => {
    const ignored = Object.entries(value as Record<string, unknown>).filter(([k, v]) => !understood(k, v)).map(([k]) => k);
    if (ignored.length === 0) return null;
    return `${ignored.length === 1 ? 'key' : 'keys'} ${ignored.map((k) => JSON.stringify(k)).join(', ')} of ${setting} ${ignored.length === 1 ? 'has' : 'have'} no effect: ${why}`;
  };
}

const REDIS_SCHEMES = new Set(['redis', 'rediss', 'sentinel']);
const ignoredAmqpTransportOptions = ignoredOptions(
  'broker_transport_options',
  "ts-celery's AMQP transport always uses publisher confirms (confirm_publish) and has its own settings for the rest " +
    '(broker_heartbeat, broker_connection_timeout, task_publish_retry_policy, broker_connection_max_retries)',
  (key, value) => key === 'confirm_publish' && value === true,
);

/** The table: every setting, its default (Celery's), and its type. */
export const SETTINGS: { readonly [K in keyof CelerySettings]: SettingSpec } = {
  // The embedded in-memory broker is the default so that a fresh checkout runs; Python's is amqp://localhost.
  // A list (or 'a;b') is kombu's failover: the next URL when one node cannot be reached.
  broker_url: { default: 'memory://', kind: 'urls', normalize: (v) => (Array.isArray(v) ? v.join(';') : v) },
  // null = round-robin, as kombu.
  broker_failover_strategy: { default: null, kind: 'string', nullable: true, oneOf: [null, 'round-robin', 'shuffle'] },
  // The type of the celery_delayed_* queues of native delayed delivery (Celery 5.5+).
  broker_native_delayed_delivery_queue_type: { default: 'quorum', kind: 'string', oneOf: ['quorum', 'classic'] },
  broker_connection_retry: { default: true, kind: 'bool' },
  // Celery 5.7: null = follow broker_connection_retry at start-up too.
  broker_connection_retry_on_startup: { default: null, kind: 'bool', nullable: true },
  broker_connection_max_retries: { default: 100, kind: 'int', nullable: true },
  broker_connection_timeout: { default: 4, kind: 'number' },
  broker_heartbeat: { default: 120, kind: 'number' },
  broker_pool_limit: { default: 10, kind: 'int', unsupported: 'one connection per app is used' },
  broker_use_ssl: { default: null, kind: 'tls', nullable: true },
  broker_transport_options: {
    default: {},
    kind: 'object',
    // The Redis broker reads kombu's keys itself (src/broker/redis/options.ts): it refuses unknown
    // ones and warns about those it ignores, so only the AMQP transport's view is checked here.
    unsupported: (value, conf) =>
      REDIS_SCHEMES.has(urlScheme(conf.broker_url)) ? null : ignoredAmqpTransportOptions(value),
  },
  result_backend: { default: null, kind: 'string', nullable: true },
  result_backend_transport_options: {
    default: {},
    kind: 'object',
    // global_keyprefix names the Redis keys: it must match what Python readers and writers use.
    check: (value) => {
      const prefix = (value as { global_keyprefix?: unknown }).global_keyprefix;
      if (prefix !== undefined && prefix !== null && typeof prefix !== 'string') {
        throw new ImproperlyConfigured(`result_backend_transport_options.global_keyprefix must be a string, got ${JSON.stringify(prefix)}`);
      }
    },
    unsupported: ignoredOptions(
      'result_backend_transport_options',
      'only global_keyprefix (Redis) is read; retries and connection options have their own settings',
      (key) => key === 'global_keyprefix',
    ),
  },
  redis_backend_use_ssl: { default: null, kind: 'tls', nullable: true },
  result_expires: { default: 86_400, kind: 'number', nullable: true },
  result_extended: { default: false, kind: 'bool' },
  result_persistent: { default: false, kind: 'bool' },
  // Chords (Redis): TTL of the join keys (null = result_expires), and how long the last header
  // member waits for a nested header's results; twice this is the body-dispatch claim's lifetime.
  result_chord_expires: { default: null, kind: 'number', nullable: true },
  result_chord_join_timeout: { default: 3.0, kind: 'number' },
  result_chord_retry_interval: {
    default: 1.0,
    kind: 'number',
    unsupported: 'chords are joined by the result backend (Redis), never by polling with celery.chord_unlock',
  },
  result_serializer: { default: 'json', kind: 'string', oneOf: ['json'] },
  result_accept_content: { default: null, kind: 'list', nullable: true },
  task_serializer: { default: 'json', kind: 'string', oneOf: ['json'] },
  accept_content: { default: ['json'], kind: 'list' },
  // 1 is what celery-node's TASK_PROTOCOL = 1 asks for (ts-celery/celery-node); workers read both.
  task_protocol: { default: 2, kind: 'int', oneOf: [1, 2] },
  task_compression: { default: null, kind: 'string', nullable: true, oneOf: [null, 'zlib', 'gzip'] },
  task_default_queue: { default: 'celery', kind: 'string' },
  // Celery 5.5+: 'quorum' declares the default queue with x-queue-type quorum (RabbitMQ 3.8+).
  task_default_queue_type: { default: 'classic', kind: 'string', oneOf: ['classic', 'quorum'] },
  task_create_missing_queue_type: { default: 'classic', kind: 'string', oneOf: ['classic', 'quorum'] },
  // null = a direct exchange named after the queue, as kombu's autoexchange.
  task_create_missing_queue_exchange_type: { default: null, kind: 'string', nullable: true, oneOf: [null, 'direct', 'topic', 'fanout'] },
  task_default_exchange: { default: null, kind: 'string', nullable: true },
  task_default_exchange_type: { default: 'direct', kind: 'string', oneOf: ['direct', 'topic', 'fanout'] },
  task_default_routing_key: { default: null, kind: 'string', nullable: true },
  task_default_delivery_mode: { default: 2, kind: 'delivery_mode' },
  task_default_priority: { default: null, kind: 'int', nullable: true },
  task_queue_max_priority: { default: null, kind: 'int', nullable: true },
  task_queues: { default: null, kind: 'list', nullable: true, check: checkQueueDefinitions },
  task_routes: { default: null, kind: 'routes', nullable: true },
  task_create_missing_queues: { default: true, kind: 'bool' },
  task_acks_late: { default: false, kind: 'bool' },
  task_acks_on_failure_or_timeout: { default: true, kind: 'bool' },
  // Takes effect with -P threads, when a pool thread dies under a task (ack-policy.ts). With the
  // async pool there is nothing to lose but the worker process, whose unacked messages RabbitMQ redelivers.
  task_reject_on_worker_lost: { default: null, kind: 'bool', nullable: true },
  task_track_started: { default: false, kind: 'bool' },
  task_ignore_result: { default: false, kind: 'bool' },
  task_time_limit: { default: null, kind: 'number', nullable: true },
  task_soft_time_limit: { default: null, kind: 'number', nullable: true },
  task_publish_retry: { default: true, kind: 'bool' },
  task_publish_retry_policy: {
    default: { max_retries: 3, interval_start: 0, interval_step: 0.2, interval_max: 1 },
    kind: 'object',
  },
  task_send_sent_event: { default: false, kind: 'bool' },
  // A task's own rateLimit option wins; this applies to tasks without one ('10/s', '100/m', '1000/h', or a number per second).
  task_default_rate_limit: { default: null, kind: 'rate', nullable: true },
  task_inherit_parent_priority: { default: false, kind: 'bool' },
  task_allow_error_cb_on_chord_header: { default: false, kind: 'bool' },
  task_always_eager: { default: false, kind: 'bool', unsupported: 'use the memory:// broker with an in-process worker instead' },
  task_eager_propagates: { default: false, kind: 'bool', unsupported: 'eager mode is not implemented' },
  worker_concurrency: { default: null, kind: 'int', nullable: true },
  worker_prefetch_multiplier: { default: 4, kind: 'int' },
  // Celery 5.6 defaults to unbounded; a bound keeps a flood of future tasks from exhausting memory.
  worker_eta_task_limit: { default: 1000, kind: 'int', nullable: true },
  // ts-celery's own: ETA tasks due later than this (seconds) are parked in RabbitMQ delay queues
  // instead of being held unacked; keep it well under RabbitMQ's consumer_timeout (30 min).
  worker_eta_max_hold: { default: 900, kind: 'number' },
  worker_send_task_events: { default: false, kind: 'bool' },
  // Quorum queues get per-consumer QoS (RabbitMQ refuses global QoS on them with 540, closing the connection).
  worker_detect_quorum_queues: {
    default: true,
    kind: 'bool',
    unsupported: 'every queue consumer has a channel of its own, and consumers of quorum queues always use per-consumer QoS: global QoS on a quorum queue makes RabbitMQ close the whole connection (540 NOT_IMPLEMENTED)',
  },
  worker_enable_remote_control: { default: true, kind: 'bool' },
  worker_cancel_long_running_tasks_on_connection_loss: { default: false, kind: 'bool', unsupported: 'running tasks always finish; under acks_late their messages are redelivered' },
  worker_deduplicate_successful_tasks: { default: false, kind: 'bool', unsupported: 'not implemented' },
  // -P threads: a pool thread is replaced after this many tasks (the async pool warns that it has no children).
  worker_max_tasks_per_child: { default: null, kind: 'int', nullable: true },
  // -P threads: KiB of the thread's V8 heap (committed) plus its external memory, checked after each task.
  worker_max_memory_per_child: { default: null, kind: 'int', nullable: true },
  // Celery's default is prefork, which Node has no equivalent of; async is the eventlet-like pool.
  worker_pool: { default: 'async', kind: 'string', check: (value) => checkPoolName(value) },
  // ts-celery's own: Node's resourceLimits for each pool thread; a thread past them dies alone (worker lost).
  worker_thread_resource_limits: { default: null, kind: 'object', nullable: true, check: checkResourceLimits },
  worker_hijack_root_logger: { default: true, kind: 'bool', unsupported: 'there is no root logger to hijack in Node' },
  // Celery colors its log on a terminal (null: auto); ts-celery's log is plain text, so only `true` is refused.
  worker_log_color: { default: null, kind: 'bool', nullable: true, unsupported: (v) => (v === true ? 'the worker log is plain text, never colored' : null) },
  // `-S`/`--statedb`: the file that keeps revoked task ids across restarts (JSON, not Python's shelve).
  worker_state_db: { default: null, kind: 'string', nullable: true },
  worker_disable_rate_limits: { default: false, kind: 'bool' },
  // ts-celery's own: V8's old-generation growing factor for `ts-celery worker` (src/worker/heap.ts);
  // null = V8's own heuristics.
  worker_heap_growing_percent: {
    default: 100,
    kind: 'int',
    nullable: true,
    check: (value) => {
      if (value !== null && !((value as number) >= 1 && (value as number) <= 300)) {
        throw new ImproperlyConfigured(`worker_heap_growing_percent must be between 1 and 300 (or null for V8's default), got ${JSON.stringify(value)}`);
      }
    },
  },
  // Remote control (kombu's pidbox) and events, declared as Celery 5.7 declares them.
  control_exchange: { default: 'celery', kind: 'string' },
  control_queue_ttl: { default: 300, kind: 'number', nullable: true },
  control_queue_expires: { default: 10, kind: 'number', nullable: true },
  control_queue_exclusive: { default: true, kind: 'bool' },
  control_queue_durable: { default: false, kind: 'bool' },
  event_exchange: { default: 'celeryev', kind: 'string' },
  event_queue_ttl: { default: 5, kind: 'number', nullable: true },
  event_queue_expires: { default: 60, kind: 'number', nullable: true },
  event_queue_prefix: { default: 'celeryev', kind: 'string' },
  event_queue_exclusive: { default: true, kind: 'bool' },
  event_queue_durable: { default: false, kind: 'bool' },
  event_serializer: { default: 'json', kind: 'string', oneOf: ['json'] },
  // Celery 5.7: null = UTC with enable_utc (the default), else the system's zone; see timezone.ts.
  timezone: { default: null, kind: 'string', nullable: true, check: (value) => checkTimezone(value as string) },
  enable_utc: { default: true, kind: 'bool' },
  imports: { default: [], kind: 'list' },
  include: { default: [], kind: 'list' },
  // Entries are checked in full (crontab fields, options) when beat starts.
  beat_schedule: { default: {}, kind: 'object' },
  // 0 = the scheduler's own default, 300 s, as in Celery.
  beat_max_loop_interval: { default: 0, kind: 'number' },
  // Not Celery's 'celerybeat-schedule': that name is Python's shelve db, which each would take for corrupt.
  beat_schedule_filename: { default: 'celerybeat-schedule.json', kind: 'string' },
  beat_cron_starting_deadline: { default: null, kind: 'number', nullable: true },
  // ts-celery's own: where beat's HA lease lives. null = the result backend when it is redis://; false = no lease.
  beat_lease_url: { default: null, kind: 'string_or_false', nullable: true },
  // ts-celery's own: the lease's key (null = ts-celery:beat:<app name>); two apps sharing a name and a Redis db need their own.
  beat_lease_key: { default: null, kind: 'string', nullable: true },
  // ts-celery's own: seconds a lease lives without renewal; a standby takes over at most ttl × 1.2 after its holder died.
  beat_lease_ttl: { default: 10, kind: 'number' },
};

const ENV_OVERRIDES: ReadonlyArray<[string, keyof CelerySettings]> = [
  ['CELERY_BROKER_URL', 'broker_url'],
  ['CELERY_RESULT_BACKEND', 'result_backend'],
];

/** `: did you mean "..."?` for an unknown setting; also tries Python's `CELERY_` and `task_`-less forms. */
function suggest(key: string): string {
  return didYouMean(key, Object.keys(SETTINGS), {
    normalize: (s) => s.toLowerCase().replace(/^celery_/, ''),
    variants: (s) => [`task_${s}`],
  });
}

function typeError(key: string, spec: SettingSpec, value: unknown): ImproperlyConfigured {
  const expected = spec.oneOf
    ? `one of ${JSON.stringify(spec.oneOf)}`
    : spec.kind === 'urls'
      ? "a URL (several separated by ';' for failover) or a non-empty list of URLs"
      : `a ${spec.kind.replace(/_/g, ' ')}${spec.nullable ? ' or null' : ''}`;
  return new ImproperlyConfigured(`Setting ${key} must be ${expected}, got ${JSON.stringify(value) ?? typeof value}`);
}

function checkValue(key: string, spec: SettingSpec, value: unknown): void {
  if (value === null && spec.nullable) return;
  const ok = ((): boolean => {
    switch (spec.kind) {
      case 'string':
        return typeof value === 'string';
      case 'urls':
        return (typeof value === 'string' && value.trim() !== '') ||
          (Array.isArray(value) && value.length > 0 && value.every((v) => typeof v === 'string' && v.trim() !== ''));
      case 'bool':
        return typeof value === 'boolean';
      case 'number':
        return typeof value === 'number' && Number.isFinite(value) && value >= 0;
      case 'int':
        return typeof value === 'number' && Number.isInteger(value) && value >= 0;
      case 'object':
        return value !== null && typeof value === 'object' && !Array.isArray(value);
      case 'list':
        return Array.isArray(value);
      case 'routes':
        return typeof value === 'function' || (value !== null && typeof value === 'object');
      case 'tls':
        return typeof value === 'boolean' || (value !== null && typeof value === 'object');
      case 'delivery_mode':
        return value === 1 || value === 2 || value === 'persistent' || value === 'transient';
      case 'rate':
        try {
          parseRate(value as string | number);
          return typeof value === 'string' || typeof value === 'number';
        } catch {
          return false;
        }
      case 'string_or_false':
        return typeof value === 'string' || value === false;
    }
  })();
  if (!ok || (spec.oneOf && !spec.oneOf.includes(value))) throw typeError(key, spec, value);
  spec.check?.(value);
}

function checkContentTypes(key: string, value: unknown): void {
  if (!Array.isArray(value)) return;
  for (const ct of value) {
    if (ct !== 'json' && ct !== 'application/json') {
      throw new ImproperlyConfigured(
        `Setting ${key} includes ${JSON.stringify(ct)}: ts-celery only deserializes JSON ` +
          `(pickle, yaml and msgpack are refused for safety); use ['json']`,
      );
    }
  }
}

/** Validates one key/value pair against the table. */
export function validateSetting(key: string, value: unknown): asserts key is keyof CelerySettings {
  const spec = (SETTINGS as Record<string, SettingSpec>)[key];
  if (!spec) throw new ImproperlyConfigured(`Unknown setting ${JSON.stringify(key)}${suggest(key)}`);
  checkValue(key, spec, value);
  if (key === 'accept_content' || key === 'result_accept_content') checkContentTypes(key, value);
}

/**
 * One warning per setting that is set but which ts-celery does not implement
 * (or, for transport options, the keys of it that are not read), saying why:
 * callers print these once.
 */
export function unsupportedSettings(conf: CelerySettings): string[] {
  const out: string[] = [];
  for (const [key, spec] of Object.entries(SETTINGS) as Array<[string, SettingSpec]>) {
    const value = (conf as unknown as Record<string, unknown>)[key];
    if (typeof spec.unsupported === 'function') {
      const why = value === null ? null : spec.unsupported(value, conf);
      if (why) out.push(`Setting ${key}: ${why}`);
    } else if (spec.unsupported && JSON.stringify(value) !== JSON.stringify(spec.default)) {
      out.push(`Setting ${key} is accepted but has no effect in ts-celery: ${spec.unsupported}`);
    }
  }
  return out;
}

/** Celery's defaults, as a fresh object. */
export function defaultSettings(): CelerySettings {
  const out: Record<string, unknown> = {};
  for (const [key, spec] of Object.entries(SETTINGS)) out[key] = structuredClone(spec.default);
  return out as unknown as CelerySettings;
}

/** The keys given explicitly to each settings object (Celery's "changes", even when equal to a default). */
const explicitKeys = new WeakMap<CelerySettings, Set<string>>();

function markExplicit(target: CelerySettings, key: string): void {
  let keys = explicitKeys.get(target);
  if (!keys) explicitKeys.set(target, (keys = new Set()));
  keys.add(key);
}

/**
 * The settings given explicitly (by the app's config or the environment), as Celery's
 * `conf.table()` lists them, even those set to their default value.
 */
export function explicitSettings(conf: CelerySettings): ReadonlySet<string> {
  return explicitKeys.get(conf) ?? new Set();
}

/**
 * Merges `source` into `target` after validating every key; keys whose value
 * is `undefined` are skipped (so `{ result_backend: process.env.X }` works).
 */
export function applySettings(target: CelerySettings, source: Record<string, unknown>): void {
  for (const [key, value] of Object.entries(source)) {
    if (value === undefined) continue;
    validateSetting(key, value);
    const spec = (SETTINGS as Record<string, SettingSpec>)[key]!;
    (target as unknown as Record<string, unknown>)[key] = spec.normalize ? spec.normalize(value) : value;
    markExplicit(target, key);
  }
}

/** Applies `CELERY_BROKER_URL` / `CELERY_RESULT_BACKEND` from the environment. */
export function applyEnvironment(target: CelerySettings, env: NodeJS.ProcessEnv = process.env): void {
  for (const [name, key] of ENV_OVERRIDES) {
    const value = env[name];
    if (value) {
      (target as unknown as Record<string, unknown>)[key] = value;
      markExplicit(target, key);
    }
  }
}
