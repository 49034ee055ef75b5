/**
 * Run a short-lived command and collect its output: the one place the test
 * helpers spawn rabbitmqctl, pyclient.py, qapp.py and the like.
 */
import { spawn } from 'node:child_process';

export interface CapturedRun {
  stdout: string;
  stderr: string;
}

export interface RunCapturedOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** SIGKILL the command and reject after this long (default 60 s). */
  timeoutMs?: number;
  /** How errors name the command (default: the command and its arguments). */
  what?: string;
}

/**
 * Resolves with stdout and stderr when the command exits 0; rejects with both
 * in the message on another exit code, a signal, a timeout or a spawn error.
 */
export function runCaptured(command: string, args: string[], opts: RunCapturedOptions = {}): Promise<CapturedRun> {
  const timeoutMs = opts.timeoutMs ?? 60_000;
  const what = opts.what ?? `${command} ${args.join(' ')}`;
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: opts.cwd, env: opts.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(new Error(`${what}: ${err.message}`));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (timedOut) reject(new Error(`${what} timed out after ${timeoutMs} ms\n${stderr}${stdout}`));
      else if (code === 0) resolve({ stdout, stderr });
      else reject(new Error(`${what} exited with ${code ?? signal}:\n${stderr}${stdout}`));
    });
  });
}

/** The last line of a command's stdout, parsed as JSON (the Python helpers print their result that way). */
export function lastJsonLine<T>(run: CapturedRun, what: string): T {
  const line = run.stdout.trim().split('\n').pop() ?? '';
  try {
    return JSON.parse(line) as T;
  } catch {
    throw new Error(`${what}: cannot parse output ${JSON.stringify(line)}\n${run.stderr}`);
  }
}
