#!/usr/bin/env bash
# Real services for the ts-celery test suite, without systemd.
#
#   bash scripts/services.sh [ensure]   install what is missing, start what is
#                                       not running (idempotent; ~1 s warm)
#   bash scripts/services.sh stop       stop the RabbitMQ node and the Redis
#                                       server that this script started
#   bash scripts/services.sh cluster start|stop|status
#                                       a 3-node RabbitMQ cluster (cluster1..3@localhost
#                                       on 127.0.0.1:5691-5693, joined with rabbitmqctl
#                                       join_cluster) for trying failover; see scripts/cluster.ts
#
# What `ensure` provides:
#   RabbitMQ  amqp://guest:guest@127.0.0.1:5672/ts-celery-test  (node rabbit@localhost),
#             and the extra vhosts below (tests whose broadcasts must not meet
#             other suites' workers: remote control and events; and the beat tests)
#   Redis     redis://127.0.0.1:6379  (no persistence)
#   .venv/    Python 3.11 (Debian's /usr/bin/python3) with Celery 5.7 from PyPI;
#             Debian's python3-celery 5.2.6 stays under /usr/bin/python3.
# Logs go to .services/ (git-ignored).
#
# Files written outside the repo: /etc/rabbitmq/rabbitmq.conf and
# /etc/rabbitmq/rabbitmq-env.conf (node name, loopback-only listeners, logs
# to stdout), so that a plain `rabbitmqctl` run by hand talks to this node too.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SVC="$ROOT/.services"
VENV="$ROOT/.venv"

APT_PACKAGES=(rabbitmq-server redis-server python3-celery python3-eventlet
              python3-redis python3-venv chromium)
# Everything the venv gets from PyPI. Change this list and the next `ensure`
# reinstalls (the marker file records the list last installed). Besides the
# three top-level packages, the libraries that shape the wire are pinned too.
PIP_REQUIREMENTS=('celery[redis]==5.7.0' 'eventlet==0.41.3' 'pika==1.4.4'
                  'kombu==5.7.0' 'amqp==5.4.2' 'redis==8.1.0' 'billiard==4.3.2'
                  'vine==5.1.0'
                  # Flower (the monitoring UI the remote-control/events tests drive) and
                  # the libraries it runs on
                  'flower==2.2.0' 'tornado==6.6.1' 'humanize==4.17.0'
                  'prometheus_client==0.26.0' 'pytz==2026.6')
VENV_PYTHON=/usr/bin/python3   # Debian's 3.11; venv support from python3-venv

RABBIT_NODE=rabbit@localhost
RABBIT_VHOST=ts-celery-test
# Vhosts of their own for suites whose fanout/topic traffic (pidbox, celeryev) must
# not reach workers of other suites running at the same time, and the beat tests';
# ts-celery-cluster holds the quorum-queue tests' celery_delayed_* topology.
EXTRA_VHOSTS=(ts-celery-control ts-celery-beat ts-celery-cluster)
RABBIT_PORT=5672
REDIS_PORT=6379

log() { printf '[services] %s\n' "$*" >&2; }
die() { printf '[services] ERROR: %s\n' "$*" >&2; exit 1; }

# Every rabbitmq* call goes through the Debian wrappers in /usr/sbin, which
# `su rabbitmq` (so they use /var/lib/rabbitmq/.erlang.cookie) and read
# /etc/rabbitmq/rabbitmq-env.conf (so they agree on the node name).
rmqctl() { /usr/sbin/rabbitmqctl -q "$@"; }

port_open() { # port_open PORT -> 0 if something accepts on 127.0.0.1:PORT
  timeout 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null
}

