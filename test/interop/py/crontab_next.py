"""Next run times of Celery's own crontab, for the ts-celery property test.

Reads one JSON document on stdin:
  {"cases": [{"spec": {"minute": "*/15", "hour": [1, 2], ...}, "tz": "Europe/Berlin",
              "after": <epoch ms>}, ...]}
and prints one JSON list, one item per case, in order:
  {"next": <epoch ms>, "next_fold1": <epoch ms>} or {"error": "..."}

`next` is what celery.beat uses: `now + remaining(*remaining_delta(last_run_at))`
with the clock (`nowfun`) at `after` and the last run at `after`, in the app's timezone.
"""
import json
import sys
from datetime import datetime, timezone

from celery import Celery
from celery.schedules import crontab
from celery.utils.time import remaining

FIELDS = {'minute': 'minute', 'hour': 'hour', 'dayOfWeek': 'day_of_week',
          'dayOfMonth': 'day_of_month', 'monthOfYear': 'month_of_year'}
apps = {}


def app_for(tz):
    if tz not in apps:
        app = Celery('crontab-next', set_as_current=False)
        app.conf.timezone = tz
        app.conf.enable_utc = True
        apps[tz] = app
    return apps[tz]


def run(case):
    after = datetime.fromtimestamp(case['after'] / 1000, tz=timezone.utc)
    kwargs = {FIELDS[k]: v for k, v in case['spec'].items()}
    try:
        c = crontab(app=app_for(case['tz']), nowfun=lambda: after, **kwargs)
    except Exception as exc:  # the property test compares rejections too
        return {'error': f'{type(exc).__name__}: {exc}'}
    last, delta, now = c.remaining_delta(after)
    # In UTC: aware datetimes in one zone subtract as wall-clock times in Python.
    nxt = now.astimezone(timezone.utc) + remaining(last, delta, now)
    # The same wall time's second occurrence, where DST repeats it (ts-celery's pick when
    # Celery's next run lies in the past).
    fold1 = (last + delta).replace(fold=1).astimezone(timezone.utc)
    return {'next': round(nxt.timestamp() * 1000), 'next_fold1': round(fold1.timestamp() * 1000)}


doc = json.load(sys.stdin)
json.dump([run(c) for c in doc['cases']], sys.stdout)
