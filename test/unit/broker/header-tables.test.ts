import { expect } from 'chai';
import { HeaderTables } from '../../../src/broker/amqp/header-tables.js';
import { encodeAmqpTable } from '../../../src/protocol/amqp-headers.js';

describe('HeaderTables (header tables reused across publishes)', () => {
  it('fills the same object for the same header names, with exactly the new values, as encodeAmqpTable types them', () => {
    const tables = new HeaderTables();
    const first = { task: 'a', id: '1', retries: 0, timelimit: [null, 30], eta: null };
    const second = { task: 'b', id: '2', retries: 3_000_000_000, timelimit: [10, null], eta: '2026-01-01T00:00:00+00:00' };
    const t1 = tables.fill(first);
    expect(t1).to.deep.equal(encodeAmqpTable(first));
    const t2 = tables.fill(second);
    expect(t2).to.equal(t1); // the same object: amqplib has finished with the first before the second is filled
    expect(t2).to.deep.equal(encodeAmqpTable(second));
    expect(Object.keys(t2)).to.deep.equal(Object.keys(second)); // wire order kept
  });

  it('gives other header names (or another order) a table of their own, with no stale keys', () => {
    const tables = new HeaderTables();
    const a = tables.fill({ task: 'a', id: '1' });
    const b = tables.fill({ task: 'b', id: '2', compression: 'application/x-gzip' });
    expect(b).to.not.equal(a);
    expect(b).to.deep.equal({ task: 'b', id: '2', compression: 'application/x-gzip' });
    const c = tables.fill({ id: '3', task: 'c' });
    expect(c).to.not.equal(a);
    expect(Object.keys(c)).to.deep.equal(['id', 'task']);
    expect(tables.fill({ task: 'd', id: '4' })).to.equal(a).and.deep.equal({ task: 'd', id: '4' });
  });

  it('types every value as encodeAmqpTable does, with fewer or more names than the last call', () => {
    const tables = new HeaderTables();
    const values = [0, 1023, 1024, -1, 2 ** 31, 1.5, -(2 ** 40), true, null, 'x', [null, 'a', false], [1, null], [], { n: 1 }, new Date(5000)];
    for (const v of values) {
      const h = { task: 't', v };
      expect(tables.fill(h)).to.deep.equal(encodeAmqpTable(h));
    }
    expect(tables.fill({ task: 't' })).to.deep.equal({ task: 't' }); // a prefix of the last names
    expect(tables.fill({ task: 't', v: 1, w: 2 })).to.deep.equal(encodeAmqpTable({ task: 't', v: 1, w: 2 }));
    expect(tables.fill({ task: 't', v: 3 })).to.deep.equal(encodeAmqpTable({ task: 't', v: 3 }));
  });
});
