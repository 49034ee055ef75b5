"""A Python Celery producer/client for the interop tests; prints ONE JSON line.

  pyclient.py send NAME [--args JSON] [--kwargs JSON] [--queue Q]
                        [--countdown N] [--eta ISO] [--expires N|ISO]
                        [--task-id ID] [--priority P] [--get] [--timeout S]
  pyclient.py get ID [--timeout S]
  pyclient.py state ID
  global: [--broker URL] [--backend URL]   (default: pytasks' env/defaults)

Output: {"id", "state", "result", "exc_type", "exc_module", "exc_message",
         "exc_args", "celery_version"}
exc_* describe the exception AsyncResult.get() raised (or, for `state`, the
exception stored as the result), as Python rebuilt it: type(exc).__name__,
type(exc).__module__, str(exc), list(exc.args). A get() timeout is reported
as exc_type "TimeoutError" with state PENDING (or whatever it is).
Exit status: 0 whenever a JSON line was printed, 2 on usage errors.
Works with Celery 5.7 (.venv/bin/python) and 5.2.6 (/usr/bin/python3).
"""
import argparse
import datetime
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def parse_args(argv):
    common = argparse.ArgumentParser(add_help=False)
    # SUPPRESS: the option may come before or after the sub-command without
    # the sub-parser's default overwriting the value given before it.
    common.add_argument('--broker', default=argparse.SUPPRESS,
                        help='override PYTASKS_BROKER')
    common.add_argument('--backend', default=argparse.SUPPRESS,
                        help='override PYTASKS_BACKEND')

    p = argparse.ArgumentParser(prog='pyclient.py', parents=[common])
    sub = p.add_subparsers(dest='cmd', required=True)

    s = sub.add_parser('send', parents=[common])
    s.add_argument('name')
    s.add_argument('--args', default='[]', help='JSON array')
    s.add_argument('--kwargs', default='{}', help='JSON object')
    s.add_argument('--queue')
    s.add_argument('--countdown', type=float)
    s.add_argument('--eta', help='ISO-8601 datetime')
    s.add_argument('--expires', help='seconds (number) or ISO-8601 datetime')
    s.add_argument('--task-id')
    s.add_argument('--priority', type=int)
    s.add_argument('--get', action='store_true', help='wait for the result')
    s.add_argument('--timeout', type=float, default=20.0)

    g = sub.add_parser('get', parents=[common])
    g.add_argument('id')
    g.add_argument('--timeout', type=float, default=20.0)

    st = sub.add_parser('state', parents=[common])
    st.add_argument('id')
    return p.parse_args(argv)


def parse_iso(text):
    # Python 3.11's fromisoformat() accepts 'Z' and any offset.
    return datetime.datetime.fromisoformat(text)


def to_json(value):
    def default(o):
        if isinstance(o, (datetime.datetime, datetime.date, datetime.time)):
            return o.isoformat()
        if isinstance(o, (bytes, bytearray)):
            return bytes(o).decode('utf-8', 'replace')
        if isinstance(o, (set, frozenset, tuple)):
            return list(o)
        return str(o)  # Decimal, UUID, anything else
    return json.dumps(value, default=default)


def exc_fields(exc):
    if exc is None:
        return {'exc_type': None, 'exc_module': None, 'exc_message': None,
                'exc_args': None}
    return {'exc_type': type(exc).__name__,
            'exc_module': type(exc).__module__,
            'exc_message': str(exc),
            'exc_args': list(getattr(exc, 'args', ()))}


def main(argv):
    opts = parse_args(argv)
    # pytasks reads its configuration from the environment at import time.
    if getattr(opts, 'broker', None):
        os.environ['PYTASKS_BROKER'] = opts.broker
    if getattr(opts, 'backend', None):
        os.environ['PYTASKS_BACKEND'] = opts.backend
    sys.path.insert(0, HERE)
    import celery
    from celery.exceptions import TimeoutError as CeleryTimeoutError
    from pytasks import app

    out = {'id': None, 'state': None, 'result': None,
           'celery_version': celery.__version__}
    out.update(exc_fields(None))

    if opts.cmd == 'send':
        options = {}
        if opts.queue:
            options['queue'] = opts.queue
        if opts.countdown is not None:
            options['countdown'] = opts.countdown
        if opts.eta:
            options['eta'] = parse_iso(opts.eta)
        if opts.expires:
            try:
                options['expires'] = float(opts.expires)
            except ValueError:
                options['expires'] = parse_iso(opts.expires)
        if opts.task_id:
            options['task_id'] = opts.task_id
        if opts.priority is not None:
            options['priority'] = opts.priority
        args = json.loads(opts.args)
        kwargs = json.loads(opts.kwargs)
        if not isinstance(args, list) or not isinstance(kwargs, dict):
            print('--args must be a JSON array and --kwargs a JSON object',
                  file=sys.stderr)
            return 2
        res = app.send_task(opts.name, args=args, kwargs=kwargs, **options)
        wait = opts.get
    else:
        res = app.AsyncResult(opts.id)
        wait = opts.cmd == 'get'

    out['id'] = res.id
    if wait:
        try:
            out['result'] = res.get(timeout=opts.timeout, propagate=True,
                                    disable_sync_subtasks=False)
        except CeleryTimeoutError as exc:
            out.update(exc_fields(exc))
            out['exc_type'] = 'TimeoutError'
        except Exception as exc:  # the task's exception, rebuilt by Celery
            out.update(exc_fields(exc))
    else:
        stored = res.result
        if isinstance(stored, BaseException):
            out.update(exc_fields(stored))
        else:
            out['result'] = stored
    out['state'] = res.state
    sys.stdout.write(to_json(out) + '\n')
    sys.stdout.flush()
    try:
        app.close()  # closes the broker connection pool cleanly
    except Exception:
        pass
    return 0


if __name__ == '__main__':
    code = main(sys.argv[1:])
    sys.stdout.flush()
    sys.stderr.flush()
    # Skip interpreter teardown: Celery 5.7's AsyncResult.__del__ tries to
    # UNSUBSCRIBE from Redis while Python is shutting down and prints an
    # "Exception ignored ... sys.meta_path is None" traceback.
    os._exit(code)

