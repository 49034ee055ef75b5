/**
 * `npm run bench -- --quick` as a smoke test: every workload runs against every
 * system (raw amqplib, ts-celery on its async and threads pools, Python Celery
 * 5.2.6 eventlet and prefork, BullMQ, and ts-celery and Celery prefork with
 * Redis as the broker) on the real RabbitMQ and Redis, and every task
 * completes. Timings are not asserted: this machine is shared and small-N
 * figures mean little.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { ROOT } from '../helpers/ts-worker.js';

interface BenchRecord {
  workload: string;
  system: string;
  n: number;
  completed: number;
  ok: boolean;
  error?: string;
}

interface BenchJson {
  mode: string;
  allComplete: boolean;
  records: BenchRecord[];
  targets: Array<{ text: string; measured: string; pass: boolean | null }>;
  machine: { cpu: string; cores: number; rabbitmq: string; redis: string; celery: string };
}

function runBench(args: string[], timeoutMs: number): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'scripts', 'bench', 'index.ts'), ...args], { cwd: ROOT, env: process.env });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGINT'); // the bench kills its workers on exit
      reject(new Error(`bench --quick did not finish in ${timeoutMs} ms\n${stderr}`));
    }, timeoutMs);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

describe('npm run bench -- --quick (smoke)', function () {
  this.timeout(300_000);
  let dir: string;
  let run: { code: number | null; stdout: string; stderr: string };
  let json: BenchJson;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'bench-smoke-'));
    run = await runBench(['--quick', '--out', join(dir, 'quick.json')], 280_000);
    json = JSON.parse(readFileSync(join(dir, 'quick.json'), 'utf8')) as BenchJson;
  });

  after(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('exits 0 and writes the JSON results', () => {
    expect(run.code, `${run.stdout}\n${run.stderr}`).to.equal(0);
    expect(json.mode).to.equal('quick');
    expect(json.machine.cores).to.be.greaterThan(0);
    expect(json.machine.rabbitmq).to.not.equal('unknown');
    expect(json.machine.celery).to.match(/^5\./);
  });

  it('runs every workload against every system it compares', () => {
    const seen = new Set(json.records.map((r) => `${r.workload}/${r.system}`));
    const expected = [
      'noop/raw', 'noop/ts', 'noop/ts-events', 'noop/py-eventlet', 'noop/py-prefork', 'noop/bullmq',
      'noop-redis/ts', 'noop-redis/ts-late', 'noop-redis/py-eventlet', 'noop-redis/py-prefork',
      'sleep100/raw', 'sleep100/ts', 'sleep100/py-eventlet', 'sleep100/bullmq',
      'producer-rate/raw', 'producer-rate/ts', 'producer-rate/python', 'producer-rate/bullmq',
      'producer-single/raw', 'producer-single/ts', 'producer-single/python', 'producer-single/bullmq',
      'e2e/raw', 'e2e/ts', 'e2e/py-eventlet', 'e2e/py-prefork', 'e2e/bullmq',
      'chord/ts', 'chord/ts-plain', 'chord/py-prefork',
      'noop-rb/ts-redis', 'noop-rb/py-prefork-redis', 'noop-rb/bullmq',
      'sleep100-rb/ts-redis', 'sleep100-rb/bullmq',
      'producer-rate-rb/ts-redis', 'producer-rate-rb/python-redis', 'producer-rate-rb/bullmq',
      'e2e-rb/ts-redis', 'e2e-rb/py-prefork-redis', 'e2e-rb/bullmq',
      'cpu/ts-threads', 'cpu/ts-async2', 'cpu/py-prefork',
      'noop-hop/hop-async', 'noop-hop/hop-threads',
      'noop-scale/ts', 'noop-scale/ts-quorum', 'noop-scale/ts-x2', 'noop-scale/ts-quorum-x2',
    ];
    expect([...seen].sort()).to.deep.equal([...expected].sort());
  });

  it('completes every task in every run', () => {
    for (const r of json.records) {
      expect(r.completed, `${r.workload}/${r.system}: ${r.error ?? ''}`).to.equal(r.n);
      expect(r.ok, `${r.workload}/${r.system}: ${r.error ?? ''}`).to.equal(true);
    }
    expect(json.allComplete).to.equal(true);
  });

  it('prints the machine, the tables and the targets', () => {
    expect(run.stdout).to.match(/^CPU: .+cores/m);
    expect(run.stdout).to.include('### Workload 1: no-op task, no result backend');
    expect(run.stdout).to.include('### Targets (same-run ratios)');
    expect(run.stdout).to.match(/\| ts-celery -c 1000 \| [\d,]+ \|/);
    expect(json.targets.length).to.be.greaterThan(8);
  });
});
