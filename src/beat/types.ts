/**
 * Shapes shared by the beat modules and the settings table. This module
 * imports nothing, so `app/config.ts` can name these types without a cycle.
 */

/** When a periodic task runs: what `beat_schedule` entries take as `schedule`. */
export interface Schedule {
  /**
   * The first time the entry is due strictly after `after` (its last run),
   * evaluated in the IANA time zone `timezone` (default UTC).
   */
  next(after: Date, timezone?: string): Date;
  /** Celery's repr, e.g. `<freq: 2.00 seconds>` or `<crontab: 0 4 * * * (m/h/dM/MY/d)>`. */
  toString(): string;
}

/** One `beat_schedule` entry, with Celery's field names. */
export interface BeatScheduleEntry {
  /** The task name, e.g. `tasks.add` (a task defined anywhere: TypeScript or Python). */
  task: string;
  /** Seconds between runs, or a schedule such as `crontab({ minute: 0, hour: 4 })`. */
  schedule: number | Schedule;
  args?: unknown[];
  kwargs?: Record<string, unknown>;
  /**
   * `apply_async` options, Celery's names (`queue`, `routing_key`, `exchange`,
   * `priority`, `expires`, `headers`, `time_limit`, `soft_time_limit`,
   * `ignore_result`, `shadow`) or the camelCase ones of `applyAsync`.
   * `expires` defaults to the time until the entry's next run (see the README).
   */
  options?: Record<string, unknown>;
}

/** `beat_schedule`: entries by name. */
export type BeatSchedule = Record<string, BeatScheduleEntry>;
