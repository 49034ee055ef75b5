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
