/**
 * `npx ts-celery worker` and a SIGTERM to npx alone (issue #9, item 3).
 *
 * npx runs the worker as a grandchild (npm -> sh -> node) and, on SIGTERM,
 * exits at once without passing the signal on: what `docker stop` and many
 * supervisors do to the command they started. The worker must notice that
 * its launcher is gone and shut down warm: no orphan keeps consuming, and
 * no task is lost.
 */
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { expect } from 'chai';
import { Celery } from '../../src/index.js';
import { AMQP_URL, REDIS_URL, deleteQueues, uniqueName } from '../helpers/services.js';
import { ROOT, startTsWorker } from '../helpers/ts-worker.js';
import { waitFor } from '../helpers/wait-for.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Pids of live processes whose command line contains `marker`. */
function processesWith(marker: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8');
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      if (cmdline.includes(marker) && !/\) Z /.test(stat)) pids.push(Number(entry));
    } catch {
      /* gone meanwhile */
    }
  }
  return pids;
}

describe('npx ts-celery worker: SIGTERM to the launcher only (integration)', function () {
  this.timeout(90_000);
  const queue = uniqueName('launcher');
  const nodeName = `${queue}@launcher`;
  let app: Celery;

  before(() => {
    app = new Celery('launcher-test', { broker_url: AMQP_URL, result_backend: REDIS_URL });
  });
  after(async () => {
    for (const pid of processesWith(nodeName)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* already gone */
      }
    }
    await app.close();
    await deleteQueues(queue);
  });

  it('the worker shuts down warm within 30 s, and every task runs exactly once', async () => {
    const npx = spawn('npx', ['ts-celery', 'worker', '-A', 'test/interop/ts-app', '-Q', queue, '-n', nodeName, '-c', '2', '-l', 'info'], {
      cwd: ROOT,
      env: { ...process.env, TSAPP_QUEUE: queue },
      detached: true, // its own process group: the test signals npx alone, as `docker stop` does
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    npx.stdout.on('data', (d: Buffer) => (out += d.toString()));
    npx.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const deadline = Date.now() + 40_000;
    while (!/ ready\.$/m.test(out)) {
      if (Date.now() > deadline || npx.exitCode !== null) throw new Error(`the worker did not start through npx:\n${out}`);
      await sleep(100);
    }
    const [workerPid] = processesWith(nodeName).filter((pid) => pid !== npx.pid && readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('bin/ts-celery'));
    expect(workerPid, `no worker process under npx:\n${out}`).to.be.a('number');

    // Two tasks running (-c 2) and four waiting in the worker when the launcher goes.
    const results = await Promise.all(Array.from({ length: 6 }, () => app.sendTask<number>('ts.sleepy', [1.5], {}, { queue })));
    while ((out.match(/ts\.sleepy\[[^\]]+\] received/g) ?? []).length < 6) await sleep(50);

    process.kill(npx.pid!, 'SIGTERM');
    const termAt = Date.now();
    while (processesWith(nodeName).length > 0 && Date.now() - termAt < 30_000) await sleep(200);
    expect(processesWith(nodeName), `still running 30 s after SIGTERM to npx:\n${out}`).to.deep.equal([]);
    expect(out).to.match(/worker: the launching process \(pid \d+\) exited: Warm shutdown \(MainProcess\)/);
    expect(out).to.match(/Returned 4 task\(s\) that had not started to the queue/);

    // The two that were running finished; the four returned run on the next worker. None lost, none twice.
    const next = await startTsWorker({ queues: [queue], concurrency: 4 });
    try {
      const values = await Promise.all(results.map((r) => r.get({ timeout: 20_000 })));
      expect(values).to.deep.equal([1.5, 1.5, 1.5, 1.5, 1.5, 1.5]);
      // "succeeded" is logged just after the result is stored.
      const runs = (): number => ((out + next.output()).match(/ts\.sleepy\[[^\]]+\] succeeded/g) ?? []).length;
      // Polled (the log lines of a loaded machine lag), then 300 ms in which a seventh run would show up.
      await waitFor(() => runs() >= 6, { timeoutMs: 20_000, what: 'six "succeeded" log lines' }).catch(() => {});
      await sleep(300);
      expect(runs()).to.equal(6);
    } finally {
      await next.stop();
    }
  });

  it('--no-exit-with-parent keeps the worker running when its launcher exits', async () => {
    const name = `${queue}-detached@launcher`;
    // A shell as the launcher: it starts the worker in the background and dies on SIGTERM.
    const sh = spawn('sh', ['-c', `node bin/ts-celery.js worker -A test/interop/ts-app -Q ${queue} -n ${name} -l info --no-exit-with-parent & wait`], {
      cwd: ROOT,
      env: { ...process.env, TSAPP_QUEUE: queue },
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    sh.stdout.on('data', (d: Buffer) => (out += d.toString()));
    sh.stderr.on('data', (d: Buffer) => (out += d.toString()));
    try {
      const deadline = Date.now() + 30_000;
      while (!/ ready\.$/m.test(out)) {
        if (Date.now() > deadline) throw new Error(`the worker did not start:\n${out}`);
        await sleep(100);
      }
      process.kill(sh.pid!, 'SIGTERM');
      await sleep(3000); // three parent checks
      expect(sh.signalCode ?? sh.exitCode, 'the launcher is gone').not.to.equal(null);
      expect(processesWith(name), out).to.have.length(1);
      expect(out).not.to.match(/launching process/);
    } finally {
      for (const pid of processesWith(name)) process.kill(pid, 'SIGKILL');
    }
  });
});
