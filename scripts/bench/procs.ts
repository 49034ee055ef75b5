/**
 * Child processes for the benchmark: start a worker or client in its own
 * process group, stop it (warm, then hard), and read its CPU time and RSS
 * from /proc — summed over the process tree, so a prefork pool counts its
 * children too.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

/** Clock ticks per second of /proc/<pid>/stat utime/stime (`getconf CLK_TCK`; 100 on Linux). */
const CLK_TCK = 100;
const MAX_LOG = 64 * 1024;

/** A process started by the benchmark. */
export interface Proc {
  readonly child: ChildProcess;
  readonly pid: number;
  /** The last 64 KiB of stdout+stderr. */
  log(): string;
  /** Resolves with the exit code (or signal name) once the process ended. */
  readonly exited: Promise<number | string | null>;
  /** True once it exited. */
  readonly done: boolean;
  /** SIGTERM the main process (warm shutdown), SIGKILL the whole group after `graceMs`. */
  stop(graceMs?: number): Promise<void>;
}

const live = new Set<number>();
// A benchmark that crashes must not leave workers consuming from the shared broker.
process.once('exit', () => {
  for (const pid of live) {
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      /* already gone */
    }
  }
});

/** Starts `command args` in its own process group (so a prefork pool can be killed with it). */
export function startProc(command: string, args: string[], options: { cwd: string; env: NodeJS.ProcessEnv }): Proc {
  const child = spawn(command, args, { cwd: options.cwd, env: options.env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const append = (d: Buffer): void => {
    out += d.toString();
    if (out.length > MAX_LOG) out = out.slice(out.length - MAX_LOG);
  };
  child.stdout!.on('data', append);
  child.stderr!.on('data', append);
  let done = false;
  const exited = new Promise<number | string | null>((resolve) => {
    child.on('exit', (code, signal) => {
      done = true;
      live.delete(child.pid!);
      resolve(code ?? signal);
    });
    child.on('error', (err) => {
      done = true;
      append(Buffer.from(`\n[spawn error] ${err.message}\n`));
      resolve(null);
    });
  });
  if (child.pid !== undefined) live.add(child.pid);
  const killGroup = (signal: NodeJS.Signals): void => {
    try {
      process.kill(-child.pid!, signal);
    } catch {
      /* gone */
    }
  };
  return {
    child,
    pid: child.pid ?? -1,
    log: () => out,
    exited,
    get done() {
      return done;
    },
    async stop(graceMs = 15_000) {
      if (!done) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => killGroup('SIGKILL'), graceMs);
        await exited;
        clearTimeout(timer);
      }
      killGroup('SIGKILL'); // pool children that outlived their parent
    },
  };
}

/** Runs a command to completion; resolves with stdout, rejects with the log on a non-zero exit. */
export async function runProc(command: string, args: string[], options: { cwd: string; env: NodeJS.ProcessEnv; timeoutMs: number }): Promise<string> {
  const proc = startProc(command, args, options);
  let stdout = '';
  proc.child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  const timer = setTimeout(() => void proc.stop(1_000), options.timeoutMs);
  const code = await proc.exited;
  clearTimeout(timer);
  if (code !== 0) throw new Error(`${command} ${args.join(' ')} exited with ${code}:\n${proc.log().slice(-4000)}`);
  return stdout;
}

/** Runs a client that prints one JSON line last; resolves with it parsed. */
export async function runJsonClient<T>(command: string, args: string[], options: { cwd: string; env: NodeJS.ProcessEnv; timeoutMs: number }): Promise<T> {
  const out = await runProc(command, args, options);
  const line = out.trim().split('\n').pop() ?? '';
  try {
    return JSON.parse(line) as T;
  } catch {
    throw new Error(`${command} ${args.join(' ')}: cannot parse its output ${JSON.stringify(out.slice(-2000))}`);
  }
}

/** `pid` and all its descendants (from /proc/<pid>/task/<tid>/children of every thread). */
export function processTree(pid: number): number[] {
  const all: number[] = [];
  const visit = (p: number): void => {
    all.push(p);
    const children: string[] = [];
    try {
      // A child belongs to the thread that forked it (Node's loader-hooks thread, for one).
      for (const tid of readdirSync(`/proc/${p}/task`)) {
        children.push(...readFileSync(`/proc/${p}/task/${tid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean));
      }
    } catch {
      /* exited meanwhile */
    }
    for (const c of children) visit(Number(c));
  };
  visit(pid);
  return all;
}

/** User+system CPU time of the given processes, in ms (processes that are gone count 0). */
export function cpuMs(pids: readonly number[]): number {
  let ticks = 0;
  for (const pid of pids) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      // Fields after the command name, which is in parentheses and may contain spaces.
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      ticks += Number(fields[11]) + Number(fields[12]); // utime, stime (fields 14 and 15 of stat)
    } catch {
      /* exited */
    }
  }
  return (ticks * 1000) / CLK_TCK;
}

/** Resident set size of the given processes, in MB (VmRSS summed; shared pages count once per process). */
export function rssMb(pids: readonly number[]): number {
  let kb = 0;
  for (const pid of pids) {
    try {
      const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
      if (m) kb += Number(m[1]);
    } catch {
      /* exited */
    }
  }
  return kb / 1024;
}

/** One reading of a worker's process tree. */
export interface ProcSample {
  /** Epoch ms. */
  t: number;
  cpuMs: number;
  rssMb: number;
}

/**
 * Samples CPU and RSS of a process tree every `intervalMs` (the tree is
 * re-read every 200 ms, so pool processes forked at start-up are included).
 */
export class ProcSampler {
  readonly samples: ProcSample[] = [];
  private timer: NodeJS.Timeout | null = null;
  private tree: number[];
  private treeAt = 0;

  constructor(private readonly rootPid: number, private readonly intervalMs = 50) {
    this.tree = [rootPid];
  }

  start(): this {
    this.sample();
    this.timer = setInterval(() => this.sample(), this.intervalMs);
    return this;
  }

  sample(): ProcSample {
    const t = Date.now();
    if (t - this.treeAt >= 200) {
      this.tree = processTree(this.rootPid);
      this.treeAt = t;
    }
    const s = { t, cpuMs: cpuMs(this.tree), rssMb: rssMb(this.tree) };
    this.samples.push(s);
    return s;
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** CPU time used between two epoch-ms instants (widened to the enclosing samples). */
  cpuBetween(from: number, to: number): number {
    let before: ProcSample | undefined;
    let after: ProcSample | undefined;
    for (const s of this.samples) {
      if (s.t <= from) before = s;
      if (s.t >= to && !after) after = s;
    }
    before ??= this.samples[0];
    after ??= this.samples[this.samples.length - 1];
    return before && after ? after.cpuMs - before.cpuMs : Number.NaN;
  }

  /** Highest RSS sampled in [from, to]. */
  peakRss(from = 0, to = Infinity): number {
    let peak = Number.NaN;
    for (const s of this.samples) if (s.t >= from && s.t <= to && !(s.rssMb <= peak)) peak = s.rssMb;
    return peak;
  }

  /** RSS of the last sample at or before `t` (the first sample if none). */
  rssAt(t: number): number {
    let found = this.samples[0];
    for (const s of this.samples) if (s.t <= t) found = s;
    return found?.rssMb ?? Number.NaN;
  }
}
