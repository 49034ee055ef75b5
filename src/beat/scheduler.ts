/**
 * The scheduler loop: Celery's `Scheduler.tick`, on a heap of due times.
 *
 * Celery's semantics, kept:
 * - an entry's next run is `schedule.next(last run)`; a new entry's last run is
 *   "now" (it runs one interval after beat starts, not at once);
 * - the last run becomes the time the run was *sent*, so runs missed while
 *   beat was down are sent once, not once per missed interval;
 * - a changed entry keeps its last run; a removed one is dropped; a changed
 *   `timezone` or `enable_utc` resets every entry (`Reset: Timezone changed`);
 * - `beat_cron_starting_deadline` skips a missed crontab run older than that.
 *
 * What is added: each batch of due runs is recorded in the store before it
 * is sent (no repeats after a restart, fencing under a lease), and every
 * message expires when the entry's next run is due unless the entry sets
 * `expires` (a backlog of runs never floods the workers after an outage).
 */
import { isEnabled, type Logger } from '../support/log.js';
import { Crontab } from './crontab.js';
import { describeEntry, type ScheduleEntry } from './entry.js';
import { humanizeSeconds } from './schedules.js';
import type { EntryState, RunRecord, ScheduleStore } from './store.js';

/** Time, injectable for tests. `sleep` resolves early when `signal` aborts. */
export interface Clock {
  now(): number;
  sleep(ms: number, signal: AbortSignal): Promise<void>;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  sleep: (ms, signal) =>
    new Promise<void>((resolve) => {
      if (signal.aborted) return resolve();
      const done = (): void => {
        clearTimeout(timer);
        signal.removeEventListener('abort', done);
        resolve();
      };
      const timer = setTimeout(done, Math.max(0, ms));
      signal.addEventListener('abort', done);
    }),
};

/** A run about to be sent: the entry and the seconds its message lives (undefined = no expiry). */
export type SendFn = (entry: ScheduleEntry, expiresSeconds: number | undefined) => Promise<unknown>;

export interface SchedulerOptions {
  entries: readonly ScheduleEntry[];
  store: ScheduleStore;
  /** The app's `timezone` (IANA name) and `enable_utc`: crontabs are read in it. */
  timezone: string;
  utcEnabled: boolean;
  /** Longest sleep between checks (`beat_max_loop_interval`), ms. */
  maxIntervalMs: number;
  /** `beat_cron_starting_deadline`, seconds, or null. */
  cronStartingDeadline: number | null;
  send: SendFn;
  log: Logger;
  clock?: Clock;
  /** Sends awaiting their broker confirm at most; the loop waits beyond this. */
  maxInFlight?: number;
  /** Called when a run's message was confirmed by the broker (for metrics). */
  onSent?: (entry: ScheduleEntry, times: SendTimes) => void;
}

/** When a run was due, handed to the broker client, and confirmed by the broker (epoch ms). */
export interface SendTimes {
  dueAt: number;
  dispatchedAt: number;
  confirmedAt: number;
}

interface Slot {
  entry: ScheduleEntry;
  state: EntryState;
  dueAt: number;
  /** The schedule failed to give a next run: at `dueAt`, ask it again instead of sending. */
  recheck?: boolean;
}

/** Runs recorded and sent together at most (see `run`). */
const BATCH = 500;
/** Record calls in flight at most (see `run`). */
const MAX_RECORDING = 4;

/** Wakes everyone waiting for the next event (a send or a record call settling). */
class Wakeup {
  private waiters: Array<() => void> = [];
  /** Resolves at the next {@link fire}. */
  next(): Promise<void> {
    return new Promise((resolve) => this.waiters.push(resolve));
  }
  fire(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const wake of waiters) wake();
  }
}

/** Why `run()` returned. */
export type StopReason = 'stopped' | 'fenced';

export class Scheduler {
  private readonly clock: Clock;
  private heap: Slot[] = [];
  private readonly abort = new AbortController();
  /** Sends awaiting their confirm, and who waits for that number to drop. */
  private inFlight = 0;
  private readonly sendSettled = new Wakeup();
  private readonly maxInFlight: number;
  /** Record calls in flight, and who waits for one to settle. */
  private recording = 0;
  private readonly recordSettled = new Wakeup();
  /** The store refused a record: another beat holds the lease. */
  private fenced = false;
  /** After a failed record, nothing is tried before this time (epoch ms). */
  private retryAt = 0;
  /** Runs sent so far (for tests and the final log line). */
  sent = 0;

  constructor(private readonly o: SchedulerOptions) {
    this.clock = o.clock ?? systemClock;
    this.maxInFlight = o.maxInFlight ?? 2_000;
  }

