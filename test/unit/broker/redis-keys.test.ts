import { expect } from 'chai';
import {
  bindingKey,
  bindingMember,
  consumeKeys,
  DEFAULT_PRIORITY_STEPS,
  DEFAULT_SEP,
  messagePriority,
  parseBindingMember,
  priorityStep,
  QueueCycle,
  queueKey,
  routeThroughBindings,
  topicPattern,
  type KeySpace,
} from '../../../src/broker/redis/keys.js';
import { fixture } from '../../helpers/fixtures.js';

interface KeyDump {
  type: string;
  value: unknown;
}
interface EnvelopesFixture {
  keys: Record<string, KeyDump>;
  monitor: string[];
}

const ks: KeySpace = { prefix: '', sep: DEFAULT_SEP, steps: DEFAULT_PRIORITY_STEPS };

/** `"BRPOP" "fx.a" "fx.b\x06\x163" ... "1"` from a MONITOR line, unescaped. */
function monitorArgs(line: string): string[] {
  return [...line.matchAll(/"((?:[^"\\]|\\.)*)"/g)].map((m) =>
    m[1]!.replace(/\\x([0-9a-f]{2})/g, (_, h: string) => String.fromCharCode(parseInt(h, 16))).replace(/\\(.)/g, '$1'),
  );
}

for (const version of ['celery-5.7', 'celery-5.2.6']) {
  describe(`Redis broker key layout (against Celery ${version.slice(7)} captures)`, () => {
    const env = fixture<EnvelopesFixture>('redis_broker_envelopes', version);
    const worker = fixture<{ monitor: string[] }>('redis_broker_worker_acks_late', version);

    it('puts priority P on the sub-queue kombu uses (0-2 on the queue itself, then steps 3, 6, 9)', () => {
      const lists = Object.entries(env.keys).filter(([, v]) => v.type === 'list').map(([k]) => k);
      expect(lists).to.include.members(['celery', 'fx.a', 'fx.a\x06\x163', 'fx.a\x06\x166', 'fx.a\x06\x169', 'fx.b', 'fx.topic']);
      // In the capture priorities 0, 3, 5, 6, 9 went to fx.a: each LPUSH names its key.
      const pushes = env.monitor.filter((l) => l.startsWith('"LPUSH" "fx.a')).map(monitorArgs);
      const byPriority = pushes.map(([, key, body]) => [JSON.parse(body!).properties.priority as number, key]);
      for (const [priority, key] of byPriority) expect(queueKey(ks, 'fx.a', priority as number)).to.equal(key);
      expect(byPriority.map(([p]) => p)).to.deep.equal([0, 3, 5, 6, 9]);
    });

    it('pops in BRPOP order: every queue at step 0, then every queue at step 3, ...', () => {
      const brpop = worker.monitor.find((l) => l.startsWith('"BRPOP"'))!;
      const [, ...keysAndTimeout] = monitorArgs(brpop);
      const keys = keysAndTimeout.slice(0, -1);
      const queues = [...new Set(keys.map((k) => k.split(DEFAULT_SEP)[0]!))];
      expect(consumeKeys(ks, queues).map((k) => k.key)).to.deep.equal(keys);
    });

    it('round-robin moves the queue that delivered to the end, as the next BRPOP shows', () => {
      const brpops = worker.monitor.filter((l) => l.startsWith('"BRPOP"')).map((l) => monitorArgs(l).slice(1, -1));
      const changed = brpops.findIndex((keys, i) => i > 0 && keys[0] !== brpops[i - 1]![0]);
      expect(changed, 'the capture shows a rotation').to.be.greaterThan(0);
      const before = [...new Set(brpops[changed - 1]!.map((k) => k.split(DEFAULT_SEP)[0]!))];
      const cycle = new QueueCycle('round_robin');
      cycle.update(before);
      cycle.rotate(before[0]!);
      expect(consumeKeys(ks, cycle.order()).map((k) => k.key)).to.deep.equal(brpops[changed]);
    });

    it('binds queues in _kombu.binding.<exchange> with "<key>\\x06\\x16<pattern>\\x06\\x16<queue>" members', () => {
      const members = env.keys['_kombu.binding.celery']!.value as string[];
      expect(members).to.include(bindingMember(DEFAULT_SEP, 'celery', '', 'celery'));
      expect(bindingKey(ks, 'celery')).to.equal('_kombu.binding.celery');
      const topic = env.keys['_kombu.binding.fx.tx']!.value as string[];
      expect(topic).to.deep.equal([bindingMember(DEFAULT_SEP, 'fx.#', topicPattern('fx.#'), 'fx.topic')]);
      expect(parseBindingMember(DEFAULT_SEP, topic[0]!)).to.deep.equal({ routingKey: 'fx.#', pattern: '^fx\\..*?$', queue: 'fx.topic' });
    });
  });
}

