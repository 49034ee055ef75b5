/**
 * Property test: `crontab(spec).next(after)` against Python Celery 5.7's own
 * `celery.schedules.crontab` (the next run time celery.beat computes), over
 * hundreds of random schedules and instants in six time zones, many of the
 * instants within hours of a DST change. Rejected specs must be rejected by both.
 *
 * The one deliberate difference: inside the hour a DST change repeats,
 * Celery's next run can lie in the past (the wall time's first occurrence),
 * which makes celery beat send on every loop until the hour ends. There
 * ts-celery takes the same wall time's second occurrence; the test checks
 * exactly that value and counts those cases.
 *
 * Deterministic by default; CRONTAB_SEED=<n> explores another sample.
 */
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { expect } from 'chai';
import { crontab, type CrontabSpec } from '../../src/beat/crontab.js';
import { zone } from '../../src/beat/zone.js';
import { PY_DIR, PYTHON } from '../helpers/python.js';
import { mulberry32 as prng } from '../helpers/prng.js';

const SEED = Number(process.env.CRONTAB_SEED ?? 20261127);
const SCHEDULES = 400;
const ZONES = ['Europe/Berlin', 'America/New_York', 'UTC', 'Australia/Lord_Howe', 'America/Santiago', 'Asia/Kolkata'];

const rand = prng(SEED);
const int = (lo: number, hi: number): number => lo + Math.floor(rand() * (hi - lo + 1));
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;

/** A random field in Celery's syntax: patterns, wrapped ranges, steps, lists, names, numbers. */
function field(min: number, max: number, names: readonly string[] = [], starWeight = 0.3): CrontabSpec['minute'] {
  if (rand() < starWeight) return '*';
  const n = (): number => int(min, max);
  const name = (): string => (names.length && rand() < 0.5 ? pick(names) : String(n()));
  switch (int(0, 8)) {
    case 0:
      return `*/${int(1, Math.max(1, Math.ceil((max - min) / 2)))}`;
    case 1:
      return `${name()}-${name()}`; // may wrap around (fri-mon, 22-2)
    case 2:
      return `${n()}-${n()}/${int(1, 5)}`;
    case 3:
      return Array.from({ length: int(1, 4) }, name).join(',');
    case 4:
      return n();
    case 5:
      return Array.from({ length: int(1, 3) }, n);
    case 6:
      return `${n()}-${n()},${n()}`;
    case 7:
      return names.length ? pick(names) : String(n());
    default:
      return String(n());
  }
}

const DAYS = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'monday', 'Friday'];
const MONTHS = ['jan', 'feb', 'mar', 'apr', 'oct', 'nov', 'dec', 'March'];
const INVALID = ['60', '*/0', 'mon-xyz', '5/2', '', '1,,2', '-1', '*/', '1-', 'abc'];

function randomSpec(): CrontabSpec {
  const spec: CrontabSpec = {
    minute: field(0, 59, [], 0.15),
    hour: field(0, 23, [], 0.3),
    dayOfWeek: field(0, 6, DAYS, 0.6),
    dayOfMonth: field(1, 31, [], 0.65),
    monthOfYear: field(1, 12, MONTHS, 0.75),
  };
  // DST changes happen around 00:00-03:00 local: make hours there common.
  if (rand() < 0.3) spec.hour = pick(['0-3', '1,2', '2', '1-2/1', '0', '23-3', '*/2']);
  if (rand() < 0.04) spec[pick(['minute', 'hour', 'dayOfWeek', 'dayOfMonth', 'monthOfYear'] as const)] = pick(INVALID);
  return spec;
}

/** Instants where the zone's UTC offset changes, 2021-2029 (found by scanning, then bisecting). */
function transitions(name: string): number[] {
  const z = zone(name);
  const out: number[] = [];
  const step = 6 * 3_600_000;
  for (let t = Date.UTC(2021, 0, 1); t < Date.UTC(2030, 0, 1); t += step) {
    if (z.offsetMs(t) === z.offsetMs(t + step)) continue;
    let [lo, hi] = [t, t + step];
    while (hi - lo > 60_000) {
      const mid = lo + Math.floor((hi - lo) / 2);
      if (z.offsetMs(mid) === z.offsetMs(lo)) lo = mid;
      else hi = mid;
    }
    out.push(hi - (hi % 60_000));
  }
  return out;
}

