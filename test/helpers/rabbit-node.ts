/**
 * A RabbitMQ node of the fault tests' own, next to the shared one: node
 * `faults@localhost` on 127.0.0.1:5681 (AMQP) and :5682 (AMQPS), its data,
 * logs, config and TLS files under /var/lib/rabbitmq/ts-celery-faults/. The shared
 * broker on :5672 is never touched: this node can be stopped, restarted and
 * reconfigured freely.
 *
 * Started through the Debian wrapper (`/usr/sbin/rabbitmq-server`, which
 * `su`s to the rabbitmq user and so uses /var/lib/rabbitmq/.erlang.cookie,
 * as the wrapper's `rabbitmqctl` does). Starting costs ~5 s, so one node is
 * shared by every fault test file ({@link sharedRabbitNode}) and shut down by
 * a root-level mocha `after` hook (and killed on process exit if that never
 * ran).
 *
 * Login: user `faults` with a distinctive random password (created on first
 * boot through `default_user`), so tests can grep output for it. Also:
 * `channel_tick_interval` = 1 s (RabbitMQ checks `consumer_timeout` on each
 * channel tick; the default tick is 60 s), and a TLS listener with a
 * certificate from {@link makeTestPki} that requires a client certificate.
 *
 * {@link RabbitNodeOptions} make other nodes of the same kind (the 3-node
 * cluster of test/helpers/rabbit-cluster.ts): their own name, ports, data
 * directory and login, optionally without TLS.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chownSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync, closeSync } from 'node:fs';
import { connect as tcpConnect } from 'node:net';
import { join } from 'node:path';
import amqp from 'amqplib';
import { makeTestPki, type TestPki } from './tls.js';
import { runCaptured } from './run-captured.js';

export const FAULTS_NODE = 'faults@localhost';
export const FAULTS_AMQP_PORT = 5681;
export const FAULTS_AMQPS_PORT = 5682;
export const FAULTS_DIST_PORT = 25681;
/** How often (ms) each channel of this node checks consumer_timeout. */
export const FAULTS_CHANNEL_TICK_MS = 1000;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

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

function rabbitUid(): { uid: number; gid: number } {
  const out = spawnSync('id', ['-u', 'rabbitmq'], { encoding: 'utf8' });
  const gout = spawnSync('id', ['-g', 'rabbitmq'], { encoding: 'utf8' });
  return { uid: Number(out.stdout.trim()), gid: Number(gout.stdout.trim()) };
}

function chownTree(path: string, ids: { uid: number; gid: number }): void {
  chownSync(path, ids.uid, ids.gid);
  if (statSync(path).isDirectory()) for (const f of readdirSync(path)) chownTree(join(path, f), ids);
}

/** A node other than the fault tests' own (defaults: the faults node). */
export interface RabbitNodeOptions {
  nodename?: string;
  port?: number;
  /** The AMQPS listener (with a test PKI); null = none. */
  tlsPort?: number | null;
  /** The Erlang distribution port. */
  distPort?: number;
  /** Data, logs and config; must be under /var/lib/rabbitmq (see {@link RabbitNode.dir}). */
  dir?: string;
  user?: string;
  password?: string;
  /** `channel_tick_interval` in ms; null = RabbitMQ's default (60 s). */
  channelTickMs?: number | null;
}

export class RabbitNode {
  readonly nodename: string;
  readonly port: number;
  readonly tlsPort: number;
  readonly distPort: number;
  readonly user: string;
  /** Distinctive, so a grep for it in any output is meaningful. */
  readonly password: string;
  /**
   * Under the rabbitmq user's home, not the checkout: the Debian wrapper runs the node as
   * that user, who cannot reach a checkout inside a private directory (a `mktemp -d`
   * clone, /root/...), and the node then fails to boot.
   */
  readonly dir: string;
  /** The TLS files (only when the node has a TLS listener). */
  readonly pki: TestPki;
  private readonly tls: boolean;
  private readonly channelTickMs: number | null;
  private server: ChildProcess | null = null;
  private exited: Promise<void> | null = null;

  constructor(options: RabbitNodeOptions = {}) {
    this.nodename = options.nodename ?? FAULTS_NODE;
    this.port = options.port ?? FAULTS_AMQP_PORT;
    this.tls = options.tlsPort !== null;
    this.tlsPort = options.tlsPort ?? FAULTS_AMQPS_PORT;
    this.distPort = options.distPort ?? FAULTS_DIST_PORT;
    this.dir = options.dir ?? '/var/lib/rabbitmq/ts-celery-faults';
    this.user = options.user ?? 'faults';
    this.password = options.password ?? `Amqp-Secret-${randomBytes(6).toString('hex')}`;
    this.channelTickMs = options.channelTickMs === undefined ? FAULTS_CHANNEL_TICK_MS : options.channelTickMs;
    mkdirSync(this.dir, { recursive: true });
    this.pki = this.tls ? makeTestPki(join(this.dir, 'tls')) : (null as unknown as TestPki);
  }

