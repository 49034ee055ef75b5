/**
 * `beat_schedule` entries, checked and normalised once at start-up: a bad
 * entry is an error naming the entry and the field, before anything is sent.
 */
import type { ApplyOptions } from '../app/task.js';
import { ScheduleError } from '../errors.js';
import { toSchedule } from './schedules.js';
import type { BeatSchedule, Schedule } from './types.js';

/** One periodic task, as the scheduler uses it. */
export interface ScheduleEntry {
  readonly name: string;
  readonly task: string;
  readonly schedule: Schedule;
  readonly args: unknown[];
  readonly kwargs: Record<string, unknown>;
  /** `applyAsync` options, without `expires` (see {@link expires}). */
  readonly options: ApplyOptions;
  /**
   * The entry's own `expires` (seconds, or null for none), or undefined when
   * it has none: beat then expires each message when the next one is due.
   */
  readonly expires: number | null | undefined;
}

/** `options` keys: Celery's `apply_async` names and the camelCase ones of `applyAsync`. */
const OPTION_NAMES: Record<string, keyof ApplyOptions> = {
  queue: 'queue',
  exchange: 'exchange',
  routing_key: 'routingKey',
  routingKey: 'routingKey',
  priority: 'priority',
  expires: 'expires',
  headers: 'headers',
  time_limit: 'timeLimit',
  timeLimit: 'timeLimit',
  soft_time_limit: 'softTimeLimit',
  softTimeLimit: 'softTimeLimit',
  ignore_result: 'ignoreResult',
  ignoreResult: 'ignoreResult',
  shadow: 'shadow',
};
const ENTRY_KEYS = ['task', 'schedule', 'args', 'kwargs', 'options'];

const isPlainObject = (v: unknown): v is Record<string, unknown> => !!v && typeof v === 'object' && !Array.isArray(v);

function closest(key: string, known: string[]): string {
  const norm = (s: string): string => s.toLowerCase().replace(/[_-]/g, '');
  const hit = known.find((k) => norm(k) === norm(key) || norm(k).startsWith(norm(key)) || norm(key).startsWith(norm(k)));
  return hit ? `: did you mean ${JSON.stringify(hit)}?` : `; known: ${known.join(', ')}`;
}

function normalizeOptions(where: string, raw: unknown): { options: ApplyOptions; expires: number | null | undefined } {
  if (raw === undefined) return { options: {}, expires: undefined };
  if (!isPlainObject(raw)) throw new ScheduleError(`${where}: options must be an object, got ${JSON.stringify(raw)}`);
  const options: Record<string, unknown> = {};
  let expires: number | null | undefined;
  for (const [key, value] of Object.entries(raw)) {
    const name = OPTION_NAMES[key];
    if (!name) throw new ScheduleError(`${where}: unknown option ${JSON.stringify(key)}${closest(key, Object.keys(OPTION_NAMES))}`);
    if (value === undefined) continue;
    if (name === 'expires') {
      if (value !== null && !(typeof value === 'number' && Number.isFinite(value) && value > 0)) {
        throw new ScheduleError(`${where}: options.expires must be a number of seconds > 0, or null for none`);
      }
      expires = value;
    } else {
      options[name] = value;
    }
  }
  if (options.headers !== undefined && !isPlainObject(options.headers)) throw new ScheduleError(`${where}: options.headers must be an object`);
  return { options: options as ApplyOptions, expires };
}

/** Checks every entry of `beat_schedule` and returns them in a fixed order (by name). */
export function normalizeSchedule(schedule: BeatSchedule | Record<string, unknown>): ScheduleEntry[] {
  if (!isPlainObject(schedule)) throw new ScheduleError('beat_schedule must be an object of entries by name');
  const out: ScheduleEntry[] = [];
  for (const [name, raw] of Object.entries(schedule).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    const where = `beat_schedule entry ${JSON.stringify(name)}`;
    if (!isPlainObject(raw)) throw new ScheduleError(`${where} must be an object: { task, schedule, args?, kwargs?, options? }`);
    for (const key of Object.keys(raw)) {
      if (key === 'relative') throw new ScheduleError(`${where}: "relative" schedules are not supported by ts-celery`);
      if (!ENTRY_KEYS.includes(key)) throw new ScheduleError(`${where}: unknown field ${JSON.stringify(key)}${closest(key, ENTRY_KEYS)}`);
    }
    if (typeof raw.task !== 'string' || !raw.task) throw new ScheduleError(`${where}: task must be a task name, e.g. "tasks.add"`);
    if (raw.args !== undefined && !Array.isArray(raw.args)) throw new ScheduleError(`${where}: args must be an array`);
    if (raw.kwargs !== undefined && !isPlainObject(raw.kwargs)) throw new ScheduleError(`${where}: kwargs must be an object`);
    const { options, expires } = normalizeOptions(where, raw.options);
    out.push({
      name,
      task: raw.task,
      schedule: toSchedule(raw.schedule, where),
      args: (raw.args as unknown[] | undefined) ?? [],
      kwargs: (raw.kwargs as Record<string, unknown> | undefined) ?? {},
      options,
      expires,
    });
  }
  return out;
}

/** Celery's repr of an entry: `<ScheduleEntry: every2 tasks.add(2, 2) <freq: 2.00 seconds>`. */
export function describeEntry(e: ScheduleEntry): string {
  const call = [...e.args.map((a) => JSON.stringify(a)), ...Object.entries(e.kwargs).map(([k, v]) => `${k}=${JSON.stringify(v)}`)].join(', ');
  return `<ScheduleEntry: ${e.name} ${e.task}(${call}) ${e.schedule.toString()}`;
}
