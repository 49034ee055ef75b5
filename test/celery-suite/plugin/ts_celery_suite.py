"""pytest plugin: Celery's own integration suite against an out-of-process worker.

Loaded by test/celery-suite/run.ts with ``-p ts_celery_suite`` (this folder on
PYTHONPATH). Celery's test files are used as downloaded; this plugin only
changes what the suite's ``celery_session_worker`` fixture starts and records
what happened. Configured by environment variables, set by run.ts:

CELERY_SUITE_WORKER_CMD  JSON list: the worker command (``node bin/ts-celery.js
                         worker -A ... -l info``). The plugin appends ``-n <node>
                         -c <concurrency>``. Unset: Celery's own in-thread worker
                         runs (the ``--python-worker`` baseline).
CELERY_SUITE_WORKER_LOG  file that receives the worker's stdout and stderr.
CELERY_SUITE_REDIS_DB    Redis database for the suite's own Redis helper
                         (``t.integration.tasks.get_redis_connection`` always uses
                         DB 0 of REDIS_HOST:REDIS_PORT).
CELERY_SUITE_SKIPS       skips.txt: ``<test id> | <reason>`` lines.
CELERY_SUITE_BASELINE    baseline.json: the tests that passed before. Tests not in
                         it are expected to fail (a missing feature), so they run
                         once, with a short timeout, instead of Celery's reruns.
CELERY_SUITE_RESULTS     JSON file this plugin writes: outcome per test id, and
                         the harness faults (worker not ready, worker died).

With --suite-fail-fast, a test not in the baseline fails as soon as the worker
logs that it declined part of the work (see DECLINED): such a test cannot pass,
and waiting for Celery's 60 s result timeouts would only cost CI time. Tests in
the baseline are never cut short this way.
"""
import json
import os
import signal
import subprocess
import threading
import time
from contextlib import contextmanager

import pytest

RESULTS = os.environ.get('CELERY_SUITE_RESULTS')
WORKER_CMD = json.loads(os.environ['CELERY_SUITE_WORKER_CMD']) if os.environ.get('CELERY_SUITE_WORKER_CMD') else None
WORKER_LOG = os.environ.get('CELERY_SUITE_WORKER_LOG', 'worker.log')
READY_TIMEOUT = float(os.environ.get('CELERY_SUITE_READY_TIMEOUT', '60'))

_outcomes = {}   # test id -> passed|failed|skipped|xfailed|xpassed
_durations = {}  # test id -> seconds (every phase, reruns included)
_messages = {}   # test id -> the first line of its failure
_faults = []     # harness faults, in the order seen
_worker = None   # the running _WorkerProcess, if any
_baseline = set()

# What ts-celery's worker logs when it cannot do part of a workflow. (Until the
# canvas landed, chord members and group/chord signatures were declined too.)
DECLINED = (
    'ts-celery worker needs ',                   # a stub task of tasks/main.ts (a missing API)
    'Received unregistered task',                # a task name the port does not have
)


# The suite's Redis helper on our database (also done in the worker of
# ts_celery_suite_pyapp, for --python-worker=subprocess).
from ts_celery_suite_redis import patch_redis_db  # noqa: E402

patch_redis_db()


