/**
 * Run real Python Celery next to the TS code under test: workers on the
 * `test/interop/py/pytasks.py` app, and `pyclient.py` as a Python producer.
 *
 * Two interpreters: `pypi` = the repo's .venv (Celery 5.7 from PyPI, made by
 * scripts/services.sh) and `debian` = /usr/bin/python3 (python3-celery 5.2.6).
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import amqp from 'amqplib';
import { AMQP_URL, uniqueName } from './services.js';
import { lastJsonLine, runCaptured } from './run-captured.js';

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const PY_DIR = path.join(REPO_ROOT, 'test', 'interop', 'py');

export const PYTHON = {
  pypi: path.join(REPO_ROOT, '.venv', 'bin', 'python'),
  debian: '/usr/bin/python3',
} as const;
export type PythonKind = keyof typeof PYTHON;
export type PythonPool = 'solo' | 'prefork' | 'eventlet' | 'threads';

export interface PythonWorkerOptions {
  python?: PythonKind;
  queues: string[];
  concurrency?: number;
  pool?: PythonPool;
  /** Extra environment, e.g. PYTASKS_BACKEND. PYTASKS_QUEUE defaults to queues[0]. */
  env?: Record<string, string>;
  extraArgs?: string[];
  /** How long to wait for "<node> ready." (default 30 s). */
  readyTimeoutMs?: number;
  /** The app module (`-A`; default `pytasks`) and the directory it is in (default test/interop/py). */
  appModule?: string;
  appDir?: string;
}

export interface PythonWorker {
  /** Warm shutdown (SIGTERM); SIGKILL of the process group after 10 s. */
  stop(): Promise<void>;
  /** Everything the worker wrote so far (stdout and stderr interleaved). */
  logs(): string;
  pid: number;
  /** Node name as the worker reports it, e.g. `py-harness-1k3f-2-9c41d2@vm`. */
  nodename: string;
}

const MAX_LOG_CHARS = 4_000_000;
const live = new Set<number>();

// A test run that ends (or crashes) without stopping its workers must not
// leave them consuming from the shared broker: kill their process groups.
process.once('exit', () => {
  for (const pid of live) {
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      /* already gone */
    }
  }
});

function pythonEnv(extra: Record<string, string> | undefined): NodeJS.ProcessEnv {
  return {
    ...process.env,
    PYTHONDONTWRITEBYTECODE: '1', // no __pycache__ in test/interop/py
    PYTHONUNBUFFERED: '1',
    PYTHONPATH: PY_DIR,
    ...extra,
  };
}

/**
 * Celery >= 5.5 handles SIGTERM by setting a flag that its event loop only
 * checks when epoll returns: on the next timer or socket event, which with
 * --without-heartbeat can be ~10 s away (5.2.6 stops at once). Any message
 * on the worker's connection wakes it, so send a remote-control `ping`
 * (no reply_to: no answer) to the worker's pidbox. Best effort.
 */
