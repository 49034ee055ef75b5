/** Spawns `ts-celery beat` (or `worker -B`) as users run it, and reads its log. */
import { spawn, type ChildProcess } from 'node:child_process';
import { CLI, ROOT } from './ts-worker.js';

export interface TsBeat {
  readonly child: ChildProcess;
  /** Everything printed so far (stdout + stderr). */
  output(): string;
  /** When each "Scheduler: Sending due task" line was logged. */
  sends(): number[];
  /** Resolves with the time (ms) the first line matching `re` was printed. */
  waitFor(re: RegExp, timeoutMs?: number): Promise<number>;
  /** SIGTERM and wait for the exit code; SIGKILL after `graceMs`. */
  stop(graceMs?: number): Promise<number | null>;
  readonly exited: Promise<number | null>;
}

const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const c of live) c.kill('SIGKILL');
});

/** The time of a log line `[YYYY-MM-DD HH:MM:SS,mmm: LEVEL/Process] ...` (local time). */
export function logTime(line: string): number | null {
  const m = /^\[(\d{4})-(\d\d)-(\d\d) (\d\d):(\d\d):(\d\d),(\d{3}): /.exec(line);
  if (!m) return null;
  const [y, mo, d, h, mi, s, ms] = m.slice(1).map(Number) as [number, number, number, number, number, number, number];
  return new Date(y, mo - 1, d, h, mi, s, ms).getTime();
}

/** `args` after the CLI path, e.g. `['beat', '-A', 'test/interop/beat-app', '-l', 'info']`. */
export function startTsBeat(args: string[], env: Record<string, string>, cwd = ROOT): TsBeat {
  const child = spawn(process.execPath, [CLI, ...args], { cwd, env: { ...process.env, ...env } });
  live.add(child);
  let out = '';
  const listeners = new Set<() => void>();
  const append = (d: Buffer): void => {
    out += d.toString();
    for (const l of listeners) l();
  };
  child.stdout!.on('data', append);
  child.stderr!.on('data', append);
  const exited = new Promise<number | null>((resolve) =>
    child.on('exit', (code) => {
      live.delete(child);
      resolve(code);
      for (const l of listeners) l();
    }),
  );
  const lines = (): string[] => out.split('\n');
  return {
    child,
    exited,
    output: () => out,
    sends: () => lines().filter((l) => l.includes('Scheduler: Sending due task')).map((l) => logTime(l)!),
    waitFor(re, timeoutMs = 20_000) {
      return new Promise<number>((resolve, reject) => {
        const check = (): void => {
          const line = lines().find((l) => re.test(l));
          if (line !== undefined) {
            done();
            resolve(logTime(line) ?? Date.now());
          } else if (child.exitCode !== null || child.signalCode !== null) {
            done();
            reject(new Error(`ts-celery ${args.join(' ')} exited before printing ${re}:\n${out}`));
          }
        };
        const timer = setTimeout(() => {
          done();
          reject(new Error(`ts-celery ${args.join(' ')} did not print ${re} within ${timeoutMs} ms:\n${out}`));
        }, timeoutMs);
        const done = (): void => {
          clearTimeout(timer);
          listeners.delete(check);
        };
        listeners.add(check);
        check();
      });
    },
    async stop(graceMs = 10_000) {
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
  };
}
