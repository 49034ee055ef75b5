/**
 * The Meiduo app: what `npx ts-celery worker -A tasks` loads.
 * Mirrors the tutorial's celery_tasks/main.py.
 */
import { Celery } from 'ts-celery';
import config from '../config/celery.js';

// Create the Celery app.
export const app = new Celery('meiduo');
// Load its configuration.
app.configFromObject(config);
// Register task packages: loads tasks/sms/tasks.ts when a worker starts.
app.autodiscoverTasks(['sms']);
