"""`celery beat` for `npm run bench:beat`: the same schedule as beat-runner.ts
(N entries every second sending bench.beat_tick(i) to one queue), run by
Celery's own PersistentScheduler with a subclass that only measures.

Send lag = the time apply_entry returned (the message written to the socket;
Celery does not wait for a broker confirm) minus the time the run was due
(its last run + 1 s). Start it with
  celery -A pybeat beat -S pybeat:LagScheduler -s <file> -l warning
Env: BENCH_BEAT_N, BENCH_BEAT_QUEUE, BENCH_BEAT_BROKER, BENCH_BEAT_PHASE (spread|aligned),
BENCH_BEAT_WARMUP_MS, BENCH_BEAT_WINDOW_MS, BENCH_BEAT_OUT (where the JSON summary goes).
"""
import json
import os
import time
from datetime import timedelta

from celery import Celery
from celery.beat import PersistentScheduler
from kombu import Queue

N = int(os.environ.get('BENCH_BEAT_N', '10000'))
QUEUE = os.environ['BENCH_BEAT_QUEUE']
WARMUP = int(os.environ.get('BENCH_BEAT_WARMUP_MS', '5000')) / 1000
WINDOW = int(os.environ.get('BENCH_BEAT_WINDOW_MS', '20000')) / 1000

app = Celery('pybeat', broker=os.environ['BENCH_BEAT_BROKER'])
app.conf.update(
    task_queues=[Queue(QUEUE, routing_key=QUEUE, queue_arguments={'x-max-length': 1000})],
    task_default_queue=QUEUE,
    beat_schedule={f'e{i}': {'task': 'bench.beat_tick', 'schedule': 1.0, 'args': (i,),
                             'options': {'queue': QUEUE}} for i in range(N)},
    broker_connection_retry_on_startup=True,
)


class LagScheduler(PersistentScheduler):
    started = time.time()
    lags = []

    def setup_schedule(self):
        super().setup_schedule()
        if os.environ.get('BENCH_BEAT_PHASE') == 'spread':
            # Entry i first due at start + 1 s + i/N s, as in beat-runner.ts.
            now = self.app.now()
            for i in range(N):
                self.schedule[f'e{i}'].last_run_at = now + timedelta(seconds=i / N)

    def apply_entry(self, entry, producer=None):
        due = entry.last_run_at.timestamp() + entry.schedule.seconds
        super().apply_entry(entry, producer=producer)
        sent = time.time()
        start = self.started + WARMUP
        if start <= sent < start + WINDOW:
            self.lags.append((sent - due) * 1000)
        elif sent >= start + WINDOW and not getattr(self, 'reported', False):
            self.reported = True
            lags = sorted(self.lags)
            q = lambda p: lags[min(len(lags) - 1, int(p * len(lags)))] if lags else None
            lag = {'p50': q(0.5), 'p99': q(0.99), 'max': lags[-1] if lags else None,
                   'over50': sum(1 for x in lags if x > 50)}
            with open(os.environ['BENCH_BEAT_OUT'], 'w') as f:
                json.dump({'windowFrom': start * 1000, 'windowTo': (start + WINDOW) * 1000,
                           'sends': len(lags), 'lag': lag, 'confirmedLag': None}, f)
