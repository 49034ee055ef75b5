/** Result backends: one interface, one implementation per backend, chosen by URL scheme. */
import type { CelerySettings } from '../app/config.js';
import { ImproperlyConfigured } from '../errors.js';
import { maskUrl, urlScheme } from '../support/url.js';
import { DisabledBackend } from './disabled.js';
import { MemoryBackend } from './memory.js';
import { RedisBackend } from './redis.js';
import { RpcBackend } from './rpc.js';
import type { Broker } from '../broker/types.js';
import type { ChordSettings } from './redis-chord.js';
import type { ResultBackend } from './types.js';

export type { ResultBackend, StoreContext } from './types.js';
export { RpcBackend } from './rpc.js';
export { DisabledBackend } from './disabled.js';
export { MemoryBackend } from './memory.js';
export { RedisBackend, TASK_KEY_PREFIX, taskKeyPrefix } from './redis.js';

/** The chord settings a backend needs, from Celery's settings (seconds). */
export function chordSettings(conf: CelerySettings): ChordSettings {
  const resultExpires = conf.result_expires ?? 0;
  const ordered = conf.result_backend_transport_options.result_chord_ordered;
  // Celery's _chord_publish_claim_expires: the body's publish may take every retry of the publish policy.
  const policy = conf.task_publish_retry_policy;
  const retries = conf.task_publish_retry ? Math.max(0, Math.floor(policy.max_retries)) : 0;
  const timeout = Math.max(0, conf.broker_connection_timeout);
  let waits = 0;
  for (let n = 0; n < retries; n++) waits += Math.min(policy.interval_start + policy.interval_step * n, policy.interval_max);
  return {
    chordExpires: conf.result_chord_expires ?? resultExpires,
    resultExpires,
    joinTimeout: conf.result_chord_join_timeout || 5,
    ordered: ordered === undefined ? true : Boolean(ordered),
    publishSeconds: Math.ceil((retries + 1) * timeout + waits + Math.max(timeout, 1)),
  };
}

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
        chords: chordSettings(conf),
      });
    default:
      throw new ImproperlyConfigured(
        `Unsupported result_backend ${JSON.stringify(maskUrl(url))}: use redis://host:6379/0, ` +
          `rediss:// (TLS), rpc:// (replies over AMQP) or memory:// (embedded, one process)`,
      );
  }
}
