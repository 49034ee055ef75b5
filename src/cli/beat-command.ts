/**
 * `ts-celery beat -A <app> [-l info] [-s schedule-file] [--max-interval seconds]`
 *
 * Loads the app (and its tasks, so task-level routing applies as it does for
 * Celery's beat), prints Celery's beat banner, and sends `beat_schedule`.
 * SIGTERM/SIGINT stop it: sends in flight are confirmed, the schedule is
 * saved and the lease released (a standby beat takes over at once), exit 0.
 */
import type { Celery } from '../app/celery.js';
import { Beat } from '../beat/beat.js';
import { CeleryError } from '../errors.js';
import { getLogger, setLogLevel, type LogLevel } from '../support/log.js';
import { urlScheme } from '../support/url.js';
import { VERSION } from '../support/version.js';
import { AppLoadError, loadApp } from './load-app.js';
import { watchParent } from './parent-watch.js';

const log = getLogger('MainProcess');

export interface BeatArgs {
  app: string;
  loglevel: LogLevel;
  schedule?: string | undefined;
  maxInterval?: number | undefined;
  /** Stop when the launching process exits (default true), as the worker does. */
  exitWithParent?: boolean | undefined;
}

function fail(message: string): never {
  process.stderr.write(`Error: ${message}\n`);
  process.exit(1);
}

/** Celery's beat banner, with ts-celery's lines. */
export function beatBanner(beat: Beat, loglevel: LogLevel): string {
  const now = new Date();
  const pad = (n: number): string => String(n).padStart(2, '0');
  const local = `${now.getFullYear()}-${pad(now.getMonth() + 1)}-${pad(now.getDate())} ${pad(now.getHours())}:${pad(now.getMinutes())}:${pad(now.getSeconds())}`;
  const schedule = beat.entries.map((e) => `    . ${e.name}: ${e.task} ${e.schedule.toString()}`);
  return [
    `ts-celery beat v${VERSION} is starting.`,
    '__    -    ... __   -        _',
    `LocalTime -> ${local}`,
    'Configuration ->',
    ...beat.describe(),
    `    . logfile -> [stderr]@%${loglevel.toUpperCase()}`,
    'Schedule ->',
    ...(schedule.length ? schedule : ['    (empty: set beat_schedule)']),
    '',
  ].join('\n');
}

/** Runs beat until a signal ends it. */
export async function runBeat(args: BeatArgs): Promise<void> {
  setLogLevel(args.loglevel);
  let app: Celery;
  let beat: Beat;
  try {
    ({ app } = await loadApp(args.app));
    await app.ready();
    if (urlScheme(app.conf.broker_url) === 'memory') {
      fail('broker_url is memory:// (the default when none is configured): workers in other processes cannot receive what beat sends. Set CELERY_BROKER_URL or broker_url.');
    }
    await app.loadTasks();
    beat = new Beat(app, { scheduleFilename: args.schedule, maxInterval: args.maxInterval });
  } catch (err) {
    if (err instanceof AppLoadError || err instanceof CeleryError) fail(err.message);
    throw err;
  }
  process.stdout.write(`${beatBanner(beat, args.loglevel)}\n`);

  let signals = 0;
  const onSignal = (signal: NodeJS.Signals | string): void => {
    if (++signals > 1) process.exit(1);
    log.info(`beat: Received ${signal}`);
    beat
      .stop()
      .then(() => app.close())
      .then(
        () => process.exit(0),
        (err: unknown) => {
          log.error(`beat: error during shutdown: ${(err as Error).message}`);
          process.exit(1);
        },
      );
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  // npx/npm exit on SIGTERM without passing it on: an orphaned beat would keep sending (or holding the lease).
  if (args.exitWithParent !== false) watchParent((pid) => onSignal(`the exit of its launching process (pid ${pid})`));
  log.info('beat: Starting...');
  beat.start();
}
