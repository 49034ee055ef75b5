import { expect } from 'chai';
import { setImmediate as tick } from 'node:timers/promises';
import { AckBatcher } from '../../../src/broker/amqp/ack-batcher.js';

function recorder() {
  const frames: string[] = [];
  return {
    frames,
    ack: (m: { fields: { deliveryTag: number } }, multiple?: boolean) => frames.push(`ack ${m.fields.deliveryTag}${multiple ? ' multiple' : ''}`),
    nack: (m: { fields: { deliveryTag: number } }, _all?: boolean, requeue?: boolean) => frames.push(`nack ${m.fields.deliveryTag}${requeue ? ' requeue' : ''}`),
  };
}

describe('ack batching', () => {
  it('acks a run of finished deliveries with one multiple ack', async () => {
    const ch = recorder();
    const b = new AckBatcher(ch);
    for (let t = 1; t <= 5; t++) b.track(t);
    for (const t of [3, 1, 2, 5, 4]) b.ack(t);
    await tick();
    expect(ch.frames).to.deep.equal(['ack 5 multiple']);
    expect(b.outstanding).to.equal(0);
  });

  it('never covers a held delivery (an ETA task) with a multiple ack', async () => {
    const ch = recorder();
    const b = new AckBatcher(ch);
    for (let t = 1; t <= 4; t++) b.track(t);
    b.ack(1);
    b.ack(3);
    b.ack(4);
    await tick();
    expect(ch.frames).to.deep.equal(['ack 1 multiple', 'ack 3', 'ack 4']);
    b.ack(2);
    await tick();
    expect(ch.frames.slice(3)).to.deep.equal(['ack 2 multiple']);
    expect(b.outstanding).to.equal(0);
  });

  it('sends rejects at once and keeps queued acks', async () => {
    const ch = recorder();
    const b = new AckBatcher(ch);
    for (let t = 1; t <= 3; t++) b.track(t);
    b.ack(1);
    b.reject(2, false);
    b.ack(3);
    expect(ch.frames).to.deep.equal(['nack 2']);
    await tick();
    expect(ch.frames).to.deep.equal(['nack 2', 'ack 3 multiple']);
    expect(b.outstanding).to.equal(0);
  });

  it('ignores a second settle of the same delivery (which would close the channel)', async () => {
    const ch = recorder();
    const b = new AckBatcher(ch);
    b.track(1);
    b.ack(1);
    b.ack(1);
    b.reject(1, true);
    await tick();
    expect(ch.frames).to.deep.equal(['ack 1 multiple']);
  });

  it('settles every delivery exactly once over thousands of tags with gaps, held ones and late acks', async () => {
    const ch = recorder();
    const b = new AckBatcher(ch);
    // Tags only promised to grow: every third number skipped; 9,000 deliveries (past the 4,096 compaction).
    const tags: number[] = [];
    for (let t = 1; tags.length < 9000; t++) if (t % 3 !== 0) tags.push(t);
    for (const t of tags) b.track(t);
    const held = new Set([tags[10]!, tags[5000]!, tags[8999]!]);
    // Acked out of order, a few rejected, the held ones last.
    const order = tags.filter((t) => !held.has(t)).sort((x, y) => (x * 7919) % 9001 - (y * 7919) % 9001);
    for (const [i, t] of order.entries()) {
      if (i % 1000 === 0) b.reject(t, false);
      else b.ack(t);
      if (i % 2500 === 0) await tick();
    }
    await tick();
    expect(b.outstanding).to.be.greaterThan(0);
    for (const t of held) b.ack(t);
    await tick();
    expect(b.outstanding).to.equal(0);
    // What RabbitMQ saw settles each tag once: a multiple ack covers every tag up to it not yet settled.
    const settled = new Map<number, number>();
    let upTo = 0;
    for (const f of ch.frames) {
      const [kind, tagText, multiple] = f.split(' ');
      const tag = Number(tagText);
      if (kind === 'ack' && multiple === 'multiple') {
        for (const t of tags) if (t > upTo && t <= tag && !settled.has(t)) settled.set(t, 1);
        upTo = tag;
      } else {
        expect(settled.has(tag), `tag ${tag} settled twice`).to.equal(false);
        settled.set(tag, 1);
      }
    }
    expect(settled.size).to.equal(tags.length);
    // The held ones were never covered before they were acked: their acks are the last frames.
    expect(ch.frames.slice(-1)[0]).to.equal(`ack ${tags[8999]} multiple`);
  });
});

describe('ack batching when the channel dies', () => {
  it('swallows the error of a closed channel and forgets everything (RabbitMQ requeued it all)', async () => {
    let open = true;
    const frames: string[] = [];
    const ch = {
      ack: (m: { fields: { deliveryTag: number } }) => {
        if (!open) throw new Error('Channel closed');
        frames.push(`ack ${m.fields.deliveryTag}`);
      },
      nack: () => {
        if (!open) throw new Error('Channel closed');
      },
    };
    const b = new AckBatcher(ch);
    b.track(1);
    b.track(2);
    b.ack(1);
    open = false; // the connection drops before the scheduled flush
    await tick();
    expect(() => b.reject(2, true)).not.to.throw();
    expect(b.outstanding).to.equal(0);
    expect(frames).to.deep.equal([]);
  });
});
