/**
 * The app the beat tests run `ts-celery beat -A test/interop/beat-app` (and
 * `worker -B`) with: one entry, `every`, sending BEAT_TASK every BEAT_EVERY
 * seconds with the argument BEAT_TAG to BEAT_QUEUE.
 *
 * Env: BEAT_BROKER (default: vhost ts-celery-beat), BEAT_BACKEND (default Redis DB 12;
 * `none` = no result backend, so no lease), BEAT_LEASE_KEY, BEAT_LEASE_TTL, BEAT_TASK,
 * BEAT_EVERY, BEAT_TAG, BEAT_QUEUE, BEAT_SCHEDULE_FILE.
 */
import { Celery, getLogger } from 'ts-celery';

const env = process.env;
const backend = env.BEAT_BACKEND ?? 'redis://127.0.0.1:6379/12';

export const app = new Celery('beatapp', {
  broker_url: env.BEAT_BROKER ?? 'amqp://guest:guest@127.0.0.1:5672/ts-celery-beat',
  result_backend: backend === 'none' ? null : backend,
  task_default_queue: env.BEAT_QUEUE ?? 'celery',
  beat_lease_key: env.BEAT_LEASE_KEY ?? null,
  beat_lease_ttl: Number(env.BEAT_LEASE_TTL ?? 10),
  beat_schedule_filename: env.BEAT_SCHEDULE_FILE ?? 'celerybeat-schedule.json',
  beat_schedule: {
    every: {
      task: env.BEAT_TASK ?? 'py.echo',
      schedule: Number(env.BEAT_EVERY ?? 2),
      args: [env.BEAT_TAG ?? 'tick'],
      options: { queue: env.BEAT_QUEUE ?? 'celery' },
    },
  },
});

const log = getLogger('beat-app');

/** Run by the worker in the `worker -B` test: logs its tag so the test can count runs. */
export const tick = app.task({ name: 'beatapp.tick' }, (tag: string) => {
  log.warning(`tick ran: ${tag}`);
  return tag;
});
