/** beat_schedule entries and the beat settings: bad input gets a clear error, good input is normalised. */
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { Celery } from '../../../src/app/celery.js';
import { leaseConfig } from '../../../src/beat/beat.js';
import { crontab } from '../../../src/beat/crontab.js';
import { describeEntry, normalizeSchedule } from '../../../src/beat/entry.js';
import { FileStore } from '../../../src/beat/store.js';
import { ImproperlyConfigured, ScheduleError } from '../../../src/errors.js';
import { getLogger, setLogSink } from '../../../src/support/log.js';

describe('beat_schedule entries', () => {
  it('maps Celery\'s option names onto applyAsync options and keeps expires apart', () => {
    const [e] = normalizeSchedule({
      report: {
        task: 'tasks.report',
        schedule: crontab({ minute: 0, hour: 4 }),
        args: [1],
        kwargs: { full: true },
        options: { queue: 'reports', routing_key: 'r', priority: 5, expires: 60, soft_time_limit: 10, headers: { a: 1 } },
      },
    });
    expect(e!.options).to.deep.equal({ queue: 'reports', routingKey: 'r', priority: 5, softTimeLimit: 10, headers: { a: 1 } });
    expect(e!.expires).to.equal(60);
    expect(describeEntry(e!)).to.equal('<ScheduleEntry: report tasks.report(1, full=true) <crontab: 0 4 * * * (m/h/dM/MY/d)>');
  });

  it('rejects bad entries, naming the entry and suggesting the right name', () => {
    const bad: Array<[Record<string, unknown>, RegExp]> = [
      [{ x: { task: 't', schedule: 5, options: { routingkey: 'q' } } }, /entry "x": unknown option "routingkey": did you mean "routing_key"\?/],
      [{ x: { task: 't', schedule: 5, option: {} } }, /entry "x": unknown field "option": did you mean "options"\?/],
      [{ x: { schedule: 5 } }, /entry "x": task must be a task name/],
      [{ x: { task: 't', schedule: -1 } }, /entry "x": An interval schedule needs a number of seconds > 0/],
      [{ x: { task: 't', schedule: 5, args: 'a' } }, /args must be an array/],
      [{ x: { task: 't', schedule: 5, options: { expires: 0 } } }, /options.expires must be a number of seconds > 0, or null/],
      [{ x: { task: 't', schedule: 5, relative: true } }, /"relative" schedules are not supported/],
    ];
    for (const [schedule, message] of bad) expect(() => normalizeSchedule(schedule), message.source).to.throw(ScheduleError, message);
  });
});

