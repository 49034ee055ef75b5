"""Python Celery app used by the ts-celery interop tests.

Works with both interpreters the tests use:
  .venv/bin/python   Celery 5.7 from PyPI (scripts/services.sh installs it)
  /usr/bin/python3   Debian's python3-celery 5.2.6

Configuration comes from the environment:
  PYTASKS_BROKER   default amqp://guest:guest@127.0.0.1:5672/ts-celery-test
  PYTASKS_BACKEND  default redis://127.0.0.1:6379/9
  PYTASKS_QUEUE    default celery  (becomes task_default_queue)
  PYTASKS_RESULT_KEYPREFIX  result_backend_transport_options global_keyprefix
  PYTASKS_ROUTES   JSON task_routes, e.g. {"py.add": {"queue": "a"}} (optional)
  PYTASKS_TRANSPORT_OPTIONS  JSON broker_transport_options (optional)
  PYTASKS_ACKS_LATE=1        task_acks_late

Start a worker with (cwd = this directory):
  python -m celery -A pytasks worker -l info -Q <queue> -c 1
"""
import datetime
import decimal
import json
import os
import time
import uuid

from celery import Celery

BROKER_URL = os.environ.get(
    'PYTASKS_BROKER', 'amqp://guest:guest@127.0.0.1:5672/ts-celery-test')
BACKEND_URL = os.environ.get('PYTASKS_BACKEND', 'redis://127.0.0.1:6379/9')
DEFAULT_QUEUE = os.environ.get('PYTASKS_QUEUE', 'celery')

app = Celery('pytasks', broker=BROKER_URL, backend=BACKEND_URL)
app.conf.update(
    task_default_queue=DEFAULT_QUEUE,
    task_serializer='json',
    result_serializer='json',
    accept_content=['json'],
    enable_utc=True,
    timezone='UTC',
    # 5.3+ warns at worker start-up when this is unset; 5.2.6 ignores it.
    broker_connection_retry_on_startup=True,
    task_acks_late=os.environ.get('PYTASKS_ACKS_LATE') == '1',
)
if os.environ.get('PYTASKS_RESULT_KEYPREFIX'):
    app.conf.result_backend_transport_options = {
        'global_keyprefix': os.environ['PYTASKS_RESULT_KEYPREFIX']}
if os.environ.get('PYTASKS_ROUTES'):
    app.conf.task_routes = json.loads(os.environ['PYTASKS_ROUTES'])
if os.environ.get('PYTASKS_TRANSPORT_OPTIONS'):
    app.conf.broker_transport_options = json.loads(os.environ['PYTASKS_TRANSPORT_OPTIONS'])


class SmsProviderError(Exception):
    """A user-defined exception (exc_module 'pytasks' in the result)."""


def jsonable(value):
    """Make request/result fields JSON-safe (datetimes as isoformat, ...)."""
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, (decimal.Decimal, uuid.UUID)):
        return str(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode('utf-8', 'replace')
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [jsonable(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return repr(value)


@app.task(name='py.add')
def add(x, y):
    return x + y


@app.task(name='py.mul')
def mul(x, y):
    return x * y


@app.task(name='py.echo')
def echo(*args, **kwargs):
    return {'args': list(args), 'kwargs': kwargs}


@app.task(name='py.fail')
def fail(msg):
    raise ValueError(msg)


@app.task(name='py.fail_custom')
def fail_custom(msg):
    raise SmsProviderError(msg)


@app.task(name='py.retry_twice', bind=True)
def retry_twice(self):
    if self.request.retries < 2:
        raise self.retry(countdown=1)
    return self.request.retries


@app.task(name='py.retry_forever', bind=True, max_retries=2)
def retry_forever(self):
    raise self.retry(exc=ValueError('still failing'), countdown=0.5)


@app.task(name='py.sleepy')
def sleepy(seconds):
    time.sleep(seconds)
    return seconds


@app.task(name='py.now')
def now():
    """The worker's clock when the task body runs (checks countdown/eta)."""
    return time.time()


REQUEST_FIELDS = ('id', 'retries', 'eta', 'expires', 'parent_id', 'root_id',
                  'hostname', 'delivery_info')


@app.task(name='py.request_info', bind=True)
def request_info(self):
    req = self.request
    return {f: jsonable(getattr(req, f, None)) for f in REQUEST_FIELDS}


@app.task(name='py.stamps', bind=True)
def stamps(self, tag=None):
    # Celery 5.3+: a stamped task's request carries its stamps (stamped_headers/stamps headers).
    req = self.request
    return {'tag': jsonable(tag), 'stamped_headers': sorted(req.stamped_headers or []),
            'stamps': jsonable(req.stamps or {})}


_redis = None


def _redis_client():
    global _redis
    if _redis is None:
        import redis
        _redis = redis.Redis.from_url(app.conf.result_backend)
    return _redis


def record_key(tag):
    return 'pytasks:record:' + str(tag).split(':', 1)[0]


@app.task(name='py.record')
def record(tag):
    """RPUSH tag onto pytasks:record:<prefix before ':'> (exactly-once counts)."""
    _redis_client().rpush(record_key(tag), tag)
    return tag


@app.task(name='ccp_send_sms_code', bind=True)
def ccp_send_sms_code(self, mobile, sms_code):
    """The seed's task name, so a TypeScript ccpSendSmsCode.delay() runs here."""
    return {'mobile': mobile, 'sms_code': sms_code, 'worker': 'py'}


@app.task(name='shared.hop', bind=True)
def hop(self, target_queue):
    """Also defined in the TypeScript test app: the first run retries onto
    target_queue, so the retry runs on the other language's worker."""
    if self.request.retries == 0:
        raise self.retry(countdown=0.5, queue=target_queue)
    return {'worker': 'py', 'retries': self.request.retries,
            'parent_id': self.request.parent_id}


@app.task(name='shared.record')
def shared_record(tag):
    """Same name and effect as the TypeScript worker's shared.record."""
    _redis_client().rpush(record_key(tag), 'py:' + tag)
    return tag


# --- canvas (test/interop/canvas.test.ts) --------------------------------
@app.task(name='py.tsum')
def tsum(nums):
    return sum(nums)


@app.task(name='shared.square')
def shared_square(tag, x):
    """Also defined in the TypeScript test app: records who ran it, returns x * x."""
    _redis_client().rpush(record_key(tag), 'py:%s' % x)
    time.sleep(0.02)
    return x * x


@app.task(name='shared.collect')
def shared_collect(values, tag):
    """Also defined in the TypeScript test app: a chord body that records that it ran."""
    _redis_client().rpush(record_key(tag), 'py:body')
    return {'values': values, 'worker': 'py'}


@app.task(name='shared.slow')
def shared_slow(tag, seconds):
    """Same name and effect as the TypeScript worker's shared.slow: notes its
    start and end as '<lang>|<tag>|<pid>' (exact counts in the fault tests)."""
    run = str(tag).split(':', 1)[0]
    _redis_client().rpush('pytasks:started:' + run, 'py|%s|%d' % (tag, os.getpid()))
    time.sleep(seconds)
    _redis_client().rpush('pytasks:done:' + run, 'py|%s|%d' % (tag, os.getpid()))
    return tag