  /** `amqp://faults:<password>@127.0.0.1:5681/` (vhost `/`). */
  get url(): string {
    return `amqp://${this.user}:${this.password}@127.0.0.1:${this.port}/`;
  }

  /** `amqps://faults:<password>@127.0.0.1:5682/` (the certificate names 127.0.0.1 and localhost). */
  get tlsUrl(): string {
    return `amqps://${this.user}:${this.password}@127.0.0.1:${this.tlsPort}/`;
  }

  get logFile(): string {
    return join(this.dir, 'log', `${this.nodename}.log`);
  }

  /** The node's log so far (empty before the first start). */
  log(): string {
    return existsSync(this.logFile) ? readFileSync(this.logFile, 'utf8') : '';
  }

  private env(): NodeJS.ProcessEnv {
    const d = this.dir;
    return {
      ...process.env,
      RABBITMQ_NODENAME: this.nodename,
      RABBITMQ_NODE_PORT: String(this.port),
      RABBITMQ_DIST_PORT: String(this.distPort),
      RABBITMQ_CONFIG_FILE: join(d, 'rabbitmq.conf'),
      RABBITMQ_ADVANCED_CONFIG_FILE: join(d, 'advanced.config'),
      RABBITMQ_MNESIA_BASE: join(d, 'mnesia'),
      RABBITMQ_LOG_BASE: join(d, 'log'),
      RABBITMQ_ENABLED_PLUGINS_FILE: join(d, 'enabled_plugins'),
      RABBITMQ_CONF_ENV_FILE: join(d, 'rabbitmq-env.conf'),
      RABBITMQ_PID_FILE: join(d, 'rabbitmq.pid'),
    };
  }

  /** Runs `rabbitmqctl ARGS` against this node; resolves with stdout. ~0.5 s. */
  async ctl(args: string[], timeoutMs = 30_000): Promise<string> {
    const run = await runCaptured('/usr/sbin/rabbitmqctl', ['-q', ...args], {
      env: this.env(),
      timeoutMs,
      what: `rabbitmqctl ${args.join(' ')} (node ${this.nodename})`,
    });
    return run.stdout;
  }

  /** Evaluates an Erlang expression on the node (`rabbitmqctl eval`). */
  eval(expr: string): Promise<string> {
    return this.ctl(['eval', expr]);
  }

  private writeConfig(): void {
    const d = this.dir;
    const p = this.pki;
    const tls = this.tls
      ? [
          `listeners.ssl.default = 127.0.0.1:${this.tlsPort}`,
          `ssl_options.cacertfile = ${p.caCert}`,
          `ssl_options.certfile = ${p.serverCert}`,
          `ssl_options.keyfile = ${p.serverKey}`,
          'ssl_options.verify = verify_peer',
          'ssl_options.fail_if_no_peer_cert = true',
        ]
      : [];
    writeFileSync(join(d, 'rabbitmq.conf'), [
      '# Written by test/helpers/rabbit-node.ts for the fault tests',
      `listeners.tcp.default = 127.0.0.1:${this.port}`,
      ...tls,
      'distribution.listener.interface = 127.0.0.1',
      `default_user = ${this.user}`,
      `default_pass = ${this.password}`,
      'default_vhost = /',
      'default_permissions.configure = .*',
      'default_permissions.read = .*',
      'default_permissions.write = .*',
      'loopback_users = none',
      'log.console = false',
      'log.file.level = info',
      // Tests restart the node; do not let a low disk-free limit block publishers.
      'disk_free_limit.absolute = 50MB',
      '',
    ].join('\n'));
    const tick = this.channelTickMs === null ? '' : `{channel_tick_interval, ${this.channelTickMs}}`;
    writeFileSync(join(d, 'advanced.config'), `[{rabbit, [${tick}]}].\n`);
    writeFileSync(join(d, 'enabled_plugins'), '[].\n');
    writeFileSync(join(d, 'rabbitmq-env.conf'), 'ERL_EPMD_ADDRESS=127.0.0.1\n');
  }

  /** True when a client can log in. */
  async accepting(): Promise<boolean> {
    if (!(await portOpen(this.port))) return false;
    try {
      const conn = await amqp.connect(this.url, { timeout: 2000 });
      conn.on('error', () => undefined);
      await conn.close();
      return true;
    } catch {
      return false;
    }
  }

