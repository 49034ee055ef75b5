/** The Celery wire protocol as pure functions: no I/O, no broker, no task objects. */
export * from './message.js';
export * from './message-v1.js';
export * from './result-meta.js';
export * from './exceptions.js';
export * from './json.js';
export * from './time.js';
export * from './repr.js';
export * from './amqp-headers.js';
export * from './result-tuple.js';
