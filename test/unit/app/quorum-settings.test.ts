/**
 * Quorum queues, native delayed delivery and failover settings: declared and
 * routed as Celery 5.7 does (app/routing.ts, app/delayed-delivery.ts).
 */
import { expect } from 'chai';
import { Celery } from '../../../src/index.js';
import { defaultSettings, type CelerySettings } from '../../../src/app/index.js';
import { appUsesQuorumQueues, nativeDelayedRoute } from '../../../src/app/delayed-delivery.js';
import { queueDeclaration, resolveRoute } from '../../../src/app/routing.js';
import { calculateRoutingKey } from '../../../src/broker/native-delayed-delivery.js';
import { createBroker } from '../../../src/broker/index.js';
import { ImproperlyConfigured } from '../../../src/errors.js';
import { setLogSink } from '../../../src/support/log.js';
import { retryPublishRoute } from '../../../src/worker/retry.js';

const conf = (over: Partial<CelerySettings> = {}): CelerySettings => ({ ...defaultSettings(), ...over });
const QUORUM_TOPIC = { task_default_queue_type: 'quorum', task_default_exchange_type: 'topic' } as const;
const NOW = Date.UTC(2030, 0, 1);

describe('quorum queues and native delayed delivery (settings and routing)', () => {
  it("declares the default queue as quorum with task_default_queue_type, as kombu: x-queue-type and nothing else", () => {
    const q = queueDeclaration(conf({ task_default_queue_type: 'quorum' }), 'celery');
    expect(q).to.deep.equal({
      name: 'celery', durable: true, autoDelete: false, arguments: { 'x-queue-type': 'quorum' },
      exchange: { name: 'celery', type: 'direct', durable: true }, routingKey: 'celery',
    });
    // Other queues follow task_create_missing_queue_type / _exchange_type instead.
    expect(queueDeclaration(conf({ task_default_queue_type: 'quorum' }), 'sms').arguments).to.deep.equal({});
    const missing = queueDeclaration(conf({ task_create_missing_queue_type: 'quorum', task_create_missing_queue_exchange_type: 'topic' }), 'sms');
    expect(missing).to.deep.include({ arguments: { 'x-queue-type': 'quorum' }, exchange: { name: 'sms', type: 'topic', durable: true } });
    // task_queues entries say it in queue_arguments, with x-delivery-limit and the rest passed as written.
    const listed = queueDeclaration(conf({ task_queues: [{ name: 'q', exchange_type: 'topic', queue_arguments: { 'x-queue-type': 'quorum', 'x-delivery-limit': 5 } }] }), 'q');
    expect(listed.arguments).to.deep.equal({ 'x-queue-type': 'quorum', 'x-delivery-limit': 5 });
  });

  it("detects quorum queues as Celery's detect_quorum_queues does", () => {
    expect(appUsesQuorumQueues(conf())).to.equal(false);
    expect(appUsesQuorumQueues(conf({ task_default_queue_type: 'quorum' }))).to.equal(true);
    expect(appUsesQuorumQueues(conf({ task_queues: [{ name: 'a' }, { name: 'b', queue_arguments: { 'x-queue-type': 'quorum' } }] }))).to.equal(true);
    // With task_queues, the default queue type does not apply (Celery builds the default queue only without them).
    expect(appUsesQuorumQueues(conf({ task_default_queue_type: 'quorum', task_queues: [{ name: 'a' }] }))).to.equal(false);
  });

  it('routes a countdown task of a quorum app through celery_delayed_27, declaring the topology and the way back', () => {
    const c = conf(QUORUM_TOPIC);
    const route = resolveRoute(c, 'tasks.add', [], {}, {});
    expect(route).to.deep.include({ exchange: 'celery', routingKey: 'celery' });
    const delayed = nativeDelayedRoute(c, route.queue, NOW + 3_700, NOW, true)!;
    expect(delayed).to.deep.include({ exchange: 'celery_delayed_27', routingKey: calculateRoutingKey(3, 'celery'), declare: null });
    const t = delayed.declareTopology!;
    expect(t.queues.map((q) => q.name)).to.include.members(['celery', 'celery_delayed_0', 'celery_delayed_27']);
    expect(t.bindings).to.deep.include({ source: 'celery_delayed_delivery', destination: 'celery', destinationKind: 'exchange', routingKey: '#.celery' });
    expect(t.bindings).to.deep.include({ source: 'celery', destination: 'celery', destinationKind: 'queue', routingKey: '#.celery' });
  });

  it("leaves alone what Celery leaves alone: classic apps, direct exchanges, no transport topology, and under a second", () => {
    const quorumDirect = conf({ task_default_queue_type: 'quorum' });
    const lines: string[] = [];
    const previous = setLogSink((line) => lines.push(line));
    expect(nativeDelayedRoute(conf({ task_default_exchange_type: 'topic' }), queueDeclaration(conf({ task_default_exchange_type: 'topic' }), 'celery'), NOW + 5000, NOW, true)).to.equal(null);
    try {
      expect(nativeDelayedRoute(quorumDirect, queueDeclaration(quorumDirect, 'celery'), NOW + 5000, NOW, true)).to.equal(null);
    } finally {
      setLogSink(previous);
    }
    expect(lines.join('\n')).to.match(/WARNING.*Direct exchanges are not supported with native delayed delivery\.\ncelery is a direct exchange/);
    const c = conf(QUORUM_TOPIC);
    const q = queueDeclaration(c, 'celery');
    expect(nativeDelayedRoute(c, q, NOW + 5000, NOW, false)).to.equal(null);
    expect(nativeDelayedRoute(c, q, NOW + 999, NOW, true), 'int(0.999) = 0: sent as usual, the worker waits it out').to.equal(null);
    expect(nativeDelayedRoute(c, q, null, NOW, true)).to.equal(null);
    expect(() => nativeDelayedRoute(c, q, NOW + 2 ** 28 * 1000, NOW, true)).to.throw(ImproperlyConfigured, /8\.5 years/);
  });

  it("publishes a retry from a quorum queue through the delay exchanges, as the 5.7 worker did", () => {
    const c = conf({ ...QUORUM_TOPIC, task_default_queue: 'fx.quorum' });
    // The first run arrived through the delay exchanges (exchange celery_delayed_0, a delayed key).
    const info = { exchange: 'celery_delayed_0', routingKey: calculateRoutingKey(1, 'fx.quorum'), redelivered: false, consumerTag: 'x', queue: 'fx.quorum', priority: 0 };
    expect(retryPublishRoute(c, info, undefined, NOW + 2000, NOW, true)).to.deep.include({ exchange: 'celery_delayed_27', routingKey: calculateRoutingKey(2, 'fx.quorum') });
    // Due at once: straight back to the queue's own exchange, without the old delay digits.
    expect(retryPublishRoute(c, info, undefined, NOW, NOW, true)).to.deep.equal({ exchange: 'fx.quorum', routingKey: 'fx.quorum', declare: null });
    // A classic app: where it came from, as before.
    const plain = { ...info, exchange: '', routingKey: 'celery', queue: 'celery' };
    expect(retryPublishRoute(conf(), plain, undefined, NOW + 2000, NOW, true)).to.deep.equal({ exchange: '', routingKey: 'celery', declare: null });
  });

  it('takes several broker URLs as a list or with ;, and a failover strategy', () => {
    const app = new Celery('t', { broker_url: ['amqp://u:secret1@a//', 'amqp://u:secret2@b//'], broker_failover_strategy: 'shuffle' });
    expect(app.conf.broker_url).to.equal('amqp://u:secret1@a//;amqp://u:secret2@b//');
    expect(createBroker(app.conf, 'x').displayUrl).to.equal('amqp://u:**@a//;amqp://u:**@b//');
    expect(() => new Celery('t', { broker_url: [] })).to.throw(ImproperlyConfigured, /non-empty list of URLs/);
    expect(() => new Celery('t', { broker_failover_strategy: 'random' as never })).to.throw(ImproperlyConfigured, /round-robin/);
    expect(() => createBroker(conf({ broker_url: 'amqp://a//;redis://b/0' }), 'x')).to.throw(ImproperlyConfigured, /several transports/);
    expect(() => new Celery('t', { task_default_queue_type: 'stream' as never })).to.throw(ImproperlyConfigured, /classic.*quorum/);
  });
});
