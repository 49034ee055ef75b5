import { expect } from 'chai';
import { defaultSettings, resolveRoute, type CelerySettings } from '../../../src/app/index.js';
import { fixture } from '../../helpers/fixtures.js';

const conf = (over: Partial<CelerySettings> = {}): CelerySettings => ({ ...defaultSettings(), ...over });

describe('routing', () => {
  it('sends to queue celery through the default exchange, declared as kombu declares it', () => {
    const r = resolveRoute(conf(), 'tasks.add', [], {}, {});
    expect(r).to.deep.include({ exchange: '', routingKey: 'celery', priority: 0 });
    expect(r.queue).to.deep.equal({
      name: 'celery', durable: true, autoDelete: false, arguments: {},
      exchange: { name: 'celery', type: 'direct', durable: true }, routingKey: 'celery',
    });
    const topo = fixture<{ queues: Array<{ name: string; durable: boolean; auto_delete: boolean; arguments: unknown }> }>('topology_default');
    const celery = topo.queues.find((q) => q.name === 'celery')!;
    expect(celery).to.deep.include({ durable: true, auto_delete: false });
  });

  it('omits priority when a queue is named explicitly, as Python does', () => {
    expect(resolveRoute(conf(), 't', [], {}, { queue: 'sms' }).priority).to.equal(null);
    expect(resolveRoute(conf(), 't', [], {}, { queue: 'sms', priority: 3 }).priority).to.equal(3);
  });

  it('follows task_routes by name, glob and function, before the task option', () => {
    const c = conf({ task_routes: [{ 'tasks.sms.*': { queue: 'sms' } }, (name) => (name === 'special' ? 'vip' : null)] });
    expect(resolveRoute(c, 'tasks.sms.send', [], {}, {}).routingKey).to.equal('sms');
    expect(resolveRoute(c, 'special', [], {}, {}).routingKey).to.equal('vip');
    expect(resolveRoute(c, 'other', [], {}, {}, { queue: 'own' }).routingKey).to.equal('own');
    expect(resolveRoute(c, 'tasks.sms.send', [], {}, { queue: 'explicit' }).routingKey).to.equal('explicit');
  });

  it('publishes to topic exchanges with the routing key, and adds x-max-priority when asked', () => {
    const c = conf({ task_queues: [{ name: 'events', exchange: 'ev', exchange_type: 'topic', routing_key: 'ev.#' }], task_queue_max_priority: 10 });
    const r = resolveRoute(c, 't', [], {}, { queue: 'events', routingKey: 'ev.sms' });
    expect(r).to.deep.include({ exchange: 'ev', routingKey: 'ev.sms' });
    expect(r.queue!.arguments).to.deep.equal({ 'x-max-priority': 10 });
  });

  it('sees a setting replaced in app.conf after earlier sends (the declaration is cached per settings)', () => {
    const c = conf();
    expect(resolveRoute(c, 't', [], {}, {}).queue!.name).to.equal('celery');
    c.task_default_queue = 'other';
    expect(resolveRoute(c, 't', [], {}, {}).routingKey).to.equal('other');
    c.task_queue_max_priority = 5;
    expect(resolveRoute(c, 't', [], {}, {}).queue!.arguments).to.deep.equal({ 'x-max-priority': 5 });
    c.task_queues = [{ name: 'other', queue_arguments: { 'x-queue-type': 'quorum' } }];
    expect(resolveRoute(c, 't', [], {}, {}).queue!.arguments).to.deep.equal({ 'x-max-priority': 5, 'x-queue-type': 'quorum' });
  });
});
