/**
 * Inspect commands: read-only answers about the worker, in the shapes Python
 * workers reply with (test/fixtures/celery-5.7/pidbox_results.json).
 */
import { arch, release, type as osType } from 'node:os';
import { explicitSettings, SETTINGS } from '../app/config.js';
import type { Task } from '../app/task.js';
import type { QueueDeclaration } from '../broker/types.js';
import { parseAmqpUrl } from '../broker/amqp/connection.js';
import { parseRedisUrl } from '../broker/redis/url.js';
import { formatIsoTime } from '../protocol/time.js';
import { maskUrl, splitUrlList, urlScheme } from '../support/url.js';
import { VERSION } from '../support/version.js';
import { getLogger } from '../support/log.js';
import { maybeList, nok, ok, pyTruthy, requireArgs, type CommandContext, type CommandHandler } from './command-support.js';

const log = getLogger('MainProcess');

/** Python's `registered` default attributes. */
const DEFAULT_TASK_INFO_ITEMS = ['exchange', 'routing_key', 'rate_limit'];

/** Celery's `HIDDEN_SETTINGS`: values of matching keys are masked in `conf` and `report`. */
const HIDDEN_SETTINGS = /API|TOKEN|KEY|SECRET|PASS|PROFANITIES_LIST|SIGNATURE|DATABASE|BEAT_DBURI/i;
const MASK = '********';

function maskedUrl(url: string): string {
  return maskUrl(url).replace(/:\*\*@/, `:${MASK}@`);
}

/** Celery's `filter_hidden_settings`, recursively. */
function censor(key: string, value: unknown): unknown {
  if (value !== null && typeof value === 'object' && !Array.isArray(value) && !Buffer.isBuffer(value)) {
    return Object.fromEntries(Object.entries(value as Record<string, unknown>).map(([k, v]) => [k, censor(k, v)]));
  }
  if (HIDDEN_SETTINGS.test(key)) return MASK;
  if ((key === 'broker_url' || key.includes('backend')) && typeof value === 'string') return maskedUrl(value);
  return value;
}

/** JSON-safe: functions and buffers become a description, as Celery's `safe_repr` does. */
function jsonable(value: unknown): unknown {
  if (typeof value === 'function') return `<function ${value.name || 'anonymous'}>`;
  if (Buffer.isBuffer(value)) return `<${value.length} bytes>`;
  if (Array.isArray(value)) return value.map(jsonable);
  if (value !== null && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, jsonable(v)]));
  return value;
}

function settingsTable(ctx: CommandContext, withDefaults: boolean): Record<string, unknown> {
  const conf = ctx.app.conf as unknown as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  const given = explicitSettings(ctx.app.conf);
  for (const [key, spec] of Object.entries(SETTINGS)) {
    const value = conf[key];
    // As Celery's conf.table(): what was set (even to its default value), or changed since.
    if (!withDefaults && !given.has(key) && JSON.stringify(jsonable(value)) === JSON.stringify(spec.default)) continue;
    out[key] = jsonable(censor(key, value));
  }
  // Celery 5.7's worker lists these two whatever their values: `include` (the task modules) and
  // `deprecated_settings` (the old setting names found; none here, as ts-celery has only the new ones).
  out.deprecated_settings = null;
  out.include = jsonable(conf.include);
  return out;
}

/**
 * The eta as Celery's `scheduled` reports it (`request.eta.isoformat()`): to the microsecond the
 * sender wrote. A JS Date keeps milliseconds, so the header's sub-millisecond digits are put back
 * (Celery's own suite compares the two strings).
 */
