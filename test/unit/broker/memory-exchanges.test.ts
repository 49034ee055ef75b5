import { expect } from 'chai';
import { MemoryBroker, topicMatches } from '../../../src/broker/memory.js';
import type { Delivery, QueueDeclaration } from '../../../src/broker/types.js';
import type { WireMessage } from '../../../src/protocol/message.js';

const msg = (text: string): WireMessage => ({ body: Buffer.from(text), contentType: 'application/json', contentEncoding: 'utf-8', headers: {}, deliveryMode: 1 });

function decl(name: string, exchange: string, type: 'direct' | 'topic' | 'fanout', routingKey: string, autoDelete = false): QueueDeclaration {
  return { name, durable: false, autoDelete, arguments: {}, exchange: { name: exchange, type, durable: false }, routingKey };
}

describe('memory broker: fanout and topic exchanges, no-ack consumers', () => {
  it('matches topic binding keys as RabbitMQ does', () => {
    expect(topicMatches('#', 'task.multi')).to.equal(true);
    expect(topicMatches('worker.#', 'worker.heartbeat')).to.equal(true);
    expect(topicMatches('worker.#', 'worker')).to.equal(true);
    expect(topicMatches('worker.#', 'task.sent')).to.equal(false);
    expect(topicMatches('task.*', 'task.multi')).to.equal(true);
    expect(topicMatches('task.*', 'task.a.b')).to.equal(false);
  });

  it('delivers a fanout publish to every bound queue, and a topic publish by pattern', async () => {
    const broker = new MemoryBroker();
    const got: Record<string, string[]> = { a: [], b: [], w: [], all: [] };
    const on = (k: string) => (d: Delivery) => got[k]!.push(d.message.body.toString());
    await broker.consume(decl('a', 'box', 'fanout', ''), { prefetch: 0, noAck: true, onDelivery: on('a') });
    await broker.consume(decl('b', 'box', 'fanout', ''), { prefetch: 0, noAck: true, onDelivery: on('b') });
    await broker.consume(decl('w', 'ev', 'topic', 'worker.#'), { prefetch: 0, noAck: true, onDelivery: on('w') });
    await broker.consume(decl('all', 'ev', 'topic', '#'), { prefetch: 0, noAck: true, onDelivery: on('all') });
    await broker.publish(msg('ping'), { exchange: 'box', routingKey: '' }, { confirm: false });
    await broker.publish(msg('hb'), { exchange: 'ev', routingKey: 'worker.heartbeat' }, { confirm: false });
    await broker.publish(msg('t'), { exchange: 'ev', routingKey: 'task.multi' }, { confirm: false });
    await new Promise((r) => setImmediate(r));
    expect(got).to.deep.equal({ a: ['ping'], b: ['ping'], w: ['hb'], all: ['hb', 't'] });
  });

  it('a no-ack consumer is not limited by prefetch, and an auto-delete queue goes with its last consumer', async () => {
    const broker = new MemoryBroker();
    const got: string[] = [];
    const c = await broker.consume(decl('r', 'replies', 'direct', 'me', true), { prefetch: 1, noAck: true, onDelivery: (d) => got.push(d.message.body.toString()) });
    expect(c.consuming).to.equal(true);
    for (const t of ['1', '2', '3']) await broker.publish(msg(t), { exchange: 'replies', routingKey: 'me' });
    await new Promise((r) => setImmediate(r));
    expect(got).to.deep.equal(['1', '2', '3']);
    await c.cancel();
    expect(c.consuming).to.equal(false);
    await broker.publish(msg('4'), { exchange: 'replies', routingKey: 'me' });
    expect(broker.size('r')).to.equal(0);
  });
});
