# 生产者代码:rabbitmq_producer.py
# The tutorial's pika producer, unchanged except that the connection settings and the queue name
# come from the same environment variables as scripts/rabbitmq_producer.ts:
#   RABBITMQ_HOST (localhost), RABBITMQ_PORT (5672), RABBITMQ_VHOST (/),
#   RABBITMQ_USER / RABBITMQ_PASSWORD (guest / guest), RABBITMQ_QUEUE (zxc)
# Run with the project's venv: .venv/bin/python test/interop/py/seed/rabbitmq_producer.py
import os

import pika

host = os.environ.get('RABBITMQ_HOST') or 'localhost'
port = int(os.environ.get('RABBITMQ_PORT') or 5672)
vhost = os.environ.get('RABBITMQ_VHOST') or '/'
queue = os.environ.get('RABBITMQ_QUEUE') or 'zxc'

# 链接到RabbitMQ服务器
credentials = pika.PlainCredentials(os.environ.get('RABBITMQ_USER') or 'guest',
                                    os.environ.get('RABBITMQ_PASSWORD') or 'guest')
connection = pika.BlockingConnection(pika.ConnectionParameters(host, port, vhost, credentials))
# 创建频道
channel = connection.channel()
# 声明消息队列
channel.queue_declare(queue=queue)
# routing_key是队列名 body是要插入的内容
channel.basic_publish(exchange='', routing_key=queue, body='Hello RabbitMQ!')
print("开始向 '%s' 队列中发布消息 'Hello RabbitMQ!'" % queue)
# 关闭链接
connection.close()
