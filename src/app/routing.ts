/**
 * Routing: which queue a task goes to, and how that queue is declared.
 *
 * Mirrors Celery: `applyAsync` options win, then `task_routes` (name, glob,
 * function, or a list of those), then the task's own `queue` option, then
 * `task_default_queue`. Queues listed in `task_queues` are declared as listed;
 * others are created like kombu does when `task_create_missing_queues` is on:
 * durable queue, durable direct exchange of the same name, no arguments.
 * Direct queues are published through the default exchange (`''`, routing key
 * = queue name), as Python does.
 */
import type { QueueDeclaration } from '../broker/types.js';
import { ImproperlyConfigured } from '../errors.js';
import { didYouMean, looseCase } from '../support/suggest.js';
import type { CelerySettings, QueueDefinition, Route, RouterFn } from './config.js';

/** Where one message goes, fully resolved. */
export interface ResolvedRoute {
  exchange: string;
  routingKey: string;
  queue: QueueDeclaration | null;
  priority: number | null;
}

/** What the caller asked for (applyAsync options or the task's options). */
export interface RouteRequest {
  queue?: string | undefined;
  routingKey?: string | undefined;
  exchange?: string | undefined;
  priority?: number | undefined;
}

function globToRegExp(glob: string): RegExp {
  const escaped = glob.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
  return new RegExp(`^${escaped}$`);
}

function normalizeRoute(route: Route | string | null | undefined): Route | null {
  if (route === null || route === undefined) return null;
  return typeof route === 'string' ? { queue: route } : route;
}

/** Looks `name` up in `task_routes`. */
export function routeFromConfig(
  conf: CelerySettings,
  name: string,
  args: unknown[],
  kwargs: Record<string, unknown>,
): Route | null {
  const routes = conf.task_routes;
  if (!routes) return null;
  const routers = Array.isArray(routes) ? routes : [routes];
  for (const router of routers) {
    if (typeof router === 'function') {
      const r = normalizeRoute((router as RouterFn)(name, args, kwargs));
      if (r) return r;
      continue;
    }
    const table = router as Record<string, Route | string>;
    if (Object.hasOwn(table, name)) return normalizeRoute(table[name]);
    for (const [pattern, route] of Object.entries(table)) {
      if (/[*?]/.test(pattern) && globToRegExp(pattern).test(name)) return normalizeRoute(route);
    }
  }
  return null;
}

/** The declaration for a queue name: from `task_queues`, or created like kombu does. */
export function queueDeclaration(conf: CelerySettings, name: string): QueueDeclaration {
  const listed: QueueDefinition | undefined = conf.task_queues?.find((q) => q.name === name);
  const maxPriority = conf.task_queue_max_priority;
  const baseArgs: Record<string, unknown> = maxPriority !== null ? { 'x-max-priority': maxPriority } : {};
  if (listed) {
    const exchangeName = listed.exchange ?? listed.name;
    return {
      name,
      durable: listed.durable ?? true,
      autoDelete: listed.auto_delete ?? false,
      arguments: { ...baseArgs, ...(listed.queue_arguments ?? {}) },
      exchange: { name: exchangeName, type: listed.exchange_type ?? 'direct', durable: true },
      routingKey: listed.routing_key ?? name,
    };
  }
  if (conf.task_queues && !conf.task_create_missing_queues) {
    throw new ImproperlyConfigured(
      `Queue ${JSON.stringify(name)} is not in task_queues and task_create_missing_queues is off`,
    );
  }
  const isDefault = name === conf.task_default_queue;
  // As Celery's app.amqp.Queues: without task_queues the default queue is built from the
  // task_default_* settings (task_default_queue_type); any other queue is a "missing" one
  // (task_create_missing_queue_type, task_create_missing_queue_exchange_type).
  const quorum = isDefault && !conf.task_queues ? conf.task_default_queue_type === 'quorum' : conf.task_create_missing_queue_type === 'quorum';
  const missingExchangeType = conf.task_create_missing_queue_exchange_type ?? 'direct';
  return {
    name,
    durable: true,
    autoDelete: false,
    arguments: quorum ? { 'x-queue-type': 'quorum', ...baseArgs } : baseArgs,
    exchange: {
      name: isDefault ? (conf.task_default_exchange ?? name) : name,
      type: isDefault ? conf.task_default_exchange_type : missingExchangeType,
      durable: true,
    },
    routingKey: isDefault ? (conf.task_default_routing_key ?? name) : name,
  };
}

