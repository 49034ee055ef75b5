/**
 * The tutorial's raw producer/consumer pair, as child processes on the test vhost: the amqplib
 * scripts (scripts/rabbitmq_*.ts) with each other and with the tutorial's own pika scripts
 * (test/interop/py/seed/*.py, run with .venv/bin/python). Each test uses its own queue.
 */
import amqp, { type ChannelModel } from 'amqplib';
import { expect } from 'chai';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { AMQP_URL, uniqueName } from '../helpers/services.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const PYTHON = join(ROOT, '.venv', 'bin', 'python');
const TS_PRODUCER = join(ROOT, 'scripts', 'rabbitmq_producer.ts');
const TS_CONSUMER = join(ROOT, 'scripts', 'rabbitmq_consumer.ts');
const PY_PRODUCER = join(ROOT, 'test', 'interop', 'py', 'seed', 'rabbitmq_producer.py');
const PY_CONSUMER = join(ROOT, 'test', 'interop', 'py', 'seed', 'rabbitmq_customer.py');
const BODY = 'Hello RabbitMQ!';

/** The RABBITMQ_* variables the scripts read, taken from AMQP_URL, plus the queue. */
function scriptEnv(queue: string): NodeJS.ProcessEnv {
  const url = new URL(AMQP_URL);
  return {
    ...process.env,
    RABBITMQ_HOST: url.hostname,
    RABBITMQ_PORT: url.port || '5672',
    RABBITMQ_VHOST: decodeURIComponent(url.pathname.slice(1)) || '/',
    RABBITMQ_USER: decodeURIComponent(url.username) || 'guest',
    RABBITMQ_PASSWORD: decodeURIComponent(url.password) || 'guest',
    RABBITMQ_QUEUE: queue,
    PYTHONUNBUFFERED: '1',
    PYTHONIOENCODING: 'utf-8',
  };
}

/** A running script: its output so far, its exit, and a way to wait for a line. */
class Script {
  stdout = '';
  stderr = '';
  readonly exited: Promise<number | null>;
  private readonly child: ChildProcess;

