/**
 * Interval schedules (`schedule: 30` in `beat_schedule`), and turning a
 * `schedule` value into a {@link Schedule}.
 */
import { ScheduleError } from '../errors.js';
import { Crontab } from './crontab.js';
import type { Schedule } from './types.js';

/** Celery's `humanize_seconds`: `2.00 seconds`, `5.00 minutes`, `1.00 day`. */
export function humanizeSeconds(secs: number): string {
  const units: Array<[string, number]> = [['day', 86_400], ['hour', 3_600], ['minute', 60], ['second', 1]];
  const rounded = Math.round(secs * 100) / 100;
  for (const [unit, divider] of units) {
    if (rounded >= divider) {
      const n = rounded / divider;
      return `${n.toFixed(2)} ${n === 1 ? unit : `${unit}s`}`;
    }
  }
  return 'now';
}

/**
 * Every `seconds` seconds, counted from the last run, as Celery's
 * `schedule(run_every)`: the next run is `last run + interval`, and a run
 * sent late moves the ones after it.
 */
export class IntervalSchedule implements Schedule {
  constructor(readonly seconds: number) {
    if (!(typeof seconds === 'number' && Number.isFinite(seconds) && seconds > 0)) {
      throw new ScheduleError(`An interval schedule needs a number of seconds > 0, got ${JSON.stringify(seconds)}`);
    }
  }

  next(after: Date): Date {
    return new Date(after.getTime() + this.seconds * 1000);
  }

  toString(): string {
    return `<freq: ${humanizeSeconds(this.seconds)}>`;
  }
}

/** A `beat_schedule` entry's `schedule` value as a {@link Schedule}: seconds or a schedule object. */
export function toSchedule(value: unknown, where: string): Schedule {
  if (typeof value === 'number') {
    try {
      return new IntervalSchedule(value);
    } catch (err) {
      throw new ScheduleError(`${where}: ${(err as Error).message}`);
    }
  }
  if (value instanceof Crontab || value instanceof IntervalSchedule) return value;
  // Duck-typed: a schedule from another copy of the library, or a user's own.
  if (value && typeof value === 'object' && typeof (value as Schedule).next === 'function') return value as Schedule;
  throw new ScheduleError(
    `${where}: schedule must be a number of seconds or a schedule such as crontab({ minute: 0, hour: 4 }), got ${JSON.stringify(value) ?? typeof value}` +
      (value && typeof value === 'object' && 'minute' in value ? ' (wrap the fields in crontab(...))' : ''),
  );
}
