/**
 * Celery settings for the Meiduo mall app (Celery's own setting names).
 *
 * Nothing here names a broker, so a fresh checkout runs on the embedded
 * in-memory broker (`npm start`). To use RabbitMQ and Redis, as in production,
 * set them in the environment; they override this file, as in Celery:
 *
 *   CELERY_BROKER_URL=amqp://guest:guest@127.0.0.1:5672//
 *   CELERY_RESULT_BACKEND=redis://127.0.0.1:6379/0
 */
import type { CeleryConfig } from 'ts-celery';

const config: CeleryConfig = {
  task_default_queue: 'celery',
  // SMS codes expire after 300 s; nobody reads a send result after an hour.
  result_expires: 3600,
};

export default config;
