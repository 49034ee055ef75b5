import { expect } from 'chai';
import { defaultSettings } from '../../../src/app/config.js';
import { bindingTtlMs, memberOf, queueExpiresMs } from '../../../src/broker/redis/bindings.js';
import { DEFAULT_SEP } from '../../../src/broker/redis/keys.js';
import { parseTransportOptions } from '../../../src/broker/redis/options.js';
import { fanoutPrefix, publishTopics, subscribePatterns, topicSpace, type TopicSpace } from '../../../src/broker/redis/topics.js';
import { nodeQueue, replyQueue } from '../../../src/control/mailbox.js';
import { eventExchange, receiverQueue } from '../../../src/events/event.js';
import { ImproperlyConfigured } from '../../../src/errors.js';
import { fixture } from '../../helpers/fixtures.js';

interface Capture {
  monitor: string[];
  keys_while_running: Record<string, { type: string; value: unknown }>;
}

/** The first argument of each MONITOR line of `command` (`"PUBLISH" "/10.celeryev/task.multi" "..."` -> the topic). */
function firstArgs(capture: Capture, command: string): string[] {
  return capture.monitor.filter((l) => l.startsWith(`"${command}" `)).map((l) => /^"[A-Z]+" "((?:[^"\\]|\\.)*)"/.exec(l)![1]!.replace(/\\x06\\x16/g, DEFAULT_SEP));
}

const DB10: TopicSpace = { keyPrefix: '', fanoutPrefix: '/10.', patterns: true, legacyPrefix: null };