# -- the worker as a subprocess ----------------------------------------------
class _WorkerProcess:
    """What the ``celery_session_worker`` fixture yields: the worker's process."""

    def __init__(self, cmd, hostname, log_path):
        self.hostname = hostname
        self.log_path = log_path
        self.stopping = False
        self._log = open(log_path, 'ab', buffering=0)
        self.process = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.pid = self.process.pid

    def log_tail(self, lines=40):
        try:
            with open(self.log_path, 'rb') as f:
                return b''.join(f.read().splitlines(True)[-lines:]).decode('utf-8', 'replace')
        except OSError:
            return ''

    def wait_ready(self, timeout):
        """Wait for the worker's ``<node> ready.`` line; raise if it exits or times out."""
        marker = f'{self.hostname} ready.'.encode()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            code = self.process.poll()
            if code is not None:
                raise _fault(f'the worker exited with code {code} before it was ready; log tail:\n{self.log_tail()}')
            with open(self.log_path, 'rb') as f:
                if marker in f.read():
                    return
            time.sleep(0.1)
        raise _fault(f'the worker was not ready within {timeout:.0f} s; log tail:\n{self.log_tail()}')

    def died(self):
        """The exit code when the worker ended while the suite still runs, else None."""
        if self.stopping:
            return None
        return self.process.poll()

    def stop(self, timeout):
        """Warm shutdown: SIGTERM, then wait. A worker that does not exit 0 in time is a fault."""
        self.stopping = True
        early = self.process.poll()
        if early is not None:
            # Already dead: reported when it happened, or it died during the last test.
            if not _faults:
                _fault(f'the worker died before the end of the suite (exit code {early}); log tail:\n{self.log_tail()}')
            self._log.close()
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                _fault(f'the worker did not finish its warm shutdown within {timeout:.0f} s and was killed')
                return
        code = self.process.returncode
        if code != 0:
            _fault(f'the worker exited with code {code} on its warm shutdown; log tail:\n{self.log_tail()}')
        self._log.close()


def _fault(message):
    _faults.append(message)
    _write_results()
    return RuntimeError(f'celery-suite: {message}')


@contextmanager
def start_worker(app, concurrency=1, pool='solo', loglevel=None, logfile=None,
                 perform_ping_check=True, ping_task_timeout=10.0, shutdown_timeout=10.0, **kwargs):
    """Replaces ``celery.contrib.testing.worker.start_worker``.

    Starts the worker command as a subprocess with the node name and
    concurrency that Celery's embedded worker would have had (the suite's
    inspect tests address the worker as ``anon_nodename()``, ``gen<pid>@<host>``
    of this pytest process), waits until it is ready, checks it with
    ``celery.ping`` as the original does, and stops it warm at the end.
    """
    global _worker
    from celery.contrib.testing.worker import test_worker_started, test_worker_starting, test_worker_stopped
    from celery.result import _set_task_join_will_block, allow_join_result
    from celery.utils.nodenames import anon_nodename

    test_worker_starting.send(sender=app)
    hostname = kwargs.pop('hostname', None) or anon_nodename()
    cmd = list(WORKER_CMD) + ['-n', hostname, '-c', str(concurrency)]
    _worker = _WorkerProcess(cmd, hostname, WORKER_LOG)
    try:
        _worker.wait_ready(READY_TIMEOUT)
        _set_task_join_will_block(False)
        if perform_ping_check:
            with allow_join_result():
                try:
                    pong = app.send_task('celery.ping').get(timeout=ping_task_timeout)
                except Exception as exc:
                    raise _fault(f'the worker did not answer celery.ping within {ping_task_timeout:.0f} s: {exc!r}')
                if pong != 'pong':
                    raise _fault(f'celery.ping returned {pong!r}, not "pong"')
        test_worker_started.send(sender=app, worker=_worker, consumer=None)
        yield _worker
    finally:
        test_worker_stopped.send(sender=app, worker=_worker)
        # Celery's own fixture waits `shutdown_timeout` (10 s); the suite's
        # last tests may still have a sleeping task running, so allow more.
        _worker.stop(max(shutdown_timeout, 30.0))


# -- hooks -----------------------------------------------------------------------
def pytest_addoption(parser):
    group = parser.getgroup('ts-celery suite')
    group.addoption('--suite-fail-timeout', type=float, default=None,
                    help='timeout (s) for tests not in the baseline; they also run without reruns')
    group.addoption('--suite-timeout-cap', type=float, default=None,
                    help='upper bound (s) on any test\'s timeout, whatever its marker says')
    group.addoption('--suite-fail-fast', action='store_true', default=False,
                    help='end a test not in the baseline as soon as the worker logs that it declined work, '
                         'or after --suite-fail-timeout')


