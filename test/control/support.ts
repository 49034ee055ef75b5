/**
 * Helpers for the remote-control and events suites: workers (ts-celery and
 * Python 5.7) on the control vhost with node names we know, and the Python
 * `celery` command line and API (test/control/py) as clients.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { PYTHON, REPO_ROOT } from '../helpers/python.js';
import { uniqueName } from '../helpers/services.js';
import { CLI, ROOT } from '../helpers/ts-worker.js';
import { CONTROL_AMQP_URL, CONTROL_REDIS_URL } from './services.js';

export const PY_CTL_DIR = join(REPO_ROOT, 'test', 'control', 'py');

/** A worker process (either language) and what it printed. */
export interface CtlWorker {
  readonly child: ChildProcess;
  readonly nodename: string;
  readonly queue: string;
  output(): string;
  readonly exited: Promise<number | null>;
  /** SIGTERM (warm shutdown) and wait; SIGKILL after `graceMs`. */
  stop(graceMs?: number): Promise<number | null>;
  /** Resolves once `re` appears in the output. */
  waitFor(re: RegExp, timeoutMs?: number): Promise<RegExpExecArray>;
}

const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const c of live) c.kill('SIGKILL');
});

function track(child: ChildProcess, nodename: string, queue: string, killGroup: boolean): CtlWorker {
  live.add(child);
  let out = '';
  const waiters: Array<() => void> = [];
  const onData = (d: Buffer): void => {
    out += d.toString();
    for (const w of waiters.splice(0)) w();
  };
  child.stdout!.on('data', onData);
  child.stderr!.on('data', onData);
  const exited = new Promise<number | null>((resolve) =>
    child.on('exit', (code) => {
      live.delete(child);
      for (const w of waiters.splice(0)) w();
      resolve(code);
    }),
  );
  const kill = (signal: NodeJS.Signals): void => {
    try {
      if (killGroup && child.pid) process.kill(-child.pid, signal);
      else child.kill(signal);
    } catch {
      /* gone */
    }
  };
  const worker: CtlWorker = {
    child,
    nodename,
    queue,
    output: () => out,
    exited,
    async stop(graceMs = 15_000) {
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
      child.kill('SIGTERM');
      const timer = setTimeout(() => kill('SIGKILL'), graceMs);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
    waitFor(re, timeoutMs = 30_000) {
      return new Promise((resolve, reject) => {
        const deadline = setTimeout(() => reject(new Error(`${nodename}: no ${re} within ${timeoutMs} ms:\n${out.slice(-3000)}`)), timeoutMs);
        const check = (): void => {
          const m = re.exec(out);
          if (m) {
            clearTimeout(deadline);
            resolve(m);
          } else if (child.exitCode !== null || child.signalCode !== null) {
            clearTimeout(deadline);
            reject(new Error(`${nodename} exited (${child.exitCode ?? child.signalCode}) before ${re}:\n${out.slice(-3000)}`));
          } else {
            waiters.push(check);
          }
        };
        check();
      });
    },
  };
  return worker;
}

export interface CtlWorkerOptions {
  queue?: string;
  /** The node name's first part (`<name>@host`); default a unique one. */
  name?: string;
  concurrency?: number;
  /** Extra command-line arguments (-E, --statedb F, --metrics-port 0...). */
  args?: string[];
  env?: Record<string, string>;
  /** Python only: start with mingle (ask the other workers for their revoked ids). */
  mingle?: boolean;
}

/** `ts-celery worker -A test/control/ts-app`, ready. */
export async function startTsCtlWorker(opts: CtlWorkerOptions = {}): Promise<CtlWorker> {
  const queue = opts.queue ?? uniqueName('ctl');
  const name = opts.name ?? uniqueName('ts');
  const nodename = `${name}@${hostname()}`;
  const child = spawn(
    process.execPath,
    [CLI, 'worker', '-A', 'test/control/ts-app', '-l', 'info', '-Q', queue, '-c', String(opts.concurrency ?? 2), '-n', `${name}@%h`, ...(opts.args ?? [])],
    { cwd: ROOT, env: { ...process.env, CTL_BROKER: CONTROL_AMQP_URL, CTL_BACKEND: CONTROL_REDIS_URL, CTL_QUEUE: queue, ...opts.env } },
  );
  const worker = track(child, nodename, queue, false);
  await worker.waitFor(/ ready\.$/m, 30_000);
  return worker;
}

/** `celery -A ctlapp worker` (Celery 5.7, prefork), ready. */
export async function startPyCtlWorker(opts: CtlWorkerOptions = {}): Promise<CtlWorker> {
  const queue = opts.queue ?? uniqueName('ctl');
  const name = opts.name ?? uniqueName('py');
  const nodename = `${name}@${hostname()}`;
  const child = spawn(
    PYTHON.pypi,
    ['-m', 'celery', '-A', 'ctlapp', 'worker', '-l', 'info', '-Q', queue, '-c', String(opts.concurrency ?? 2), '-P', 'prefork', '-n', `${name}@%h`, ...(opts.mingle ? [] : ['--without-mingle']), '--without-gossip', ...(opts.args ?? [])],
    { cwd: PY_CTL_DIR, detached: true, env: pyEnv({ CTL_QUEUE: queue, ...opts.env }) },
  );
  const worker = track(child, nodename, queue, true);
  await worker.waitFor(/ ready\.$/m, 40_000);
  return worker;
}

function pyEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return {
    ...process.env,
    PYTHONPATH: PY_CTL_DIR,
    PYTHONDONTWRITEBYTECODE: '1',
    PYTHONUNBUFFERED: '1',
    CTL_BROKER: CONTROL_AMQP_URL,
    CTL_BACKEND: CONTROL_REDIS_URL,
    ...extra,
  };
}

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(cmd: string, args: string[], cwd: string, env: NodeJS.ProcessEnv, timeoutMs: number): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd, env });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${cmd} ${args.join(' ')} did not finish within ${timeoutMs} ms\n${stdout}\n${stderr}`));
    }, timeoutMs);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** Python 5.7's `celery -A ctlapp <args>`; `env` overrides CTL_BROKER/CTL_BACKEND (another broker). */
export function celery(args: string[], timeoutMs = 30_000, env: Record<string, string> = {}): Promise<CliResult> {
  return run(PYTHON.pypi, ['-m', 'celery', '-A', 'ctlapp', ...args], PY_CTL_DIR, pyEnv(env), timeoutMs);
}

/** `ts-celery <args>` against the control vhost, or the broker `env.CTL_BROKER` names. */
export function tsCelery(args: string[], timeoutMs = 30_000, env: Record<string, string> = {}): Promise<CliResult> {
  return run(process.execPath, [CLI, ...args], ROOT, { ...process.env, CELERY_BROKER_URL: env.CTL_BROKER ?? CONTROL_AMQP_URL, CELERY_RESULT_BACKEND: env.CTL_BACKEND ?? CONTROL_REDIS_URL }, timeoutMs);
}

/**
 * Python 5.7's client API: runs test/control/py/ctlclient.py with `ops`
 * (a list of `[op, ...args]`) and returns what each op returned.
 */
export async function pyClient(ops: unknown[][], timeoutMs = 60_000, env: Record<string, string> = {}): Promise<unknown[]> {
  const r = await run(PYTHON.pypi, [join(PY_CTL_DIR, 'ctlclient.py'), JSON.stringify(ops)], PY_CTL_DIR, pyEnv(env), timeoutMs);
  if (r.code !== 0) throw new Error(`ctlclient.py failed (${r.code}):\n${r.stderr}\n${r.stdout}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as unknown[];
}

