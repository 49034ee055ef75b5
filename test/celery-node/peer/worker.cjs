// A worker program as a celery-node project writes one (CommonJS, celery-node's API only).
// The tests run this same file on celery-node 0.5.9 itself and through ts-celery/celery-node:
// the one difference is the module it requires (PEER_MODULE). (The last lines only tell the
// tests when it consumes.)
//
// Env: PEER_MODULE ('celery-node' or 'ts-celery/celery-node'), PEER_BROKER, PEER_BACKEND,
// PEER_QUEUE, PEER_LABEL (who ran a task, in recorded entries), PEER_REDIS (for recording),
// PEER_TS_CELERY (JSON, conf.TS_CELERY: only the shim reads it).
const celery = require(process.env.PEER_MODULE || 'celery-node');
const Redis = require('ioredis');

const label = process.env.PEER_LABEL || 'peer';
const redis = new Redis(process.env.PEER_REDIS);
const record = (tag) => redis.rpush(`pytasks:record:${String(tag).split(':')[0]}`, `${label}:${tag}`);

const worker = celery.createWorker(process.env.PEER_BROKER, process.env.PEER_BACKEND, process.env.PEER_QUEUE);
if (process.env.PEER_TS_CELERY) worker.conf.TS_CELERY = JSON.parse(process.env.PEER_TS_CELERY);

worker.register('cn.add', (a, b) => a + b);
// celery-node's calling convention: the kwargs object is the last argument.
worker.register('cn.echo', (...args) => args);
worker.register('cn.fail', (message) => {
  throw new TypeError(message);
});
// Records that it started, sleeps, then records that it finished: what ran, and what completed.
worker.register('cn.sleep', async (tag, ms) => {
  await record(`${tag}-started`);
  await new Promise((resolve) => setTimeout(resolve, ms));
  await record(tag);
  return tag;
});
// The same task name and effect as pytasks' and the ts-app's shared.record.
worker.register('shared.record', async (tag) => {
  await record(tag);
  return tag;
});

const started = worker.start();
// celery-node's start() resolves once it consumes from RabbitMQ, but with a Redis broker never (its
// receive loop is that promise): there, being connected is the readiness it offers.
const onRedis = /^rediss?:/.test(process.env.PEER_BROKER || '') && !process.env.PEER_MODULE.startsWith('ts-celery');
(onRedis ? worker.isReady() : started).then(() => console.log(`peer worker ready (${process.env.PEER_MODULE || 'celery-node'})`));
