/**
 * celery-node's `conf` object and how it maps onto ts-celery's settings.
 *
 * celery-node configures a client or worker with six keys (`CELERY_BROKER`,
 * `CELERY_BROKER_OPTIONS`, `CELERY_BACKEND`, `CELERY_BACKEND_OPTIONS`,
 * `CELERY_QUEUE`, `TASK_PROTOCOL`). They keep their names and meaning here;
 * `TS_CELERY` adds ts-celery's own settings (Celery's names). Pure functions:
 * the mapping is decided here, once, and unit-tested.
 */
import type { CeleryConfig } from '../../app/celery.js';
import type { TlsOptions } from '../../app/config.js';
import { parseAmqpUrl } from '../../broker/amqp/connection.js';
import { ImproperlyConfigured } from '../../errors.js';
import { didYouMean } from '../../support/suggest.js';
import { maskUrl, urlScheme } from '../../support/url.js';

/** celery-node's configuration keys, plus `TS_CELERY`. Change them before the first send or `start()`. */
export interface CeleryConf {
  /** Broker URL: `amqp://`, `amqps://` (RabbitMQ), `redis://`, `rediss://` (once ts-celery has a Redis broker). */
  CELERY_BROKER: string;
  /**
   * celery-node passed these to amqplib's `connect()`: TLS options (`ca`, `cert`, `key`,
   * `passphrase`, `servername`, `rejectUnauthorized`) and `timeout` (ms) are understood;
   * anything else is an error naming what is.
   */
  CELERY_BROKER_OPTIONS: object;
  /**
   * Result backend URL: `redis://`, `rediss://`; `amqp://`/`amqps://` (results over the broker's own
   * connection, Celery's `rpc://`; it must name the broker's server); or any ts-celery backend URL.
   */
  CELERY_BACKEND: string;
  /**
   * celery-node passed these to ioredis (or amqplib): `tls` (TLS options) and
   * `CELERY_RESULT_EXPIRES` (ms) are understood; anything else is an error naming what is.
   */
  CELERY_BACKEND_OPTIONS: object;
  /** The queue tasks are sent to and the worker consumes (default `celery`). */
  CELERY_QUEUE: string;
  /** Task message protocol: 2 (default) or 1. */
  TASK_PROTOCOL: number;
  /**
   * ts-celery settings with Celery's names, applied last: `worker_concurrency`
   * (default here 1000), `worker_prefetch_multiplier`, `task_acks_late`,
   * `result_expires`, `task_routes`... A misspelt name is an error suggesting the right one.
   */
  TS_CELERY: CeleryConfig;
}

/** Tasks a shim worker runs at once unless `TS_CELERY.worker_concurrency` says otherwise. */
export const DEFAULT_CONCURRENCY = 1000;

/** celery-node's defaults: `amqp://` for both, queue `celery`, protocol 2. */
export function defaultConf(): CeleryConf {
  return {
    CELERY_BROKER: 'amqp://',
    CELERY_BROKER_OPTIONS: {},
    CELERY_BACKEND: 'amqp://',
    CELERY_BACKEND_OPTIONS: {},
    CELERY_QUEUE: 'celery',
    TASK_PROTOCOL: 2,
    TS_CELERY: {},
  };
}

const TLS_KEYS = ['ca', 'cert', 'key', 'passphrase', 'servername', 'rejectUnauthorized'] as const;
const BROKER_OPTION_KEYS = [...TLS_KEYS, 'timeout'];
const BACKEND_OPTION_KEYS = ['tls', 'CELERY_RESULT_EXPIRES'];

function optionsObject(value: unknown, what: string): Record<string, unknown> {
  if (value === undefined || value === null) return {};
  if (typeof value !== 'object' || Array.isArray(value)) throw new ImproperlyConfigured(`conf.${what} must be an object, got ${JSON.stringify(value)}`);
  return value as Record<string, unknown>;
}

function unsupportedOption(what: string, key: string, known: readonly string[]): ImproperlyConfigured {
  return new ImproperlyConfigured(
    `conf.${what}.${key} is not supported by ts-celery/celery-node${didYouMean(key, known)}; ` +
      `understood: ${known.join(', ')}. ts-celery's own settings go in conf.TS_CELERY (Celery's names)`,
  );
}

function brokerOptions(raw: unknown): CeleryConfig {
  const options = optionsObject(raw, 'CELERY_BROKER_OPTIONS');
  const tls: TlsOptions = {};
  const out: CeleryConfig = {};
  for (const [key, value] of Object.entries(options)) {
    if (value === undefined) continue;
    if ((TLS_KEYS as readonly string[]).includes(key)) (tls as Record<string, unknown>)[key] = value;
    else if (key === 'timeout' && typeof value === 'number' && value > 0) out.broker_connection_timeout = value / 1000; // amqplib: ms
    else throw unsupportedOption('CELERY_BROKER_OPTIONS', key, BROKER_OPTION_KEYS);
  }
  if (Object.keys(tls).length > 0) out.broker_use_ssl = tls;
  return out;
}

