"""Celery's own worker as a subprocess (``--python-worker=subprocess``).

``celery -A ts_celery_suite_pyapp worker`` runs the suite's tasks with the
configuration of the suite's ``celery_config`` fixture, in a process of its
own, as ts-celery's worker runs. Tests that pass against Celery's embedded
worker but fail here depend on the worker living inside the pytest process
(its module state, signals, log records): skips.txt may list those.
"""
import os

from ts_celery_suite_redis import patch_redis_db

patch_redis_db()

from celery import Celery  # noqa: E402

app = Celery('celery.tests', set_as_current=True)
app.conf.update(
    broker_url=os.environ['TEST_BROKER'],
    result_backend=os.environ['TEST_BACKEND'],
    result_extended=True,
    task_create_missing_queues=False,
)
app.set_default()

import celery.contrib.testing.tasks  # noqa: E402,F401  (celery.ping)
import t.integration.tasks  # noqa: E402,F401
from t.integration.tasks import ClassBasedAutoRetryTask  # noqa: E402

app.register_task(ClassBasedAutoRetryTask)
