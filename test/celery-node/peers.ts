/**
 * Runs test/celery-node/peer/worker.cjs, a worker program written for celery-node, as its own
 * process: on celery-node 0.5.9 itself, or through ts-celery/celery-node (the checkout's source,
 * through tsx). Its own process because celery-node's worker exits on some inputs.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { ROOT } from '../helpers/ts-worker.js';
import { AMQP_URL, REDIS_URL } from '../helpers/services.js';

export const PEER_WORKER = join(ROOT, 'test', 'celery-node', 'peer', 'worker.cjs');

export type PeerModule = 'celery-node' | 'ts-celery/celery-node';

export interface PeerWorkerOptions {
  module: PeerModule;
  queue: string;
  /** Result backend URL (default Redis DB 9). */
  backend?: string;
  broker?: string;
  /** Recorded entries start with this (default: `cn` for celery-node, `shim` for the shim). */
  label?: string;
  /** conf.TS_CELERY (the shim only). */
  tsCelery?: Record<string, unknown>;
  env?: Record<string, string>;
}

export interface PeerWorker {
  readonly child: ChildProcess;
  output(): string;
  /** The exit code (null when ended by a signal) once it ended. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** SIGTERM, then SIGKILL after `graceMs`. */
  stop(graceMs?: number): Promise<void>;
  kill(signal?: NodeJS.Signals): void;
}

const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of live) child.kill('SIGKILL');
});

/** Starts the peer worker and resolves once it consumes. */
export async function startPeerWorker(opts: PeerWorkerOptions): Promise<PeerWorker> {
  const args = opts.module === 'celery-node' ? [PEER_WORKER] : ['--import', 'tsx', PEER_WORKER];
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    PEER_MODULE: opts.module,
    PEER_BROKER: opts.broker ?? AMQP_URL,
    PEER_BACKEND: opts.backend ?? REDIS_URL,
    PEER_QUEUE: opts.queue,
    PEER_LABEL: opts.label ?? (opts.module === 'celery-node' ? 'cn' : 'shim'),
    PEER_REDIS: REDIS_URL,
    ...(opts.tsCelery ? { PEER_TS_CELERY: JSON.stringify(opts.tsCelery) } : {}),
    ...opts.env,
  };
  const child = spawn(process.execPath, args, { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  live.add(child);
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('exit', (code, signal) => {
      live.delete(child);
      resolve({ code, signal });
    }),
  );
  const worker: PeerWorker = {
    child,
    output: () => out,
    exited,
    kill: (signal = 'SIGKILL') => void child.kill(signal),
    async stop(graceMs = 15_000) {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      await exited;
      clearTimeout(timer);
    },
  };
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${opts.module} peer worker not ready within 20 s:\n${out}`)), 20_000);
    const check = (): void => {
      if (out.includes('peer worker ready')) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout!.on('data', check);
    void exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`${opts.module} peer worker exited with ${code ?? signal} before it was ready:\n${out}`));
    });
  });
  return worker;
}

/** What recorded tasks wrote to `pytasks:record:<tag>` (pytasks, the ts-app and the peer worker use it). */
export async function recorded(redis: Redis, tag: string): Promise<string[]> {
  return redis.lrange(`pytasks:record:${tag}`, 0, -1);
}

/** Polls until `pytasks:record:<tag>` holds at least `count` entries (or `timeoutMs` passed). */
export async function waitForRecords(redis: Redis, tag: string, count: number, timeoutMs = 30_000): Promise<string[]> {
  const deadline = Date.now() + timeoutMs;
  while ((await redis.llen(`pytasks:record:${tag}`)) < count && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  return recorded(redis, tag);
}
