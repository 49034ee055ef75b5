/**
 * Native delayed delivery against what Celery 5.7 / kombu 5.7 really
 * declared and published (test/fixtures/celery-5.7/quorum_*.json, captured by
 * capture_quorum.py): identical declarations mean Python and TypeScript never
 * get a 406 from each other, and identical routing keys mean either side's
 * delayed tasks come back to the same queue.
 */
import { expect } from 'chai';
import {
  calculateRoutingKey, delayTopology, deliveryBindings, entryExchangeName, MAX_NATIVE_DELAY_S, stripDelayPrefix,
} from '../../../src/broker/native-delayed-delivery.js';
import { encodeAmqpTable } from '../../../src/protocol/amqp-headers.js';
import { defaultSettings, type CelerySettings } from '../../../src/app/index.js';
import { queueDeclaration } from '../../../src/app/routing.js';
import { fixture } from '../../helpers/fixtures.js';

type Arg = [string, string, unknown];
interface Topology {
  queues: Array<{ name: string; type: string; durable: boolean; auto_delete: boolean; arguments: Arg[] }>;
  exchanges: Array<{ name: string; type: string; durable: boolean; auto_delete: boolean }>;
  bindings: Array<{ source_name: string; destination_name: string; destination_kind: string; routing_key: string }>;
  channels_with_consumers: Array<{ prefetch_count: number; global_prefetch_count: number }>;
}
interface Publish { published_to_exchange: string; routing_keys: string[]; headers: Record<string, unknown> | null }

const topo = fixture<Topology>('quorum_topology', 'celery-5.7');
const QUEUE = 'fx.quorum';

/** RabbitMQ's type names for what amqplib writes from our encoded table. */
function rabbitType(v: unknown): string {
  if (typeof v === 'string') return 'longstr';
  const typed = v as { '!': string };
  return { int: 'signedint', long: 'long' }[typed['!']] ?? typed['!'];
}

