# 消费者代码:rabbitmq_customer.py
# The tutorial's pika consumer, unchanged except that the connection settings and the queue name
# come from the same environment variables as scripts/rabbitmq_consumer.ts:
#   RABBITMQ_HOST (localhost), RABBITMQ_PORT (5672), RABBITMQ_VHOST (/),
#   RABBITMQ_USER / RABBITMQ_PASSWORD (guest / guest), RABBITMQ_QUEUE (zxc)
# It prints each body as Python does (b'Hello RabbitMQ!') and consumes until killed.
# Run with the project's venv: .venv/bin/python -u test/interop/py/seed/rabbitmq_customer.py
import os

import pika

host = os.environ.get('RABBITMQ_HOST') or 'localhost'
port = int(os.environ.get('RABBITMQ_PORT') or 5672)
vhost = os.environ.get('RABBITMQ_VHOST') or '/'
queue = os.environ.get('RABBITMQ_QUEUE') or 'zxc'

# 链接到rabbitmq服务器
credentials = pika.PlainCredentials(os.environ.get('RABBITMQ_USER') or 'guest',
                                    os.environ.get('RABBITMQ_PASSWORD') or 'guest')
connection = pika.BlockingConnection(pika.ConnectionParameters(host, port, vhost, credentials))
# 创建频道,声明消息队列
channel = connection.channel()
channel.queue_declare(queue=queue)


# 定义接受消息的回调函数
def callback(ch, method, properties, body):
    print(body)


# 告诉RabbitMQ使用callback来接收信息
channel.basic_consume(queue=queue, on_message_callback=callback, auto_ack=True)
# 开始接收信息
channel.start_consuming()
