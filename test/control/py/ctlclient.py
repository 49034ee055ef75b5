"""Python 5.7 as a remote-control client, for the tests.

  python ctlclient.py '[["inspect", "ping", {"destination": ["n@h"]}], ["send", "ctl.add", [2, 3]], ...]'

Runs each operation in order and prints one JSON line: the list of what each
returned. Operations:
  ["inspect", method, {destination, timeout}, *args]   app.control.inspect(...).method(*args)
  ["broadcast", command, {arguments, destination, reply, timeout}]
  ["revoke", task_id, {terminate, signal, destination}] app.control.revoke(...)
  ["ping", {destination, timeout}]                      app.control.ping(...)
  ["send", name, args, kwargs, options]                 -> the task id
  ["get", task_id, timeout]                             -> {state, result, exc_type, exc_args}
  ["state", task_id]                                    -> AsyncResult(task_id).state
  ["result_revoke", task_id, {terminate}]               AsyncResult(task_id).revoke(...)
  ["sleep", seconds]
"""
import datetime
import json
import sys
import time

from ctlapp import app


def jsonable(v):
    if isinstance(v, dict):
        return {str(k): jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple, set)):
        return [jsonable(x) for x in v]
    if v is None or isinstance(v, (str, int, float, bool)):
        return v
    return repr(v)


def run(op):
    kind, rest = op[0], op[1:]
    if kind == 'inspect':
        method, opts, args = rest[0], rest[1] if len(rest) > 1 else {}, rest[2:]
        return getattr(app.control.inspect(**opts), method)(*args)
    if kind == 'broadcast':
        command, opts = rest[0], rest[1] if len(rest) > 1 else {}
        return app.control.broadcast(command, **opts)
    if kind == 'revoke':
        return app.control.revoke(rest[0], **(rest[1] if len(rest) > 1 else {}))
    if kind == 'ping':
        return app.control.ping(**(rest[0] if rest else {}))
    if kind == 'send':
        name, args = rest[0], rest[1] if len(rest) > 1 else []
        kwargs = rest[2] if len(rest) > 2 else {}
        options = rest[3] if len(rest) > 3 else {}
        if 'eta_iso' in options:  # an exact eta (microseconds and all), as a datetime for Celery
            options['eta'] = datetime.datetime.fromisoformat(options.pop('eta_iso'))
        return app.send_task(name, args=args, kwargs=kwargs, **options).id
    if kind == 'get':
        res = app.AsyncResult(rest[0])
        try:
            value = res.get(timeout=rest[1] if len(rest) > 1 else 10)
            return {'state': res.state, 'result': value, 'exc_type': None, 'exc_args': None}
        except Exception as exc:  # noqa
            return {'state': res.state, 'result': None, 'exc_type': type(exc).__name__, 'exc_args': list(exc.args)}
    if kind == 'state':
        return app.AsyncResult(rest[0]).state
    if kind == 'result_revoke':
        return app.AsyncResult(rest[0]).revoke(**(rest[1] if len(rest) > 1 else {}))
    if kind == 'sleep':
        time.sleep(rest[0])
        return None
    raise ValueError('unknown op %r' % (kind,))


def main():
    ops = json.loads(sys.argv[1])
    out = [jsonable(run(op)) for op in ops]
    print(json.dumps(out))


if __name__ == '__main__':
    main()