describe('beat settings', () => {
  it('are in the settings table with Celery\'s names, and checked', () => {
    const app = new Celery('t', { beat_max_loop_interval: 5, beat_schedule_filename: 'x.json', beat_lease_url: false });
    expect(app.conf.beat_schedule).to.deep.equal({});
    expect(() => new Celery('t', { beat_lease_url: 5 as never })).to.throw(ImproperlyConfigured, /beat_lease_url must be a string or false or null/);
    expect(() => new Celery('t', { beat_schedul: {} } as never)).to.throw(ImproperlyConfigured, /did you mean "beat_schedule"/);
  });

  it('the lease lives in beat_lease_url, else in a redis:// result backend; false turns it off', () => {
    expect(leaseConfig(new Celery('shop', { result_backend: 'redis://h:6379/3' }))).to.deep.equal({ url: 'redis://h:6379/3', key: 'ts-celery:beat:shop', ttlSeconds: 10 });
    expect(leaseConfig(new Celery('shop', { result_backend: 'rpc://' }))).to.equal(null);
    expect(leaseConfig(new Celery('shop', { result_backend: 'redis://h/3', beat_lease_url: false }))).to.equal(null);
    expect(leaseConfig(new Celery('shop', { result_backend: 'rpc://', beat_lease_url: 'redis://l/1', beat_lease_key: 'k', beat_lease_ttl: 3 }))).to.deep.equal({ url: 'redis://l/1', key: 'k', ttlSeconds: 3 });
    expect(() => leaseConfig(new Celery('shop', { beat_lease_url: 'amqp://x' }))).to.throw(ImproperlyConfigured, /redis:\/\//);
  });
});

describe('the schedule file', () => {
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'ts-celery-beat-'))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('is compacted by an atomic rename, keeping every entry\'s last run', async () => {
    const file = join(dir, 's.json');
    const store = new FileStore(file, getLogger('t'));
    const entries = Object.fromEntries(Array.from({ length: 100 }, (_, i) => [`e${i}`, { lastRunAt: 0, totalRunCount: 0 }]));
    await store.save({ timezone: 'UTC', utcEnabled: true, entries });
    for (let n = 1; n <= 400; n++) {
      await store.record(Array.from({ length: 100 }, (_, i) => [`e${i}`, { lastRunAt: n * 1000, totalRunCount: n }] as const));
      await new Promise((r) => setTimeout(r, 1)); // the compaction's disk I/O runs meanwhile, as while beat sleeps
    }
    // 400 lines of ~4 KB is past the 1-MB limit: compacted in the background, keeping the runs
    // recorded while it wrote; no temporary file is left.
    expect(readFileSync(file, 'utf8').split('\n').length).to.be.lessThan(400);
    expect(readdirSync(dir)).to.deep.equal(['s.json']);
    const loaded = await new FileStore(file, getLogger('t')).load();
    expect(loaded!.entries.e99).to.deep.equal({ lastRunAt: 400_000, totalRunCount: 400 });
    await store.close();
    expect(readFileSync(file, 'utf8').trim().split('\n')).to.have.length(1);
  });

  it('a large schedule\'s snapshot is built in slices; runs recorded between the slices are kept', async () => {
    const file = join(dir, 's.json');
    const store = new FileStore(file, getLogger('t'));
    const names = Array.from({ length: 2_500 }, (_, i) => `e"${i}é`); // names that JSON must escape
    await store.save({ timezone: 'Europe/Paris', utcEnabled: false, entries: Object.fromEntries(names.map((n) => [n, { lastRunAt: 0, totalRunCount: 0 }])) });
    const last = new Map<string, number>();
    const compacting = (): Promise<void> | null => (store as unknown as { compacting: Promise<void> | null }).compacting;
    let during = 0;
    for (let n = 1; n <= 200 && during < 3; n++) {
      // 500 runs a line, a turn of the loop between lines: the lines after the one that starts a
      // compaction land while its snapshot (3 slices) is being built.
      const batch = names.slice((n * 500) % names.length, ((n * 500) % names.length) + 500);
      const building = compacting() !== null;
      await store.record(batch.map((name) => [name, { lastRunAt: n * 1000 + 7, totalRunCount: n }] as const));
      for (const name of batch) last.set(name, n);
      if (building) during++;
      await new Promise((r) => setImmediate(r));
    }
    expect(during).to.equal(3);
    await compacting();
    expect(readFileSync(file, 'utf8').trim().split('\n').length).to.be.at.most(5); // the snapshot and the lines meanwhile
    for (const reader of ['while open', 'after close'] as const) {
      if (reader === 'after close') await store.close();
      const loaded = await new FileStore(file, getLogger('t')).load();
      expect(loaded!.timezone).to.equal('Europe/Paris');
      for (const name of names) {
        const n = last.get(name) ?? 0;
        expect(loaded!.entries[name], `${name} ${reader}`).to.deep.equal({ lastRunAt: n ? n * 1000 + 7 : 0, totalRunCount: n });
      }
    }
    expect(readdirSync(dir)).to.deep.equal(['s.json']);
  });

  it('a file that is not a ts-celery schedule (e.g. Python\'s shelve db) is moved aside, and beat starts afresh', async () => {
    const file = join(dir, 'celerybeat-schedule');
    writeFileSync(file, Buffer.from([0, 6, 21, 97, 0, 0]));
    const lines: string[] = [];
    const restore = setLogSink((l) => lines.push(l));
    try {
      expect(await new FileStore(file, getLogger('t')).load()).to.equal(null);
    } finally {
      setLogSink(restore);
    }
    expect(readdirSync(dir)[0]).to.match(/^celerybeat-schedule\.corrupt-\d+$/);
    expect(lines.join('\n')).to.match(/Removing corrupted schedule file/);
  });
});
