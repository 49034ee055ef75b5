/**
 * The beat service: sends the app's `beat_schedule` as ordinary task
 * messages. Used by `ts-celery beat` and `ts-celery worker -B`.
 *
 * With a Redis URL (`beat_lease_url`, else a `redis://` result backend) it
 * runs with a lease (see `lease.ts`): any number of beats may run and each
 * run is sent once. Without one it keeps its state in the schedule file and
 * logs that it runs without high availability: run a single beat then.
 */
import { hostname } from 'node:os';
import { resolve } from 'node:path';
import { Redis, type RedisOptions } from 'ioredis';
import type { Celery } from '../app/celery.js';
import { appTimezone } from '../app/timezone.js';
import type { PreparedSend } from '../app/prepared-send.js';
import type { ApplyOptions } from '../app/task.js';
import { ImproperlyConfigured } from '../errors.js';
import { getLogger, type Logger } from '../support/log.js';
import { tlsConnectOptions } from '../support/tls.js';
import { maskUrl, urlScheme } from '../support/url.js';
import { normalizeSchedule, type ScheduleEntry } from './entry.js';
import { leaseKeys, RedisLease, RedisStore } from './lease.js';
import { Scheduler, systemClock, type Clock, type SendTimes } from './scheduler.js';
import { humanizeSeconds } from './schedules.js';
import { FileStore, type ScheduleStore } from './store.js';
import { zone } from './zone.js';

/** Celery's default for `beat_max_loop_interval` = 0: the scheduler's own 5 minutes. */
const DEFAULT_MAX_INTERVAL = 300;

export interface BeatOptions {
  /** The schedule file (`-s`); default `beat_schedule_filename`. */
  scheduleFilename?: string | undefined;
  /** Longest sleep between checks in seconds (`--max-interval`); default `beat_max_loop_interval`. */
  maxInterval?: number | undefined;
  /** Logger name: `MainProcess` for `ts-celery beat`, `Beat` inside a worker (`-B`), as Celery. */
  loggerName?: string;
  /** Injectable time, for tests. */
  clock?: Clock;
  /** Called when a run's message was confirmed by the broker, with when it was due and sent: for metrics. */
  onSent?: (entry: ScheduleEntry, times: SendTimes) => void;
  /** Runs awaiting their broker confirm at most (default 2,000; `npm run bench:beat -- --in-flight`). */
  maxInFlight?: number;
}

/** Where the lease lives, when there is one. */
export interface LeaseConfig {
  url: string;
  key: string;
  ttlSeconds: number;
}

/** `beat_lease_url`, else the result backend when it is Redis; false turns HA off. */
export function leaseConfig(app: Celery): LeaseConfig | null {
  const conf = app.conf;
  if (conf.beat_lease_url === false) return null;
  const backend = conf.result_backend ?? '';
  const url = conf.beat_lease_url ?? (['redis', 'rediss'].includes(urlScheme(backend)) ? backend : null);
  if (!url) return null;
  if (!['redis', 'rediss'].includes(urlScheme(url))) {
    throw new ImproperlyConfigured(`beat_lease_url must be a redis:// or rediss:// URL (or false), got ${JSON.stringify(maskUrl(url))}`);
  }
  if (!(conf.beat_lease_ttl >= 1)) throw new ImproperlyConfigured(`beat_lease_ttl must be at least 1 second, got ${conf.beat_lease_ttl}`);
  return { url, key: conf.beat_lease_key ?? `ts-celery:beat:${app.main}`, ttlSeconds: conf.beat_lease_ttl };
}

export class Beat {
  readonly entries: readonly ScheduleEntry[];
  readonly lease: LeaseConfig | null;
  readonly maxIntervalSeconds: number;
  readonly scheduleFilename: string;
  /** Where the state lives (file path or masked Redis URL + key), for the banner. */
  readonly storeDescription: string;
  /** The zone crontabs are read in: `timezone`, else UTC with `enable_utc`, else the system's (as Celery). */
  readonly timezone: string;
  private readonly log: Logger;
  private readonly clock: Clock;
  private readonly onSent: BeatOptions['onSent'];
  private readonly maxInFlight: number | undefined;
  private readonly stopping = new AbortController();
  private scheduler: Scheduler | null = null;
  private redis: Redis | null = null;
  private loop: Promise<void> | null = null;
  private readonly fileIgnored: boolean;
  /** Runs sent by earlier schedulers of this beat (before a lease was lost and taken again). */
  private sentBefore = 0;
  /** Each entry's prepared message. */
  private readonly prepared = new Map<ScheduleEntry, PreparedSend>();

