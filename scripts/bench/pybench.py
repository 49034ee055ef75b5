"""Python Celery side of `npm run bench`: the same tasks as bench-app.ts.

As a worker (cwd = scripts/bench), Debian's python3-celery 5.2.6:
  /usr/bin/python3 -m celery -A pybench worker -l warning -P eventlet -c 1000 -Q <queue>
  /usr/bin/python3 -m celery -A pybench worker -l warning -P prefork -c 2 -Q <queue>

As a producer (Python's delay(), one process), printing one JSON line:
  pybench.py fill   --task bench.noop --run R --n N     queue N tasks (bench.cpu400: a 400-ms busy loop)
  pybench.py rate   --run R --n N --warmup W            delay() calls per second
  pybench.py single --run R --n N --warmup W --gap-ms G latency of one delay() at a time
  pybench.py e2e    --run R --n N --rate 100            stamp tasks at a steady rate
  pybench.py chord  --run R --n N                       apply a chord of N bench.noop, body bench.chord_body

Environment: BENCH_BROKER (default the test vhost), BENCH_BACKEND (empty =
no result backend), BENCH_QUEUE (task_default_queue), BENCH_REDIS (where
tasks count; default Redis DB 11). Tasks report as marker.ts describes:
bench:<run>:first (SET NX), :count (INCR), :last (SET at n), :lat (RPUSH).
"""
import argparse
import json
import os
import sys
import time

from celery import Celery, signals

BROKER = os.environ.get('BENCH_BROKER') or 'amqp://guest:guest@127.0.0.1:5672/ts-celery-test'
BACKEND = os.environ.get('BENCH_BACKEND') or None
QUEUE = os.environ.get('BENCH_QUEUE') or 'bench'
REDIS_URL = os.environ.get('BENCH_REDIS') or 'redis://127.0.0.1:6379/11'

app = Celery('pybench', broker=BROKER, backend=BACKEND)
app.conf.update(
    task_default_queue=QUEUE,
    task_serializer='json',
    result_serializer='json',
    accept_content=['json'],
    enable_utc=True,
    timezone='UTC',
    broker_connection_retry_on_startup=True,
)

_redis = None
_started = set()


def redis_client():
    global _redis
    if _redis is None:
        import redis
        _redis = redis.Redis.from_url(REDIS_URL)
    return _redis


def now_ms():
    return time.time() * 1000.0


def done(run, n, started):
    """Count one completed task of `run` (n in all); see marker.ts."""
    r = redis_client()
    if run not in _started:
        _started.add(run)
        r.set('bench:%s:first' % run, '%.3f' % started, nx=True)
    if r.incr('bench:%s:count' % run) == n:
        r.set('bench:%s:last' % run, '%.3f' % now_ms())


@app.task(name='bench.noop')
def noop(run, n):
    done(run, n, now_ms())


@app.task(name='bench.sleep100')
def sleep100(run, n):
    started = now_ms()
    time.sleep(0.1)  # green under -P eventlet
    done(run, n, started)


@app.task(name='bench.stamp')
def stamp(run, n, sent_at):
    started = now_ms()
    redis_client().rpush('bench:%s:lat' % run, '%.3f' % (started - sent_at))
    done(run, n, started)


def work(iterations):
    """A fixed amount of pure computation (bench-app.ts's work(), in Python)."""
    x = 0
    for i in range(iterations):
        x = (x * 31 + i) & 0xFFFFFFFF
    return x


def calibrate_work(ms):
    """The iterations of work() that take `ms` of this thread's CPU time."""
    n = 100000
    while True:
        t = time.thread_time()
        work(n)
        used = time.thread_time() - t
        if used >= 0.2:
            return int(n * (ms / 1000.0) / used)
        n *= 2


_cpu_iterations = None


@signals.worker_init.connect
def _calibrate(**_):
    # In the main process, before the pool forks: every child inherits the figure.
    global _cpu_iterations
    _cpu_iterations = calibrate_work(400)


@app.task(name='bench.cpu400')
def cpu400(run, n):
    started = now_ms()
    work(_cpu_iterations or calibrate_work(400))  # 400 ms of CPU, as bench-app.ts's cpu400
    done(run, n, started)


def close_connections():
    """Closes the pooled broker connections with AMQP's close handshake.

    app.close() just drops them: the process then exits with the socket reset,
    and RabbitMQ can discard publishes still in its receive buffer (seen under
    load: 871 of 1,000 queued). close-ok arrives only after RabbitMQ has read
    every frame sent before it. Returns how many connections were closed.
    """
    pool = app.pool
    closed = 0
    for conn in list(pool._dirty) + list(pool._resource.queue):
        if getattr(conn, 'connected', False):
            conn.close()
            closed += 1
    return closed


@app.task(name='bench.chord_body')
def chord_body(values, run):
    redis_client().rpush('bench:%s:body' % run, '%.3f|%d' % (now_ms(), len(values)))


TASKS = {'bench.noop': noop, 'bench.sleep100': sleep100, 'bench.stamp': stamp, 'bench.cpu400': cpu400}


def main(argv):
    p = argparse.ArgumentParser()
    p.add_argument('command', choices=['fill', 'rate', 'single', 'e2e', 'chord'])
    p.add_argument('--task', default='bench.noop')
    p.add_argument('--run', required=True)
    p.add_argument('--n', type=int, required=True)
    p.add_argument('--warmup', type=int, default=0)
    p.add_argument('--gap-ms', type=float, default=0)
    p.add_argument('--rate', type=float, default=100)
    a = p.parse_args(argv)
    task = TASKS[a.task]
    out = {'n': a.n}
    for _ in range(a.warmup):
        noop.delay(a.run + '-warmup', a.n)
    if a.command == 'chord':
        from celery import chord
        t0 = time.perf_counter()
        chord([noop.s(a.run, a.n) for _ in range(a.n)])(chord_body.s(a.run))
        out['seconds'] = time.perf_counter() - t0
    elif a.command == 'fill':
        t0 = time.perf_counter()
        for _ in range(a.n):
            task.delay(a.run, a.n)
        out['seconds'] = time.perf_counter() - t0
    elif a.command == 'rate':
        t0 = time.perf_counter()
        for _ in range(a.n):
            noop.delay(a.run, a.n)
        out['seconds'] = time.perf_counter() - t0
    elif a.command == 'single':
        samples = []
        for _ in range(a.n):
            t0 = time.perf_counter()
            noop.delay(a.run, a.n)
            samples.append((time.perf_counter() - t0) * 1000.0)
            time.sleep(a.gap_ms / 1000.0)
        out['samples'] = samples
    else:  # e2e: stamp tasks at a steady rate, each carrying its send time
        start = time.perf_counter()
        for i in range(a.n):
            delay = start + i / a.rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            stamp.delay(a.run, a.n, now_ms())
        out['seconds'] = time.perf_counter() - start
    out['closed'] = close_connections()
    print(json.dumps(out))


if __name__ == '__main__':
    main(sys.argv[1:])
