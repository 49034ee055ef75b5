/**
 * The conformance harness fails loudly on its own faults, never reporting a
 * green run that proved nothing: a tampered sdist, a worker that never becomes
 * ready, a worker that dies mid-suite, a run that collects no test.
 * (The suite itself runs after mocha, as `npm run test:celery-suite`.)
 */
import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { waitFor } from '../helpers/wait-for.js';
import { ensureSuiteSource, HarnessFault } from './sdist.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = join(HERE, '..', '..');
const TSX = join(ROOT, 'node_modules', '.bin', 'tsx');

function harness(args: string[], env: Record<string, string>): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const child = spawn(TSX, [join(HERE, 'run.ts'), ...args], { cwd: ROOT, env: { ...process.env, ...env } });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    child.on('close', (code) => resolve({ code, out }));
  });
}

/** Whether anything accepts TCP connections on 127.0.0.1:port. */
function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

describe('celery-suite harness faults', function () {
  this.timeout(180_000);

  it('refuses an sdist whose sha256 is not the pinned one, naming both digests', () => {
    const cache = mkdtempSync(join(tmpdir(), 'celery-suite-'));
    try {
      writeFileSync(join(cache, 'celery-5.7.0.tar.gz'), 'not the celery sdist');
      expect(() => ensureSuiteSource(join(ROOT, '.venv', 'bin', 'python'), cache, () => {}))
        .to.throw(HarnessFault, /checksum mismatch[\s\S]*expected sha256 6a5dfcf6[\s\S]*actual {3}sha256 [0-9a-f]{64}/);
    } finally {
      rmSync(cache, { recursive: true, force: true });
    }
  });

  it('exits 2 when the worker exits before it is ready', async () => {
    const { code, out } = await harness(['--', 't/integration/test_inspect.py::test_Inspect::test_ping'], {
      // `--`: the -n/-c the plugin appends go to the script, not to node.
      CELERY_SUITE_WORKER_CMD: JSON.stringify([process.execPath, '-e', 'process.exit(3)', '--']),
    });
    expect(out).to.match(/HARNESS FAULT: the worker exited with code 3 before it was ready/);
    expect(out).not.to.match(/^celery-suite: \d+ passed/m);
    expect(code).to.equal(2);
  });

  it('exits 2 when the worker dies mid-suite, and stops the run there', async () => {
    const tests = ['test_basic_task', 'test_timeout', 'test_fail', 'test_eta'].map((t) => `t/integration/test_tasks.py::test_tasks::${t}`);
    const { code, out } = await harness(['--', ...tests], {
      CELERY_SUITE_WORKER_CMD: JSON.stringify([
        process.execPath, join(HERE, 'dying-worker.mjs'),
        join(ROOT, 'bin', 'ts-celery.js'), 'worker', '-A', join(HERE, 'tasks'), '-l', 'info',
      ]),
      DIE_AFTER_MS: '3000',
    });
    expect(out).to.match(/HARNESS FAULT: the worker died mid-suite \(exit code 137\) before t\/integration\/test_tasks\.py::test_tasks::test_(fail|eta)/);
    expect(out).not.to.match(/^celery-suite: \d+ passed/m);
    expect(code).to.equal(2);
  });

  it('exits 2 when no test is collected, and stops its own redis-server on the way out', async () => {
    const { code, out } = await harness(['--', '-k', 'no_such_test_zz', 't/integration/test_inspect.py'], {});
    expect(out).to.match(/HARNESS FAULT: pytest collected no test/);
    expect(code).to.equal(2);
    const port = Number(/own redis-server on 127\.0\.0\.1:(\d+)/.exec(out)?.[1]);
    expect(port, out).to.be.greaterThan(0);
    // SIGKILLed as run.ts exits; the kernel closes its socket a moment later.
    await waitFor(async () => !(await listening(port)), { timeoutMs: 5000, what: `redis-server on ${port} to be gone after the run` });
  });
});