  /**
   * Starts the node and waits until a client can log in. `fresh` wipes its
   * data first (queues, messages, users): used for the first start only.
   */
  async start({ fresh = false }: { fresh?: boolean } = {}): Promise<void> {
    if (this.server) throw new Error(`${this.nodename} is already running`);
    if (await portOpen(this.port)) {
      // Left over from an earlier run that crashed: it is ours (same node name), stop it.
      await this.ctl(['shutdown']).catch(() => undefined);
      if (await portOpen(this.port)) throw new Error(`port ${this.port} is taken by something that is not ${this.nodename}`);
    }
    if (fresh) {
      rmSync(join(this.dir, 'mnesia'), { recursive: true, force: true });
      rmSync(join(this.dir, 'log'), { recursive: true, force: true });
    }
    mkdirSync(join(this.dir, 'mnesia'), { recursive: true });
    mkdirSync(join(this.dir, 'log'), { recursive: true });
    this.writeConfig();
    chownTree(this.dir, rabbitUid());
    const out = openSync(join(this.dir, 'stdout.log'), 'a');
    const child = spawn('/usr/sbin/rabbitmq-server', [], {
      env: this.env(),
      cwd: '/var/lib/rabbitmq',
      detached: true,
      stdio: ['ignore', out, out],
    });
    closeSync(out);
    child.unref();
    this.server = child;
    this.exited = new Promise((resolve) => child.once('exit', () => resolve()));
    let gone = false;
    void this.exited.then(() => (gone = true));
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline) {
      if (gone) break;
      if (await this.accepting()) return;
      await sleep(250);
    }
    const tail = readFileSync(join(this.dir, 'stdout.log'), 'utf8').split('\n').slice(-30).join('\n');
    await this.stop().catch(() => undefined);
    throw new Error(`RabbitMQ node ${this.nodename} did not start:\n${tail}`);
  }

  /** Stops the node (rabbitmqctl shutdown waits for the VM to exit). Open connections are closed by the broker. */
  async stop(): Promise<void> {
    if (!this.server) return;
    try {
      await this.ctl(['shutdown'], 60_000);
    } catch {
      this.killNow();
    }
    await Promise.race([this.exited, sleep(10_000)]);
    this.server = null;
    this.exited = null;
  }

  /** Stop, then start again with the same data (durable queues and persistent messages survive). */
  async restart(downMs = 0): Promise<void> {
    await this.stop();
    if (downMs > 0) await sleep(downMs);
    await this.start();
  }

  get running(): boolean {
    return this.server !== null;
  }

  /** SIGKILL the Erlang VM (synchronous; for process exit). */
  killNow(): void {
    const pidFile = join(this.dir, 'rabbitmq.pid');
    if (existsSync(pidFile)) {
      const pid = Number(readFileSync(pidFile, 'utf8').trim());
      if (pid > 0) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          /* already gone */
        }
      }
    }
    if (this.server?.pid) {
      try {
        process.kill(-this.server.pid, 'SIGKILL');
      } catch {
        /* already gone */
      }
    }
  }

  /** Deletes queues (ignores missing ones). */
  async deleteQueues(...names: string[]): Promise<void> {
    if (names.length === 0 || !this.running) return;
    const conn = await amqp.connect(this.url);
    conn.on('error', () => undefined);
    try {
      const ch = await conn.createChannel();
      for (const n of names) await ch.deleteQueue(n);
      await ch.close();
    } finally {
      await conn.close().catch(() => undefined);
    }
  }

  /** `messages_ready`/`messages_unacknowledged`/`consumers` of one queue, or null. */
  async queueStats(name: string): Promise<{ ready: number; unacked: number; consumers: number } | null> {
    const out = await this.ctl(['list_queues', 'name', 'messages_ready', 'messages_unacknowledged', 'consumers', '--formatter', 'json']);
    const row = (JSON.parse(out) as Array<Record<string, unknown>>).find((r) => r.name === name);
    return row ? { ready: Number(row.messages_ready), unacked: Number(row.messages_unacknowledged), consumers: Number(row.consumers) } : null;
  }

  /** Every channel: its connection name, consumer count and prefetch. */
  async channels(): Promise<Array<{ connection: string; consumers: number; prefetch: number; globalPrefetch: number }>> {
    const out = await this.ctl(['list_channels', 'name', 'consumer_count', 'prefetch_count', 'global_prefetch_count', '--formatter', 'json']);
    return (JSON.parse(out) as Array<Record<string, unknown>>).map((r) => ({
      connection: String(r.name),
      consumers: Number(r.consumer_count),
      prefetch: Number(r.prefetch_count),
      globalPrefetch: Number(r.global_prefetch_count),
    }));
  }
}

let shared: Promise<RabbitNode> | null = null;
let sharedNode: RabbitNode | null = null;

/**
 * The fault tests' node, started on first use and reused by every file of
 * the run. A test that stops it must start it again before it ends.
 */
export function sharedRabbitNode(): Promise<RabbitNode> {
  if (!shared) {
    shared = (async () => {
      const node = new RabbitNode();
      sharedNode = node;
      await node.start({ fresh: true });
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

// Root-level hook (registered when the first fault test file imports this module):
// shut the node down once every file has run.
if (typeof after === 'function') {
  after(async function () {
    this.timeout(60_000);
    if (sharedNode) await sharedNode.stop();
  });
}
process.once('exit', () => {
  if (sharedNode?.running) sharedNode.killNow();
});
