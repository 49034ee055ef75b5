"""Python 5.7's event receiver, for the tests.

  python ctlevents.py <hostname> <seconds>

Captures every event (app.events.Receiver, handler '*') until the worker
`hostname` sends worker-offline or `seconds` pass, then prints them as one
JSON line. Prints "ready" on stderr once its queue is consuming.
"""
import json
import socket
import sys
import time

from ctlapp import app


def main():
    hostname, seconds = sys.argv[1], float(sys.argv[2])
    events = []
    deadline = time.time() + seconds

    state = {'stop': False}
    with app.connection() as conn:
        def on_event(event):
            events.append(event)
            if event.get('type') == 'worker-offline' and event.get('hostname') == hostname:
                state['stop'] = True

        recv = app.events.Receiver(conn, handlers={'*': on_event})
        with recv.consumer_context() as (c, _channel, _consumers):
            sys.stderr.write('ready\n')
            sys.stderr.flush()
            while not state['stop'] and time.time() < deadline:
                try:
                    c.drain_events(timeout=0.2)
                except socket.timeout:
                    pass
    print(json.dumps(events))


if __name__ == '__main__':
    main()
