/**
 * `crontab({ minute, hour, dayOfWeek, dayOfMonth, monthOfYear })`: Celery's
 * crontab schedule, with Celery's field syntax and semantics.
 *
 * - Fields: a number, a list of numbers, or a pattern string such as `*`,
 *   `*\/15`, `9-17`, `1,3,5`, `0-30/10`, `mon-fri`, `fri-mon` (wraps), names of
 *   days and months (their first three letters count, any case). Sunday is 0.
 *   Parsed as `celery.schedules.crontab_parser` parses them, quirks included.
 * - Every field must match, day of week and day of month included (unlike
 *   Vixie cron, which ORs the two day fields when both are restricted).
 * - Evaluated on wall-clock time in the app's time zone; {@link Crontab.next}
 *   follows `crontab.remaining_delta` step by step, so the next run time is
 *   Celery's, across DST changes too. One deliberate difference: in the hour
 *   that a DST change repeats, Celery computes a next run in the past (the
 *   first occurrence of the wall time) and so sends on every loop for up to an
 *   hour; here the second occurrence is taken instead (see the README).
 */
import { ScheduleError } from '../errors.js';
import type { Schedule } from './types.js';
import { zone, type WallTime } from './zone.js';

/** One crontab field as users write it. */
export type CronField = number | string | readonly number[] | ReadonlySet<number>;

/** The fields of {@link crontab}; each defaults to `*`. */
export interface CrontabSpec {
  minute?: CronField;
  hour?: CronField;
  /** 0-6, Sunday = 0, or names: `mon-fri`, `sun,wed`. */
  dayOfWeek?: CronField;
  /** 1-31. */
  dayOfMonth?: CronField;
  /** 1-12, or names: `jan`, `mar-may`. */
  monthOfYear?: CronField;
}