# --------------------------------------------------------------------------
ensure_apt() {
  local missing=() p st
  for p in "${APT_PACKAGES[@]}"; do
    st="$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)"
    [[ "$st" == "install ok installed" ]] || missing+=("$p")
  done
  [[ ${#missing[@]} -eq 0 ]] && return 0
  [[ $(id -u) -eq 0 ]] || die "missing packages (${missing[*]}) and not root"
  log "apt-get install ${missing[*]}"
  # Keep the packages' maintainer scripts from starting rabbitmq/redis through
  # init scripts (with their default configs): this script starts them itself.
  local made_policy=0
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    made_policy=1
  fi
  local rc=0
  {
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq &&
    apt-get install -y -q -o DPkg::Lock::Timeout=300 \
      -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "${missing[@]}"
  } > "$SVC/apt.log" 2>&1 || rc=$?
  [[ $made_policy -eq 1 ]] && rm -f /usr/sbin/policy-rc.d
  if [[ $rc -ne 0 ]]; then
    tail -n 30 "$SVC/apt.log" >&2
    die "apt-get failed (rc=$rc), full log: $SVC/apt.log"
  fi
}

# --------------------------------------------------------------------------
write_if_changed() { # write_if_changed FILE CONTENT -> 0 if it was rewritten
  local f="$1" content="$2"
  if [[ -f "$f" ]] && [[ "$(cat "$f")" == "$content" ]]; then return 1; fi
  mkdir -p "$(dirname "$f")"
  printf '%s\n' "$content" > "$f"
  chmod 644 "$f"
  return 0
}

rabbit_config() {
  local changed=0
  write_if_changed /etc/rabbitmq/rabbitmq-env.conf "# Written by ts-celery scripts/services.sh
NODENAME=$RABBIT_NODE
ERL_EPMD_ADDRESS=127.0.0.1" && changed=1
  write_if_changed /etc/rabbitmq/rabbitmq.conf "# Written by ts-celery scripts/services.sh
listeners.tcp.default = 127.0.0.1:$RABBIT_PORT
distribution.listener.interface = 127.0.0.1
log.file = false
log.console = true
log.console.level = info" && changed=1
  if [[ $changed -eq 1 ]] && port_open "$RABBIT_PORT"; then
    log "WARNING: RabbitMQ config changed while a broker is running; run 'stop' then 'ensure' to apply it"
  fi
  return 0
}

# A full AMQP login to the test vhost as guest: proves that the broker is up,
# that it is RabbitMQ, and that the vhost and permissions exist. ~0.15 s.
# Uses Debian's py-amqp (a dependency of python3-celery).
amqp_vhost_ok() { # amqp_vhost_ok [VHOST] (default: the test vhost)
  /usr/bin/python3 - "$RABBIT_PORT" "${1:-$RABBIT_VHOST}" <<'EOF' 2>/dev/null
import sys, amqp
c = amqp.Connection(host='127.0.0.1:%s' % sys.argv[1], userid='guest',
                    password='guest', virtual_host=sys.argv[2], connect_timeout=2)
c.connect()
ch = c.channel()
# a passive declare of the default exchange would not test write perms:
# declare (and delete) a throwaway exclusive queue instead
ch.queue_declare('', exclusive=True)
c.close()
EOF
}

ensure_vhost() { # ensure_vhost NAME: create it (and guest's permissions) if missing
  if ! rmqctl list_vhosts name | grep -qx "$1"; then
    log "creating vhost $1"
    rmqctl add_vhost "$1" >/dev/null
  fi
  rmqctl set_permissions -p "$1" guest '.*' '.*' '.*' >/dev/null
  amqp_vhost_ok "$1" || die "RabbitMQ is up but guest cannot use vhost $1"
}

ensure_extra_vhosts() {
  local vh
  for vh in "${EXTRA_VHOSTS[@]}"; do
    amqp_vhost_ok "$vh" || ensure_vhost "$vh"
  done
}

ensure_rabbitmq() {
  rabbit_config
  if amqp_vhost_ok; then ensure_extra_vhosts; return 0; fi

  if ! port_open "$RABBIT_PORT"; then
    log "starting RabbitMQ ($RABBIT_NODE) on 127.0.0.1:$RABBIT_PORT"
    # The Debian wrapper su's to the rabbitmq user (the environment, e.g.
    # HOME, is set up by su). No systemd: detach with setsid, keep stdout
    # (console log) in .services/. The wrapper's `su` stays as the parent.
    : > "$SVC/rabbitmq.log"
    # (fd 9 is this script's lock: the daemons must not inherit it)
    (cd /var/lib/rabbitmq &&
      exec setsid nohup /usr/sbin/rabbitmq-server >> "$SVC/rabbitmq.log" 2>&1 < /dev/null 9>&-) &
    echo $! > "$SVC/rabbitmq.pid"
  else
    log "something already listens on :$RABBIT_PORT; waiting for node $RABBIT_NODE"
  fi
  # await_startup fails immediately while the node's distribution port is not
  # up yet, so poll it with a deadline.
  local deadline=$((SECONDS + 90)) ok=0
  while (( SECONDS < deadline )); do
    if rmqctl await_startup --timeout 60 >/dev/null 2>&1; then ok=1; break; fi
    if [[ -f "$SVC/rabbitmq.pid" ]] && ! kill -0 "$(cat "$SVC/rabbitmq.pid")" 2>/dev/null; then
      tail -n 40 "$SVC/rabbitmq.log" >&2
      die "RabbitMQ exited during start-up; log: $SVC/rabbitmq.log"
    fi
    sleep 1
  done
  if [[ $ok -ne 1 ]]; then
    tail -n 40 "$SVC/rabbitmq.log" >&2
    die "RabbitMQ did not start within 90 s; log: $SVC/rabbitmq.log"
  fi

  ensure_vhost "$RABBIT_VHOST"
  ensure_extra_vhosts
}

# --------------------------------------------------------------------------
ensure_redis() {
  if [[ "$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null)" == PONG ]]; then
    return 0
  fi
  log "starting Redis on 127.0.0.1:$REDIS_PORT"
  redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --daemonize yes \
    --save '' --appendonly no --dir "$SVC" \
    --pidfile "$SVC/redis.pid" --logfile "$SVC/redis.log" 9>&-
  local i
  for i in $(seq 1 50); do
    [[ "$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null)" == PONG ]] && return 0
    sleep 0.1
  done
  tail -n 20 "$SVC/redis.log" >&2 || true
  die "Redis did not answer PING; log: $SVC/redis.log"
}

# --------------------------------------------------------------------------
ensure_venv() {
  local marker="$VENV/.ts-celery-requirements"
  local want
  want="$("$VENV_PYTHON" -c 'import sys; print(sys.version.split()[0])') ${PIP_REQUIREMENTS[*]}"
  if [[ -x "$VENV/bin/python" ]] && [[ -f "$marker" ]] && [[ "$(cat "$marker")" == "$want" ]]; then
    return 0
  fi
  if ! "$VENV/bin/python" -c 'import sys' >/dev/null 2>&1; then
    log "creating $VENV with $VENV_PYTHON"
    rm -rf "$VENV"
    "$VENV_PYTHON" -m venv "$VENV"
  fi
  log "pip install ${PIP_REQUIREMENTS[*]}"
  if ! "$VENV/bin/python" -m pip install -q --disable-pip-version-check \
        "${PIP_REQUIREMENTS[@]}" > "$SVC/pip.log" 2>&1; then
    tail -n 30 "$SVC/pip.log" >&2
    die "pip install failed; log: $SVC/pip.log"
  fi
  printf '%s\n' "$want" > "$marker"
}

# --------------------------------------------------------------------------
status() {
  local celery_venv celery_deb redis_ver
  celery_venv="$("$VENV/bin/python" -c 'import celery, kombu, amqp; print("celery %s, kombu %s, py-amqp %s" % (celery.__version__, kombu.__version__, amqp.__version__))' 2>/dev/null || echo '?')"
  celery_deb="$(/usr/bin/python3 -c 'import celery, kombu, amqp; print("celery %s, kombu %s, py-amqp %s" % (celery.__version__, kombu.__version__, amqp.__version__))' 2>/dev/null || echo '?')"
  redis_ver="$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" info server 2>/dev/null | tr -d '\r' | sed -n 's/^redis_version://p')"
  cat >&2 <<EOF
[services] ready
  RabbitMQ $(dpkg-query -W -f='${Version}' rabbitmq-server)  amqp://guest:guest@127.0.0.1:$RABBIT_PORT/$RABBIT_VHOST  (node $RABBIT_NODE)
  Redis    ${redis_ver:-?}  redis://127.0.0.1:$REDIS_PORT
  Python   .venv/bin/python: $celery_venv
           /usr/bin/python3: $celery_deb
  logs     $SVC/
EOF
}

cmd_ensure() {
  mkdir -p "$SVC"
  exec 9> "$SVC/.lock"   # serialize concurrent runs
  flock 9
  ensure_apt
  ensure_redis
  ensure_rabbitmq
  ensure_venv
  status
}

cmd_stop() {
  mkdir -p "$SVC"
  if [[ -f "$SVC/redis.pid" ]] && kill -0 "$(cat "$SVC/redis.pid")" 2>/dev/null; then
    log "stopping Redis (pid $(cat "$SVC/redis.pid"))"
    redis-cli -h 127.0.0.1 -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 ||
      kill "$(cat "$SVC/redis.pid")" 2>/dev/null || true
    rm -f "$SVC/redis.pid"
  else
    log "Redis: nothing started by this script is running"
  fi
  if port_open "$RABBIT_PORT" || [[ -f "$SVC/rabbitmq.pid" ]]; then
    log "stopping RabbitMQ node $RABBIT_NODE"
    rmqctl shutdown >/dev/null 2>&1 || log "rabbitmqctl shutdown failed (node not running?)"
    rm -f "$SVC/rabbitmq.pid"
  else
    log "RabbitMQ: not running"
  fi
}

cmd_cluster() {
  [[ -x "$ROOT/node_modules/.bin/tsx" ]] || die "run npm ci first (the cluster script runs with tsx)"
  exec "$ROOT/node_modules/.bin/tsx" "$ROOT/scripts/cluster.ts" "$@"
}

case "${1:-ensure}" in
  ensure) cmd_ensure ;;
  stop) cmd_stop ;;
  cluster) shift; cmd_cluster "$@" ;;
  *) die "usage: $0 [ensure|stop|cluster start|stop|status]" ;;
esac
