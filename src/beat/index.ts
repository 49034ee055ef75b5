/** Beat: periodic tasks from `beat_schedule` (interval and crontab schedules), with an optional HA lease. */
export { Beat, leaseConfig, type BeatOptions, type LeaseConfig } from './beat.js';
export { crontab, Crontab, type CronField, type CrontabSpec } from './crontab.js';
export { IntervalSchedule, humanizeSeconds, toSchedule } from './schedules.js';
export { normalizeSchedule, describeEntry, type ScheduleEntry } from './entry.js';
export { Scheduler, systemClock, type Clock, type SchedulerOptions, type SendTimes, type StopReason } from './scheduler.js';
export { FileStore, type ScheduleStore, type SavedSchedule, type EntryState, type RunRecord } from './store.js';
export { RedisLease, RedisStore, leaseKeys, type LeaseKeys } from './lease.js';
export type { BeatSchedule, BeatScheduleEntry, Schedule } from './types.js';
