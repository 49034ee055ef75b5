/**
 * The tutorial's raw producer (rabbitmq_producer.py) with amqplib: declares the queue `zxc` the way
 * pika's `queue_declare(queue='zxc')` does and publishes `Hello RabbitMQ!` to it through the
 * default exchange.
 *
 *   npx tsx scripts/rabbitmq_producer.ts
 *
 * Environment: RABBITMQ_HOST (localhost), RABBITMQ_PORT (5672), RABBITMQ_VHOST (/),
 * RABBITMQ_USER / RABBITMQ_PASSWORD (guest / guest), RABBITMQ_QUEUE (zxc).
 * test/interop/py/seed/rabbitmq_producer.py is the Python original, reading the same variables.
 */
import amqp from 'amqplib';

const env = process.env;
const queue = env.RABBITMQ_QUEUE || 'zxc';
const body = 'Hello RabbitMQ!';
const host = env.RABBITMQ_HOST || 'localhost';
const port = Number(env.RABBITMQ_PORT || 5672);
const vhost = env.RABBITMQ_VHOST || '/';

async function main(): Promise<void> {
  // 链接到RabbitMQ服务器 (connect to the RabbitMQ server)
  const connection = await amqp.connect({
    protocol: 'amqp', hostname: host, port, vhost,
    username: env.RABBITMQ_USER || 'guest', password: env.RABBITMQ_PASSWORD || 'guest',
  });
  try {
    // 创建频道 (open a channel). A confirm channel, so we exit only once RabbitMQ has the message;
    // what reaches the queue is the same as pika's plain basic_publish.
    const channel = await connection.createConfirmChannel();
    // 声明消息队列: pika's queue_declare defaults (not durable, not exclusive, not auto-delete);
    // amqplib's default is durable, and RabbitMQ refuses a redeclaration with different flags.
    await channel.assertQueue(queue, { durable: false, exclusive: false, autoDelete: false });
    // routing_key是队列名 body是要插入的内容 (routing key = queue name, through the default exchange)
    channel.publish('', queue, Buffer.from(body, 'utf8'));
    await channel.waitForConfirms();
    console.log(`开始向 '${queue}' 队列中发布消息 '${body}'`);
  } finally {
    // 关闭链接 (close the connection)
    await connection.close();
  }
}

main().catch((err: unknown) => {
  const why = err instanceof Error ? err.message : String(err);
  console.error(`Could not publish to ${host}:${port} vhost ${vhost} (${why}): is RabbitMQ running, and are RABBITMQ_* right?`);
  process.exit(1);
});
