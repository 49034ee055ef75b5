/** Result backends: one interface, one implementation per backend, chosen by URL scheme. */
import type { CelerySettings } from '../app/config.js';
import { ImproperlyConfigured } from '../errors.js';
import { maskUrl, urlScheme } from '../support/url.js';
import { DisabledBackend } from './disabled.js';
import { MemoryBackend } from './memory.js';
import { RedisBackend } from './redis.js';
import { RpcBackend } from './rpc.js';
import type { Broker } from '../broker/types.js';
import type { ResultBackend } from './types.js';

export type { ResultBackend, StoreContext } from './types.js';
export { RpcBackend } from './rpc.js';
export { DisabledBackend } from './disabled.js';
export { MemoryBackend } from './memory.js';
export { RedisBackend, TASK_KEY_PREFIX, taskKeyPrefix } from './redis.js';

/**
 * Creates the backend `result_backend` names. With none configured, the
 * embedded memory broker gets the memory backend (so the first-run demo can
 * read results); any other broker gets none, as in Celery.
 */
export function createBackend(conf: CelerySettings, app: { broker: () => Broker; oid: string }): ResultBackend {
  const url = conf.result_backend ?? (urlScheme(conf.broker_url) === 'memory' ? 'memory://' : null);
  if (url === null || url === '' || url === 'disabled') return new DisabledBackend();
  switch (urlScheme(url)) {
    case 'memory':
    case 'cache+memory':
      return new MemoryBackend();
    case 'rpc':
      return new RpcBackend({ broker: app.broker, oid: app.oid, expires: conf.result_expires, persistent: conf.result_persistent });
    case 'redis':
    case 'rediss':
      return new RedisBackend({
        url,
        expires: conf.result_expires,
        tls: conf.redis_backend_use_ssl,
        globalKeyprefix: conf.result_backend_transport_options.global_keyprefix as string | undefined,
        connectTimeout: conf.broker_connection_timeout,
      });
    default:
      throw new ImproperlyConfigured(
        `Unsupported result_backend ${JSON.stringify(maskUrl(url))}: use redis://host:6379/0, ` +
          `rediss:// (TLS), rpc:// (replies over AMQP) or memory:// (embedded, one process)`,
      );
  }
}