  /** Checks the schedule and settings; throws `ScheduleError`/`ImproperlyConfigured` on bad ones. */
  constructor(
    readonly app: Celery,
    options: BeatOptions = {},
  ) {
    const conf = app.conf;
    this.log = getLogger(options.loggerName ?? 'MainProcess');
    this.clock = options.clock ?? systemClock;
    this.onSent = options.onSent;
    this.maxInFlight = options.maxInFlight;
    this.timezone = appTimezone(conf);
    zone(this.timezone); // an unknown zone fails here, before anything runs
    this.entries = normalizeSchedule(conf.beat_schedule);
    this.lease = leaseConfig(app);
    this.maxIntervalSeconds = options.maxInterval || conf.beat_max_loop_interval || DEFAULT_MAX_INTERVAL;
    this.scheduleFilename = options.scheduleFilename ?? conf.beat_schedule_filename;
    this.storeDescription = this.lease ? `${maskUrl(this.lease.url)} key ${this.lease.key}:schedule` : resolve(this.scheduleFilename);
    this.fileIgnored = !!this.lease && options.scheduleFilename !== undefined;
  }

  /** Starts sending in the background (standing by first when another beat holds the lease). */
  start(): void {
    if (this.loop) return;
    if (this.entries.length === 0) this.log.warning('beat: beat_schedule is empty: nothing to send');
    if (this.lease) {
      const l = this.lease;
      this.log.info(`beat: High availability: lease ${l.key} in ${maskUrl(l.url)} (ttl ${l.ttlSeconds} s): one beat sends, the others stand by.`);
      if (this.fileIgnored) this.log.warning(`beat: The schedule file is not used: with a lease, the last runs live in Redis (${this.storeDescription}).`);
      this.loop = this.runWithLease(l);
    } else {
      this.log.warning(
        'beat: Running WITHOUT high availability: no Redis for a lease (set beat_lease_url or a redis:// result_backend). ' +
          'Run only one beat for this schedule, or runs will be sent once per beat.',
      );
      this.loop = this.runAlone();
    }
    this.loop.catch((err: unknown) => this.log.critical(`beat raised exception ${(err as Error).stack ?? String(err)}`));
  }

  /** Stops sending, waits for sends in flight, saves the state and releases the lease. */
  async stop(): Promise<void> {
    this.log.info('beat: Shutting down...');
    this.stopping.abort();
    this.scheduler?.stop();
    await this.loop?.catch(() => undefined);
  }

  /** Runs sent by this beat so far (counted by its schedulers: no extra promise per run). */
  get sent(): number {
    return this.sentBefore + (this.scheduler?.sent ?? 0);
  }

  private newScheduler(store: ScheduleStore): Scheduler {
    const conf = this.app.conf;
    this.sentBefore = this.sent;
    const scheduler = new Scheduler({
      entries: this.entries,
      store,
      timezone: this.timezone,
      utcEnabled: conf.enable_utc,
      maxIntervalMs: this.maxIntervalSeconds * 1000,
      cronStartingDeadline: conf.beat_cron_starting_deadline,
      send: (entry, expires) => this.send(entry, expires),
      log: this.log,
      clock: this.clock,
      ...(this.onSent ? { onSent: this.onSent } : {}),
      ...(this.maxInFlight ? { maxInFlight: this.maxInFlight } : {}),
    });
    this.scheduler = scheduler;
    return scheduler;
  }

  private send(entry: ScheduleEntry, expires: number | undefined): Promise<unknown> {
    // Each entry's message is prepared once and each run fills in its id and expiry (prepared-send.ts).
    let prepared = this.prepared.get(entry);
    if (!prepared) {
      const options: ApplyOptions = { ...entry.options, headers: { ...entry.options.headers, celery_beat_task: true } };
      prepared = this.app.prepareSend(entry.task, entry.args, entry.kwargs, options);
      this.prepared.set(entry, prepared);
    }
    return prepared.send(expires);
  }

  private logUpcoming(scheduler: Scheduler): void {
    for (const { name, at } of scheduler.upcoming().slice(0, 20)) this.log.info(`beat: ${name} runs next at ${at.toISOString()}`);
  }

  private async runAlone(): Promise<void> {
    const store = new FileStore(this.scheduleFilename, this.log);
    const scheduler = this.newScheduler(store);
    try {
      await scheduler.setup();
      this.logUpcoming(scheduler);
      if (!this.stopping.signal.aborted) await scheduler.run();
    } finally {
      await store.close();
    }
  }