  /**
   * Loads the saved state, merges it with the configured entries as Celery's
   * `merge_inplace` does, and saves the result. False = the store refused (lease lost).
   */
  async setup(): Promise<boolean> {
    const { o } = this;
    let saved = await o.store.load();
    if (saved && saved.timezone !== o.timezone) {
      o.log.warning(`Reset: Timezone changed from ${JSON.stringify(saved.timezone)} to ${JSON.stringify(o.timezone)}`);
      saved = null;
    } else if (saved && saved.utcEnabled !== o.utcEnabled) {
      const word = (b: boolean): string => (b ? 'enabled' : 'disabled');
      o.log.warning(`Reset: UTC changed from ${word(saved.utcEnabled)} to ${word(o.utcEnabled)}`);
      saved = null;
    }
    const now = this.clock.now();
    const entries: Record<string, EntryState> = {};
    this.heap = [];
    for (const entry of o.entries) {
      const state = saved?.entries[entry.name] ?? { lastRunAt: now, totalRunCount: 0 };
      entries[entry.name] = state;
      this.schedule({ entry, state, dueAt: 0 }, state.lastRunAt);
    }
    o.log.debug(`Current schedule:\n${o.entries.map(describeEntry).join('\n')}`);
    return o.store.save({ timezone: o.timezone, utcEnabled: o.utcEnabled, entries });
  }

  /** When each entry runs next, for the start-up log. */
  upcoming(): Array<{ name: string; at: Date }> {
    return [...this.heap].sort((a, b) => a.dueAt - b.dueAt).map((s) => ({ name: s.entry.name, at: new Date(s.dueAt) }));
  }

  private nextRun(entry: ScheduleEntry, after: number): number {
    return entry.schedule.next(new Date(after), this.o.timezone).getTime();
  }

  /** Puts `slot` on the heap at its next run after `after`. */
  private schedule(slot: Slot, after: number): void {
    try {
      slot.dueAt = this.nextRun(slot.entry, after);
      if (!Number.isFinite(slot.dueAt)) throw new Error(`${slot.entry.schedule.toString()}.next() returned an invalid Date`);
      slot.recheck = false;
    } catch (err) {
      // As Celery: an entry whose next run can't be calculated must not stop beat (or be sent).
      const wait = this.o.maxIntervalMs;
      this.o.log.error(`beat: Cannot calculate the next run of ${JSON.stringify(slot.entry.name)}, trying again in ${humanizeSeconds(wait / 1000)}: ${(err as Error).message}`);
      slot.dueAt = this.clock.now() + wait;
      slot.recheck = true;
    }
    this.push(slot);
  }

  /**
   * Runs until `stop()` (resolves 'stopped') or until the store refuses a run ('fenced').
   *
   * Each batch of due runs is sent only once the store has recorded it (nothing is repeated after
   * a crash; under a lease, a fenced-out beat sends nothing). Records are pipelined: while one
   * batch's record call is on its way (a Redis round trip under a lease), the next batch is
   * collected and its record started, up to {@link MAX_RECORDING} at once, so the send lag of a
   * busy schedule is not one round trip per batch. The store keeps the calls in order (one Redis
   * connection; the schedule file writes synchronously), and a batch's entries are out of the heap
   * until its record settles, so no entry is in two batches.
   */
  async run(): Promise<StopReason> {
    const { o, clock } = this;
    const signal = this.abort.signal;
    try {
      while (!signal.aborted && !this.fenced) {
        const now = clock.now();
        if (now < this.retryAt) {
          await clock.sleep(this.retryAt - now, signal);
          continue;
        }
        const due: Slot[] = [];
        // At most BATCH runs at a time: one record call and one burst of publishes stay short,
        // and confirms and timers get their turn between bursts.
        while (this.heap.length && this.heap[0]!.dueAt <= now && due.length < BATCH) {
          const slot = this.pop();
          if (slot.recheck) this.schedule(slot, slot.state.lastRunAt);
          else due.push(slot);
        }
        const runs = due.filter((slot) => this.withinDeadline(slot, now));
        if (runs.length === 0) {
          // Batches still being recorded come back into the heap when they settle: wait for that
          // (a round trip) rather than sleeping past their entries' next runs.
          if (this.recording > 0) {
            await this.recordSettled.next();
            continue;
          }
          const top = this.heap[0];
          const wait = top ? Math.min(top.dueAt - now, o.maxIntervalMs) : o.maxIntervalMs;
          if (wait > 1000) o.log.debug(`beat: Waking up in ${humanizeSeconds(wait / 1000)}.`);
          await clock.sleep(wait, signal);
          continue;
        }
        while (this.recording >= MAX_RECORDING) await this.recordSettled.next();
        this.recordThenSend(runs, now);
        // Backpressure: a broker that confirms slower than runs come due holds the loop here.
        while (this.inFlight >= this.maxInFlight) await this.sendSettled.next();
        if (due.length === BATCH) await new Promise((resolve) => setImmediate(resolve));
      }
      while (this.recording > 0) await this.recordSettled.next();
      return this.fenced ? 'fenced' : 'stopped';
    } finally {
      while (this.inFlight > 0) await this.sendSettled.next();
    }
  }

