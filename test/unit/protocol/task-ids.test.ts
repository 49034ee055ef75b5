import { expect } from 'chai';
import { newTaskId } from '../../../src/support/ids.js';

describe('task ids', () => {
  it('are random version-4 UUIDs, all distinct across several refills of the batch', () => {
    const ids = Array.from({ length: 1000 }, () => newTaskId());
    for (const id of ids) expect(id).to.match(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(new Set(ids).size).to.equal(ids.length);
    // Every hex digit of the random part turns up: the bytes are not stuck at zero.
    expect(new Set(ids.join('').replace(/-/g, '')).size).to.equal(16);
  });
});
