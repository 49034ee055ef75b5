/**
 * Fault: the connection dies between a task's ack and the moment the ack
 * batcher sends it (acks go out on the next turn of the event loop). The
 * worker must shrug: RabbitMQ requeues the unacked message by itself, and the
 * consumer reconnects. Deterministic version of a crash the broker-restart
 * test hits now and then under load. Runs in a child process (a crash must
 * not take mocha down).
 */
import { spawn } from 'node:child_process';
import { expect } from 'chai';
import { ROOT } from '../helpers/ts-worker.js';
import { faultServices, newRun, report, type FaultServices } from './support.js';

describe('fault: connection lost between ack() and the ack flush', function () {
  this.timeout(30_000);
  let svc: FaultServices;
  const queue = `faults-${newRun('ackrace')}`;

  before(async () => {
    svc = await faultServices();
  });

  after(async () => {
    await svc.rabbit.deleteQueues(queue).catch(() => undefined);
  });

  it('does not crash the consumer process', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'test/faults/ack-race-child.ts', svc.rabbit.url, queue], { cwd: ROOT });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
    report('ack-race', { exit: String(code), survived: /survived/.test(out) ? 'yes' : 'no' });
    expect(code, `child output:\n${out}`).to.equal(0);
    // The ack never reached RabbitMQ, so after the automatic reconnect the message may come back
    // (at least once): what matters is that the process survived and the message was delivered.
    expect(out).to.match(/delivered=[1-9]\d* survived/);
  });
});