  private redisClient(url: string, ttlMs: number): Redis {
    const options: RedisOptions = {
      enableAutoPipelining: true,
      maxRetriesPerRequest: 1,
      // A lease call that hangs longer than a renewal period is as good as failed.
      commandTimeout: Math.max(500, Math.round(ttlMs / 3)),
      connectTimeout: Math.round(this.app.conf.broker_connection_timeout * 1000),
      retryStrategy: (times) => Math.min(100 * 2 ** Math.min(times, 5), 2000),
    };
    const tls = tlsConnectOptions(this.app.conf.redis_backend_use_ssl);
    if (tls && urlScheme(url) === 'rediss') options.tls = tls as RedisOptions['tls'];
    const client = new Redis(url, options);
    client.on('error', () => undefined); // reported by the failing calls
    return client;
  }

  /** Stand by until this beat holds the lease, send while it does, and start over when it is lost. */
  private async runWithLease(l: LeaseConfig): Promise<void> {
    const ttlMs = l.ttlSeconds * 1000;
    this.redis = this.redisClient(l.url, ttlMs);
    const lease = new RedisLease(this.redis, leaseKeys(l.key), ttlMs, `${hostname()}:${process.pid}`);
    const signal = this.stopping.signal;
    let lastStandbyLog = '';
    let lastError = '';
    try {
      while (!signal.aborted) {
        let acquired = false;
        try {
          acquired = await lease.tryAcquire();
          if (!acquired) {
            const holder = (await lease.current()) ?? '(expired)';
            const line = holder.replace(/^\d+ /, '');
            if (line !== lastStandbyLog) this.log.info(`beat: Standing by: the lease is held by ${line}`);
            lastStandbyLog = line;
          }
          lastError = '';
        } catch (err) {
          const message = (err as Error).message;
          // Once per distinct error while it lasts: a standby polls every ttl/5.
          if (message !== lastError) this.log.error(`beat: Cannot reach Redis for the lease (${maskUrl(l.url)}): ${message}. Retrying every ${l.ttlSeconds / 5} s.`);
          lastError = message;
        }
        if (!acquired) {
          await this.clock.sleep(ttlMs / 5, signal);
          continue;
        }
        lastStandbyLog = '';
        this.log.info(`beat: Acquired the lease (fencing token ${lease.token}): this beat sends the schedule.`);
        await this.sendWhileHolding(lease, ttlMs);
      }
    } finally {
      await lease.release().catch(() => undefined);
      this.redis.disconnect();
    }
  }

  private async sendWhileHolding(lease: RedisLease, ttlMs: number): Promise<void> {
    const scheduler = this.newScheduler(new RedisStore(lease, this.storeDescription));
    let lastRenewal = this.clock.now();
    const renew = setInterval(() => {
      lease.renew().then(
        (ok) => {
          if (ok) lastRenewal = this.clock.now();
          else {
            this.log.warning('beat: Lost the lease (it expired or another beat took it): stopped sending.');
            scheduler.stop();
          }
        },
        (err: unknown) => {
          this.log.error(`beat: Cannot renew the lease: ${(err as Error).message}`);
          // Runs are fenced in Redis anyway; past the ttl, stop and stand by instead of retrying blindly.
          if (this.clock.now() - lastRenewal > ttlMs) {
            lease.forget();
            scheduler.stop();
          }
        },
      );
    }, ttlMs / 3);
    try {
      if (!(await scheduler.setup())) return this.log.warning('beat: Lost the lease before the schedule was loaded.');
      this.logUpcoming(scheduler);
      if (this.stopping.signal.aborted) return;
      const why = await scheduler.run();
      if (why === 'fenced') this.log.warning('beat: Lost the lease (fenced out by a newer holder): stopped sending.');
    } catch (err) {
      this.log.error(`beat: Scheduler error, standing by again: ${(err as Error).message}`);
      lease.forget();
    } finally {
      clearInterval(renew);
    }
  }

  /** Lines for the banner: the schedule and its next runs are logged once beat starts. */
  describe(): string[] {
    return [
      `    . broker -> ${this.app.broker.displayUrl}`,
      `    . app -> ${this.app.main}`,
      `    . scheduler -> ts-celery ${this.lease ? `with a lease (ha: ${this.lease.ttlSeconds} s ttl)` : 'without a lease (no ha)'}`,
      `    . db -> ${this.storeDescription}`,
      `    . timezone -> ${this.timezone}`,
      `    . maxinterval -> ${humanizeSeconds(this.maxIntervalSeconds)} (${this.maxIntervalSeconds}s)`,
    ];
  }
}
