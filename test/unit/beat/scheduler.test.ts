/**
 * The scheduler loop on a virtual clock, with the real schedule file in a
 * temporary directory: when runs are sent, that missed runs are sent once,
 * that a restart repeats nothing, how changed entries and time zones are
 * merged (as Celery's PersistentScheduler does), message expiry, fencing.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { crontab } from '../../../src/beat/crontab.js';
import { normalizeSchedule } from '../../../src/beat/entry.js';
import { Scheduler, type Clock } from '../../../src/beat/scheduler.js';
import { FileStore, type RunRecord, type SavedSchedule, type ScheduleStore } from '../../../src/beat/store.js';
import type { BeatSchedule } from '../../../src/beat/types.js';
import { getLogger, setLogLevel, setLogSink } from '../../../src/support/log.js';

const T0 = Date.parse('2026-03-02T10:00:00.000Z');

/** Virtual time: each sleep jumps the clock forward; the run stops once `until` is reached. */
class VirtualClock implements Clock {
  t: number;
  constructor(
    start: number,
    private readonly until: number,
    private readonly onEnd: () => void,
  ) {
    this.t = start;
  }
  now(): number {
    return this.t;
  }
  async sleep(ms: number): Promise<void> {
    await Promise.resolve();
    if (this.t + ms > this.until) {
      this.t = this.until;
      this.onEnd();
      return;
    }
    this.t += Math.max(ms, 1);
  }
}

interface Sent {
  name: string;
  at: number;
  expires: number | undefined;
}

let dir: string;
let logs: string[];

/** Runs a scheduler from `start` to `until` (virtual ms) and returns what it sent. */
async function runBeat(
  schedule: BeatSchedule,
  opts: { start: number; until: number; store?: ScheduleStore; timezone?: string; deadline?: number | null; close?: boolean },
): Promise<{ sent: Sent[]; reason: string; scheduler: Scheduler }> {
  const sent: Sent[] = [];
  const store = opts.store ?? new FileStore(join(dir, 'schedule.json'), getLogger('test'));
  let scheduler!: Scheduler;
  const clock = new VirtualClock(opts.start, opts.until, () => scheduler.stop());
  scheduler = new Scheduler({
    entries: normalizeSchedule(schedule),
    store,
    timezone: opts.timezone ?? 'UTC',
    utcEnabled: true,
    maxIntervalMs: 300_000,
    cronStartingDeadline: opts.deadline ?? null,
    send: async (entry, expires) => void sent.push({ name: entry.name, at: clock.now(), expires }),
    log: getLogger('MainProcess'),
    clock,
  });
  const ok = await scheduler.setup();
  const reason = ok ? await scheduler.run() : 'fenced-at-setup';
  if (opts.close !== false) await store.close();
  return { sent, reason, scheduler };
}

const secs = (sent: Sent[], from = T0): number[] => sent.map((s) => (s.at - from) / 1000);