describe('Redis broker key layout (pure rules)', () => {
  it('clamps priorities to 0..9 and reads absent or bad values as 0, like kombu', () => {
    expect([undefined, null, 'x', -3, 0, 4.7, 9, 255, '6'].map(messagePriority)).to.deep.equal([0, 0, 0, 0, 0, 4, 9, 9, 6]);
    expect([0, 1, 2, 3, 4, 5, 6, 7, 8, 9].map((p) => priorityStep(DEFAULT_PRIORITY_STEPS, p))).to.deep.equal([0, 0, 0, 3, 3, 3, 6, 6, 6, 9]);
    // Python's steps[bisect(steps, n) - 1] wraps to the last step when every step is above n.
    expect(priorityStep([2, 5], 0)).to.equal(5);
  });

  it('prefixes every key with global_keyprefix and honours a custom sep', () => {
    const custom: KeySpace = { prefix: 'app1:', sep: ':', steps: [0, 5] };
    expect(queueKey(custom, 'q', 7)).to.equal('app1:q:5');
    expect(queueKey(custom, 'q', 1)).to.equal('app1:q');
    expect(consumeKeys(custom, ['a', 'b']).map((k) => k.key)).to.deep.equal(['app1:a', 'app1:b', 'app1:a:5', 'app1:b:5']);
    expect(bindingKey(custom, 'celery')).to.equal('app1:_kombu.binding.celery');
  });

  it('routes through bindings as kombu does: exact key (direct), regex (topic), all (fanout)', () => {
    const direct = [bindingMember(DEFAULT_SEP, 'a', '', 'qa'), bindingMember(DEFAULT_SEP, 'b', '', 'qb'), 'garbage-without-separators'];
    expect(routeThroughBindings('direct', DEFAULT_SEP, direct, 'b')).to.deep.equal(['qb']);
    expect(routeThroughBindings('direct', DEFAULT_SEP, direct, 'c')).to.deep.equal([]);
    expect(routeThroughBindings('fanout', DEFAULT_SEP, direct, 'anything').sort()).to.deep.equal(['qa', 'qb']);
    const topic = [
      bindingMember(DEFAULT_SEP, 'sms.*', topicPattern('sms.*'), 'sms-one'),
      bindingMember(DEFAULT_SEP, 'sms.#', topicPattern('sms.#'), 'sms-all'),
    ];
    expect(routeThroughBindings('topic', DEFAULT_SEP, topic, 'sms.send').sort()).to.deep.equal(['sms-all', 'sms-one']);
    expect(routeThroughBindings('topic', DEFAULT_SEP, topic, 'sms.send.cn')).to.deep.equal(['sms-all']);
    expect(routeThroughBindings('topic', DEFAULT_SEP, topic, 'email.send')).to.deep.equal([]);
  });

  it("escapes punctuation in topic keys like kombu's escape_regex", () => {
    expect(topicPattern('my-app.*.x_y')).to.equal('^my\\-app\\.[^\\.]+\\.x\\_y$');
    expect(routeThroughBindings('topic', DEFAULT_SEP, [bindingMember(DEFAULT_SEP, 'my-app.*', topicPattern('my-app.*'), 'q')], 'my-app.go')).to.deep.equal(['q']);
  });

  it('sorted and priority strategies never rotate', () => {
    const sorted = new QueueCycle('sorted');
    sorted.update(['b', 'c', 'a']);
    sorted.rotate('a');
    expect(sorted.order()).to.deep.equal(['a', 'b', 'c']);
    const priority = new QueueCycle('priority');
    priority.update(['b', 'c', 'a']);
    priority.rotate('b');
    expect(priority.order()).to.deep.equal(['b', 'c', 'a']);
  });
});