interface Case {
  spec: CrontabSpec;
  tz: string;
  after: number;
}

describe('crontab.next() against Python Celery 5.7 (property test)', function () {
  this.timeout(120_000);

  it(`gives Celery's next run time for ${SCHEDULES} random schedules, across DST changes (seed ${SEED})`, () => {
    const changes = new Map(ZONES.map((z) => [z, transitions(z)]));
    expect(changes.get('Europe/Berlin')!.length).to.equal(18); // two a year: the scan works
    expect(changes.get('UTC')).to.deep.equal([]);

    const cases: Case[] = [];
    for (let i = 0; i < SCHEDULES; i++) {
      const spec = randomSpec();
      const tz = i % 3 === 0 ? pick(ZONES) : pick(['Europe/Berlin', 'America/New_York']);
      const near = changes.get(tz)!;
      const instants = [
        int(Date.UTC(2020, 0, 1), Date.UTC(2030, 0, 1)), // anywhere, to the millisecond
        int(Date.UTC(2020, 0, 1) / 60_000, Date.UTC(2030, 0, 1) / 60_000) * 60_000,
      ];
      for (let k = 0; k < 6 && near.length; k++) {
        // Within 3 hours of a DST change: on the minute (as beat's last runs often are) or not.
        const t = pick(near) + int(-180, 180) * 60_000;
        instants.push(rand() < 0.5 ? t : t + int(0, 59_999));
      }
      for (const after of instants) cases.push({ spec, tz, after });
    }

    const py = spawnSync(PYTHON.pypi, [path.join(PY_DIR, 'crontab_next.py')], {
      input: JSON.stringify({ cases }),
      maxBuffer: 64 * 1024 * 1024,
    });
    expect(py.status, py.stderr.toString()).to.equal(0);
    const celery = JSON.parse(py.stdout.toString()) as Array<{ next?: number; next_fold1?: number; error?: string }>;
    expect(celery).to.have.length(cases.length);

    const mismatches: string[] = [];
    let rejected = 0;
    let repeatedHour = 0;
    let nearDst = 0;
    cases.forEach((c, i) => {
      const want = celery[i]!;
      const show = `${JSON.stringify(c.spec)} in ${c.tz} after ${new Date(c.after).toISOString()}`;
      let ours: number;
      try {
        ours = crontab(c.spec).next(new Date(c.after), c.tz).getTime();
      } catch (err) {
        if (want.error) rejected++;
        else mismatches.push(`${show}: ts-celery threw ${(err as Error).message}, Celery gave ${new Date(want.next!).toISOString()}`);
        return;
      }
      if (want.error) {
        mismatches.push(`${show}: Celery rejected it (${want.error}), ts-celery gave ${new Date(ours).toISOString()}`);
        return;
      }
      if (changes.get(c.tz)!.some((t) => Math.abs(t - c.after) <= 3 * 3_600_000)) nearDst++;
      let expected = want.next!;
      if (expected <= c.after) {
        repeatedHour++;
        expected = want.next_fold1!; // the documented difference (see the file's comment)
      }
      if (ours !== expected || ours <= c.after) {
        mismatches.push(`${show}: ts-celery ${new Date(ours).toISOString()}, Celery ${new Date(expected).toISOString()}`);
      }
    });
    process.stdout.write(
      `      ${cases.length} cases: ${cases.length - rejected} compared (${nearDst} within 3 h of a DST change, ` +
        `${repeatedHour} in a repeated hour), ${rejected} rejected by both\n`,
    );
    expect(mismatches.slice(0, 20), `${mismatches.length} mismatches`).to.deep.equal([]);
    expect(rejected).to.be.greaterThan(0);
    expect(nearDst).to.be.greaterThan(1000);
  });
});
