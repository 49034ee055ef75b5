/**
 * A Redis server of the fault tests' own (Debian's redis-server 7.0, built
 * with TLS): on a free port with `requirepass` (a distinctive password, for
 * grep tests), optionally a TLS port too, no persistence unless asked (then an
 * append-only file fsynced on every write, in a temporary directory). It can
 * be stopped and started again on the same ports (the "backend down" and
 * "broker restart" faults); the shared Redis on :6379 is never touched.
 *
 * Start-up takes ~50 ms, so a test file may start its own; {@link sharedRedisNode}
 * shares one across files anyway, shut down by a root-level `after` hook.
 *
 * The Celery suite's runner (test/celery-suite/run.ts) starts one too, without a
 * password (Celery's `get_redis_connection()` passes none), so that no other
 * test's pub/sub channels show in the suite's `PUBSUB CHANNELS`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer, connect as tcpConnect } from 'node:net';
import type { TestPki } from './tls.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A TCP port nobody listens on right now. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}

function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = tcpConnect({ host: '127.0.0.1', port });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

export interface RedisNodeOptions {
  /** Also listen with TLS (server cert from this PKI; clients need not present one). */
  pki?: TestPki;
  /**
   * Keep the data across restarts, as a broker must: `appendonly yes` with
   * `appendfsync always` (every write Redis replied to is on disk), in a
   * temporary directory removed by {@link RedisNode.destroy}.
   */
  persistent?: boolean;
  /**
   * `false`: no `requirepass`, for clients that cannot be given a password (Celery's
   * integration suite). Default true.
   */
  auth?: boolean;
  /** The server's working directory (created if missing, kept); default: a temporary one when persistent. */
  dir?: string;
}

export class RedisNode {
  /** Distinctive, so a grep for it in any output is meaningful. */
  readonly password = `Redis-Secret-${randomBytes(6).toString('hex')}`;
  port = 0;
  tlsPort = 0;
  private child: ChildProcess | null = null;
  private output = '';
  private dir: string | null = null;

  constructor(private readonly options: RedisNodeOptions = {}) {}

  /** `redis://:<password>@127.0.0.1:<port>/<db>`. */
  url(db = 0): string {
    return `redis://${this.userinfo()}127.0.0.1:${this.port}/${db}`;
  }

  /** `rediss://:<password>@127.0.0.1:<tlsPort>/<db>`. */
  tlsUrl(db = 0): string {
    if (!this.tlsPort) throw new Error('this Redis node has no TLS port');
    return `rediss://${this.userinfo()}127.0.0.1:${this.tlsPort}/${db}`;
  }

  private userinfo(): string {
    return this.options.auth === false ? '' : `:${this.password}@`;
  }

  get running(): boolean {
    return this.child !== null;
  }

  /** Starts (again, on the same ports after a stop). */
  async start(): Promise<void> {
    if (this.child) throw new Error('redis node already running');
    if (!this.port) this.port = await freePort();
    if (this.options.pki && !this.tlsPort) this.tlsPort = await freePort();
    const args = ['--bind', '127.0.0.1', '--port', String(this.port),
      '--save', '', '--daemonize', 'no', '--loglevel', 'warning'];
    if (this.options.auth !== false) args.push('--requirepass', this.password);
    if (this.options.dir) {
      mkdirSync(this.options.dir, { recursive: true });
      args.push('--dir', this.options.dir);
    }
    if (this.options.persistent) {
      if (!this.options.dir) {
        this.dir ??= mkdtempSync(join(tmpdir(), 'ts-celery-redis-'));
        args.push('--dir', this.dir);
      }
      args.push('--appendonly', 'yes', '--appendfsync', 'always');
    } else {
      args.push('--appendonly', 'no');
    }
    const pki = this.options.pki;
    if (pki) {
      args.push('--tls-port', String(this.tlsPort), '--tls-cert-file', pki.serverCert, '--tls-key-file', pki.serverKey,
        '--tls-ca-cert-file', pki.caCert, '--tls-auth-clients', 'optional');
    }
    const child = spawn('redis-server', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout!.on('data', (d: Buffer) => (this.output += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (this.output += d.toString()));
    this.child = child;
    child.once('exit', () => {
      if (this.child === child) this.child = null;
    });
    for (let i = 0; i < 100; i++) {
      if (await portOpen(this.port)) return;
      if (!this.child) break;
      await sleep(50);
    }
    throw new Error(`redis-server did not start on ${this.port}:\n${this.output}`);
  }

  /**
   * Stops the server at once (SIGKILL: clients see the connection drop; a
   * persistent node keeps what its append-only file has, i.e. every write it replied to).
   */
  async stop(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const child = this.child;
    if (!child) return;
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    child.kill(signal);
    await exited;
    this.child = null;
  }

  /** Stops the server and removes its data directory (persistent nodes). */
  async destroy(): Promise<void> {
    await this.stop();
    if (this.dir) rmSync(this.dir, { recursive: true, force: true });
    this.dir = null;
  }
}

let shared: Promise<RedisNode> | null = null;
let sharedNode: RedisNode | null = null;

/** The fault tests' Redis (with TLS from `pki` when given the first time), reused across files. */
export function sharedRedisNode(pki?: TestPki): Promise<RedisNode> {
  if (!shared) {
    shared = (async () => {
      const node = new RedisNode(pki ? { pki } : {});
      sharedNode = node;
      await node.start();
      return node;
    })();
    shared.catch(() => {
      shared = null;
    });
  }
  return shared.then(async (node) => {
    if (!node.running) await node.start();
    return node;
  });
}

if (typeof after === 'function') {
  after(async () => {
    if (sharedNode) await sharedNode.stop();
  });
}
process.once('exit', () => {
  try {
    sharedNode?.running && sharedNode.stop();
  } catch {
    /* best effort */
  }
});