describe('beat scheduler (virtual clock, real schedule file)', () => {
  let restoreSink: (line: string) => void;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'ts-celery-beat-'));
    logs = [];
    restoreSink = setLogSink((l) => logs.push(l));
    setLogLevel('info');
  });
  afterEach(() => {
    setLogSink(restoreSink);
    setLogLevel('warning');
    rmSync(dir, { recursive: true, force: true });
  });

  it('sends an every-2-s entry at 2, 4, 6, 8, 10 s, logging each send as Celery does', async () => {
    const { sent } = await runBeat({ every2: { task: 'py.add', schedule: 2, args: [2, 2] } }, { start: T0, until: T0 + 10_500 });
    expect(secs(sent)).to.deep.equal([2, 4, 6, 8, 10]);
    expect(logs.filter((l) => l.includes('Scheduler: Sending due task every2 (py.add)'))).to.have.length(5);
  });

  it('a message expires when the next run is due, unless the entry sets expires', async () => {
    const { sent } = await runBeat(
      {
        a: { task: 't', schedule: 2 },
        b: { task: 't', schedule: 2, options: { expires: 30 } },
        c: { task: 't', schedule: 2, options: { expires: null } },
        d: { task: 't', schedule: crontab({ minute: '*/15' }) },
      },
      { start: T0, until: T0 + 15 * 60_000 + 100 },
    );
    const first = (name: string): Sent => sent.find((s) => s.name === name)!;
    expect(first('a').expires).to.equal(2);
    expect(first('b').expires).to.equal(30);
    expect(first('c').expires).to.equal(undefined);
    expect(first('d').at).to.equal(T0 + 15 * 60_000);
    expect(first('d').expires).to.equal(15 * 60); // until 10:30
  });

  it('after an outage sends each missed entry once, not once per missed interval', async () => {
    await runBeat({ every2: { task: 't', schedule: 2 } }, { start: T0, until: T0 + 5_000 });
    // Down for an hour: 1,800 runs missed.
    const later = T0 + 3_600_000;
    const { sent } = await runBeat({ every2: { task: 't', schedule: 2 } }, { start: later, until: later + 4_500 });
    expect(secs(sent, later)).to.deep.equal([0, 2, 4]);
  });

  it('a restart repeats nothing and skips nothing: the next run follows the last one recorded', async () => {
    const first = await runBeat({ every2: { task: 't', schedule: 2 } }, { start: T0, until: T0 + 5_000 });
    expect(secs(first.sent)).to.deep.equal([2, 4]);
    // Back 0.5 s later: the next run is at 6 s (4 + 2), not at once and not at 0.5 + 2.
    const second = await runBeat({ every2: { task: 't', schedule: 2 } }, { start: T0 + 5_500, until: T0 + 9_000 });
    expect(secs(second.sent)).to.deep.equal([6, 8]);
  });

  it('a crash (no clean shutdown) loses no recorded run: the journal is read back', async () => {
    await runBeat({ every2: { task: 't', schedule: 2 } }, { start: T0, until: T0 + 7_000, close: false });
    const lines = readFileSync(join(dir, 'schedule.json'), 'utf8').trim().split('\n');
    expect(lines).to.have.length(4); // the snapshot and three runs, not compacted
    const { sent } = await runBeat({ every2: { task: 't', schedule: 2 } }, { start: T0 + 7_100, until: T0 + 9_000 });
    expect(secs(sent)).to.deep.equal([8]);
  });

  it('a torn last line (a crash in the middle of a write) is ignored: those runs were never sent', async () => {
    await runBeat({ every2: { task: 't', schedule: 2 } }, { start: T0, until: T0 + 5_000, close: false });
    const file = join(dir, 'schedule.json');
    writeFileSync(file, `${readFileSync(file, 'utf8')}[["every2","2026-03-02T10:00:0`);
    const { sent } = await runBeat({ every2: { task: 't', schedule: 2 } }, { start: T0 + 5_100, until: T0 + 6_500 });
    expect(secs(sent)).to.deep.equal([6]);
  });

  it('a changed entry keeps its last run, a removed one is dropped, a new one starts now (Celery\'s merge)', async () => {
    await runBeat({ a: { task: 't', schedule: 10 }, gone: { task: 't', schedule: 1 } }, { start: T0, until: T0 + 10_500 });
    const { sent } = await runBeat(
      { a: { task: 't2', schedule: 3 }, fresh: { task: 't', schedule: 5 } },
      { start: T0 + 11_000, until: T0 + 16_500 },
    );
    // a ran at 10 s: with its new 3-s interval it runs at 13 and 16. fresh starts at 11 s: runs at 16.
    expect(sent.map((s) => `${s.name}@${(s.at - T0) / 1000}`).sort()).to.deep.equal(['a@13', 'a@16', 'fresh@16']);
    const saved = await new FileStore(join(dir, 'schedule.json'), getLogger('t')).load();
    expect(Object.keys(saved!.entries).sort()).to.deep.equal(['a', 'fresh']);
  });

  it('a changed time zone resets every entry, with Celery\'s warning', async () => {
    await runBeat({ a: { task: 't', schedule: 10 } }, { start: T0, until: T0 + 10_500 });
    const { sent } = await runBeat({ a: { task: 't', schedule: 10 } }, { start: T0 + 15_000, until: T0 + 26_000, timezone: 'Europe/Berlin' });
    expect(secs(sent)).to.deep.equal([25]); // from the restart, not from the run at 10 s
    expect(logs.some((l) => l.includes('Reset: Timezone changed from "UTC" to "Europe/Berlin"'))).to.equal(true);
  });

  it('beat_cron_starting_deadline skips a missed crontab run older than the deadline', async () => {
    const hourly = { h: { task: 't', schedule: crontab({ minute: 0 }) } };
    await runBeat(hourly, { start: T0 - 1000, until: T0 + 1000 }); // ran at 10:00
    // Down until 11:20: the 11:00 run is 20 minutes late.
    const back = T0 + 80 * 60_000;
    const skipped = await runBeat(hourly, { start: back, until: back + 41 * 60_000, deadline: 600 });
    expect(secs(skipped.sent).map((s) => s / 60)).to.deep.equal([120]); // 12:00 only, not 11:20
    // Down again until 13:20: the 13:00 run is 20 minutes late, within a 2-hour deadline: sent at once.
    const late = await runBeat(hourly, { start: T0 + 200 * 60_000, until: T0 + 201 * 60_000, deadline: 3600 * 2 });
    expect(secs(late.sent).map((s) => s / 60)).to.deep.equal([200]);
  });

  it('sends an every-minute crontab once a minute through the hour DST repeats (Celery 5.7 sends on every loop there)', async () => {
    // Berlin, 2026-10-25: 02:00-02:59 CET repeats 02:00-02:59 CEST. 01:05Z is the second 02:05.
    const start = Date.parse('2026-10-25T01:05:00Z');
    const { sent } = await runBeat({ m: { task: 't', schedule: crontab({ minute: '*' }) } }, { start, until: start + 10 * 60_000, timezone: 'Europe/Berlin' });
    expect(secs(sent, start).map((x) => x / 60)).to.deep.equal([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  });

  it('an entry whose schedule fails is logged and retried, never sent, and the others go on (as Celery)', async () => {
    let calls = 0;
    const broken = { next: () => { calls++; throw new Error('no next run'); }, toString: () => '<broken>' };
    const { sent } = await runBeat({ bad: { task: 't', schedule: broken }, ok: { task: 't', schedule: 100 } }, { start: T0, until: T0 + 700_000 });
    expect(sent.map((s) => s.name)).to.deep.equal(Array(7).fill('ok'));
    expect(calls).to.equal(3); // at start, then every 300 s (beat_max_loop_interval)
    expect(logs.some((l) => l.includes('Cannot calculate the next run of "bad", trying again in 5.00 minutes: no next run'))).to.equal(true);
  });

  it('a store that refuses a run (the lease is lost) stops the loop before anything is sent', async () => {
    let records = 0;
    const fenced: ScheduleStore = {
      description: 'fenced after two runs',
      load: async () => null,
      save: async (_s: SavedSchedule) => true,
      record: async (_runs: readonly RunRecord[]) => ++records <= 2,
      close: async () => undefined,
    };
    const { sent, reason } = await runBeat({ e: { task: 't', schedule: 1 } }, { start: T0, until: T0 + 10_000, store: fenced });
    expect(reason).to.equal('fenced');
    expect(secs(sent)).to.deep.equal([1, 2]);
  });

  it('when the store fails, nothing is sent and the run is retried', async () => {
    let calls = 0;
    const flaky: ScheduleStore = {
      description: 'fails once',
      load: async () => null,
      save: async () => true,
      record: async () => {
        if (++calls === 1) throw new Error('Redis is down');
        return true;
      },
      close: async () => undefined,
    };
    const { sent } = await runBeat({ e: { task: 't', schedule: 5 } }, { start: T0, until: T0 + 7_000, store: flaky });
    expect(secs(sent)).to.deep.equal([6]); // due at 5, failed, retried 1 s later
    expect(logs.some((l) => l.includes('Cannot record 1 due run(s) before sending them') && l.includes('Redis is down'))).to.equal(true);
  });
});
