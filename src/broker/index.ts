/** Brokers: one interface, one implementation per transport, chosen by URL scheme. */
import type { CelerySettings } from '../app/config.js';
import { ImproperlyConfigured } from '../errors.js';
import { maskUrl, splitUrlList, urlScheme } from '../support/url.js';
import { AmqpBroker } from './amqp/index.js';
import { MemoryBroker } from './memory.js';
import { RedisBroker } from './redis/index.js';
import type { Broker } from './types.js';

export * from './types.js';
export { AmqpBroker } from './amqp/index.js';
export { MemoryBroker } from './memory.js';
export { RedisBroker } from './redis/index.js';

/** Creates the broker `broker_url` names. `connectionName` shows up in RabbitMQ's tools. */
export function createBroker(conf: CelerySettings, connectionName: string): Broker {
  const urls = splitUrlList(conf.broker_url);
  const url = urls[0] ?? '';
  const schemes = new Set(urls.map((u) => urlScheme(u).replace(/^pyamqp$/, 'amqp').replace(/^amqps$/, 'amqp')));
  if (schemes.size > 1) {
    throw new ImproperlyConfigured(
      `broker_url lists several transports (${maskUrl(conf.broker_url)}): every failover URL must be amqp:// or amqps:// (the nodes of one RabbitMQ cluster, or brokers alike)`,
    );
  }
  switch (urlScheme(url)) {
    case 'memory':
      if (urls.length > 1) throw new ImproperlyConfigured('broker_url: memory:// lives in one process and takes no failover URLs');
      return new MemoryBroker();
    case 'amqp':
    case 'amqps':
    case 'pyamqp':
      return new AmqpBroker({
        url: urls.map((u) => u.replace(/^pyamqp:/i, 'amqp:')).join(';'),
        failoverStrategy: conf.broker_failover_strategy,
        heartbeat: conf.broker_heartbeat,
        connectTimeout: conf.broker_connection_timeout,
        tls: conf.broker_use_ssl,
        connectionName,
        publishRetry: conf.task_publish_retry ? conf.task_publish_retry_policy : null,
        reconnect: {
          enabled: conf.broker_connection_retry,
          // Celery 5.7: unset (null) follows broker_connection_retry.
          onStartup: conf.broker_connection_retry_on_startup ?? conf.broker_connection_retry,
          maxRetries: conf.broker_connection_max_retries,
        },
      });
    case 'redis':
    case 'rediss':
    case 'sentinel':
      // The whole list: sentinel:// URLs joined with ';' are the sentinels of one master, and
      // the Redis URL parser refuses several redis:// servers with a message saying so.
      return new RedisBroker({
        url: urls.join(';'),
        connectionName,
        transportOptions: conf.broker_transport_options,
        tls: conf.broker_use_ssl,
        connectTimeout: conf.broker_connection_timeout,
        publishRetry: conf.task_publish_retry ? conf.task_publish_retry_policy : null,
        reconnect: {
          enabled: conf.broker_connection_retry,
          onStartup: conf.broker_connection_retry_on_startup ?? conf.broker_connection_retry,
          maxRetries: conf.broker_connection_max_retries,
        },
      });
    default:
      throw new ImproperlyConfigured(
        `Unsupported broker_url ${JSON.stringify(maskUrl(url))}: use amqp://user:password@host:5672/vhost ` +
          `(RabbitMQ), amqps:// (TLS), redis://:password@host:6379/0 (Redis), rediss:// (TLS), ` +
          `sentinel://host:26379 (Redis Sentinel) or memory:// (embedded, one process)`,
      );
  }
}
