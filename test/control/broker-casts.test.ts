/**
 * The AMQP broker's monitoring capabilities against RabbitMQ: exclusive,
 * auto-delete queues with x-message-ttl/x-expires declared as kombu declares
 * them, fanout/topic exchanges declared alone, unconfirmed publishes, and
 * no-ack consumers.
 */
import { expect } from 'chai';
import { AmqpBroker } from '../../src/broker/index.js';
import type { Delivery, QueueDeclaration } from '../../src/broker/types.js';
import type { WireMessage } from '../../src/protocol/message.js';
import { rabbitmqctl, uniqueName } from '../helpers/services.js';
import { waitFor } from '../helpers/wait-for.js';
import { CONTROL_AMQP_URL, CONTROL_VHOST } from './services.js';

const msg = (text: string): WireMessage => ({ body: Buffer.from(text), contentType: 'application/json', contentEncoding: 'utf-8', headers: { clock: 3 }, deliveryMode: 1 });

function newBroker(): AmqpBroker {
  return new AmqpBroker({
    url: CONTROL_AMQP_URL, heartbeat: 60, connectTimeout: 4, connectionName: 'broker-casts test',
    publishRetry: null, reconnect: { enabled: true, onStartup: true, maxRetries: 3 },
  });
}

describe('AMQP broker: fanout exchanges, exclusive no-ack queues, unconfirmed publishes (RabbitMQ)', () => {
  const brokers: AmqpBroker[] = [];
  after(async () => {
    for (const b of brokers) await b.close();
  });

  it('declares an exclusive auto-delete queue with kombu arguments and consumes a fanout publish without acks', async () => {
    const exchange = uniqueName('fx.pidbox');
    const queue: QueueDeclaration = {
      name: uniqueName('node') + '.pidbox', durable: false, autoDelete: true, exclusive: true,
      arguments: { 'x-message-ttl': 300_000, 'x-expires': 10_000 },
      exchange: { name: exchange, type: 'fanout', durable: false }, routingKey: '',
    };
    const consumer = newBroker();
    const producer = newBroker();
    brokers.push(consumer, producer);
    const got: Delivery[] = [];
    const c = await consumer.consume(queue, { prefetch: 0, noAck: true, onDelivery: (d) => got.push(d) });
    expect(c.consuming).to.equal(true);
    const rows = JSON.parse(await rabbitmqctl(['-q', 'list_queues', '-p', CONTROL_VHOST, 'name', 'durable', 'auto_delete', 'exclusive', 'arguments', '--formatter', 'json'])) as Array<Record<string, unknown>>;
    const row = rows.find((r) => r.name === queue.name)!;
    expect(row).to.deep.include({ durable: false, auto_delete: true, exclusive: true });
    expect(row.arguments).to.have.deep.members([['x-expires', 'signedint', 10000], ['x-message-ttl', 'signedint', 300000]]);

    await producer.publish(msg('"hello"'), { exchange, routingKey: '', declareExchange: queue.exchange }, { confirm: false });
    // Nobody is bound under this key: an unconfirmed publish is dropped, not an error.
    await producer.publish(msg('"nowhere"'), { exchange: '', routingKey: uniqueName('no-such-queue') }, { confirm: false });
    await waitFor(() => got.length > 0, { timeoutMs: 10_000, what: 'the fanout delivery' }).catch(() => {}); // the expectation says what came
    expect(got.map((d) => d.message.body.toString())).to.deep.equal(['"hello"']);
    expect(got[0]!.message.headers).to.deep.equal({ clock: 3 });
    got[0]!.ack(); // a no-op: acking a no-ack delivery would close the channel
    await c.close();
    // Auto-delete: gone with its consumer.
    for (let i = 0; i < 50; i++) {
      const names = (JSON.parse(await rabbitmqctl(['-q', 'list_queues', '-p', CONTROL_VHOST, 'name', '--formatter', 'json'])) as Array<{ name: string }>).map((r) => r.name);
      if (!names.includes(queue.name)) return;
      await new Promise((r) => setTimeout(r, 100));
    }
    expect.fail('the auto-delete queue was not deleted');
  });
});
