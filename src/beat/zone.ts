/**
 * Wall-clock time in an IANA time zone, from the runtime's own time-zone data
 * (Intl, i.e. ICU): no dependency. Crontabs are evaluated on wall-clock fields
 * in the app's `timezone`, as Celery evaluates them, and turned back into an
 * instant with Python's rules for times that occur twice or never (PEP 495).
 */
import { ImproperlyConfigured } from '../errors.js';

/** Date and time fields as a clock on the wall shows them (month 1-12). */
export interface WallTime {
  year: number;
  month: number;
  day: number;
  hour: number;
  minute: number;
  second: number;
  ms: number;
}

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const UTC_NAMES = new Set(['UTC', 'ETC/UTC', 'ETC/UCT', 'UCT', 'GMT', 'ETC/GMT', 'ZULU', 'ETC/ZULU', 'UNIVERSAL', 'ETC/UNIVERSAL']);

/** The wall time of `ms` read in UTC (also "local" time with offset 0). */
export function utcWall(ms: number): WallTime {
  const d = new Date(ms);
  return {
    year: d.getUTCFullYear(),
    month: d.getUTCMonth() + 1,
    day: d.getUTCDate(),
    hour: d.getUTCHours(),
    minute: d.getUTCMinutes(),
    second: d.getUTCSeconds(),
    ms: d.getUTCMilliseconds(),
  };
}

/** The wall time read as if it were UTC, in epoch ms: handy for arithmetic on fields. */
export function wallToEpoch(w: WallTime): number {
  const d = new Date(0);
  d.setUTCFullYear(w.year, w.month - 1, w.day);
  d.setUTCHours(w.hour, w.minute, w.second, w.ms);
  return d.getTime();
}

/** One time zone. `offsetMs(t)` = local wall time - UTC at instant `t`. */
export class Zone {
  /** The IANA name as given. */
  readonly name: string;
  private readonly format: Intl.DateTimeFormat | null;
  // Offsets only change at transitions: remember them per quarter hour (every zone's
  // offsets and transitions fall on quarter hours since 1972).
  private readonly cache = new Map<number, number>();

  constructor(name: string) {
    this.name = name;
    if (UTC_NAMES.has(name.toUpperCase())) {
      this.format = null;
      return;
    }
    try {
      this.format = new Intl.DateTimeFormat('en-US', {
        timeZone: name,
        hourCycle: 'h23',
        year: 'numeric',
        month: 'numeric',
        day: 'numeric',
        hour: 'numeric',
        minute: 'numeric',
        second: 'numeric',
      });
    } catch {
      throw new ImproperlyConfigured(`Unknown time zone ${JSON.stringify(name)}: use an IANA name such as "Europe/Berlin" or "UTC"`);
    }
  }

  /** Local wall time minus UTC at the instant `ms`, in milliseconds. */
  offsetMs(ms: number): number {
    if (!this.format) return 0;
    const bucket = Math.floor(ms / 900_000);
    const known = this.cache.get(bucket);
    if (known !== undefined) return known;
    const t = bucket * 900_000;
    const parts = this.format.formatToParts(new Date(t));
    const field = (type: string): number => Number(parts.find((p) => p.type === type)?.value);
    const wall = wallToEpoch({
      year: field('year'),
      month: field('month'),
      day: field('day'),
      hour: field('hour'),
      minute: field('minute'),
      second: field('second'),
      ms: 0,
    });
    const offset = wall - t;
    if (this.cache.size > 50_000) this.cache.clear();
    this.cache.set(bucket, offset);
    return offset;
  }

  /** The wall time in this zone at the instant `ms`. */
  wall(ms: number): WallTime {
    return utcWall(ms + this.offsetMs(ms));
  }

  /**
   * The instant a wall time denotes, with Python's rules (zoneinfo, PEP 495):
   * a time that occurs twice (clocks set back) is its first occurrence with
   * `fold` 0 and its second with `fold` 1; a time that never occurs (clocks
   * set forward) is read with the offset before the change for `fold` 0
   * (02:30 in a 02:00->03:00 gap is 03:30) and after it for `fold` 1 (01:30).
   */
  toInstant(w: WallTime, fold: 0 | 1 = 0): number {
    const local = wallToEpoch(w);
    if (!this.format) return local;
    const before = this.offsetMs(local - DAY);
    const after = this.offsetMs(local + DAY);
    const solutions: number[] = [];
    for (const offset of before === after ? [before] : [before, after]) {
      const t = local - offset;
      if (this.offsetMs(t) === offset && !solutions.includes(t)) solutions.push(t);
    }
    solutions.sort((a, b) => a - b);
    if (solutions.length === 1) return solutions[0]!;
    if (solutions.length === 2) return fold === 0 ? solutions[0]! : solutions[1]!;
    // No solution: the wall time falls into a gap.
    return local - (fold === 0 ? before : after);
  }
}

const zones = new Map<string, Zone>();

/** A shared {@link Zone} per name (they cache offsets). */
export function zone(name: string): Zone {
  let z = zones.get(name);
  if (!z) {
    z = new Zone(name);
    zones.set(name, z);
  }
  return z;
}
