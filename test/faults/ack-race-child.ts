/**
 * Child process for ack-race.test.ts (run with `node --import tsx`): consumes
 * one message through ts-celery's AMQP broker, acks it, and in the same tick
 * makes the connection fail (as a broker restart or a reset does). The ack
 * batcher flushes on the next turn of the event loop, when the channel is
 * already closed. Prints `survived` and exits 0 when nothing blew up; an
 * uncaught exception exits non-zero with its stack.
 *
 * Argv: <amqp url> <queue>
 */
import { Celery } from '../../src/index.js';
import { queueDeclaration } from '../../src/app/routing.js';

const [url, queue] = process.argv.slice(2) as [string, string];
const app = new Celery('ack-race', { broker_url: url, task_default_queue: queue });
const broker = app.broker;
let delivered = 0;
await broker.consume(queueDeclaration(app.conf, queue), {
  prefetch: 10,
  onDelivery: (delivery) => {
    delivered++;
    delivery.ack(); // flushed by the batcher on setImmediate
    // The connection fails before that flush: destroy its socket now (closes every channel on the next tick).
    const conn = (broker as unknown as { conn: { connection: { stream: { destroy(e: Error): void } } } | null }).conn;
    conn?.connection.stream.destroy(new Error('simulated connection reset'));
  },
});
const producer = new Celery('ack-race-producer', { broker_url: url, task_default_queue: queue });
await producer.sendTask('faults.echo', ['x']);
await producer.close();
const deadline = Date.now() + 5000;
while (delivered === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
await new Promise((r) => setTimeout(r, 500)); // let the flush and the reconnect happen
console.log(`delivered=${delivered} survived`);
await app.close();
process.exit(0);