async function wakeWorkerLoop(brokerUrl: string, nodename: string): Promise<void> {
  const conn = await amqp.connect(brokerUrl);
  conn.on('error', () => {});
  try {
    const ch = await conn.createChannel();
    ch.on('error', () => {}); // 404 if the worker already deleted the exchange
    const body = { method: 'ping', arguments: {}, destination: [nodename], pattern: null, matcher: null };
    ch.publish('celery.pidbox', '', Buffer.from(JSON.stringify(body)), {
      contentType: 'application/json',
      contentEncoding: 'utf-8',
    });
    await ch.close();
  } finally {
    await conn.close().catch(() => {});
  }
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

export function startPythonWorker(opts: PythonWorkerOptions): Promise<PythonWorker> {
  const python = PYTHON[opts.python ?? 'pypi'];
  if (opts.queues.length === 0) return Promise.reject(new Error('startPythonWorker: queues must not be empty'));
  const name = uniqueName('py');
  const args = [
    '-m', 'celery', '-A', opts.appModule ?? 'pytasks', 'worker',
    '-l', 'info',
    '-Q', opts.queues.join(','),
    '-c', String(opts.concurrency ?? 1),
    '-P', opts.pool ?? 'prefork',
    '-n', `${name}@%h`,
    '--without-mingle', '--without-gossip', '--without-heartbeat',
    ...(opts.extraArgs ?? []),
  ];
  const appDir = opts.appDir ?? PY_DIR;
  const env = pythonEnv({ PYTASKS_QUEUE: opts.queues[0] as string, PYTHONPATH: appDir, ...opts.env });
  const brokerUrl = env.PYTASKS_BROKER ?? AMQP_URL;
  const readyTimeoutMs = opts.readyTimeoutMs ?? 30_000;
  const readyRe = new RegExp(`(${escapeRegExp(name)}@\\S+) ready\\.`);

  return new Promise<PythonWorker>((resolve, reject) => {
    // detached: own process group, so the prefork pool can be killed with it
    const child = spawn(python, args, { cwd: appDir, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    let log = '';
    let settled = false;
    let exited = false;
    let nodename = '';
    const exitWaiters: Array<() => void> = [];

    const append = (chunk: string): void => {
      log += chunk;
      if (log.length > MAX_LOG_CHARS) log = log.slice(log.length - MAX_LOG_CHARS);
      if (!settled) {
        const m = readyRe.exec(log);
        if (m) {
          nodename = m[1] as string;
          settled = true;
          clearTimeout(timer);
          resolve(handle);
        }
      }
    };
    child.stdout.setEncoding('utf8').on('data', append);
    child.stderr.setEncoding('utf8').on('data', append);

    const killGroup = (signal: NodeJS.Signals): void => {
      if (child.pid === undefined) return;
      try {
        process.kill(-child.pid, signal);
      } catch {
        /* group already gone */
      }
    };

    const fail = (why: string): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      reject(new Error(`Python worker (${python} ${args.join(' ')}) ${why}\n--- worker log ---\n${log}`));
    };

    const timer = setTimeout(() => {
      killGroup('SIGKILL');
      fail(`not ready after ${readyTimeoutMs} ms`);
    }, readyTimeoutMs);

    child.on('error', (err) => fail(`could not be started: ${err.message}`));
    child.on('exit', (code, signal) => {
      exited = true;
      if (child.pid !== undefined) live.delete(child.pid);
      fail(`exited early with ${code ?? signal}`);
      // reap pool processes that might outlive the main process
      killGroup('SIGKILL');
      for (const w of exitWaiters.splice(0)) w();
    });

    if (child.pid !== undefined) live.add(child.pid);

    const handle: PythonWorker = {
      pid: child.pid ?? -1,
      get nodename() {
        return nodename;
      },
      logs: () => log,
      stop: () =>
        new Promise<void>((res) => {
          if (exited) return res();
          exitWaiters.push(res);
          child.kill('SIGTERM'); // warm shutdown of the main process
          const wake = (): void => {
            if (!exited) wakeWorkerLoop(brokerUrl, nodename).catch(() => {});
          };
          const first = setTimeout(wake, 50);
          const again = setInterval(wake, 1_000);
          const hard = setTimeout(() => killGroup('SIGKILL'), 10_000);
          exitWaiters.push(() => {
            clearTimeout(first);
            clearInterval(again);
            clearTimeout(hard);
          });
        }),
    };
  });
}

/** What pyclient.py prints (one JSON line). */
export interface PyClientResult<R = unknown> {
  id: string;
  state: string;
  result: R | null;
  /** Python class name of the exception get() raised (or the stored one for `state`). */
  exc_type: string | null;
  exc_module: string | null;
  /** `str(exc)` */
  exc_message: string | null;
  /** `list(exc.args)` */
  exc_args: unknown[] | null;
  celery_version: string;
}

export interface PythonClientOptions {
  python?: PythonKind;
  env?: Record<string, string>;
  /** Kill pyclient after this long (default 60 s). */
  timeoutMs?: number;
}

/**
 * Run `pyclient.py ARGS` and resolve with its parsed JSON line, e.g.
 * `runPythonClient(['send', 'py.add', '--args', '[2,3]', '--queue', q, '--get'])`.
 * Rejects (with stderr) on non-zero exit or unparseable output.
 */
export async function runPythonClient<R = unknown>(args: string[], opts: PythonClientOptions = {}): Promise<PyClientResult<R>> {
  const python = PYTHON[opts.python ?? 'pypi'];
  const what = `pyclient.py ${args.join(' ')} (${python})`;
  const run = await runCaptured(python, [path.join(PY_DIR, 'pyclient.py'), ...args], {
    cwd: PY_DIR,
    env: pythonEnv(opts.env),
    timeoutMs: opts.timeoutMs ?? 60_000,
    what,
  });
  return lastJsonLine<PyClientResult<R>>(run, what);
}