def pytest_configure(config):
    if WORKER_CMD:
        import celery.contrib.testing.worker as testing_worker
        testing_worker.start_worker = start_worker


def _read_skips():
    path = os.environ.get('CELERY_SUITE_SKIPS')
    skips = {}
    if not path:
        return skips
    with open(path, encoding='utf-8') as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line or line.startswith('#'):
                continue
            test_id, sep, reason = (part.strip() for part in line.partition('|'))
            if not sep or not reason:
                raise pytest.UsageError(f'{path}:{n}: expected "<test id> | <reason>", got {line!r}')
            skips[test_id] = reason
    return skips


def _matches(test_id, nodeid):
    # A line without parameters covers every parametrized case of that test;
    # a class covers its tests.
    return nodeid == test_id or nodeid.startswith(test_id + '[') or nodeid.startswith(test_id + '::')


def pytest_collection_modifyitems(session, config, items):
    skips = _read_skips() if WORKER_CMD else {}
    used = set()
    for item in items:
        for test_id, reason in skips.items():
            if _matches(test_id, item.nodeid):
                item.add_marker(pytest.mark.skip(reason=f'ts-celery by design: {reason}'))
                used.add(test_id)
    unused = set(skips) - used
    # Only a run of the whole suite sees every test a line may name (run.ts sets this then).
    if unused and os.environ.get('CELERY_SUITE_CHECK_SKIPS') == '1':
        raise pytest.UsageError('skips.txt names tests that do not exist: ' + ', '.join(sorted(unused)))

    baseline_path = os.environ.get('CELERY_SUITE_BASELINE')
    baseline = _baseline
    if baseline_path and os.path.exists(baseline_path):
        with open(baseline_path, encoding='utf-8') as f:
            baseline.update(json.load(f)['passed'])
    fail_timeout = config.getoption('--suite-fail-timeout')
    cap = config.getoption('--suite-timeout-cap')
    for item in items:
        marker = item.get_closest_marker('timeout')
        timeout = marker.args[0] if marker and marker.args else (marker.kwargs.get('timeout') if marker else None)
        if fail_timeout and item.nodeid not in baseline:
            # Expected to fail until a feature lands: one run, short timeout (enforced by
            # _FailFast with --suite-fail-fast; pytest-timeout's is the backstop).
            item.add_marker(pytest.mark.flaky(reruns=0), append=False)
            backstop = fail_timeout + 30
            timeout = backstop if timeout is None else min(timeout, backstop)
        if cap:
            timeout = cap if timeout is None else min(timeout, cap)
        if timeout is not None:
            item.add_marker(pytest.mark.timeout(timeout), append=False)


def pytest_runtest_setup(item):
    if _worker is not None:
        code = _worker.died()
        if code is not None:
            message = f'the worker died mid-suite (exit code {code}) before {item.nodeid}; log tail:\n{_worker.log_tail()}'
            _fault(message)
            pytest.exit(f'celery-suite: {message}', returncode=3)


