"""Python Celery app for the remote-control and events tests.

The same task names as test/control/ts-app/main.ts, in the control vhost
with Redis DB 15; as a worker app (`celery -A ctlapp worker`) and as the
client side of ctlclient.py.

Env: CTL_BROKER, CTL_BACKEND, CTL_QUEUE (task_default_queue).
"""
import os
import time

from celery import Celery

app = Celery(
    'ctlapp',
    broker=os.environ.get('CTL_BROKER', 'amqp://guest:guest@127.0.0.1:5672/ts-celery-control'),
    backend=os.environ.get('CTL_BACKEND', 'redis://127.0.0.1:6379/15'),
)
app.conf.update(
    task_default_queue=os.environ.get('CTL_QUEUE', 'celery'),
    broker_connection_retry_on_startup=True,
)


@app.task(name='ctl.add')
def add(x, y):
    return x + y


@app.task(name='ctl.sleep')
def sleep(seconds):
    time.sleep(seconds)
    return seconds


@app.task(name='ctl.fail')
def fail(msg='boom'):
    raise ValueError(msg)


@app.task(name='ctl.retry_once', bind=True)
def retry_once(self):
    if self.request.retries < 1:
        raise self.retry(countdown=0.5, exc=KeyError('transient'))
    return 'retried'


@app.task(name='ctl.limited', rate_limit='100/m')
def limited():
    return 'limited'
