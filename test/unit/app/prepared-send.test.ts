import { expect } from 'chai';
import { Celery } from '../../../src/index.js';
import type { MemoryBroker } from '../../../src/broker/memory.js';
import type { PublishRoute } from '../../../src/broker/types.js';
import type { WireMessage } from '../../../src/protocol/message.js';
import { parseIsoTime } from '../../../src/protocol/time.js';

/** Records what the app hands its (memory) broker, then publishes it as usual. */
function recordPublishes(app: Celery): Array<{ wire: WireMessage; route: PublishRoute }> {
  const seen: Array<{ wire: WireMessage; route: PublishRoute }> = [];
  const broker = app.broker;
  const publish = broker.publish.bind(broker);
  broker.publish = (wire, route, options) => {
    seen.push({ wire, route });
    return publish(wire, route, options);
  };
  return seen;
}

/** The message with its per-run fields (ids, expiry) replaced by markers, for comparing two runs. */
function withoutRunFields(wire: WireMessage): unknown {
  const headers = { ...wire.headers, id: '<id>', root_id: wire.headers.root_id === wire.headers.id ? '<id>' : wire.headers.root_id, expires: wire.headers.expires === null ? null : '<expires>' };
  return { ...wire, body: wire.body.toString(), headers, correlationId: '<id>', expiration: wire.expiration === undefined ? undefined : '<ms>' };
}

/** Beat sends each schedule entry through a prepared message: it must be the message sendTask would send. */
describe('app.prepareSend (the message template beat sends each entry with)', () => {
  const options = { queue: 'q1', headers: { celery_beat_task: true } };

  it('sends what sendTask sends with the same arguments, with a new id and the expiry of each run', async () => {
    const app = new Celery('t', { broker_url: 'memory://', timezone: 'Europe/Paris' });
    const seen = recordPublishes(app);
    const prepared = app.prepareSend('tasks.add', [2, 'x\'y', { a: [1, null] }], { z: 3 }, options);
    await app.sendTask('tasks.add', [2, 'x\'y', { a: [1, null] }], { z: 3 }, { ...options, expires: 1.5 });
    const before = Date.now();
    await prepared.send(1.5);
    await prepared.send(1.5);
    await prepared.send(undefined);
    expect(seen).to.have.length(4);
    const [viaSendTask, run1, run2, noExpiry] = seen.map((s) => s.wire) as [WireMessage, WireMessage, WireMessage, WireMessage];
    expect(withoutRunFields(run1)).to.deep.equal(withoutRunFields(viaSendTask));
    expect(Object.keys(run1.headers)).to.deep.equal(Object.keys(viaSendTask.headers)); // header order is wire order
    expect(seen[1]!.route).to.deep.equal(seen[0]!.route);
    // Each run: its own id, which is also its root id and correlation id.
    expect(run1.headers.id).to.not.equal(run2.headers.id);
    for (const run of [run1, run2]) {
      expect(run.headers.root_id).to.equal(run.headers.id);
      expect(run.correlationId).to.equal(run.headers.id);
      expect(run.expiration).to.equal('1500');
      // In the app's timezone, as sendTask writes it, 1.5 s after the send.
      expect(run.headers.expires).to.match(/\+0[12]:00$/);
      const expires = parseIsoTime(run.headers.expires as string);
      expect(expires - before).to.be.within(1500, 1500 + 1000);
    }
    expect(noExpiry.headers.expires).to.equal(null);
    expect(noExpiry.expiration).to.equal(undefined);
    expect((app.broker as MemoryBroker).size('q1')).to.equal(4);
    await app.close();
  });

  it('keeps a task\'s own expires and an explicit root id', async () => {
    const app = new Celery('t', { broker_url: 'memory://' });
    app.task({ name: 'tasks.exp', expires: 60 }, () => 1);
    const seen = recordPublishes(app);
    await app.prepareSend('tasks.exp', [], {}, { rootId: 'root-1' }).send();
    const wire = seen[0]!.wire;
    expect(wire.headers.root_id).to.equal('root-1');
    expect(wire.expiration).to.equal('60000');
    await app.close();
  });

  it('asks a task_routes function on every run, as sendTask does', async () => {
    let calls = 0;
    const app = new Celery('t', { broker_url: 'memory://', task_routes: () => ({ queue: `r${++calls}` }) });
    const seen = recordPublishes(app);
    const prepared = app.prepareSend('tasks.add', [1], {}, {});
    await prepared.send(1);
    await prepared.send(1);
    expect(seen.map((s) => s.route.routingKey)).to.deep.equal(['r1', 'r2']);
    await app.close();
  });

  it('rejects arguments JSON cannot carry, as sendTask does, and sends nothing', async () => {
    const app = new Celery('t', { broker_url: 'memory://' });
    const seen = recordPublishes(app);
    const err = await app.prepareSend('tasks.add', [1n], {}, {}).send(1).catch((e: unknown) => e);
    expect((err as Error).name).to.equal('EncodeError');
    expect(seen).to.have.length(0);
    await app.close();
  });
});
