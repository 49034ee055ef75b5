/**
 * The tutorial's raw consumer (rabbitmq_customer.py) with amqplib: declares the queue `zxc` as
 * pika's `queue_declare(queue='zxc')` does and prints the body of every message, with auto-ack.
 *
 *   npx tsx scripts/rabbitmq_consumer.ts [--count N]
 *
 * --count N: exit after N messages. Environment: RABBITMQ_HOST (localhost), RABBITMQ_PORT (5672),
 * RABBITMQ_VHOST (/), RABBITMQ_USER / RABBITMQ_PASSWORD (guest / guest), RABBITMQ_QUEUE (zxc).
 * Bodies go to stdout, one a line; the "waiting" line goes to stderr.
 * test/interop/py/seed/rabbitmq_customer.py is the Python original, reading the same variables.
 */
import amqp, { type ConsumeMessage } from 'amqplib';

const env = process.env;
const queue = env.RABBITMQ_QUEUE || 'zxc';
const host = env.RABBITMQ_HOST || 'localhost';
const port = Number(env.RABBITMQ_PORT || 5672);
const vhost = env.RABBITMQ_VHOST || '/';

/** `--count N` / `--count=N`, or null to consume forever. */
function parseCount(argv: string[]): number | null {
  const i = argv.findIndex((a) => a === '--count' || a.startsWith('--count='));
  if (i < 0) return null;
  const arg = argv[i]!;
  const raw = arg.includes('=') ? arg.slice(arg.indexOf('=') + 1) : argv[i + 1];
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) {
    console.error(`--count needs a whole number >= 1, got ${raw ?? 'nothing'}`);
    process.exit(2);
  }
  return n;
}

async function main(): Promise<void> {
  const count = parseCount(process.argv.slice(2));
  // 链接到rabbitmq服务器 (connect to the RabbitMQ server)
  const connection = await amqp.connect({
    protocol: 'amqp', hostname: host, port, vhost,
    username: env.RABBITMQ_USER || 'guest', password: env.RABBITMQ_PASSWORD || 'guest',
  });
  // 创建频道,声明消息队列: pika's queue_declare defaults (not durable, not exclusive, not auto-delete).
  const channel = await connection.createChannel();
  await channel.assertQueue(queue, { durable: false, exclusive: false, autoDelete: false });

  const stop = async (): Promise<void> => {
    // Close the channel first: amqplib writes each channel's frames to its own buffer, so a bare
    // connection.close() can overtake the last ack, and RabbitMQ would requeue that message.
    await channel.close().catch(() => undefined);
    await connection.close().catch(() => undefined);
    process.exit(0);
  };
  process.once('SIGINT', () => void stop());
  process.once('SIGTERM', () => void stop());

  // Without --count: auto_ack=True, as the tutorial. With --count, auto-ack would let RabbitMQ push
  // the messages after the N-th to us, and they would be lost when we exit; so take one at a time,
  // ack each after printing it, and cancel before acking the N-th.
  const autoAck = count === null;
  if (!autoAck) await channel.prefetch(1);
  let seen = 0;
  // 定义接受消息的回调函数 (the callback that receives messages)
  const callback = (msg: ConsumeMessage | null): void => {
    if (msg === null) {
      console.error(`The consumer on '${queue}' was cancelled by RabbitMQ (queue deleted?)`);
      void stop();
      return;
    }
    console.log(msg.content.toString('utf8'));
    if (count === null) return;
    seen++;
    if (seen < count) return channel.ack(msg);
    void channel.cancel(msg.fields.consumerTag).then(() => channel.ack(msg)).then(stop);
  };
  // 告诉RabbitMQ使用callback来接收信息 (consume with the callback)
  await channel.consume(queue, callback, { noAck: autoAck });
  // 开始接收信息 (start consuming)
  console.error(` [*] Waiting for messages on '${queue}'. To exit press CTRL+C`);
}

main().catch((err: unknown) => {
  const why = err instanceof Error ? err.message : String(err);
  console.error(`Could not consume from ${host}:${port} vhost ${vhost} (${why}): is RabbitMQ running, and are RABBITMQ_* right?`);
  process.exit(1);
});
