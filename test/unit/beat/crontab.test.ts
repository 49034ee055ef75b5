/**
 * crontab: Celery's field syntax (the examples from celery.schedules'
 * docstrings), its errors, and next run times that can be checked by hand,
 * DST included. The random comparison with Python Celery itself is
 * test/interop/beat-crontab.test.ts.
 */
import { expect } from 'chai';
import { crontab, Crontab } from '../../../src/beat/crontab.js';
import { IntervalSchedule, toSchedule } from '../../../src/beat/schedules.js';
import { ScheduleError } from '../../../src/errors.js';

const at = (iso: string): Date => new Date(iso);
const next = (c: Crontab, after: string, tz = 'UTC'): string => c.next(at(after), tz).toISOString();

describe('crontab fields (Celery syntax)', () => {
  it('expands patterns as celery.schedules.crontab_parser does', () => {
    expect(crontab({ minute: '*/15' }).minute).to.deep.equal([0, 15, 30, 45]);
    expect(crontab({ hour: '*/4' }).hour).to.deep.equal([0, 4, 8, 12, 16, 20]);
    expect(crontab({}).dayOfWeek).to.deep.equal([0, 1, 2, 3, 4, 5, 6]);
    expect(crontab({ dayOfMonth: '*/3' }).dayOfMonth).to.deep.equal([1, 4, 7, 10, 13, 16, 19, 22, 25, 28, 31]);
    expect(crontab({ monthOfYear: '*/2' }).monthOfYear).to.deep.equal([1, 3, 5, 7, 9, 11]);
    expect(crontab({ monthOfYear: '2-12/2' }).monthOfYear).to.deep.equal([2, 4, 6, 8, 10, 12]);
    expect(crontab({ minute: '1,13,30-45,50-59/2' }).minute).to.deep.equal([1, 13, ...Array.from({ length: 16 }, (_, i) => 30 + i), 50, 52, 54, 56, 58]);
    expect(crontab({ hour: '0,8-17/2' }).hour).to.deep.equal([0, 8, 10, 12, 14, 16]);
  });

  it('reads day and month names, wraps ranges, and takes numbers and lists', () => {
    expect(crontab({ dayOfWeek: 'mon-fri' }).dayOfWeek).to.deep.equal([1, 2, 3, 4, 5]);
    expect(crontab({ dayOfWeek: 'fri-mon' }).dayOfWeek).to.deep.equal([0, 1, 5, 6]);
    expect(crontab({ dayOfWeek: 'Sunday,wed' }).dayOfWeek).to.deep.equal([0, 3]);
    expect(crontab({ hour: '22-2' }).hour).to.deep.equal([0, 1, 2, 22, 23]);
    expect(crontab({ monthOfYear: 'mar-may' }).monthOfYear).to.deep.equal([3, 4, 5]);
    expect(crontab({ minute: 5, hour: [9, 17] }).hour).to.deep.equal([9, 17]);
    expect(crontab({ minute: new Set([0, 30]) }).minute).to.deep.equal([0, 30]);
  });

  it('rejects what Celery rejects, naming the field', () => {
    const bad: Array<[Parameters<typeof crontab>[0], RegExp]> = [
      [{ minute: '60' }, /minute.*Invalid end range: 60 > 59/],
      [{ minute: 60 }, /Valid range is 0-59. '60' was found/],
      [{ hour: '*/0' }, /slice step cannot be zero/],
      [{ dayOfWeek: 'mon-xyz' }, /Invalid weekday literal "xyz"/],
      [{ minute: '5/2' }, /Invalid weekday literal/],
      [{ minute: '1,,2' }, /empty part/],
      [{ minute: '-1' }, /negative numbers not supported/],
      [{ minute: '*/' }, /empty filter/],
      [{ dayOfMonth: 0 }, /Valid range is 1-31/],
      [{ dayOfMonth: 31, monthOfYear: 'feb,apr' }, /dayOfMonth 31 never occurs in monthOfYear feb,apr/],
      [{ minute: 1.5 }, /not an integer/],
      [{ day_of_week: 1 } as never, /Unknown crontab field "day_of_week": did you mean "dayOfWeek"\?/],
    ];
    for (const [spec, message] of bad) expect(() => crontab(spec), JSON.stringify(spec)).to.throw(ScheduleError, message);
  });

  it('parses cron strings and prints Celery\'s repr', () => {
    const c = crontab.fromString('*/15 9-17 1 * mon-fri');
    expect(c.toString()).to.equal('<crontab: */15 9-17 1 * mon-fri (m/h/dM/MY/d)>');
    expect(crontab({ minute: 0, hour: [4, 5] }).toString()).to.equal('<crontab: 0 [4, 5] * * * (m/h/dM/MY/d)>');
    expect(() => crontab.fromString('* * *')).to.throw(ScheduleError, /5 fields/);
  });
});