class _FailFast:
    """Ends a test outside the baseline that cannot pass, without waiting.

    A thread reads the worker log from where it stood when the test started.
    On a DECLINED line, or once the test ran longer than --suite-fail-timeout,
    it interrupts the main thread with SIGUSR1, whose handler raises pytest's
    failure, as pytest-timeout's signal method does. It fires again every
    half second until the test is over: Celery's tests wrap steps in
    ``subtests.test()``, which records the failure and goes on to the next
    step, each of which would otherwise wait its own 60 s.
    """

    def __init__(self, log_path, timeout):
        self.log_path = log_path
        self.timeout = timeout
        self.armed = False
        self.reason = None
        self._deadline = None
        self._offset = 0
        self._main = threading.main_thread().ident
        signal.signal(signal.SIGUSR1, self._on_signal)
        self._thread = threading.Thread(target=self._run, name='celery-suite-fail-fast', daemon=True)
        self._thread.start()

    def arm(self):
        self.reason = None
        try:
            self._offset = os.path.getsize(self.log_path)
        except OSError:
            self._offset = 0
        self._deadline = time.monotonic() + self.timeout if self.timeout else None
        self.armed = True

    def disarm(self):
        self.armed = False

    def _on_signal(self, signum, frame):
        if self.armed and self.reason:
            pytest.fail(f'fail-fast: {self.reason}', pytrace=False)

    def _declined(self):
        try:
            with open(self.log_path, 'rb') as f:
                f.seek(self._offset)
                chunk = f.read()
        except OSError:
            return None
        # Only whole lines: a line still being written is read next time.
        end = chunk.rfind(b'\n') + 1
        self._offset += end
        for raw in chunk[:end].decode('utf-8', 'replace').splitlines():
            if any(p in raw for p in DECLINED):
                return ' '.join(raw.split())[:300]
        return None

    def _run(self):
        last_fired = 0.0
        while True:
            time.sleep(0.1)
            if not self.armed:
                continue
            if self.reason is None:
                line = self._declined()
                if line:
                    self.reason = f"the worker declined part of this test's work: {line}"
                elif self._deadline is not None and time.monotonic() > self._deadline:
                    self.reason = f'not in baseline.json and still running after {self.timeout:.0f} s'
            if self.reason and self.armed and time.monotonic() - last_fired >= 0.5:
                last_fired = time.monotonic()
                signal.pthread_kill(self._main, signal.SIGUSR1)


_fail_fast = None


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    global _fail_fast
    watch = (_worker is not None and item.config.getoption('--suite-fail-fast')
             and item.nodeid not in _baseline)
    if watch:
        if _fail_fast is None:
            _fail_fast = _FailFast(_worker.log_path, item.config.getoption('--suite-fail-timeout'))
        _fail_fast.arm()
    try:
        yield
    finally:
        if watch:
            _fail_fast.disarm()


def _crash_message(report):
    crash = getattr(report.longrepr, 'reprcrash', None)
    text = crash.message if crash is not None else str(report.longrepr or '')
    return ' '.join(text.split())[:300]


def pytest_runtest_logreport(report):
    if type(report).__name__ == 'SubtestReport':
        # Part of a test: its test's own report (failed when a subtest failed) comes last.
        if report.failed:
            _messages.setdefault(report.nodeid, _crash_message(report))
        return
    _durations[report.nodeid] = _durations.get(report.nodeid, 0.0) + report.duration
    if report.outcome == 'rerun':
        return
    if report.failed:
        _messages.setdefault(report.nodeid, _crash_message(report))
    wasxfail = hasattr(report, 'wasxfail')
    if report.when == 'call':
        if wasxfail:
            _outcomes[report.nodeid] = 'xfailed' if report.skipped else 'xpassed'
        else:
            _outcomes[report.nodeid] = report.outcome
    elif report.when == 'setup':
        if report.skipped:
            _outcomes[report.nodeid] = 'xfailed' if wasxfail else 'skipped'
        elif report.failed:
            _outcomes[report.nodeid] = 'failed'
    elif report.when == 'teardown' and report.failed:
        _outcomes[report.nodeid] = 'failed'
    if report.when == 'teardown':
        _write_results()  # after each test, so a run that is cut short still shows where it was


def _write_results():
    if not RESULTS:
        return
    tmp = RESULTS + '.tmp'
    with open(tmp, 'w', encoding='utf-8') as f:
        json.dump({'outcomes': _outcomes, 'durations': _durations, 'messages': _messages, 'faults': _faults}, f, indent=1, sort_keys=True)
    os.replace(tmp, RESULTS)


def pytest_sessionfinish(session, exitstatus):
    _write_results()