  constructor(command: string, args: string[], env: NodeJS.ProcessEnv) {
    this.child = spawn(command, args, { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    this.child.stdout!.on('data', (c: Buffer) => (this.stdout += c.toString('utf8')));
    this.child.stderr!.on('data', (c: Buffer) => (this.stderr += c.toString('utf8')));
    this.exited = new Promise((resolve, reject) => {
      this.child.once('error', reject);
      this.child.once('close', (code, signal) => resolve(signal ? null : code));
    });
  }

  /** A TypeScript script, as `npx tsx script` runs it (one process, so that kill() reaches it). */
  static ts(script: string, env: NodeJS.ProcessEnv, args: string[] = []): Script {
    return new Script(process.execPath, ['--import', 'tsx', script, ...args], env);
  }

  static py(script: string, env: NodeJS.ProcessEnv): Script {
    return new Script(PYTHON, ['-u', script], env);
  }

  /** Resolves once `pattern` shows on stdout or stderr; fails after `ms` or if the script exits first. */
  async waitFor(pattern: RegExp, ms = 15_000): Promise<void> {
    const deadline = Date.now() + ms;
    let done = false;
    void this.exited.then(() => (done = true));
    while (!pattern.test(this.stdout) && !pattern.test(this.stderr)) {
      if (done) throw new Error(`exited before printing ${pattern}\nstdout: ${this.stdout}\nstderr: ${this.stderr}`);
      if (Date.now() > deadline) throw new Error(`no ${pattern} after ${ms} ms\nstdout: ${this.stdout}\nstderr: ${this.stderr}`);
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  }

  /** Waits for the exit code; kills the script if it takes longer than `ms`. */
  async exit(ms = 20_000): Promise<number | null> {
    const timer = setTimeout(() => this.kill(), ms);
    try {
      return await this.exited;
    } finally {
      clearTimeout(timer);
    }
  }

  kill(): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGTERM');
  }
}

describe('the tutorial producer/consumer scripts (interop with pika)', function () {
  this.timeout(60_000);
  let conn: ChannelModel;
  const queues: string[] = [];
  const scripts: Script[] = [];

  const newQueue = (): string => {
    const q = uniqueName('seed');
    queues.push(q);
    return q;
  };
  const track = (s: Script): Script => (scripts.push(s), s);
  const messageCount = async (queue: string): Promise<number> => {
    const ch = await conn.createChannel();
    try {
      return (await ch.checkQueue(queue)).messageCount;
    } finally {
      await ch.close();
    }
  };

  before(async function () {
    if (!existsSync(PYTHON)) throw new Error(`${PYTHON} is missing: run \`bash scripts/services.sh ensure\` first`);
    conn = await amqp.connect(AMQP_URL);
  });
  afterEach(async () => {
    for (const s of scripts.splice(0)) {
      s.kill();
      await s.exited.catch(() => undefined);
    }
  });
  after(async () => {
    if (!conn) return;
    const ch = await conn.createChannel();
    for (const q of queues) await ch.deleteQueue(q).catch(() => undefined);
    await conn.close();
  });

  it('TS producer -> TS consumer: the consumer prints the body and exits after --count 1', async () => {
    const queue = newQueue();
    const env = scriptEnv(queue);
    const producer = track(Script.ts(TS_PRODUCER, env));
    expect(await producer.exit(), producer.stderr).to.equal(0);
    expect(producer.stdout).to.equal(`开始向 '${queue}' 队列中发布消息 '${BODY}'\n`);
    expect(await messageCount(queue)).to.equal(1);

    const consumer = track(Script.ts(TS_CONSUMER, env, ['--count', '1']));
    expect(await consumer.exit(), consumer.stderr).to.equal(0);
    expect(consumer.stdout).to.equal(`${BODY}\n`);
    expect(await messageCount(queue)).to.equal(0);
  });

  it('declares the queue like pika: not durable (a durable redeclaration is refused)', async () => {
    const queue = newQueue();
    const producer = track(Script.ts(TS_PRODUCER, scriptEnv(queue)));
    expect(await producer.exit(), producer.stderr).to.equal(0);
    const ch = await conn.createChannel();
    ch.on('error', () => undefined); // the 406 below closes this channel
    await ch.assertQueue(queue, { durable: false, exclusive: false, autoDelete: false });
    const err = await ch.assertQueue(queue, { durable: true }).then(() => null, (e: Error) => e);
    expect(err?.message).to.match(/PRECONDITION_FAILED/);
  });

  it('with --count 2, a third message stays in the queue for the next consumer', async () => {
    const queue = newQueue();
    const env = scriptEnv(queue);
    for (let i = 0; i < 3; i++) expect(await track(Script.ts(TS_PRODUCER, env)).exit()).to.equal(0);
    const consumer = track(Script.ts(TS_CONSUMER, env, ['--count=2']));
    expect(await consumer.exit(), consumer.stderr).to.equal(0);
    expect(consumer.stdout).to.equal(`${BODY}\n${BODY}\n`);
    expect(await messageCount(queue)).to.equal(1);
  });

  it('pika producer -> TS consumer (the consumer declared the queue first)', async () => {
    const queue = newQueue();
    const env = scriptEnv(queue);
    const consumer = track(Script.ts(TS_CONSUMER, env, ['--count', '1']));
    await consumer.waitFor(/Waiting for messages/);

    const producer = track(Script.py(PY_PRODUCER, env));
    expect(await producer.exit(), producer.stderr).to.equal(0);
    expect(producer.stdout).to.equal(`开始向 '${queue}' 队列中发布消息 '${BODY}'\n`);

    expect(await consumer.exit(), consumer.stderr).to.equal(0);
    expect(consumer.stdout).to.equal(`${BODY}\n`);
  });

  it('TS producer -> pika consumer (pika redeclares the queue the TS producer declared)', async () => {
    const queue = newQueue();
    const env = scriptEnv(queue);
    const producer = track(Script.ts(TS_PRODUCER, env));
    expect(await producer.exit(), producer.stderr).to.equal(0);

    // The tutorial's consumer runs until stopped and prints Python's repr of the bytes.
    const consumer = track(Script.py(PY_CONSUMER, env));
    await consumer.waitFor(/b'Hello RabbitMQ!'/);
    expect(consumer.stdout).to.equal(`b'${BODY}'\n`);
    expect(await messageCount(queue)).to.equal(0);
    consumer.kill();
    await consumer.exit();
    expect(consumer.stderr).not.to.match(/PRECONDITION_FAILED|Traceback/);
  });
});
