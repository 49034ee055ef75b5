/**
 * Events in one process (memory broker): a worker's events reach a receiver
 * with the fields, order and batching Celery 5.7 uses
 * (test/fixtures/celery-5.7/event_*.json), and the dumper prints them as
 * `celery events --dump` does.
 */
import { readFileSync } from 'node:fs';
import { expect } from 'chai';
import { Celery, Worker } from '../../../src/index.js';
import { EventDispatcher } from '../../../src/events/dispatcher.js';
import { Dumper } from '../../../src/events/dumper.js';
import type { CeleryEvent } from '../../../src/events/event.js';
import { EventReceiver } from '../../../src/events/receiver.js';
import { MemoryBroker } from '../../../src/broker/memory.js';
import type { Delivery } from '../../../src/broker/types.js';
import { LamportClock } from '../../../src/support/clock.js';
import { setLogSink } from '../../../src/support/log.js';

const fixture = (name: string): { body_decoded: Record<string, unknown>; delivery_info: { routing_key: string }; headers: Record<string, unknown> } =>
  JSON.parse(readFileSync(new URL(`../../fixtures/celery-5.7/${name}.json`, import.meta.url), 'utf8'));

const tick = (ms = 20): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('events', () => {
  it('a dispatcher batches buffered groups into <group>.multi lists of at most 24, others go one by one', async () => {
    const broker = new MemoryBroker();
    const got: Delivery[] = [];
    await broker.consume(
      { name: 'tap', durable: false, autoDelete: true, arguments: {}, exchange: { name: 'celeryev', type: 'topic', durable: true }, routingKey: '#' },
      { prefetch: 0, noAck: true, onDelivery: (d) => got.push(d) },
    );
    const d = new EventDispatcher({ hostname: 'w@h', broker: () => broker, clock: new LamportClock(), exchange: { name: 'celeryev', type: 'topic', durable: true }, bufferGroups: ['task'] });
    for (let i = 0; i < 30; i++) d.send('task-started', { uuid: `id${i}` });
    d.send('worker-heartbeat', { freq: 2 });
    await d.flush();
    await tick();
    const keys = got.map((m) => m.info.routingKey);
    expect(keys).to.deep.equal(['task.multi', 'worker.heartbeat', 'task.multi']);
    const [first, hb, second] = got.map((m) => JSON.parse(m.message.body.toString()) as unknown);
    expect((first as unknown[]).length).to.equal(24);
    expect((second as unknown[]).length).to.equal(6);
    expect(Object.keys(hb as object)).to.deep.equal(['hostname', 'utcoffset', 'pid', 'clock', 'freq', 'timestamp', 'type']);
    expect(got[0]!.message.headers).to.deep.equal({ hostname: 'w@h' });
  });

  describe('a worker with task events', () => {
    let app: Celery;
    let worker: Worker;
    let receiver: EventReceiver;
    const events: CeleryEvent[] = [];
    const restore = setLogSink(() => undefined);

    before(async () => {
      app = new Celery('ev', { broker_url: 'memory://', worker_send_task_events: true, task_send_sent_event: true });
      app.task({ name: 'add' }, (x: number, y: number) => x + y);
      app.task({ name: 'fail' }, () => {
        throw new RangeError('nope');
      });
      app.task({ name: 'again', bind: true }, async (self) => (self.request.retries < 1 ? self.retry({ countdown: 0.05, exc: new Error('once') }) : 'ok'));
      receiver = new EventReceiver(app, { handlers: { '*': (e) => events.push(e) } });
      await receiver.start();
      worker = new Worker(app, { hostname: 'ev@test', concurrency: 2, heartbeatInterval: 0.05 });
      await worker.start();
    });
    after(async () => {
      await receiver.close();
      await app.close();
      setLogSink(restore);
    });

    it("sends every event type with Celery 5.7's fields, in its order", async () => {
      const ok = await app.sendTask('add', [2, 3]);
      await ok.get({ timeout: 2000 });
      await (await app.sendTask('fail', [])).get({ timeout: 2000, propagate: false });
      await (await app.sendTask('again', [])).get({ timeout: 2000 });
      await app.sendTask('add', [1, 1], {}, { expires: new Date(Date.now() - 1000) });
      const quoted = await app.sendTask('add', ['say "hi"\\\n', 'ü']);
      await quoted.get({ timeout: 2000 });
      await tick(100);
      await worker.stop();
      await tick(50);
      const byType = new Map<string, CeleryEvent>();
      for (const e of events) if (!byType.has(e.type)) byType.set(e.type, e);
      for (const type of ['worker-online', 'worker-heartbeat', 'task-sent', 'task-received', 'task-started', 'task-succeeded', 'task-failed', 'task-retried', 'task-revoked', 'worker-offline']) {
        const py = fixture(`event_${type.replace(/-/g, '_')}`).body_decoded;
        const ours = byType.get(type);
        expect(ours, type).to.not.equal(undefined);
        // local_received is added by the receiver; the heartbeat fixture is the `heartbeat` command's (freq 5, fewer fields)
        const keys = Object.keys(ours!).filter((k) => k !== 'local_received');
        if (type !== 'worker-heartbeat') expect(keys, type).to.deep.equal(Object.keys(py));
      }
      expect(byType.get('task-succeeded')).to.deep.include({ uuid: ok.id, result: '5' });
      // Escaping survives the hand-written JSON: quotes, backslashes, newlines, non-ASCII.
      expect(events.find((e) => e.type === 'task-received' && e.uuid === quoted.id)!.args).to.equal(`('say "hi"\\\\\\n', 'ü')`);
      expect(events.find((e) => e.type === 'task-succeeded' && e.uuid === quoted.id)!.result).to.equal(`'say "hi"\\\\\\nü'`);
      expect(byType.get('task-failed')!.exception).to.equal("RangeError('nope')");
      expect(byType.get('task-retried')!.exception).to.equal("Error('once')");
      expect(byType.get('task-revoked')).to.deep.include({ terminated: false, signum: null, expired: true });
      expect(byType.get('task-sent')).to.deep.include({ name: 'add', args: '(2, 3)', queue: 'celery', exchange: '', routing_key: 'celery' });
      expect(byType.get('worker-online')).to.deep.include({ sw_ident: 'ts-celery', freq: 0.05 });
      // The Lamport clock only moves forward in one sender's task events (heartbeats are not buffered, so
      // they can overtake a batch on the wire, as with Python's worker).
      const clocks = events.filter((e) => e.hostname === 'ev@test' && e.type.startsWith('task-')).map((e) => e.clock as number);
      expect(clocks).to.deep.equal([...clocks].sort((a, b) => a - b));
    });
  });

  it('the dumper prints an event as celery events --dump does', () => {
    const dump = (JSON.parse(readFileSync(new URL('../../fixtures/celery-5.7/cli_control.json', import.meta.url), 'utf8')) as { commands: { events_dump: { stdout: string } } }).commands.events_dump.stdout;
    const line = dump.split('\n').find((l) => l.includes('task received:'))!;
    const [, host, ts, name, uuid, args, kwargs, clock, lr, pid, root] = /^(\S+) \[(.+?)\] task received: (\S+)\((\S+)\) args=(\(.*?\)) kwargs=(\{.*?\}) clock=(\d+), eta=None, expires=None, local_received=([\d.]+), parent_id=None, pid=(\d+), retries=0, root_id=(\S+), utcoffset=0.0$/.exec(line)!;
    const lines: string[] = [];
    new Dumper((l) => lines.push(l)).onEvent({
      hostname: host!, utcoffset: 0, pid: Number(pid), clock: Number(clock), uuid: uuid!, name: name!, args: args!, kwargs: kwargs!, root_id: root!,
      parent_id: null, retries: 0, eta: null, expires: null, timestamp: Date.parse(ts!.replace(' ', 'T')) / 1000 + Number(`0.000${ts!.slice(23, 26)}`), type: 'task-received', local_received: Number(lr),
    });
    // Python prints 0.0 for the float utcoffset; JSON numbers do not say float, so ours prints 0.
    expect(lines[0]!.replace(/utcoffset=0$/, 'utcoffset=0.0')).to.equal(line);
  });
});