const DAY_NAMES = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'];
const MONTH_NAMES = ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'];
// Celery's CRON_DAYS_IN_MONTH: February with 29 days.
const LONGEST_MONTH = [0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
const SPEC_KEYS = ['minute', 'hour', 'dayOfWeek', 'dayOfMonth', 'monthOfYear'] as const;

/** Python's `int(s)` for ASCII input: surrounding spaces, a sign, `_` between digits. */
function pyInt(s: string): number | null {
  const m = /^\s*([+-]?)(\d+(?:_\d+)*)\s*$/.exec(s);
  if (!m) return null;
  const n = Number(m[2]!.replace(/_/g, ''));
  return m[1] === '-' ? -n : n;
}

/** `celery.schedules.crontab_parser`: a pattern string -> the set of values it names. */
class CrontabParser {
  constructor(
    private readonly max: number,
    private readonly min: number,
  ) {}

  parse(spec: string): Set<number> {
    const acc = new Set<number>();
    for (const part of spec.split(',')) {
      if (!part) throw new ScheduleError('empty part');
      for (const n of this.parsePart(part)) acc.add(n);
    }
    return acc;
  }

  // Python's re.match anchors at the start only: '1-5/2/3' reads as '1-5/2', as in Celery.
  private parsePart(part: string): number[] {
    let m = /^(\w+?)-(\w+)\/(\w+)?/.exec(part);
    if (m) {
      if (!m[3]) throw new ScheduleError('empty filter');
      return this.every(this.expandRange(m[1]!, m[2]!), m[3]);
    }
    m = /^(\w+?)-(\w+)/.exec(part);
    if (m) return this.expandRange(m[1]!, m[2]!);
    m = /^\*\/(\w+)?/.exec(part);
    if (m) {
      if (!m[1]) throw new ScheduleError('empty filter');
      return this.every(this.expandStar(), m[1]);
    }
    if (part === '*') return this.expandStar();
    return this.expandRange(part);
  }

  private every(values: number[], step: string): number[] {
    const n = pyInt(step);
    if (n === null) throw new ScheduleError(`invalid literal for int() with base 10: ${JSON.stringify(step)}`);
    if (n === 0) throw new ScheduleError('slice step cannot be zero');
    return values.filter((_, i) => i % n === 0);
  }

  private expandStar(): number[] {
    return Array.from({ length: this.max }, (_, i) => this.min + i);
  }

  private expandRange(from: string, to?: string): number[] {
    const fr = this.expandNumber(from);
    if (to === undefined) return [fr];
    const end = this.expandNumber(to);
    const range = (a: number, b: number): number[] => Array.from({ length: Math.max(0, b - a) }, (_, i) => a + i);
    // A range that ends before it starts wraps around: 'fri-mon', '22-2'.
    if (end < fr) return [...range(fr, this.min + this.max), ...range(this.min, end + 1)];
    return range(fr, end + 1);
  }

  private expandNumber(s: string): number {
    if (s[0] === '-') throw new ScheduleError('negative numbers not supported');
    let i = pyInt(s);
    if (i === null) {
      // As Celery: month names first, then day names, whatever the field.
      const abbr = s.slice(0, 3).toLowerCase();
      const month = MONTH_NAMES.indexOf(abbr);
      const day = DAY_NAMES.indexOf(abbr);
      if (month >= 0) i = month + 1;
      else if (day >= 0) i = day;
      else throw new ScheduleError(`Invalid weekday literal ${JSON.stringify(s)}.`);
    }
    const maxVal = this.min + this.max - 1;
    if (i > maxVal) throw new ScheduleError(`Invalid end range: ${i} > ${maxVal}.`);
    if (i < this.min) throw new ScheduleError(`Invalid beginning range: ${i} < ${this.min}.`);
    return i;
  }
}

function expandField(name: string, value: CronField, max: number, min = 0): number[] {
  let result: Set<number>;
  if (typeof value === 'number') {
    if (!Number.isInteger(value)) throw new ScheduleError(`crontab ${name}: ${value} is not an integer`);
    result = new Set([value]);
  } else if (typeof value === 'string') {
    try {
      result = new CrontabParser(max, min).parse(value);
    } catch (err) {
      throw new ScheduleError(`crontab ${name} ${JSON.stringify(value)}: ${(err as Error).message}`);
    }
  } else if (value instanceof Set || Array.isArray(value)) {
    result = new Set(value as Iterable<number>);
    for (const n of result) {
      if (!Number.isInteger(n)) throw new ScheduleError(`crontab ${name}: ${String(n)} is not an integer`);
    }
  } else {
    throw new ScheduleError(`crontab ${name} must be a number, a string or a list of numbers, got ${typeof value}`);
  }
  for (const n of result) {
    if (n >= max + min || n < min) {
      throw new ScheduleError(`Invalid crontab pattern. Valid range is ${min}-${max - 1 + min}. '${n}' was found (crontab ${name}).`);
    }
  }
  return [...result].sort((a, b) => a - b);
}

/** Python's repr of a field as given (for Celery's `<crontab: ...>`). */
function reprField(value: CronField): string {
  if (typeof value === 'string' || typeof value === 'number') return String(value);
  const items = [...value].join(', ');
  return value instanceof Set ? `{${items}}` : `[${items}]`;
}

const daysIn = (year: number, month: number): number => new Date(Date.UTC(year, month, 0)).getUTCDate();
/** Day of the week, Sunday = 0 (Python's `isoweekday() % 7`). */
const dayOfWeek = (year: number, month: number, day: number): number => new Date(Date.UTC(year, month - 1, day)).getUTCDay();
/** Python's `bisect_right`: the index of the first element > x. */
const bisectRight = (a: readonly number[], x: number): number => {
  const i = a.findIndex((v) => v > x);
  return i < 0 ? a.length : i;
};
const bisectLeft = (a: readonly number[], x: number): number => {
  const i = a.findIndex((v) => v >= x);
  return i < 0 ? a.length : i;
};

function compareWall(a: WallTime, b: WallTime): number {
  return a.year - b.year || a.month - b.month || a.day - b.day || a.hour - b.hour || a.minute - b.minute || a.second - b.second || a.ms - b.ms;
}

function addDays(w: WallTime, days: number): WallTime {
  const d = new Date(Date.UTC(w.year, w.month - 1, w.day + days));
  return { ...w, year: d.getUTCFullYear(), month: d.getUTCMonth() + 1, day: d.getUTCDate() };
}

/** A crontab schedule. Create it with {@link crontab}. */
export class Crontab implements Schedule {
  /** Expanded, sorted values of each field. */
  readonly minute: readonly number[];
  readonly hour: readonly number[];
  readonly dayOfWeek: readonly number[];
  readonly dayOfMonth: readonly number[];
  readonly monthOfYear: readonly number[];
  /** The fields as given (`*` when left out), for the repr and Celery's `*` tests. */
  readonly spec: Readonly<Record<(typeof SPEC_KEYS)[number], CronField>>;
  private readonly sets: { minute: Set<number>; hour: Set<number>; dow: Set<number>; dom: Set<number>; moy: Set<number> };

  constructor(spec: CrontabSpec = {}) {
    for (const key of Object.keys(spec)) {
      if (!(SPEC_KEYS as readonly string[]).includes(key)) {
        const hint = SPEC_KEYS.find((k) => k.toLowerCase() === key.replace(/_/g, '').toLowerCase());
        throw new ScheduleError(`Unknown crontab field ${JSON.stringify(key)}${hint ? `: did you mean ${JSON.stringify(hint)}?` : `; use ${SPEC_KEYS.join(', ')}`}`);
      }
    }
    const field = (k: (typeof SPEC_KEYS)[number]): CronField => spec[k] ?? '*';
    this.spec = { minute: field('minute'), hour: field('hour'), dayOfWeek: field('dayOfWeek'), dayOfMonth: field('dayOfMonth'), monthOfYear: field('monthOfYear') };
    this.hour = expandField('hour', this.spec.hour, 24);
    this.minute = expandField('minute', this.spec.minute, 60);
    this.dayOfWeek = expandField('dayOfWeek', this.spec.dayOfWeek, 7);
    this.dayOfMonth = expandField('dayOfMonth', this.spec.dayOfMonth, 31, 1);
    this.monthOfYear = expandField('monthOfYear', this.spec.monthOfYear, 12, 1);
    if (!this.monthOfYear.some((m) => this.dayOfMonth.some((d) => d <= LONGEST_MONTH[m]!))) {
      throw new ScheduleError(
        `Invalid crontab: dayOfMonth ${reprField(this.spec.dayOfMonth)} never occurs in monthOfYear ${reprField(this.spec.monthOfYear)}.`,
      );
    }
    this.sets = {
      minute: new Set(this.minute),
      hour: new Set(this.hour),
      dow: new Set(this.dayOfWeek),
      dom: new Set(this.dayOfMonth),
      moy: new Set(this.monthOfYear),
    };
  }

  /** `crontab.fromString('0 4 * * mon')`: minute, hour, day of month, month, day of week. */
  static fromString(expression: string): Crontab {
    const parts = expression.split(' ');
    if (parts.length !== 5) throw new ScheduleError(`A crontab string has 5 fields separated by single spaces, got ${JSON.stringify(expression)}`);
    const [minute, hour, dayOfMonth, monthOfYear, dayOfWeek] = parts as [string, string, string, string, string];
    return new Crontab({ minute, hour, dayOfWeek, dayOfMonth, monthOfYear });
  }

  /**
   * The first run strictly after `after`, in `timezone` (an IANA name; the beat
   * passes the app's `timezone`). Seconds and milliseconds of the result are 0.
   */
  next(after: Date, timezone = 'UTC'): Date {
    const z = zone(timezone);
    const afterMs = after.getTime();
    if (!Number.isFinite(afterMs)) throw new ScheduleError('crontab.next() needs a valid Date');
    let from = z.wall(afterMs);
    for (let i = 0; i < 4; i++) {
      const target = this.nextWall(from);
      // Python's arithmetic leaves fold = 0: the first occurrence of a repeated wall time.
      const first = z.toInstant(target, 0);
      if (first > afterMs) return new Date(first);
      // Inside a repeated hour the first occurrence has passed: take the second (Celery
      // would return the past time and send on every loop until the hour ends).
      const second = z.toInstant(target, 1);
      if (second > afterMs) return new Date(second);
      from = target;
    }
    throw new ScheduleError(`crontab ${this.toString()}: cannot find a run after ${after.toISOString()} in ${timezone}`);
  }

  /** `crontab.remaining_delta` on wall-clock fields: the wall time of the next run. */
  private nextWall(last: WallTime): WallTime {
    const s = this.sets;
    const dow = dayOfWeek(last.year, last.month, last.day);
    const executeThisDate = s.moy.has(last.month) && s.dom.has(last.day) && s.dow.has(dow);
    const at = (w: WallTime, hour: number, minute: number): WallTime => ({ ...w, hour, minute, second: 0, ms: 0 });

    if (executeThisDate && s.hour.has(last.hour) && last.minute < this.minute[this.minute.length - 1]!) {
      return at(last, last.hour, this.minute.find((m) => m > last.minute)!);
    }
    const nextMinute = this.minute[0]!;
    if (executeThisDate && last.hour < this.hour[this.hour.length - 1]!) {
      return at(last, this.hour.find((h) => h > last.hour)!, nextMinute);
    }
    const nextHour = this.hour[0]!;
    // Celery tests the fields as given: only a literal '*' takes the day-of-week shortcut.
    if (this.spec.dayOfMonth === '*' && this.spec.monthOfYear === '*') {
      const nextDay = this.dayOfWeek.find((d) => d > dow) ?? this.dayOfWeek[0]!;
      const addWeek = nextDay === dow ? 7 : 0;
      return addDays(at(last, nextHour, nextMinute), ((nextDay - dow + 7) % 7) + addWeek);
    }
    return this.deltaToNext(last, nextHour, nextMinute);
  }

  /** `crontab._delta_to_next`: the next day allowed by day of month, month and day of week. */
  private deltaToNext(last: WallTime, nextHour: number, nextMinute: number): WallTime {
    const days = this.dayOfMonth;
    const months = this.monthOfYear;
    let year = last.year;
    let dom: number;
    let moy: number;
    if (this.sets.moy.has(last.month)) {
      dom = bisectRight(days, last.day);
      moy = bisectLeft(months, last.month);
    } else {
      dom = 0;
      moy = bisectRight(months, last.month);
      if (moy === months.length) moy = 0;
    }
    const candidate = (): WallTime => ({ year, month: months[moy]!, day: days[dom]!, hour: nextHour, minute: nextMinute, second: 0, ms: 0 });
    const rollOver = (): void => {
      for (let i = 0; i < 2000; i++) {
        const skip =
          dom === days.length ||
          days[dom]! > daysIn(year, months[moy]!) ||
          compareWall(candidate(), last) < 0;
        if (!skip) return;
        dom = 0;
        moy += 1;
        if (moy === months.length) {
          moy = 0;
          year += 1;
        }
      }
      throw new ScheduleError(`crontab ${this.toString()}: unable to rollover, time specification is probably invalid`);
    };
    rollOver();
    for (let i = 0; ; i++) {
      if (this.sets.dow.has(dayOfWeek(year, months[moy]!, days[dom]!))) break;
      if (i > 100_000) throw new ScheduleError(`crontab ${this.toString()}: no day matches every day field`);
      dom += 1;
      rollOver();
    }
    return candidate();
  }

  /** Celery's repr: `<crontab: 0 4 * * * (m/h/dM/MY/d)>`. */
  toString(): string {
    const f = this.spec;
    return `<crontab: ${reprField(f.minute)} ${reprField(f.hour)} ${reprField(f.dayOfMonth)} ${reprField(f.monthOfYear)} ${reprField(f.dayOfWeek)} (m/h/dM/MY/d)>`;
  }
}

/**
 * A crontab schedule for `beat_schedule`, as Celery's `crontab(...)`:
 * `crontab({ minute: 0, hour: '9-17', dayOfWeek: 'mon-fri' })`. Invalid fields
 * throw a {@link ScheduleError} naming the field.
 */
export function crontab(spec: CrontabSpec = {}): Crontab {
  return new Crontab(spec);
}
/** `crontab.fromString('*\/15 9-17 * * mon-fri')`: minute, hour, day of month, month, day of week. */
crontab.fromString = (expression: string): Crontab => Crontab.fromString(expression);
