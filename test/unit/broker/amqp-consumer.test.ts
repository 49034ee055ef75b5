import { expect } from 'chai';
import type { ChannelModel, ConsumeMessage } from 'amqplib';
import { AmqpConsumer } from '../../../src/broker/amqp/amqp-consumer.js';
import type { Delivery } from '../../../src/broker/types.js';
import { messageProperties } from '../../../src/protocol/properties.js';
import { parseTaskMessage } from '../../../src/protocol/message.js';

/** amqplib's MessageProperties as it decodes them: every name present, undefined when absent. */
function properties(id: string, extra: Record<string, unknown> = {}): ConsumeMessage['properties'] {
  return {
    contentType: 'application/json',
    contentEncoding: 'utf-8',
    headers: {
      lang: 'py', task: 'proj.add', id, shadow: null, eta: null, expires: null, group: null, group_index: null,
      retries: 0, timelimit: [null, null], root_id: id, parent_id: null, argsrepr: '(1, 2)', kwargsrepr: '{}',
      origin: 'gen1@host', ignore_result: false,
    },
    deliveryMode: 2,
    priority: 0,
    correlationId: id,
    replyTo: undefined,
    expiration: undefined,
    messageId: undefined,
    timestamp: undefined,
    type: undefined,
    userId: undefined,
    appId: undefined,
    clusterId: undefined,
    ...extra,
  } as ConsumeMessage['properties'];
}

/** A consumer on a fake channel; returns the handler amqplib would call and what reached the worker. */
async function consumer(): Promise<{ deliver: (m: ConsumeMessage) => void; got: Delivery[] }> {
  let handler: ((m: ConsumeMessage | null) => void) | null = null;
  const channel = {
    on: () => channel,
    prefetch: async () => undefined,
    consume: async (_q: string, h: (m: ConsumeMessage | null) => void) => {
      handler = h;
      return { consumerTag: 'amq.ctag-1' };
    },
    ack: () => undefined,
    nack: () => undefined,
    close: async () => undefined,
  };
  const got: Delivery[] = [];
  const c = new AmqpConsumer({ name: 'q1', durable: true, autoDelete: false, exclusive: false, arguments: {} } as never, 10, (d) => got.push(d), {
    declare: async () => undefined,
    consumerLost: () => undefined,
  });
  await c.attach({ createChannel: async () => channel } as unknown as ChannelModel);
  return { deliver: (m) => handler!(m), got };
}

function message(tag: number, id: string, extra: Record<string, unknown> = {}): ConsumeMessage {
  return {
    fields: { consumerTag: 'amq.ctag-1', deliveryTag: tag, redelivered: tag === 2, exchange: '', routingKey: 'q1' },
    properties: properties(id, extra),
    content: Buffer.from('[[1, 2], {}, {"callbacks": null, "errbacks": null, "chain": null, "chord": null}]'),
  } as ConsumeMessage;
}

describe('AMQP consumer: what a held delivery keeps', () => {
  it('hands the worker the same headers, properties and delivery info as amqplib decoded', async () => {
    const { deliver, got } = await consumer();
    deliver(message(1, 'id-1'));
    deliver(message(2, 'id-2'));
    expect(got).to.have.length(2);
    for (const [i, d] of got.entries()) {
      const id = `id-${i + 1}`;
      expect(d.message.headers).to.deep.equal(properties(id).headers);
      expect(d.message).to.deep.include({ contentType: 'application/json', contentEncoding: 'utf-8', correlationId: id, priority: 0, deliveryMode: 2 });
      expect(d.info).to.deep.equal({ exchange: '', routingKey: 'q1', redelivered: i === 1, consumerTag: 'amq.ctag-1', queue: 'q1', priority: 0 });
      const task = parseTaskMessage(d.message);
      expect(task).to.deep.include({ id, rootId: id, task: 'proj.add', args: [1, 2], origin: 'gen1@host', kwargsrepr: '{}' });
    }
  });

  it("request.properties of a plain Celery message: py-amqp's names, in py-amqp's order, without amqplib's object", async () => {
    const { deliver, got } = await consumer();
    deliver(message(1, 'id-1'));
    const props = messageProperties(got[0]!.message);
    expect(Object.keys(props)).to.deep.equal(['content_type', 'content_encoding', 'application_headers', 'delivery_mode', 'priority', 'correlation_id']);
    expect(props).to.deep.include({ content_type: 'application/json', content_encoding: 'utf-8', delivery_mode: 2, priority: 0, correlation_id: 'id-1' });
    expect(props.application_headers).to.deep.equal(properties('id-1').headers);
  });

  it('request.properties keep the properties a plain message does not have (app_id, message_id, timestamp...)', async () => {
    const { deliver, got } = await consumer();
    deliver(message(1, 'id-1', { appId: '1234', messageId: 'm-1', timestamp: 1700000000, replyTo: 'reply.q' }));
    const props = messageProperties(got[0]!.message);
    expect(Object.keys(props)).to.deep.equal([
      'content_type', 'content_encoding', 'application_headers', 'delivery_mode', 'priority', 'correlation_id', 'reply_to', 'message_id', 'timestamp', 'app_id',
    ]);
    expect(props).to.deep.include({ app_id: '1234', message_id: 'm-1', timestamp: 1700000000, reply_to: 'reply.q' });
  });

  it('copies the body out of the socket chunk amqplib sliced it from', async () => {
    const { deliver, got } = await consumer();
    const chunk = Buffer.alloc(65536);
    const m = message(1, 'id-1');
    m.content.copy(chunk, 100);
    deliver({ ...m, content: chunk.subarray(100, 100 + m.content.length) });
    const body = got[0]!.message.body;
    expect(body.equals(m.content)).to.equal(true);
    expect(body.buffer).to.not.equal(chunk.buffer);
  });
});