  /** Records one batch, then sends it; a refused record (fenced) or a failed one sends nothing. */
  private recordThenSend(runs: Slot[], now: number): void {
    const { o } = this;
    const records: RunRecord[] = runs.map((s) => [s.entry.name, { lastRunAt: now, totalRunCount: s.state.totalRunCount + 1 }]);
    this.recording++;
    o.store
      .record(records)
      .then(
        (recorded) => {
          if (!recorded) {
            // Another beat holds the lease now: these runs are its to send.
            for (const slot of runs) this.push(slot);
            this.fenced = true;
            return;
          }
          // Recorded, so sent even if stop() came meanwhile: a recorded run that is not sent would be lost.
          for (const [i, slot] of runs.entries()) {
            const dueAt = slot.dueAt;
            slot.state = records[i]![1];
            this.schedule(slot, now);
            this.dispatch(slot, now, dueAt);
          }
        },
        (err: unknown) => {
          // Nothing was sent: put the runs back and try again shortly.
          for (const slot of runs) this.push(slot);
          o.log.error(`beat: Cannot record ${runs.length} due run(s) before sending them, trying again in 1 second: ${(err as Error).message}`);
          this.retryAt = Math.max(this.retryAt, this.clock.now() + 1000);
        },
      )
      .finally(() => {
        this.recording--;
        this.recordSettled.fire();
      });
  }

  /** Stops the loop; `run()` resolves once the sends in flight are confirmed or failed. */
  stop(): void {
    this.abort.abort();
  }

  /**
   * `beat_cron_starting_deadline`: a crontab run missed by more than the
   * deadline is skipped (not sent, not recorded) and the entry waits for its
   * next run, as in Celery.
   */
  private withinDeadline(slot: Slot, now: number): boolean {
    const deadline = this.o.cronStartingDeadline;
    if (deadline === null || !(slot.entry.schedule instanceof Crontab) || slot.dueAt >= now) return true;
    if (this.nextRun(slot.entry, now - deadline * 1000 - 1) <= now) return true;
    this.o.log.info(`Scheduler: Skipping ${slot.entry.name}: its run at ${new Date(slot.dueAt).toISOString()} is past beat_cron_starting_deadline`);
    this.schedule(slot, now);
    return false;
  }

  private dispatch(slot: Slot, now: number, dueAt: number): void {
    const { entry } = slot;
    // Checked first: at thousands of runs a second, building a line nobody logs is real garbage.
    if (isEnabled('info')) this.o.log.info(`Scheduler: Sending due task ${entry.name} (${entry.task})`);
    // Unless the entry says otherwise, a message expires when the next one is due:
    // after an outage of the workers, each entry has at most one run waiting.
    const expires = entry.expires === undefined ? (slot.dueAt - now) / 1000 : (entry.expires ?? undefined);
    const dispatchedAt = this.clock.now();
    this.inFlight++;
    this.o.send(entry, expires).then(
      () => {
        this.sent++;
        this.o.onSent?.(entry, { dueAt, dispatchedAt, confirmedAt: this.clock.now() });
        this.settle();
      },
      (err: unknown) => {
        // As Celery: the run counts as done (it was recorded); the next one follows its schedule.
        this.o.log.error(`Message Error: Couldn't apply scheduled task ${entry.name}: ${(err as Error).message}`);
        this.settle();
      },
    );
  }

  private settle(): void {
    this.inFlight--;
    this.sendSettled.fire();
  }

  // A binary min-heap on dueAt.
  private push(slot: Slot): void {
    const h = this.heap;
    h.push(slot);
    let i = h.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (h[parent]!.dueAt <= h[i]!.dueAt) break;
      [h[parent], h[i]] = [h[i]!, h[parent]!];
      i = parent;
    }
  }

  private pop(): Slot {
    const h = this.heap;
    const top = h[0]!;
    const last = h.pop()!;
    if (h.length) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && h[l]!.dueAt < h[m]!.dueAt) m = l;
        if (r < h.length && h[r]!.dueAt < h[m]!.dueAt) m = r;
        if (m === i) break;
        [h[m], h[i]] = [h[i]!, h[m]!];
        i = m;
      }
    }
    return top;
  }
}
