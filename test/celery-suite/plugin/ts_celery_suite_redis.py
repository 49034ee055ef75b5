"""The suite's Redis helper on the suite's own database."""
import os


def patch_redis_db():
    """Point ``StrictRedis()`` without a database at CELERY_SUITE_REDIS_DB.

    The suite's ``t.integration.tasks.get_redis_connection()`` imports
    ``redis.StrictRedis`` when called and never passes a database, so every
    redis_echo/redis_count key would land in DB 0, shared with everything else
    on this Redis. Clients given a ``db`` or a ``connection_pool`` (Celery's
    result backend) are unchanged.
    """
    db = os.environ.get('CELERY_SUITE_REDIS_DB')
    if not db:
        return
    import redis

    base = redis.StrictRedis
    if getattr(base, '_celery_suite_db', None) is not None:
        return

    class SuiteRedis(base):
        _celery_suite_db = int(db)

        def __init__(self, *args, **kwargs):
            if not args and 'db' not in kwargs and 'connection_pool' not in kwargs:
                kwargs['db'] = self._celery_suite_db
            super().__init__(*args, **kwargs)

    redis.StrictRedis = SuiteRedis