function backendOptions(raw: unknown): CeleryConfig {
  const options = optionsObject(raw, 'CELERY_BACKEND_OPTIONS');
  const out: CeleryConfig = {};
  for (const [key, value] of Object.entries(options)) {
    if (value === undefined) continue;
    if (key === 'tls' && (typeof value === 'boolean' || (value !== null && typeof value === 'object'))) out.redis_backend_use_ssl = value as TlsOptions | boolean;
    else if (key === 'CELERY_RESULT_EXPIRES' && typeof value === 'number' && value > 0) out.result_expires = value / 1000; // celery-node: ms
    else throw unsupportedOption('CELERY_BACKEND_OPTIONS', key, BACKEND_OPTION_KEYS);
  }
  return out;
}

/** The server an AMQP URL names, as kombu reads it (`amqp://` = guest@localhost:5672, vhost `/`). */
function amqpTarget(url: string): string {
  const t = parseAmqpUrl(url);
  return `${t.protocol}://${t.username}@${t.hostname}:${t.port}/${t.vhost}`;
}

/**
 * The result backend for celery-node's `CELERY_BACKEND`. celery-node's `amqp://`
 * backend kept one queue per task; Celery 5 dropped that backend, and its
 * successor is `rpc://`: results return over the broker connection to the
 * process that sent the task. So `amqp://` maps to `rpc://` when it names the
 * broker's own server (celery-node's examples pass the same URL twice); a
 * different server could not be honoured and is an error, never a silent switch.
 */
export function backendUrl(backend: string, broker: string): string {
  const scheme = urlScheme(backend);
  if (scheme !== 'amqp' && scheme !== 'amqps') return backend;
  const brokerScheme = urlScheme(broker);
  if (brokerScheme !== 'amqp' && brokerScheme !== 'amqps') {
    throw new ImproperlyConfigured(
      `Result backend ${maskUrl(backend)} needs an AMQP broker (results travel over the broker connection, Celery's rpc://), ` +
        `but the broker is ${maskUrl(broker)}: use a redis:// result backend`,
    );
  }
  if (amqpTarget(backend) !== amqpTarget(broker)) {
    throw new ImproperlyConfigured(
      `Result backend ${maskUrl(backend)} is not the broker ${maskUrl(broker)}: ts-celery sends amqp:// results over the ` +
        `broker connection (Celery's rpc://), so it must name the same server and vhost; or use a redis:// result backend`,
    );
  }
  return 'rpc://';
}

/** ts-celery settings for a celery-node `conf`. Throws {@link ImproperlyConfigured} for what cannot be honoured. */
export function settingsFromConf(conf: CeleryConf): CeleryConfig {
  if (typeof conf.CELERY_BROKER !== 'string' || conf.CELERY_BROKER === '') {
    throw new ImproperlyConfigured(`conf.CELERY_BROKER must be a broker URL, got ${JSON.stringify(conf.CELERY_BROKER)}`);
  }
  if (typeof conf.CELERY_BACKEND !== 'string' || conf.CELERY_BACKEND === '') {
    throw new ImproperlyConfigured(`conf.CELERY_BACKEND must be a result backend URL, got ${JSON.stringify(conf.CELERY_BACKEND)}`);
  }
  if (typeof conf.CELERY_QUEUE !== 'string' || conf.CELERY_QUEUE === '') {
    throw new ImproperlyConfigured(`conf.CELERY_QUEUE must be a queue name, got ${JSON.stringify(conf.CELERY_QUEUE)}`);
  }
  checkProtocol(conf.TASK_PROTOCOL);
  return {
    broker_url: conf.CELERY_BROKER,
    result_backend: backendUrl(conf.CELERY_BACKEND, conf.CELERY_BROKER),
    task_default_queue: conf.CELERY_QUEUE,
    task_protocol: conf.TASK_PROTOCOL,
    ...brokerOptions(conf.CELERY_BROKER_OPTIONS),
    ...backendOptions(conf.CELERY_BACKEND_OPTIONS),
    ...optionsObject(conf.TS_CELERY, 'TS_CELERY'),
  };
}

/** `TASK_PROTOCOL` must be 1 or 2, as in celery-node. */
export function checkProtocol(protocol: unknown): asserts protocol is 1 | 2 {
  if (protocol !== 1 && protocol !== 2) {
    throw new ImproperlyConfigured(`conf.TASK_PROTOCOL must be 1 or 2, got ${JSON.stringify(protocol)}`);
  }
}