function etaIso(ms: number, header: unknown): string {
  const formatted = formatIsoTime(ms);
  const micros = typeof header === 'string' ? /T\d\d:\d\d:\d\d\.(\d{1,6})/.exec(header)?.[1] : undefined;
  if (!micros || Number(micros) === 0) return formatted;
  const fraction = `.${micros.padEnd(6, '0')}`;
  // formatIsoTime writes `.mmm000` for a time with milliseconds, nothing when they are 0.
  return /\.\d{6}/.test(formatted) ? formatted.replace(/\.\d{6}/, fraction) : formatted.replace(/([+-]\d\d:\d\d)$/, `${fraction}$1`);
}

function truthy(v: unknown): boolean {
  if (typeof v === 'string') return ['1', 'true', 'yes', 'y', 'on'].includes(v.toLowerCase());
  return v === true || v === 1;
}

/** A task attribute by its Python name, as `registered` shows it (null = not shown). */
function taskAttribute(ctx: CommandContext, task: Task<never, unknown>, item: string): unknown {
  const o = task.options;
  const conf = ctx.app.conf;
  switch (item) {
    case 'name':
      return task.name;
    case 'rate_limit':
      return ctx.rateLimits.get(task.name) ?? o.rateLimit ?? conf.task_default_rate_limit ?? null;
    case 'max_retries':
      return o.maxRetries === undefined ? 3 : o.maxRetries;
    case 'default_retry_delay':
      return o.defaultRetryDelay ?? 180;
    case 'time_limit':
      return o.timeLimit ?? conf.task_time_limit;
    case 'soft_time_limit':
      return o.softTimeLimit ?? conf.task_soft_time_limit;
    case 'acks_late':
      return o.acksLate ?? conf.task_acks_late;
    case 'ignore_result':
      return o.ignoreResult ?? conf.task_ignore_result;
    case 'track_started':
      return o.trackStarted ?? conf.task_track_started;
    case 'serializer':
      return conf.task_serializer;
    case 'queue':
      return o.queue ?? null;
    case 'routing_key':
      return o.routingKey ?? null;
    case 'priority':
      return o.priority ?? null;
    case 'expires':
      return o.expires ?? null;
    default:
      return null; // exchange and anything unknown: None in Python, so not shown
  }
}

/** Python's `str()` of an attribute value. */
function pyStr(v: unknown): string {
  if (v === true) return 'True';
  if (v === false) return 'False';
  return String(v);
}

/** kombu's `Queue.as_dict(recurse=True)` for a queue we consume. */
function queueAsDict(q: QueueDeclaration): Record<string, unknown> {
  const args = Object.keys(q.arguments).length ? q.arguments : null;
  return {
    name: q.name,
    exchange: { name: q.exchange.name, type: q.exchange.type, arguments: null, durable: q.exchange.durable, passive: false, auto_delete: false, delivery_mode: null, no_declare: false },
    routing_key: q.routingKey,
    queue_arguments: args,
    binding_arguments: null,
    consumer_arguments: null,
    durable: q.durable,
    exclusive: q.exclusive ?? false,
    auto_delete: q.autoDelete,
    no_ack: false,
    alias: null,
    bindings: [],
    no_declare: null,
    expires: null,
    message_ttl: null,
    max_length: null,
    max_length_bytes: null,
    max_priority: null,
  };
}

