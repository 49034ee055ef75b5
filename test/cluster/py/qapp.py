"""Python Celery 5.7 app for the quorum-queue tests (test/cluster/).

Every queue in QAPP_QUEUES is declared as Celery 5.5+ users declare quorum
queues: `x-queue-type: quorum` behind a topic exchange of the same name
(plus `x-delivery-limit` when QAPP_DELIVERY_LIMIT is set), so countdown and
eta tasks go through RabbitMQ's native delayed delivery.

Environment:
  QAPP_BROKER    broker URL(s), `;`-separated (default: vhost ts-celery-cluster)
  QAPP_BACKEND   result backend (default redis://127.0.0.1:6379/8)
  QAPP_QUEUES    comma-separated queue names (the first is task_default_queue)
  QAPP_DELIVERY_LIMIT  x-delivery-limit of every queue (optional)

Worker:  python -m celery -A qapp worker -Q <queue>
Client:  python qapp.py send NAME --queue Q [--args JSON] [--countdown S] [--get]
         prints one JSON line: {"id", "sent_at", "result"}
         python qapp.py produce NAME --queue Q --tags-file F [--rate N]
         sends one task per line of F (args [tag, ms]) with publisher confirms,
         prints one JSON line: {"confirmed": [...], "failed": {tag: error}}
"""
import argparse
import json
import os
import sys
import time

from celery import Celery
from kombu import Exchange, Queue

BROKER = os.environ.get('QAPP_BROKER', 'amqp://guest:guest@127.0.0.1:5672/ts-celery-cluster')
BACKEND = os.environ.get('QAPP_BACKEND', 'redis://127.0.0.1:6379/8')
QUEUES = [q for q in os.environ.get('QAPP_QUEUES', 'qapp').split(',') if q]
LIMIT = os.environ.get('QAPP_DELIVERY_LIMIT')


def quorum_queue(name):
    args = {'x-queue-type': 'quorum'}
    if LIMIT:
        args['x-delivery-limit'] = int(LIMIT)
    return Queue(name, Exchange(name, type='topic'), routing_key=name, queue_arguments=args)


app = Celery('qapp', broker=BROKER, backend=BACKEND or None)
app.conf.update(
    task_queues=[quorum_queue(q) for q in QUEUES],
    task_default_queue=QUEUES[0],
    task_default_exchange_type='topic',
    broker_connection_retry_on_startup=True,
    # Publisher confirms: apply_async returns once RabbitMQ has the message.
    broker_transport_options={'confirm_publish': True},
    enable_utc=True,
    timezone='UTC',
)


@app.task(name='pyq.add')
def add(x, y):
    return x + y


@app.task(name='pyq.now', bind=True)
def now(self):
    """When it ran, and how it arrived (delayed messages come from celery_delayed_*)."""
    di = self.request.delivery_info or {}
    return {'at': time.time(), 'exchange': di.get('exchange'), 'routing_key': di.get('routing_key'),
            'eta': self.request.eta, 'retries': self.request.retries}


def main(argv):
    p = argparse.ArgumentParser(prog='qapp.py')
    sub = p.add_subparsers(dest='cmd', required=True)
    s = sub.add_parser('send')
    s.add_argument('name')
    s.add_argument('--queue', required=True)
    s.add_argument('--args', default='[]')
    s.add_argument('--countdown', type=float)
    s.add_argument('--get', action='store_true')
    s.add_argument('--timeout', type=float, default=30.0)
    pr = sub.add_parser('produce')
    pr.add_argument('name')
    pr.add_argument('--queue', required=True)
    pr.add_argument('--tags-file', required=True)
    pr.add_argument('--ms', type=int, default=0)
    pr.add_argument('--rate', type=float, default=0, help='sends per second (0: as fast as confirms allow)')
    a = p.parse_args(argv)

    if a.cmd == 'send':
        sent_at = time.time()
        r = app.send_task(a.name, args=json.loads(a.args), queue=a.queue, countdown=a.countdown)
        result = r.get(timeout=a.timeout) if a.get else None
        print(json.dumps({'id': r.id, 'sent_at': sent_at, 'result': result}))
        return 0

    with open(a.tags_file) as f:
        tags = [line.strip() for line in f if line.strip()]
    confirmed, failed = [], {}
    started = time.time()
    with app.producer_or_acquire() as producer:
        for i, tag in enumerate(tags):
            if a.rate:
                due = started + i / a.rate
                if due > time.time():
                    time.sleep(due - time.time())
            try:
                app.send_task(a.name, args=[tag, a.ms], queue=a.queue, producer=producer)
                confirmed.append(tag)
            except Exception as exc:  # noqa: BLE001 - every failure is reported, none stops the run
                failed[tag] = '%s: %s' % (type(exc).__name__, exc)
            if i % 250 == 0:
                print(json.dumps({'progress': i + 1}), file=sys.stderr, flush=True)
    print(json.dumps({'confirmed': confirmed, 'failed': failed}))
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