/** The settings {@link queueDeclaration} reads (besides the queue name), as they were. */
type DeclarationInputs = Pick<
  CelerySettings,
  | 'task_queues' | 'task_queue_max_priority' | 'task_create_missing_queues' | 'task_default_queue' | 'task_default_queue_type'
  | 'task_create_missing_queue_type' | 'task_create_missing_queue_exchange_type' | 'task_default_exchange'
  | 'task_default_exchange_type' | 'task_default_routing_key'
>;

function declarationInputs(c: CelerySettings): DeclarationInputs {
  return {
    task_queues: c.task_queues, task_queue_max_priority: c.task_queue_max_priority, task_create_missing_queues: c.task_create_missing_queues,
    task_default_queue: c.task_default_queue, task_default_queue_type: c.task_default_queue_type,
    task_create_missing_queue_type: c.task_create_missing_queue_type, task_create_missing_queue_exchange_type: c.task_create_missing_queue_exchange_type,
    task_default_exchange: c.task_default_exchange, task_default_exchange_type: c.task_default_exchange_type,
    task_default_routing_key: c.task_default_routing_key,
  };
}

function sameInputs(a: DeclarationInputs, c: CelerySettings): boolean {
  return (
    a.task_queues === c.task_queues && a.task_queue_max_priority === c.task_queue_max_priority &&
    a.task_create_missing_queues === c.task_create_missing_queues && a.task_default_queue === c.task_default_queue &&
    a.task_default_queue_type === c.task_default_queue_type && a.task_create_missing_queue_type === c.task_create_missing_queue_type &&
    a.task_create_missing_queue_exchange_type === c.task_create_missing_queue_exchange_type &&
    a.task_default_exchange === c.task_default_exchange && a.task_default_exchange_type === c.task_default_exchange_type &&
    a.task_default_routing_key === c.task_default_routing_key
  );
}

/** Declarations made for one settings object, and the settings they were made from. */
interface DeclarationCache {
  inputs: DeclarationInputs;
  byName: Map<string, QueueDeclaration>;
}

const declarationCaches = new WeakMap<CelerySettings, DeclarationCache>();

/** Distinct queue names kept per settings object; past this the cache starts over. */
const MAX_CACHED_QUEUES = 256;

/**
 * {@link queueDeclaration}, one object per queue name while the settings it reads stay the same:
 * every `delay()` routes, and a fresh declaration per call (three objects) was garbage the
 * broker then compared field by field with the last one. Shared: callers must not mutate it.
 * The settings are compared on every call, so a setting replaced in `app.conf` is seen (a
 * `task_queues` array changed in place is not: assign a new array).
 */
function sharedQueueDeclaration(conf: CelerySettings, name: string): QueueDeclaration {
  let cache = declarationCaches.get(conf);
  if (!cache || !sameInputs(cache.inputs, conf)) {
    declarationCaches.set(conf, (cache = { inputs: declarationInputs(conf), byName: new Map() }));
  }
  let q = cache.byName.get(name);
  if (!q) {
    q = queueDeclaration(conf, name);
    if (cache.byName.size >= MAX_CACHED_QUEUES) cache.byName.clear();
    cache.byName.set(name, q);
  }
  return q;
}

/**
 * Resolves where a task message goes. `explicit` are applyAsync's options,
 * `taskDefaults` the task's own routing options.
 */
