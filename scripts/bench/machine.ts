/** What the benchmark ran on: hardware, services and library versions (printed and saved with the results). */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { cpus, loadavg, release, totalmem } from 'node:os';
import { join } from 'node:path';
import type { ChannelModel } from 'amqplib';
import type { Redis } from 'ioredis';
import { PYTHON, ROOT } from './config.js';

export interface MachineInfo {
  cpu: string;
  cores: number;
  ramGb: number;
  kernel: string;
  /** 1/5/15-minute load averages when the benchmark started (a busy machine makes noisy numbers). */
  loadAtStart: number[];
  rabbitmq: string;
  redis: string;
  node: string;
  python: string;
  celery: string;
  eventlet: string;
  packages: Record<string, string>;
  git: string;
}

function packageVersion(name: string): string {
  try {
    return (JSON.parse(readFileSync(join(ROOT, 'node_modules', name, 'package.json'), 'utf8')) as { version: string }).version;
  } catch {
    return 'not installed';
  }
}

function run(command: string, args: string[]): string {
  try {
    return execFileSync(command, args, { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 20_000 }).trim();
  } catch {
    return 'unknown';
  }
}

export async function machineInfo(amqp: ChannelModel, redis: Redis): Promise<MachineInfo> {
  const cpuinfo = readFileSync('/proc/cpuinfo', 'utf8');
  const server = (amqp as unknown as { connection: { serverProperties?: Record<string, unknown> } }).connection.serverProperties ?? {};
  const redisInfo = await redis.info('server');
  const py = run(PYTHON, ['-c', 'import sys, json, celery, eventlet; print(json.dumps([sys.version.split()[0], celery.__version__, eventlet.__version__]))']);
  let pyVersions: string[] = ['unknown', 'unknown', 'unknown'];
  try {
    pyVersions = JSON.parse(py) as string[];
  } catch {
    /* python3-celery or eventlet missing */
  }
  const commit = run('git', ['rev-parse', '--short', 'HEAD']);
  const dirty = run('git', ['status', '--porcelain', '--untracked-files=no', 'src']) ? ' (src/ modified)' : '';
  return {
    cpu: /model name\s*:\s*(.+)/.exec(cpuinfo)?.[1] ?? cpus()[0]?.model ?? 'unknown',
    cores: cpus().length,
    ramGb: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    kernel: release(),
    loadAtStart: loadavg().map((l) => Math.round(l * 100) / 100),
    rabbitmq: String(server.version ?? 'unknown'),
    redis: /redis_version:(\S+)/.exec(redisInfo)?.[1] ?? 'unknown',
    node: process.version,
    python: pyVersions[0] ?? 'unknown',
    celery: pyVersions[1] ?? 'unknown',
    eventlet: pyVersions[2] ?? 'unknown',
    packages: Object.fromEntries(['amqplib', 'ioredis', 'bullmq', 'tsx'].map((p) => [p, packageVersion(p)])),
    git: `${commit}${dirty}`,
  };
}

/** One line per fact, for the printed header. */
export function describeMachine(m: MachineInfo): string {
  return [
    `CPU: ${m.cpu}, ${m.cores} cores, ${m.ramGb} GB RAM, Linux ${m.kernel}; load average at start ${m.loadAtStart.join(' / ')}`,
    `RabbitMQ ${m.rabbitmq}, Redis ${m.redis}, Node ${m.node}, Python ${m.python} (Celery ${m.celery}, eventlet ${m.eventlet})`,
    `amqplib ${m.packages.amqplib}, ioredis ${m.packages.ioredis}, BullMQ ${m.packages.bullmq}, tsx ${m.packages.tsx}; ts-celery ${m.git}`,
  ].join('\n');
}
