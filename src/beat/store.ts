/**
 * Where beat keeps each entry's last run, so that a restart neither repeats
 * nor skips a run: the schedule file (one beat), or Redis under the lease
 * (several beats; see `lease.ts`).
 *
 * Every run is recorded *before* its message is sent. A beat that dies
 * between the two loses that one run (at most once) instead of sending it
 * again after the restart.
 */
import { closeSync, existsSync, fsyncSync, openSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { ImproperlyConfigured } from '../errors.js';
import type { Logger } from '../support/log.js';

/** One entry's saved state (Celery's `last_run_at` and `total_run_count`). */
export interface EntryState {
  /** Epoch ms of the last run. */
  lastRunAt: number;
  totalRunCount: number;
}

/** Everything a store keeps. A changed time zone resets it, as in Celery. */
export interface SavedSchedule {
  timezone: string;
  utcEnabled: boolean;
  entries: Record<string, EntryState>;
}

/** A run to record: the entry's name and its new state. */
export type RunRecord = readonly [name: string, state: EntryState];

/** Persistence for the scheduler. */
export interface ScheduleStore {
  /** Where the state lives, for the banner (no passwords). */
  readonly description: string;
  /** The saved state, or null when there is none yet. */
  load(): Promise<SavedSchedule | null>;
  /** Replaces the saved state (at start-up). False = this beat may not write (it lost its lease). */
  save(state: SavedSchedule): Promise<boolean>;
  /** Records runs before they are sent. False = this beat may not send them (it lost its lease). */
  record(runs: readonly RunRecord[]): Promise<boolean>;
  close(): Promise<void>;
}

const FORMAT = 'ts-celery beat schedule';
const iso = (ms: number): string => new Date(ms).toISOString();

/**
 * `iso()` with a one-value cache: every run of a batch has the same last-run time, and at
 * thousands of runs a second a Date and a string per run are garbage the collector pays for.
 */
export function isoCached(): (ms: number) => string {
  let lastMs = NaN;
  let last = '';
  return (ms) => (ms === lastMs ? last : ((lastMs = ms), (last = iso(ms))));
}

/** Entries per slice of a background snapshot: the loop gets a turn between slices. */
const SNAPSHOT_SLICE = 1_000;

interface SnapshotLine {
  format: string;
  version: 1;
  timezone: string;
  utc_enabled: boolean;
  entries: Record<string, { last_run_at: string; total_run_count: number }>;
}
type RunLine = Array<[string, string, number]>;

/**
 * The schedule file (`beat_schedule_filename`, `-s`): JSON lines. The first
 * line is a snapshot of every entry; each further line records one batch of
 * runs, appended with one `write()` before the batch is sent. Past a size
 * limit the file is compacted: a new snapshot is written to a temporary
 * file and flushed to disk off the event loop (sending goes on meanwhile,
 * appending to the old file and remembering the lines), then the lines
 * recorded meanwhile are appended to it and it is renamed over the old file.
 * A crash at any point leaves either the old file or the new one, each with
 * every recorded run. A torn last line (a crash in the middle of an append)
 * is ignored: its runs were never sent.
 */
export class FileStore implements ScheduleStore {
  readonly path: string;
  readonly description: string;
  private fd: number | null = null;
  private state: SavedSchedule | null = null;
  private journalBytes = 0;
  private snapshotBytes = 0;
  private compacting: Promise<void> | null = null;
  /** Lines appended while a compaction writes its snapshot: they go into the new file too. */
  private sinceSnapshot: string[] | null = null;
  private readonly recordIso = isoCached();

  constructor(
    filename: string,
    private readonly log: Logger,
  ) {
    this.path = resolve(filename);
    this.description = this.path;
  }

  async load(): Promise<SavedSchedule | null> {
    this.removeStaleTemporaries();
    if (!existsSync(this.path)) return null;
    const text = readFileSync(this.path, 'utf8');
    const lines = text.split('\n');
    let snapshot: SnapshotLine;
    try {
      snapshot = JSON.parse(lines[0]!) as SnapshotLine;
      if (snapshot.format !== FORMAT || snapshot.version !== 1 || typeof snapshot.entries !== 'object') throw new Error('not a ts-celery schedule file');
    } catch (err) {
      // As Celery removes a corrupted schedule db; we keep it aside for a look.
      const aside = `${this.path}.corrupt-${Date.now()}`;
      renameSync(this.path, aside);
      this.log.error(`Removing corrupted schedule file ${JSON.stringify(this.path)} (moved to ${aside}): ${(err as Error).message}`);
      return null;
    }
    const state: SavedSchedule = { timezone: snapshot.timezone, utcEnabled: snapshot.utc_enabled, entries: {} };
    for (const [name, e] of Object.entries(snapshot.entries)) {
      state.entries[name] = { lastRunAt: Date.parse(e.last_run_at), totalRunCount: e.total_run_count };
    }
    for (let i = 1; i < lines.length; i++) {
      if (!lines[i]) continue;
      let runs: RunLine;
      try {
        runs = JSON.parse(lines[i]!) as RunLine;
      } catch {
        // Only the last line can be torn (a crash mid-append, before its runs were sent).
        if (lines.slice(i + 1).some(Boolean)) this.log.warning(`Schedule file ${this.path}: skipping unreadable line ${i + 1}`);
        continue;
      }
      for (const [name, at, count] of runs) state.entries[name] = { lastRunAt: Date.parse(at), totalRunCount: count };
    }
    return state;
  }

  async save(state: SavedSchedule): Promise<boolean> {
    await this.compacting;
    this.state = { ...state, entries: { ...state.entries } };
    this.compactNow();
    return true;
  }

  async record(runs: readonly RunRecord[]): Promise<boolean> {
    if (!this.state || this.fd === null) throw new Error('FileStore.record() before save()');
    const at = this.recordIso;
    const line = `${JSON.stringify(runs.map(([name, s]) => [name, at(s.lastRunAt), s.totalRunCount]))}\n`;
    // One write(): either the whole line reaches the file or the process died before sending.
    this.journalBytes += writeSync(this.fd, line);
    this.sinceSnapshot?.push(line);
    for (const [name, s] of runs) this.state.entries[name] = s;
    if (!this.compacting && this.journalBytes > Math.max(1 << 20, 2 * this.snapshotBytes)) {
      this.compacting = this.compactInBackground().finally(() => (this.compacting = null));
    }
    return true;
  }

  private snapshotText(): string {
    const state = this.state!;
    const at = isoCached();
    const snapshot: SnapshotLine = {
      format: FORMAT,
      version: 1,
      timezone: state.timezone,
      utc_enabled: state.utcEnabled,
      entries: Object.fromEntries(
        Object.entries(state.entries).map(([name, e]) => [name, { last_run_at: at(e.lastRunAt), total_run_count: e.totalRunCount }]),
      ),
    };
    return `${JSON.stringify(snapshot)}\n`;
  }

  /**
   * The same text as {@link snapshotText} for the state as it is now, built in slices with the
   * event loop free in between: with 10,000 entries one synchronous build held beat's loop (and the
   * confirms waiting on it) for tens of ms. The entries are copied now (each record replaces an
   * entry's state object, never changes it), so later records do not leak into this snapshot;
   * they are in the lines the caller collects from now on.
   */
  private async snapshotTextInSlices(): Promise<string> {
    const state = this.state!;
    const entries = Object.entries(state.entries);
    const at = isoCached();
    const parts: string[] = [];
    for (let i = 0; i < entries.length; i += SNAPSHOT_SLICE) {
      if (i > 0) await new Promise((resolve) => setImmediate(resolve));
      for (const [name, e] of entries.slice(i, i + SNAPSHOT_SLICE)) {
        parts.push(`${JSON.stringify(name)}:{"last_run_at":"${at(e.lastRunAt)}","total_run_count":${e.totalRunCount}}`);
      }
    }
    const head = JSON.stringify({ format: FORMAT, version: 1, timezone: state.timezone, utc_enabled: state.utcEnabled, entries: {} }).slice(0, -3);
    return `${head}{${parts.join(',')}}}\n`;
  }

  private get tmpPath(): string {
    return `${this.path}.tmp-${process.pid}`;
  }

  /** Replaces the file by a snapshot at once (start-up and shutdown). */
  private compactNow(): void {
    const text = this.snapshotText();
    try {
      writeFileSync(this.tmpPath, text);
      const fd = openSync(this.tmpPath, 'r+');
      fsyncSync(fd);
      closeSync(fd);
      this.switchTo(this.tmpPath, text.length, 0);
    } catch (err) {
      throw new ImproperlyConfigured(`Cannot write the beat schedule file ${this.path}: ${(err as Error).message}`);
    }
  }

  /** Renames the new file over the schedule file and appends to it from now on. */
  private switchTo(tmp: string, snapshotBytes: number, journalBytes: number): void {
    renameSync(tmp, this.path);
    if (this.fd !== null) closeSync(this.fd);
    this.fd = openSync(this.path, 'a');
    this.snapshotBytes = snapshotBytes;
    this.journalBytes = journalBytes;
  }

  private async compactInBackground(): Promise<void> {
    // Collecting starts together with the copy of the state the snapshot is made of.
    this.sinceSnapshot = [];
    const tmp = this.tmpPath;
    try {
      const text = await this.snapshotTextInSlices();
      const file = await open(tmp, 'w');
      try {
        await file.writeFile(text);
        await file.sync(); // off the event loop: sends go on meanwhile
        // From here to the rename nothing awaits, so no run can be recorded in between.
        const meanwhile = this.sinceSnapshot.join('');
        const journal = meanwhile ? writeSync(file.fd, meanwhile) : 0;
        this.switchTo(tmp, text.length, journal);
      } finally {
        await file.close();
      }
    } catch (err) {
      rmSync(tmp, { force: true });
      this.log.error(`Cannot compact the beat schedule file ${this.path} (it keeps growing until this works): ${(err as Error).message}`);
    } finally {
      this.sinceSnapshot = null;
    }
  }

  /** Temporary files of compactions that a crash interrupted. */
  private removeStaleTemporaries(): void {
    const prefix = `${basename(this.path)}.tmp-`;
    try {
      for (const f of readdirSync(dirname(this.path))) if (f.startsWith(prefix)) rmSync(join(dirname(this.path), f), { force: true });
    } catch {
      /* the folder does not exist yet: save() says so */
    }
  }

  async close(): Promise<void> {
    await this.compacting;
    if (this.fd === null) return;
    if (this.journalBytes > 0) this.compactNow();
    closeSync(this.fd!);
    this.fd = null;
  }
}