describe('Redis broker: fanout topics and expiring bindings (kombu 5.7)', () => {
  const events = fixture<Capture>('redis_broker_events', 'celery-5.7');
  const pidbox = fixture<Capture>('redis_broker_pidbox_fanout', 'celery-5.7');
  const conf = defaultSettings();

  it("publishes remote control and events on the topics Celery 5.7's worker and client use", () => {
    // celery.pidbox requests carry no routing key; events carry their type with dots.
    expect(publishTopics(DB10, 'celery.pidbox', '')).to.deep.equal(['/10.celery.pidbox']);
    expect(firstArgs(pidbox, 'PUBLISH')).to.include('/10.celery.pidbox');
    for (const key of ['worker.online', 'task.multi', 'worker.heartbeat', 'worker.offline']) {
      expect(publishTopics(DB10, 'celeryev', key)).to.deep.equal([`/10.celeryev/${key}`]);
      expect(firstArgs(events, 'PUBLISH')).to.include(`/10.celeryev/${key}`);
    }
  });

  it('subscribes a pidbox and an event receiver with the patterns kombu PSUBSCRIBEs ("#" becomes "*")', () => {
    const psubscribed = [...firstArgs(events, 'PSUBSCRIBE'), ...firstArgs(pidbox, 'PSUBSCRIBE')];
    const node = nodeQueue(conf, 'w@h');
    const receiver = receiverQueue(conf, 'abc', '#', 'redis');
    expect(subscribePatterns(DB10, node.exchange.name, node.routingKey)).to.deep.equal(['/10.celery.pidbox']);
    expect(subscribePatterns(DB10, receiver.exchange.name, receiver.routingKey)).to.deep.equal(['/10.celeryev/*']);
    expect(psubscribed).to.include('/10.celery.pidbox').and.to.include('/10.celeryev/*');
    expect(subscribePatterns(DB10, 'celeryev', 'worker.#')).to.deep.equal(['/10.celeryev/worker.*']);
  });

  it('declares celeryev as fanout on Redis (Celery get_exchange), topic elsewhere', () => {
    expect(eventExchange(conf, 'redis')).to.deep.equal({ name: 'celeryev', type: 'fanout', durable: true });
    expect(eventExchange(conf).type).to.equal('topic');
    expect(receiverQueue(conf, 'x', '#', 'redis').exchange.type).to.equal('fanout');
  });

  it("binds fanout and reply queues with kombu's members, and an x-expires queue for at least an hour", () => {
    const receiver = receiverQueue(conf, '305b39b5-044f-48d0-8ed7-e16cc6aa78d3', '#', 'redis');
    expect((events.keys_while_running['_kombu.binding.celeryev']!.value as string[])).to.deep.equal([memberOf(DEFAULT_SEP, receiver)]);
    const node = nodeQueue(conf, 'fx@vm');
    expect(memberOf(DEFAULT_SEP, node)).to.equal(`${DEFAULT_SEP}${DEFAULT_SEP}fx@vm.celery.pidbox`);
    const reply = replyQueue(conf, 'oid-1');
    expect(memberOf(DEFAULT_SEP, reply)).to.equal(`oid-1${DEFAULT_SEP}${DEFAULT_SEP}oid-1.reply.celery.pidbox`);
    // x-expires 10 s (pidbox, reply) and 60 s (receiver): kombu's 1 h floor; EVALSHA ... "3600000" in the captures.
    expect([node, reply, receiver].map((q) => bindingTtlMs(queueExpiresMs(q)!))).to.deep.equal([3_600_000, 3_600_000, 3_600_000]);
    expect(bindingTtlMs(7_200_000)).to.equal(14_400_000);
    expect(queueExpiresMs({ ...node, arguments: {} })).to.equal(null);
  });

  it('honours fanout_prefix, fanout_patterns, global_keyprefix and the Sentinel compatibility topic', () => {
    expect(fanoutPrefix(true, 3)).to.equal('/3.');
    expect(fanoutPrefix('/app-{db}.', 3)).to.equal('/app-3.');
    expect(fanoutPrefix(false, 3)).to.equal('');
    expect(publishTopics({ ...DB10, keyPrefix: 'shop:' }, 'celeryev', 'task.multi')).to.deep.equal(['shop:/10.celeryev/task.multi']);
    expect(publishTopics({ ...DB10, patterns: false }, 'celeryev', 'task.multi')).to.deep.equal(['/10.celeryev']);
    expect(subscribePatterns({ ...DB10, patterns: false }, 'celeryev', '#')).to.deep.equal(['/10.celeryev']);
    expect(publishTopics({ ...DB10, fanoutPrefix: '' }, 'celery.pidbox', '')).to.deep.equal(['celery.pidbox']);
    // kombu < 5.4 on sentinel:// published on the literal '/{db}.' prefix.
    expect(publishTopics({ ...DB10, legacyPrefix: '/{db}.' }, 'celery.pidbox', '')).to.deep.equal(['/10.celery.pidbox', '/{db}.celery.pidbox']);
    expect(publishTopics({ ...DB10, legacyPrefix: '/10.' }, 'celery.pidbox', '')).to.deep.equal(['/10.celery.pidbox']);
    const opts = parseTransportOptions({ sentinel_fanout_compat: true }).options;
    expect(topicSpace(opts, true, 10).legacyPrefix).to.equal('/{db}.');
    expect(topicSpace(opts, false, 10).legacyPrefix).to.equal(null);
    expect(topicSpace(parseTransportOptions({}).options, true, 10)).to.deep.equal(DB10);
  });

  it('reads the fanout transport options with their kombu defaults and refuses wrong types', () => {
    expect(parseTransportOptions({}).options).to.deep.include({ fanout_prefix: true, fanout_patterns: true, sentinel_fanout_compat: false });
    const { options, warnings } = parseTransportOptions({ fanout_prefix: '/x{db}.', fanout_patterns: false, sentinel_fanout_compat: true });
    expect(options).to.deep.include({ fanout_prefix: '/x{db}.', fanout_patterns: false, sentinel_fanout_compat: true });
    expect(warnings).to.deep.equal([]);
    expect(() => parseTransportOptions({ fanout_prefix: 1 })).to.throw(ImproperlyConfigured, /fanout_prefix must be true, false or a prefix/);
    expect(() => parseTransportOptions({ fanout_patterns: 'yes' })).to.throw(ImproperlyConfigured, /fanout_patterns must be true or false/);
  });
});