/** `stats` -> `broker`: the connection parameters without the password, as kombu's `Connection.info()`. */
function brokerInfo(ctx: CommandContext): Record<string, unknown> {
  const conf = ctx.app.conf;
  // kombu's info() describes the URL in use; the other failover URLs are its `alternates` (masked here).
  const urls = splitUrlList(conf.broker_url);
  const first = urls[0] ?? conf.broker_url;
  const scheme = urlScheme(first);
  const common = {
    insist: false,
    ssl: scheme === 'amqps',
    transport: scheme === 'amqps' || scheme === 'pyamqp' ? 'amqp' : scheme,
    connect_timeout: conf.broker_connection_timeout,
    transport_options: censor('transport_options', conf.broker_transport_options),
    login_method: 'PLAIN',
    uri_prefix: null,
    heartbeat: conf.broker_heartbeat,
    failover_strategy: conf.broker_failover_strategy ?? 'round-robin',
    alternates: urls.length > 1 ? urls.map(maskedUrl) : [],
  };
  if (scheme === 'amqp' || scheme === 'amqps' || scheme === 'pyamqp') {
    const c = parseAmqpUrl(first.replace(/^pyamqp:/i, 'amqp:'));
    return { hostname: c.hostname, userid: c.username, virtual_host: c.vhost, port: c.port, ...common };
  }
  if (scheme === 'redis' || scheme === 'rediss' || scheme === 'sentinel') {
    // kombu: the database number is the virtual host (a sentinel:// URL reads as '/').
    const r = parseRedisUrl(conf.broker_url);
    const first = r.hosts[0]!;
    return { hostname: first.host, userid: r.username ?? null, virtual_host: scheme === 'sentinel' ? '/' : String(r.db), port: first.port, ...common, ssl: scheme === 'rediss' };
  }
  return { hostname: 'localhost', userid: null, virtual_host: '/', port: null, ...common };
}

/** `getrusage(2)` in Python's field names and units (seconds, kilobytes). */
function rusage(): Record<string, number> {
  const r = process.resourceUsage();
  return {
    utime: r.userCPUTime / 1e6,
    stime: r.systemCPUTime / 1e6,
    maxrss: r.maxRSS,
    ixrss: r.sharedMemorySize,
    idrss: r.unsharedDataSize,
    isrss: r.unsharedStackSize,
    minflt: r.minorPageFault,
    majflt: r.majorPageFault,
    nswap: r.swappedOut,
    inblock: r.fsRead,
    oublock: r.fsWrite,
    msgsnd: r.ipcSent,
    msgrcv: r.ipcReceived,
    nsignals: r.signalsCount,
    nvcsw: r.voluntaryContextSwitches,
    nivcsw: r.involuntaryContextSwitches,
  };
}

/** Celery's `humanbytes`: `61.12MB`. */
function humanBytes(n: number): string {
  const units: Array<[number, string]> = [[2 ** 40, 'TB'], [2 ** 30, 'GB'], [2 ** 20, 'MB'], [2 ** 10, 'KB'], [0, 'b']];
  for (const [div, unit] of units) {
    if (n >= div) {
      const v = div ? n / div : n;
      return `${Number.isInteger(v) ? v : v.toFixed(2).replace(/\.?0+$/, '')}${unit}`;
    }
  }
  return `${n}b`;
}

function report(ctx: CommandContext): string {
  const conf = ctx.app.conf;
  const settings = settingsTable(ctx, false);
  const human = Object.entries(settings).map(([k, v]) => `${k}: ${typeof v === 'string' ? `'${v}'` : JSON.stringify(v)}`).join('\n');
  return [
    '',
    `software -> ts-celery:${VERSION} node:${process.versions.node} v8:${process.versions.v8}`,
    `            amqplib (Celery protocol 2)`,
    `platform -> system:${osType()} arch:${arch()}`,
    `            kernel version:${release()} imp:Node.js`,
    `loader   -> ts-celery (${ctx.app.main})`,
    `settings -> transport:${urlScheme(conf.broker_url)} results:${conf.result_backend ? maskedUrl(conf.result_backend) : 'disabled'}`,
    '',
    human,
    '',
  ].join('\n');
}

