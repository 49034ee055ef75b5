import { expect } from 'chai';
import { LimitedSet } from '../../../src/worker/limited-set.js';

describe("LimitedSet (Celery's revoked-ids set)", () => {
  it('keeps at most maxlen items, dropping the oldest first', () => {
    const s = new LimitedSet(3, 0);
    for (const id of ['a', 'b', 'c', 'd']) s.add(id);
    expect(s.toArray()).to.deep.equal(['b', 'c', 'd']);
    s.add('b'); // re-adding renews it
    s.add('e');
    expect(s.toArray()).to.deep.equal(['d', 'b', 'e']);
  });

  it('drops items older than expires when purged, and only then', () => {
    let now = 0;
    const s = new LimitedSet(100, 10, () => now);
    s.add('old');
    now = 6000;
    s.add('new');
    now = 11_000;
    expect(s.has('old')).to.equal(true); // no purge yet, as in Celery
    s.purge();
    expect(s.toArray()).to.deep.equal(['new']);
  });

  it('update() adds in order, stamped now, ignoring non-strings', () => {
    const s = new LimitedSet(0, 0);
    s.update(['x', 'y', 3 as unknown as string, 'x']);
    expect(s.toArray()).to.deep.equal(['y', 'x']);
  });
});
