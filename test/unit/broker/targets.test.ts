/** Failover over several broker URLs (kombu's alternates and failover strategies). */
import { expect } from 'chai';
import { BrokerTargets } from '../../../src/broker/amqp/targets.js';
import { ImproperlyConfigured } from '../../../src/errors.js';
import { maskUrl, splitUrlList } from '../../../src/support/url.js';

const A = 'amqp://u:pa@a:5672//';
const B = 'amqp://u:pb@b:5672//';
const C = 'amqp://u:pc@c:5672//';

describe('broker failover targets', () => {
  it("splits kombu's 'a;b' form and lists, and masks every password of a list", () => {
    expect(splitUrlList(`${A};${B} ; ${C}`)).to.deep.equal([A, B, C]);
    expect(splitUrlList([A, `${B};${C}`])).to.deep.equal([A, B, C]);
    expect(maskUrl(`${A};${B}`)).to.equal('amqp://u:**@a:5672//;amqp://u:**@b:5672//');
  });

  it('round-robin: the first URL first, the next node at once after a failure, backing off after a whole round', () => {
    const t = new BrokerTargets(`${A};${B};${C}`);
    expect(t.current).to.equal(A);
    expect(t.failed()).to.equal(false);
    expect(t.current).to.equal(B);
    expect(t.failed()).to.equal(false);
    expect(t.current).to.equal(C);
    expect(t.failed(), 'every node failed once: back off').to.equal(true);
    expect(t.current).to.equal(A);
  });

  it('a lost connection moves on to the next node; a success starts a fresh round', () => {
    const t = new BrokerTargets([A, B, C]);
    t.succeeded();
    t.lost();
    expect(t.current).to.equal(B);
    expect(t.failed()).to.equal(false); // B down too: C next, no wait
    expect(t.current).to.equal(C);
    t.succeeded();
    expect(t.failed()).to.equal(false); // a fresh round: A is tried before any backoff
    expect(t.current).to.equal(A);
  });

  it('one URL: every failure is a whole round (back off each time)', () => {
    const t = new BrokerTargets(A);
    expect(t.failover).to.equal(false);
    expect(t.failed()).to.equal(true);
    expect(t.current).to.equal(A);
  });

  it('shuffle: the first URL first, then rounds that visit every node once in a random order, never the node just left first', () => {
    let seed = 7;
    const random = (): number => ((seed = (seed * 16807) % 2147483647) / 2147483647);
    const t = new BrokerTargets([A, B, C], 'shuffle', random);
    expect(t.current).to.equal(A);
    const seen: string[] = [];
    for (let round = 0; round < 20; round++) {
      const visited = new Set<string>();
      for (let i = 0; i < 3; i++) {
        const before = t.current;
        visited.add(before);
        seen.push(before);
        t.failed();
        if (i === 2) expect(t.current, 'a new round does not start with the node that just failed').to.not.equal(before);
      }
      expect(visited.size, `round ${round} visits each node once`).to.equal(3);
    }
    expect(new Set(seen.filter((_, i) => i % 3 === 0)).size, 'rounds start on different nodes').to.be.greaterThan(1);
  });

  it('refuses an empty list and an unknown strategy', () => {
    expect(() => new BrokerTargets(' ; ')).to.throw(ImproperlyConfigured, /empty/);
    expect(() => new BrokerTargets(A, 'random' as never)).to.throw(ImproperlyConfigured, /round-robin, shuffle/);
  });
});