export function resolveRoute(
  conf: CelerySettings,
  name: string,
  args: unknown[],
  kwargs: Record<string, unknown>,
  explicit: RouteRequest,
  taskDefaults: RouteRequest = {},
): ResolvedRoute {
  const configured = explicit.queue ? null : routeFromConfig(conf, name, args, kwargs);
  const queueName = explicit.queue ?? configured?.queue ?? taskDefaults.queue ?? conf.task_default_queue;
  const queue = sharedQueueDeclaration(conf, queueName);
  // Python sends priority 0 unless a queue was named explicitly without one (then none at all).
  const priority =
    explicit.priority ??
    configured?.priority ??
    taskDefaults.priority ??
    conf.task_default_priority ??
    (explicit.queue ? null : 0);
  const exchange = explicit.exchange ?? configured?.exchange;
  if (exchange !== undefined && exchange !== queue.exchange.name) {
    // An explicit exchange: publish there with the requested key; declare nothing.
    return { exchange, routingKey: explicit.routingKey ?? configured?.routing_key ?? queueName, queue: null, priority };
  }
  if (queue.exchange.type === 'direct') {
    return { exchange: '', routingKey: queue.name, queue, priority };
  }
  const routingKey = explicit.routingKey ?? configured?.routing_key ?? taskDefaults.routingKey ?? queue.routingKey;
  return { exchange: queue.exchange.name, routingKey, queue, priority };
}

/** The keys of one `task_queues` entry (kombu's `Queue` fields, by their Celery names). */
const QUEUE_KEYS = ['name', 'exchange', 'exchange_type', 'routing_key', 'queue_arguments', 'durable', 'auto_delete'] as const satisfies ReadonlyArray<keyof QueueDefinition>;

/** kombu `Queue(...)` shortcuts that are queue arguments here. */
const KOMBU_QUEUE_SHORTCUTS: Readonly<Record<string, string>> = {
  max_priority: 'x-max-priority',
  message_ttl: 'x-message-ttl',
  expires: 'x-expires',
  max_length: 'x-max-length',
  max_length_bytes: 'x-max-length-bytes',
};

/**
 * Validates `task_queues` entries (the setting's check): a misspelt key would
 * otherwise declare the queue differently than meant. Throws ImproperlyConfigured.
 */
export function checkQueueDefinitions(value: unknown): void {
  (value as unknown[]).forEach((entry, i) => {
    const where = `task_queues[${i}]`;
    if (entry === null || typeof entry !== 'object' || Array.isArray(entry)) {
      throw new ImproperlyConfigured(`${where} must be an object such as { name: 'sms', queue_arguments: { 'x-max-priority': 10 } }, got ${JSON.stringify(entry)}`);
    }
    const q = entry as Record<string, unknown>;
    if (typeof q.name !== 'string' || q.name === '') throw new ImproperlyConfigured(`${where} needs a name (a non-empty string), got ${JSON.stringify(q.name)}`);
    const label = `${where} (${JSON.stringify(q.name)})`;
    for (const key of Object.keys(q)) {
      if ((QUEUE_KEYS as readonly string[]).includes(key)) continue;
      const argument = KOMBU_QUEUE_SHORTCUTS[key];
      if (argument) {
        throw new ImproperlyConfigured(`${label}: ${key} is kombu's shortcut for a queue argument; write queue_arguments: { '${argument}': ... }`);
      }
      throw new ImproperlyConfigured(`${label} has an unknown key ${JSON.stringify(key)}${didYouMean(key, QUEUE_KEYS, { normalize: looseCase })}`);
    }
    const expect = (key: string, ok: boolean, what: string): void => {
      if (q[key] !== undefined && !ok) throw new ImproperlyConfigured(`${label}: ${key} must be ${what}, got ${JSON.stringify(q[key])}`);
    };
    expect('exchange', typeof q.exchange === 'string', 'a string');
    expect('exchange_type', ['direct', 'topic', 'fanout'].includes(q.exchange_type as string), "'direct', 'topic' or 'fanout'");
    expect('routing_key', typeof q.routing_key === 'string', 'a string');
    expect('queue_arguments', q.queue_arguments !== null && typeof q.queue_arguments === 'object' && !Array.isArray(q.queue_arguments), 'an object');
    expect('durable', typeof q.durable === 'boolean', 'a boolean');
    expect('auto_delete', typeof q.auto_delete === 'boolean', 'a boolean');
  });
}
