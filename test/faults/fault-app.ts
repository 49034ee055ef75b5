/**
 * The app the fault tests' workers run (`ts-celery worker -A test/faults/fault-app.ts`).
 *
 * Every task writes to a counting Redis that the faults never touch
 * (FAULTS_COUNTS, default the shared Redis DB 12), one list per run:
 * `faults:<run>:started` and `faults:<run>:done`, entries `<tag>|<pid>|<epoch ms>`,
 * where `<run>` is the tag's prefix before the first `:`. Counting those lists
 * against the ids whose delay() resolved gives exact lost/duplicated numbers.
 *
 * Environment:
 *   FAULTS_BROKER        broker URL (required)
 *   FAULTS_BACKEND       result backend URL (default: none)
 *   FAULTS_COUNTS        counting Redis (default redis://127.0.0.1:6379/12)
 *   FAULTS_QUEUE         task_default_queue (default celery)
 *   FAULTS_DLX=1         declare FAULTS_QUEUE with a dead-letter route to `<queue>.dlq`
 *   FAULTS_QUORUM=1      declare FAULTS_QUEUE as a quorum queue behind a topic exchange of its name
 *                        (as test/cluster/py/qapp.py declares it)
 *   FAULTS_ACKS_LATE=1   task_acks_late
 *   FAULTS_REJECT_ON_WORKER_LOST=0|1   task_reject_on_worker_lost
 *   FAULTS_HEARTBEAT     broker_heartbeat (seconds)
 *   FAULTS_ETA_MAX_HOLD  worker_eta_max_hold (seconds)
 *   FAULTS_MAX_RETRIES   broker_connection_max_retries (a number, or `null` = forever)
 *   FAULTS_TRACK_STARTED=1  task_track_started
 *   FAULTS_BROKER_CA / _CERT / _KEY    broker_use_ssl files
 *   FAULTS_BACKEND_CA / _CERT / _KEY   redis_backend_use_ssl files
 */
import { Redis } from 'ioredis';
import { Celery, type CeleryConfig } from 'ts-celery';

const env = process.env;
const queue = env.FAULTS_QUEUE ?? 'celery';

function tlsFromEnv(prefix: string): CeleryConfig['broker_use_ssl'] {
  const ca = env[`${prefix}_CA`];
  if (!ca) return null;
  const out: Record<string, string> = { ca };
  if (env[`${prefix}_CERT`]) out.cert = env[`${prefix}_CERT`]!;
  if (env[`${prefix}_KEY`]) out.key = env[`${prefix}_KEY`]!;
  return out;
}

const config: CeleryConfig = {
  broker_url: env.FAULTS_BROKER ?? 'amqp://missing-FAULTS_BROKER',
  result_backend: env.FAULTS_BACKEND || null,
  task_default_queue: queue,
  task_acks_late: env.FAULTS_ACKS_LATE === '1',
  task_track_started: env.FAULTS_TRACK_STARTED === '1',
  broker_use_ssl: tlsFromEnv('FAULTS_BROKER'),
  redis_backend_use_ssl: tlsFromEnv('FAULTS_BACKEND'),
};
if (env.FAULTS_REJECT_ON_WORKER_LOST) config.task_reject_on_worker_lost = env.FAULTS_REJECT_ON_WORKER_LOST === '1';
if (env.FAULTS_HEARTBEAT) config.broker_heartbeat = Number(env.FAULTS_HEARTBEAT);
if (env.FAULTS_ETA_MAX_HOLD) config.worker_eta_max_hold = Number(env.FAULTS_ETA_MAX_HOLD);
if (env.FAULTS_MAX_RETRIES) config.broker_connection_max_retries = env.FAULTS_MAX_RETRIES === 'null' ? null : Number(env.FAULTS_MAX_RETRIES);
if (env.FAULTS_QUORUM === '1') {
  config.task_queues = [{ name: queue, exchange_type: 'topic', queue_arguments: { 'x-queue-type': 'quorum' } }];
  config.task_default_exchange_type = 'topic';
}
if (env.FAULTS_DLX === '1') {
  config.task_queues = [
    { name: queue, queue_arguments: { 'x-dead-letter-exchange': '', 'x-dead-letter-routing-key': `${queue}.dlq` } },
  ];
}

export const app = new Celery('faults', config);

let counts: Redis | null = null;
const countStore = (): Redis => (counts ??= new Redis(env.FAULTS_COUNTS ?? 'redis://127.0.0.1:6379/12'));

function note(list: 'started' | 'done', tag: string): Promise<number> {
  return countStore().rpush(`faults:${tag.split(':')[0]}:${list}`, `${tag}|${process.pid}|${Date.now()}`);
}

/** Records that it ran. */
export const record = app.task({ name: 'faults.record' }, async (tag: string) => {
  await note('done', tag);
  return tag;
});

/** Records its start, sleeps `ms`, records its end. */
export const slow = app.task({ name: 'faults.slow' }, async (tag: string, ms: number) => {
  await note('started', tag);
  await new Promise((r) => setTimeout(r, ms));
  await note('done', tag);
  return tag;
});

/** Returns its argument (for result-backend tests). */
export const echo = app.task({ name: 'faults.echo' }, (value: unknown) => value);

/** Fails with a message (for result-backend tests). */
export const fail = app.task({ name: 'faults.fail' }, (message: string) => {
  throw new Error(message);
});

/** A chord header member: records its start, sleeps `ms`, records its end, returns `index * 2`. */
export const chordMember = app.task({ name: 'faults.chord_member' }, async (tag: string, index: number, ms: number) => {
  await note('started', tag);
  await new Promise((r) => setTimeout(r, ms));
  await note('done', tag);
  return index * 2;
});

/** A chord body: records each run (`faults:<run>:body`, `<count>|<pid>`) and returns what it got. */
export const chordBody = app.task({ name: 'faults.chord_body' }, async (values: number[], run: string) => {
  await countStore().rpush(`faults:${run}:body`, `${values.length}|${process.pid}`);
  return values;
});
