/**
 * Bad API use on the producer side.
 *
 * - `delay()`/`applyAsync()`/`sendTask()` with arguments JSON cannot carry
 *   (BigInt, cycles, functions, symbols, NaN/Infinity, Map/Set, invalid
 *   dates) reject with an EncodeError naming the argument, before anything is
 *   published: the broker is not even connected to (a counting TCP proxy in
 *   front of it sees no connection).
 * - `delay()` never resolves for a message the broker did not keep: a
 *   message that no queue takes (its queue was deleted after this producer
 *   declared it) is not a confirmed task.
 */
import { expect } from 'chai';
import { BrokerError, EncodeError, type Celery } from '../../src/index.js';
import { TcpProxy } from '../helpers/tcp-proxy.js';
import { faultServices, newRun, producerApp, report, type FaultServices } from './support.js';

describe('bad API use: unserializable arguments, unroutable sends', function () {
  this.timeout(30_000);
  let svc: FaultServices;
  let proxy: TcpProxy;
  const apps: Celery[] = [];
  const queues: string[] = [];

  before(async () => {
    svc = await faultServices();
    proxy = new TcpProxy(svc.rabbit.port);
    await proxy.start();
  });

  after(async () => {
    await Promise.all(apps.map((a) => a.close().catch(() => undefined)));
    await proxy.close();
    await svc.rabbit.deleteQueues(...queues).catch(() => undefined);
  });

  it('rejects unserializable arguments with a clear EncodeError before anything is published', async () => {
    const queue = `faults-${newRun('badargs')}`;
    queues.push(queue);
    const app = producerApp({ broker_url: `amqp://${svc.rabbit.user}:${svc.rabbit.password}@127.0.0.1:${proxy.port}/`, task_default_queue: queue });
    apps.push(app);
    const echo = app.task({ name: 'faults.echo' }, (value: unknown) => value);
    const cycle: Record<string, unknown> = { name: 'loop' };
    cycle.self = cycle;
    const cases: Array<[string, () => Promise<unknown>, RegExp]> = [
      ['BigInt', () => echo.delay(10n), /args\[0\] is a BigInt/],
      ['nested BigInt', () => echo.delay({ amount: { cents: 10n } }), /args\[0\]\.amount\.cents is a BigInt/],
      ['cycle', () => echo.delay(cycle), /args\[0\]\.self refers back to itself/],
      ['function', () => echo.delay(() => 1), /args\[0\] is a function/],
      ['symbol', () => echo.delay(Symbol('s')), /args\[0\] is a symbol/],
      ['NaN', () => echo.delay(Number.NaN), /args\[0\] is NaN/],
      ['Infinity', () => echo.delay([1, Infinity]), /args\[0\]\[1\] is Infinity/],
      ['Map', () => echo.delay(new Map([['a', 1]])), /args\[0\] is a Map/],
      ['Set', () => echo.delay(new Set([1])), /args\[0\] is a Set/],
      ['invalid Date', () => echo.delay(new Date('nope')), /args\[0\] is an invalid Date/],
      ['kwargs BigInt', () => echo.applyAsync([], { value: 1n }), /kwargs\.value is a BigInt/],
      ['sendTask cycle', () => app.sendTask('faults.echo', [cycle]), /args\[0\]\.self refers back to itself/],
    ];
    let rejected = 0;
    for (const [what, send, message] of cases) {
      let error: unknown = null;
      try {
        await send();
      } catch (err) {
        error = err;
      }
      expect(error, `${what}: delay() rejected`).to.be.instanceOf(EncodeError);
      expect((error as Error).message, what).to.match(/^Cannot encode the arguments of task faults\.echo: /).and.to.match(message);
      rejected++;
    }
    report('bad-api', { calls: cases.length, rejected, 'broker-connections': proxy.accepted });
    expect(proxy.accepted, 'connections opened to the broker by the bad calls').to.equal(0);

    // The same app still works for a good call (and only then connects).
    const ok = await echo.delay({ fine: [1, 'two', null] });
    expect(ok.id).to.be.a('string');
    expect(proxy.accepted).to.equal(1);
    expect((await svc.rabbit.queueStats(queue))?.ready).to.equal(1);
  });

  it('does not resolve delay() for a message no queue kept (queue deleted after it was declared)', async () => {
    const queue = `faults-${newRun('gone')}`;
    queues.push(queue);
    const app = producerApp({ broker_url: svc.rabbit.url, task_default_queue: queue });
    apps.push(app);
    await app.sendTask('faults.echo', ['first']); // declares the queue (cached for this connection)
    expect((await svc.rabbit.queueStats(queue))?.ready).to.equal(1);
    await svc.rabbit.deleteQueues(queue);

    let outcome: string;
    try {
      await app.sendTask('faults.echo', ['second']);
      outcome = 'resolved';
    } catch (err) {
      outcome = err instanceof BrokerError ? 'rejected' : `threw ${String(err)}`;
    }
    const stats = await svc.rabbit.queueStats(queue);
    const kept = stats?.ready ?? 0;
    report('unroutable-send', { outcome, 'messages-kept': kept });
    // Either the message was kept (the producer declared the queue again) or delay() said it was not.
    expect(outcome === 'rejected' || (outcome === 'resolved' && kept === 1), `delay() ${outcome} but the broker kept ${kept} message(s)`).to.equal(true);
  });
});
