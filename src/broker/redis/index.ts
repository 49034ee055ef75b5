/** The Redis transport (kombu-compatible): `redis://`, `rediss://`, `sentinel://`. */
export { RedisBroker, type RedisBrokerOptions } from './redis-broker.js';
export { parseTransportOptions, type RedisTransportOptions } from './options.js';