describe('native delayed delivery (kombu 5.7)', () => {
  it('declares the 28 delay queues with exactly the arguments, types and order kombu uses', () => {
    const ours = delayTopology('quorum');
    const theirs = topo.queues.filter((q) => q.name.startsWith('celery_delayed_'));
    expect(ours.queues.map((q) => q.name).sort()).to.deep.equal(theirs.map((q) => q.name).sort());
    for (const q of ours.queues) {
      const t = theirs.find((x) => x.name === q.name)!;
      expect({ durable: q.durable, autoDelete: q.autoDelete }, q.name).to.deep.equal({ durable: t.durable, autoDelete: t.auto_delete });
      const encoded = encodeAmqpTable(q.arguments);
      const args: Arg[] = Object.entries(encoded).map(([k, v]) => [k, rabbitType(v), typeof v === 'string' ? v : (v as { value: unknown }).value]);
      expect(args, q.name).to.deep.equal(t.arguments);
      expect(t.type).to.equal('quorum');
    }
  });

  it('declares the 29 topic exchanges and every binding kombu declares, and no other', () => {
    const ours = delayTopology('quorum');
    const theirX = topo.exchanges.filter((x) => x.name.startsWith('celery_delayed_'));
    expect(ours.exchanges.map((x) => [x.name, x.type, x.durable]).sort()).to.deep.equal(theirX.map((x) => [x.name, x.type, x.durable]).sort());
    const ourBindings = [
      ...ours.queues.map((q) => [q.exchange.name, q.name, 'queue', q.routingKey]),
      ...ours.bindings.map((b) => [b.source, b.destination, b.destinationKind, b.routingKey]),
    ].sort();
    const theirBindings = topo.bindings
      .filter((b) => b.source_name.startsWith('celery_delayed_') && b.destination_name.startsWith('celery_delayed_'))
      .map((b) => [b.source_name, b.destination_name, b.destination_kind, b.routing_key]).sort();
    expect(ourBindings).to.deep.equal(theirBindings);
  });

  it("classic delay queues leave out quorum's dead-letter strategy, as kombu does", () => {
    const q = delayTopology('classic').queues[0]!;
    expect(q.arguments).to.deep.equal({
      'x-queue-type': 'classic', 'x-overflow': 'reject-publish', 'x-message-ttl': 2 ** 27 * 1000, 'x-dead-letter-exchange': 'celery_delayed_26',
    });
  });

  it('binds a topic-exchange quorum queue to celery_delayed_delivery as the 5.7 worker did', () => {
    const conf: CelerySettings = { ...defaultSettings(), task_default_queue: QUEUE, task_default_queue_type: 'quorum', task_default_exchange_type: 'topic' };
    const q = queueDeclaration(conf, QUEUE);
    const t = topo.queues.find((x) => x.name === QUEUE)!;
    expect(q).to.deep.include({ durable: t.durable, autoDelete: t.auto_delete, arguments: { 'x-queue-type': 'quorum' } });
    expect(t.arguments).to.deep.equal([['x-queue-type', 'longstr', 'quorum']]);
    const ours = [[q.exchange.name, q.name, 'queue', q.routingKey], ...deliveryBindings(q)!.map((b) => [b.source, b.destination, b.destinationKind, b.routingKey])].sort();
    const theirs = topo.bindings.filter((b) => b.destination_name === QUEUE).map((b) => [b.source_name, b.destination_name, b.destination_kind, b.routing_key]).sort();
    expect(ours).to.deep.equal(theirs);
    expect(topo.exchanges.find((x) => x.name === QUEUE)).to.deep.include({ type: 'topic', durable: true });
  });

  it('cannot bind a queue behind a direct (or the default) exchange', () => {
    const q = queueDeclaration({ ...defaultSettings(), task_default_queue_type: 'quorum' }, 'celery');
    expect(q.exchange.type).to.equal('direct');
    expect(deliveryBindings(q)).to.equal(null);
  });

  it("encodes the delay in the routing key exactly as the 5.7 producer and worker published it", () => {
    const { publishes } = fixture<{ publishes: Publish[] }>('quorum_delayed_publish', 'celery-5.7');
    const keys = publishes.filter((p) => p.published_to_exchange === entryExchangeName()).map((p) => p.routing_keys[0]);
    expect(keys).to.deep.equal([calculateRoutingKey(3, QUEUE), calculateRoutingKey(2, QUEUE)]);
    expect(calculateRoutingKey(3, QUEUE)).to.equal(`${'0.'.repeat(26)}1.1.${QUEUE}`);
    const retry = fixture<{ publishes: Publish[] }>('quorum_retry', 'celery-5.7').publishes;
    expect(retry.map((p) => [p.published_to_exchange, p.routing_keys[0]])).to.deep.equal([
      [entryExchangeName(), calculateRoutingKey(1, QUEUE)],
      // The retry (countdown=2) of a task that arrived with a delayed key: the old digits are replaced.
      [entryExchangeName(), calculateRoutingKey(2, calculateRoutingKey(1, QUEUE))],
    ]);
  });

  it('strips an earlier delay prefix and refuses what the 28 digits cannot carry', () => {
    expect(stripDelayPrefix(calculateRoutingKey(5, 'a.b'))).to.equal('a.b');
    expect(stripDelayPrefix('0.1.a')).to.equal('0.1.a'); // too short to be a delay prefix
    expect(calculateRoutingKey(MAX_NATIVE_DELAY_S, 'q')).to.equal(`${'1.'.repeat(28)}q`);
    expect(() => calculateRoutingKey(MAX_NATIVE_DELAY_S + 1, 'q')).to.throw(RangeError, /at most/);
    expect(() => calculateRoutingKey(0, 'q')).to.throw(RangeError, /positive/);
    expect(() => calculateRoutingKey(1, '')).to.throw(RangeError, /non-empty/);
  });

  it('the 5.7 worker consumed the quorum queue with a per-consumer (not global) prefetch', () => {
    const task = topo.channels_with_consumers.find((c) => c.prefetch_count > 0)!;
    expect(task).to.deep.include({ prefetch_count: 8, global_prefetch_count: 0 });
  });
});