export const INSPECT_HANDLERS: Record<string, CommandHandler> = {
  ping: () => ok('pong'),

  clock: (ctx) => ({ clock: ctx.app.clock.value }),

  stats(ctx) {
    const w = ctx.worker;
    const conf = ctx.app.conf;
    return {
      total: Object.fromEntries(ctx.state.totalCount),
      pid: process.pid,
      clock: String(ctx.app.clock.value),
      uptime: Math.round((Date.now() - w.startedAt) / 1000),
      pool: {
        implementation: w.pool.name === 'threads' ? 'ts-celery:ThreadPool' : 'ts-celery:AsyncPool',
        'max-concurrency': w.concurrency,
        // Celery lists its children's pids; -P threads lists its threads' ids.
        processes: w.pool.info().processes,
        'max-tasks-per-child': w.pool.info()['max-tasks-per-child'] ?? 'N/A',
        'put-guarded-by-semaphore': false,
        timeouts: [conf.task_soft_time_limit ?? 0, conf.task_time_limit ?? 0],
      },
      broker: brokerInfo(ctx),
      prefetch_count: w.prefetchCount,
      rusage: rusage(),
    };
  },

  active: (ctx, args) => ctx.state.list('active').map((r) => r.info(pyTruthy(args.safe))),

  reserved: (ctx) => ctx.state.list('reserved').map((r) => r.info()),

  scheduled: (ctx) =>
    ctx.state.list('scheduled').map((r) => ({
      eta: r.message.eta === null ? null : etaIso(r.message.eta, r.delivery.message.headers.eta),
      // the timer-entry priority Celery gives every ETA task
      priority: 6,
      request: r.info(),
    })),

  revoked: (ctx) => ctx.state.revoked.toArray(),

  query_task(ctx, args) {
    requireArgs('query_task', args, 'ids');
    const out: Record<string, [string, unknown]> = {};
    for (const id of maybeList(args.ids)) {
      const r = typeof id === 'string' ? ctx.state.byId(id) : undefined;
      if (r) out[r.id] = [r.phase === 'received' ? 'ready' : r.phase, r.info()];
    }
    return out;
  },

  registered(ctx, args) {
    const items = (maybeList(args.taskinfoitems).length ? maybeList(args.taskinfoitems) : DEFAULT_TASK_INFO_ITEMS).filter(
      (i): i is string => typeof i === 'string' && !i.startsWith('_'),
    );
    const builtins = truthy(args.builtins);
    return [...ctx.app.tasks.keys()]
      .filter((name) => builtins || !name.startsWith('celery.'))
      .sort()
      .map((name) => {
        const task = ctx.app.tasks.get(name)!;
        const fields = items.map((i) => [i, taskAttribute(ctx, task, i)] as const).filter(([, v]) => v !== null && v !== undefined);
        return fields.length ? `${name} [${fields.map(([k, v]) => `${k}=${pyStr(v)}`).join(' ')}]` : name;
      });
  },

  active_queues: (ctx) => ctx.worker.consuming.map(queueAsDict),

  conf: (ctx, args) => settingsTable(ctx, truthy(args.with_defaults)),

  report: (ctx) => ok(report(ctx)),

  hello(ctx, args) {
    requireArgs('hello', args, 'from_node');
    if (args.from_node === ctx.hostname) return null;
    log.info(`sync with ${String(args.from_node)}`);
    const revoked = maybeList(args.revoked).filter((id): id is string => typeof id === 'string');
    if (revoked.length) ctx.state.revoke(revoked);
    ctx.state.revoked.purge(); // expired ids are not shared
    return { revoked: ctx.state.revoked.toArray(), clock: ctx.app.clock.forward() };
  },

  memsample(ctx) {
    const rss = process.memoryUsage.rss();
    ctx.memSamples.push(rss);
    return humanBytes(rss);
  },

  memdump(ctx, args) {
    const n = typeof args.samples === 'number' ? args.samples : 10;
    const samples = ctx.memSamples.slice(-n);
    const lines = samples.length ? ['- rss (sample):', ...samples.map((s) => `-    > ${humanBytes(s)},`)] : [];
    lines.push(`- rss (end): ${humanBytes(process.memoryUsage.rss())}.`);
    return `${lines.join('\n')}\n`;
  },

  objgraph: () => nok('objgraph is not supported by ts-celery workers (a Python memory-leak tool); use memdump, or node --inspect with a heap snapshot'),
};