describe('crontab.next()', () => {
  it('is the first matching minute strictly after the given time', () => {
    const every15 = crontab({ minute: '*/15' });
    expect(next(every15, '2026-03-02T10:05:30.123Z')).to.equal('2026-03-02T10:15:00.000Z');
    expect(next(every15, '2026-03-02T10:15:00.000Z')).to.equal('2026-03-02T10:30:00.000Z');
    expect(next(every15, '2026-03-02T23:59:00.000Z')).to.equal('2026-03-03T00:00:00.000Z');
  });

  it('weekdays at 09:00: Friday 10:00 -> Monday 09:00', () => {
    expect(next(crontab({ minute: 0, hour: 9, dayOfWeek: 'mon-fri' }), '2026-03-06T10:00:00Z')).to.equal('2026-03-09T09:00:00.000Z');
  });

  it('needs day of week AND day of month, as Celery: the first Monday of a month', () => {
    const firstMonday = crontab({ minute: 0, hour: 12, dayOfWeek: 1, dayOfMonth: '1-7' });
    expect(next(firstMonday, '2026-03-03T00:00:00Z')).to.equal('2026-04-06T12:00:00.000Z');
    // Vixie cron would also fire on every other Monday and on the 1st-7th whatever the weekday.
  });

  it('skips months without the day: the 31st', () => {
    expect(next(crontab({ minute: 0, hour: 0, dayOfMonth: 31 }), '2026-03-31T00:00:00Z')).to.equal('2026-05-31T00:00:00.000Z');
    expect(next(crontab({ minute: 0, hour: 0, dayOfMonth: 29, monthOfYear: 2 }), '2026-01-01T00:00:00Z')).to.equal('2028-02-29T00:00:00.000Z');
  });

  it('runs on wall-clock time in the app time zone', () => {
    const daily4 = crontab({ minute: 0, hour: 4 });
    expect(next(daily4, '2026-07-01T00:00:00Z', 'Europe/Berlin')).to.equal('2026-07-01T02:00:00.000Z'); // CEST
    expect(next(daily4, '2026-12-01T00:00:00Z', 'Europe/Berlin')).to.equal('2026-12-01T03:00:00.000Z'); // CET
    expect(next(daily4, '2026-12-01T00:00:00Z', 'Asia/Kolkata')).to.equal('2026-12-01T22:30:00.000Z');
  });

  it('a run inside the hour DST skips happens when the clock jumps (Celery), once', () => {
    const at0230 = crontab({ minute: 30, hour: 2 });
    // Berlin, 2026-03-29: 02:00 CET -> 03:00 CEST. "02:30" is read as 03:30 CEST = 01:30Z.
    expect(next(at0230, '2026-03-29T00:30:00Z', 'Europe/Berlin')).to.equal('2026-03-29T01:30:00.000Z');
    expect(next(at0230, '2026-03-29T01:30:00Z', 'Europe/Berlin')).to.equal('2026-03-30T00:30:00.000Z');
  });

  it('in the hour DST repeats, runs go forward (Celery would return a past time and send on every loop)', () => {
    // Berlin, 2026-10-25: 03:00 CEST -> 02:00 CET; 02:10 CET (the second 02:10) is 01:10Z.
    const everyMinute = crontab({ minute: '*' });
    expect(next(everyMinute, '2026-10-25T01:10:30Z', 'Europe/Berlin')).to.equal('2026-10-25T01:11:00.000Z');
    // Celery's value here is 00:11Z (the first 02:11, an hour in the past).
    const at0230 = crontab({ minute: 30, hour: 2 });
    expect(next(at0230, '2026-10-25T00:00:00Z', 'Europe/Berlin')).to.equal('2026-10-25T00:30:00.000Z'); // first 02:30
    expect(next(at0230, '2026-10-25T00:30:00Z', 'Europe/Berlin')).to.equal('2026-10-26T01:30:00.000Z'); // not again at the second
  });

  it('rejects an unknown time zone', () => {
    expect(() => crontab().next(new Date(), 'Mars/Olympus')).to.throw(/Unknown time zone "Mars\/Olympus"/);
  });
});

describe('interval schedules', () => {
  it('are seconds from the last run, with Celery\'s repr', () => {
    const s = toSchedule(2, 'entry');
    expect(s).to.be.instanceOf(IntervalSchedule);
    expect(s.next(at('2026-01-01T00:00:00.500Z')).toISOString()).to.equal('2026-01-01T00:00:02.500Z');
    expect(s.toString()).to.equal('<freq: 2.00 seconds>');
    expect(toSchedule(1, 'e').toString()).to.equal('<freq: 1.00 second>');
    expect(toSchedule(300, 'e').toString()).to.equal('<freq: 5.00 minutes>');
  });

  it('must be positive numbers; a crontab spec must be wrapped in crontab()', () => {
    expect(() => toSchedule(0, 'beat_schedule entry "x"')).to.throw(ScheduleError, /"x".*> 0/);
    expect(() => toSchedule('5', 'entry')).to.throw(ScheduleError, /number of seconds/);
    expect(() => toSchedule({ minute: 5 }, 'entry')).to.throw(ScheduleError, /wrap the fields in crontab/);
  });
});