/** Waits until `check` is true. */
export async function until(check: () => boolean | Promise<boolean>, what: string, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** An event as Python's receiver hands it over. */
export type PyEvent = Record<string, unknown> & { type: string; hostname: string };

/**
 * Python 5.7's `app.events.Receiver` (test/control/py/ctlevents.py), running
 * until the worker `hostname` sends worker-offline or `seconds` pass; `env`
 * overrides CTL_BROKER/CTL_BACKEND.
 */
export function pythonReceiver(hostname: string, seconds: number, env: Record<string, string> = {}): { ready: Promise<void>; events: Promise<PyEvent[]> } {
  const child = spawn(PYTHON.pypi, [join(PY_CTL_DIR, 'ctlevents.py'), hostname, String(seconds)], { cwd: PY_CTL_DIR, env: pyEnv(env) });
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  const ready = new Promise<void>((resolve, reject) => {
    child.stderr.on('data', (d: Buffer) => {
      err += d.toString();
      if (err.includes('ready\n')) resolve();
    });
    child.on('exit', () => reject(new Error(`ctlevents.py exited before ready:\n${err}`)));
  });
  const events = new Promise<PyEvent[]>((resolve, reject) =>
    child.on('exit', (code) => (code === 0 ? resolve(JSON.parse(out) as PyEvent[]) : reject(new Error(`ctlevents.py failed (${code}):\n${err}`)))),
  );
  return { ready, events };
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/** A running Flower. */
export interface FlowerProcess {
  /** `http://127.0.0.1:<port>`. */
  readonly base: string;
  /** What it printed so far. */
  log(): string;
  /** GET (or `init`) an /api path, parsed as JSON; throws on an HTTP error. */
  api<T>(path: string, init?: RequestInit): Promise<T>;
  stop(): void;
}

/** Flower 2.2 (`celery -A ctlapp flower`, API unauthenticated), once /healthcheck answers; `env` overrides CTL_BROKER/CTL_BACKEND. */
export async function startFlower(env: Record<string, string> = {}): Promise<FlowerProcess> {
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const child = spawn(PYTHON.pypi, ['-m', 'celery', '-A', 'ctlapp', 'flower', `--port=${port}`, '--address=127.0.0.1'], {
    cwd: PY_CTL_DIR,
    detached: true,
    env: pyEnv({ FLOWER_UNAUTHENTICATED_API: 'true', ...env }),
  });
  live.add(child);
  let log = '';
  child.stdout!.on('data', (d: Buffer) => (log += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (log += d.toString()));
  const flower: FlowerProcess = {
    base,
    log: () => log,
    async api<T>(path: string, init?: RequestInit): Promise<T> {
      const r = await fetch(`${base}${path}`, init);
      if (!r.ok) throw new Error(`${init?.method ?? 'GET'} ${path}: HTTP ${r.status} ${await r.text()}`);
      return (await r.json()) as T;
    },
    stop() {
      live.delete(child);
      try {
        if (child.pid) process.kill(-child.pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    },
  };
  try {
    await until(async () => (await fetch(`${base}/healthcheck`).then((r) => r.ok).catch(() => false)), `Flower on ${base}:\n${log}`, 40_000);
  } catch (err) {
    flower.stop();
    throw err;
  }
  return flower;
}
