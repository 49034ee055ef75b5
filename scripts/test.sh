#!/usr/bin/env bash
# `npm test`: type-check, then every suite against the real services (started by the pretest hook,
# scripts/services.sh ensure).
#
# Celery's own integration suite (test/celery-suite, ~20 min) runs BESIDE mocha's service suites,
# not after them: its worker runs at -c 1 and nearly all of its time is its tests' sleeps and result
# waits, so on 2 cores running it alone would add ~20 idle minutes and take CI past 40. The two
# share nothing: the suite has its own vhost (ts-celery-suite), which no mocha test touches, and a
# redis-server of its own (its PUBSUB CHANNELS test sees every channel of the server it runs on), and
# no test in the parallel phase restarts the shared RabbitMQ or Redis.
# The fault tests (thousands of tasks, broker nodes started and killed, bounds on duplicates and
# failover times) and the suite's harness tests (same vhost as the suite) run after it,
# alone, so that load from the other phase cannot bend what they measure.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

MOCHA=node_modules/.bin/mocha
start=$SECONDS
phase() { printf '\n[npm test] %s (%d s in)\n' "$1" $((SECONDS - start)); }

phase 'type-check'
node_modules/.bin/tsc --noEmit || exit 1

suite_log=$(mktemp -t celery-suite.XXXXXX.log)
trap 'rm -f "$suite_log"' EXIT
phase "Celery's own integration suite started in the background (its output follows mocha's)"
node_modules/.bin/tsx test/celery-suite/run.ts >"$suite_log" 2>&1 &
suite_pid=$!

phase 'mocha: unit, integration, interop, threads, celery-node, package, e2e, control, cluster'
"$MOCHA" "test/unit/**/*.test.ts" "test/integration/**/*.test.ts" "test/interop/**/*.test.ts" \
  "test/threads/**/*.test.ts" "test/celery-node/**/*.test.ts" "test/package/**/*.test.ts" \
  "test/e2e/**/*.test.ts" "test/control/**/*.test.ts" "test/cluster/**/*.test.ts"
mocha_rc=$?

phase "waiting for Celery's own integration suite"
wait "$suite_pid"
suite_rc=$?
cat "$suite_log"

phase 'mocha: fault tests and the Celery suite harness, alone'
"$MOCHA" "test/faults/**/*.test.ts" "test/celery-suite/**/*.test.ts"
late_rc=$?

phase "done: mocha suites exit $mocha_rc, Celery's suite exit $suite_rc, faults + harness exit $late_rc"
[ "$mocha_rc" -eq 0 ] && [ "$suite_rc" -eq 0 ] && [ "$late_rc" -eq 0 ]
