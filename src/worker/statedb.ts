/**
 * `--statedb` (`worker_state_db`): revoked task ids survive a restart, as with
 * Celery's `-S`. The file is JSON (`{"version": 1, "revoked": [...], "clock": n}`,
 * oldest id first), written atomically (temp file + rename) at shutdown and a
 * second after the revoked set changes, so even a killed worker keeps what
 * was revoked until then. Python's shelve files are not read (see README).
 */
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { ImproperlyConfigured } from '../errors.js';
import type { LamportClock } from '../support/clock.js';
import { getLogger } from '../support/log.js';
import type { WorkerState } from './state.js';

const log = getLogger('MainProcess');
const SAVE_DELAY_MS = 1000;

interface StateFile {
  version: 1;
  revoked: string[];
  clock: number;
}

export class StateDb {
  private timer: NodeJS.Timeout | null = null;

  constructor(
    readonly path: string,
    private readonly state: WorkerState,
    private readonly clock: LamportClock,
  ) {}

  /** Merges the file into the state (ids get a fresh timestamp, as Celery's merge_revoked does). */
  load(): void {
    if (!existsSync(this.path)) return;
    let data: Partial<StateFile>;
    try {
      data = JSON.parse(readFileSync(this.path, 'utf8')) as Partial<StateFile>;
    } catch (err) {
      throw new ImproperlyConfigured(
        `--statedb ${this.path} is not a ts-celery state file (${(err as Error).message}); ` +
          `Python's shelve state files cannot be read: give the TypeScript worker a file of its own`,
      );
    }
    if (data.version !== 1 || !Array.isArray(data.revoked)) {
      throw new ImproperlyConfigured(`--statedb ${this.path}: unknown state file format (version ${String(data.version)})`);
    }
    this.state.revoked.update(data.revoked.filter((id): id is string => typeof id === 'string'));
    this.state.revoked.purge();
    if (typeof data.clock === 'number') this.clock.adjust(data.clock);
    log.info(`statedb: ${this.state.revoked.size} revoked task id(s) loaded from ${this.path}`);
  }

  /** Saves a second from now (coalescing bursts of revokes). */
  scheduleSave(): void {
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.trySave();
    }, SAVE_DELAY_MS);
    this.timer.unref();
  }

  private trySave(): void {
    try {
      this.save();
    } catch (err) {
      log.error(`statedb: could not save ${this.path}: ${(err as Error).message}`);
    }
  }

  /** Writes the file now (temp file, then rename: never a half-written state). */
  save(): void {
    this.state.revoked.purge();
    const data: StateFile = { version: 1, revoked: this.state.revoked.toArray(), clock: this.clock.forward() };
    const tmp = `${this.path}.tmp-${process.pid}`;
    writeFileSync(tmp, JSON.stringify(data));
    renameSync(tmp, this.path);
  }

  /** Final save at shutdown. */
  close(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.trySave();
  }
}
