/**
 * Fault: a TypeScript worker is killed with SIGKILL in the middle of a
 * 1,000-member chord (acks_late), while another worker runs the same queue.
 *
 * What the killed worker held is redelivered and runs again on the survivor;
 * members that had finished but whose ack had not reached RabbitMQ run twice.
 * The chord still counts each member once (Celery 5.7's `.d` set of
 * `<task_id>:<group_index>`), and exactly one worker claims the body (`.c`):
 * the body runs exactly once, with all 1,000 results in header order.
 */
import { expect } from 'chai';
import { Redis } from 'ioredis';
import { chord } from '../../src/index.js';
import { faultFixture, newRun, producerApp, report, sleep, startFaultWorker, waitFor } from './support.js';

const MEMBERS = 1000;
const MEMBER_MS = 150;
/** This test counts in the shared Redis DB 14 (not the fault node, which nothing faults here). */
const COUNTS = 'redis://127.0.0.1:6379/14';

describe('fault: worker killed with SIGKILL in the middle of a chord', function () {
  this.timeout(120_000);
  const fx = faultFixture();
  const counts = new Redis(COUNTS);
  after(async () => {
    for (const run of fx.runs) await counts.del(`faults:${run}:done`, `faults:${run}:started`, `faults:${run}:body`);
    counts.disconnect();
  });

  it('acks_late: the body runs exactly once, with all 1,000 results', async () => {
    const run = newRun('chordkill');
    fx.runs.push(run);
    const queue = `faults-${run}`;
    fx.queues.push(queue);
    const backend = fx.svc.redis.url(3);
    const env = { FAULTS_ACKS_LATE: '1', FAULTS_COUNTS: COUNTS };
    const [victim, survivor] = await Promise.all([
      startFaultWorker({ broker: fx.svc.rabbit.url, backend, queue, concurrency: 50, env }),
      startFaultWorker({ broker: fx.svc.rabbit.url, backend, queue, concurrency: 50, env }),
    ]);
    fx.workers.push(victim, survivor);
    const app = producerApp({ broker_url: fx.svc.rabbit.url, result_backend: backend, task_default_queue: queue });
    fx.apps.push(app);

    const header = Array.from({ length: MEMBERS }, (_, i) => app.signature('faults.chord_member', [`${run}:${i}`, i, MEMBER_MS]));
    const result = await chord(header, app.signature('faults.chord_body', [run])).applyAsync();

    // Kill the victim once a good part of the header is done, with its 50 slots busy.
    const doneBy = async (pid: number): Promise<number> =>
      (await counts.lrange(`faults:${run}:done`, 0, -1)).filter((l) => l.split('|')[1] === String(pid)).length;
    await waitFor(async () => (await doneBy(victim.pid)) >= 150, 30_000, 'the victim to finish 150 members', 20);
    await sleep(MEMBER_MS / 3); // mid-way through the next members
    victim.kill('SIGKILL');
    await victim.exited;

    const values = (await result.get({ timeout: 60_000 })) as number[];
    await sleep(3000); // a second body (or a late duplicate member firing one) would show up now
    const bodies = await counts.lrange(`faults:${run}:body`, 0, -1);
    const started = await counts.lrange(`faults:${run}:started`, 0, -1);
    const done = await counts.lrange(`faults:${run}:done`, 0, -1);
    const doneTags = new Set(done.map((l) => l.split('|')[0]));
    report('chord-kill acks_late', {
      members: MEMBERS, 'member-runs': done.length, 'members-completed': doneTags.size,
      'members-run-twice': done.length - doneTags.size, 'started-but-cut': started.length - done.length,
      'body-runs': bodies.length, 'body-results': values.length,
    });
    expect(bodies, 'the body ran exactly once').to.have.length(1);
    expect(bodies[0]!.split('|')[0]).to.equal(String(MEMBERS));
    expect(values).to.deep.equal(Array.from({ length: MEMBERS }, (_, i) => i * 2));
    expect(doneTags.size, 'every member completed').to.equal(MEMBERS);
    expect(started.length, 'the kill cut members short (they started again on the survivor)').to.be.greaterThan(MEMBERS);
  });
});
