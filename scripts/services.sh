#!/usr/bin/env bash
# Private PostgreSQL + RabbitMQ for development and tests, under $RUN_DIR (default .run/).
#
#   scripts/services.sh start   install missing Debian packages, start both, write $RUN_DIR/env
#   scripts/services.sh stop    stop what `start` started, by PID
#   scripts/services.sh status
#   scripts/services.sh pg-start|pg-stop|rmq-start|rmq-stop   one service only (fault-injection tests)
#
# Never touches a system cluster: own data directories, own ports (all below 32768, see
# ENVIRONMENT.md), own epmd. Ports are configurable: PG_PORT, RMQ_PORT, RMQ_MGMT_PORT,
# RMQ_DIST_PORT, ERL_EPMD_PORT.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
RUN_DIR=${RUN_DIR:-$ROOT/.run}
mkdir -p "$RUN_DIR"
RUN_DIR=$(cd "$RUN_DIR" && pwd)

PG_PORT=${PG_PORT:-25432}
RMQ_PORT=${RMQ_PORT:-25672}
RMQ_MGMT_PORT=${RMQ_MGMT_PORT:-25673}
RMQ_DIST_PORT=${RMQ_DIST_PORT:-25674}
ERL_EPMD_PORT=${ERL_EPMD_PORT:-25675}
PG_DB=${POSTGRES_DB:-pacer-dashboard}
PG_USER=${POSTGRES_USER:-pacer-dashboard}
RMQ_USER=${RMQ_USERNAME:-pacer-dashboard}
# No shared default passwords: unless given, each RUN_DIR generates its own once, kept in
# $RUN_DIR/secrets/ (mode 600) and written to $RUN_DIR/env. The broker's deliberately contains
# / @ : % so every local run proves the URL quoting works.
secret() {  # secret NAME LEGACY [SUFFIX]: the stored one, else LEGACY when given, else a new one
  local file=$RUN_DIR/secrets/$1
  if [ ! -s "$file" ]; then
    mkdir -p "$RUN_DIR/secrets" && chmod 0700 "$RUN_DIR/secrets"
    (umask 077; if [ -n "$2" ]; then printf '%s\n' "$2"; else
      printf '%s%s\n' "$(od -An -tx1 -N18 /dev/urandom | tr -d ' \n')" "${3:-}"; fi >"$file")
  fi
  cat "$file"
}

# The cluster lives in $RUN_DIR/postgres, or where that symlink points (see prepare_pg_dir).
PG_LINK=$RUN_DIR/postgres
# As root, for a RUN_DIR the `postgres` user cannot reach: one cluster per RUN_DIR in here.
PG_RELOCATED_BASE=${PG_RELOCATED_BASE:-/var/lib/pacer-dashboard}
RMQ_DIR=$RUN_DIR/rabbitmq

log() { printf '[services] %s\n' "$*" >&2; }
die() { printf '[services] error: %s\n' "$*" >&2; exit 1; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    die "need root or sudo to run: $*"; fi
}

apt_install() {
  log "installing Debian packages: $*"
  if [ ! -f "$RUN_DIR/.apt-updated" ]; then
    as_root apt-get update -qq && touch "$RUN_DIR/.apt-updated"
  fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

pg_bin() {
  local d
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
  [ -n "$d" ] && echo "$d"
}

ensure_packages() {
  local want=()
  [ -n "$(pg_bin)" ] || want+=(postgresql postgresql-contrib)
  [ -x /usr/lib/rabbitmq/bin/rabbitmq-server ] || want+=(rabbitmq-server)
  if [ ${#want[@]} -gt 0 ]; then apt_install "${want[@]}"; fi
  # A Debian box with systemd auto-starts the packaged servers on the default ports; we never
  # use them and never stop them (they are not ours).
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() {  # PORT WHAT [PID]: until the port answers; with PID, fail as soon as PID is gone
  local port=$1 what=$2 pid=${3:-} i
  for i in $(seq 1 600); do
    port_open "$port" && return 0
    if [ -n "$pid" ] && ! pid_alive "$pid"; then
      die "$what exited before opening port $port (see $RUN_DIR/*.log)"
    fi
    sleep 0.1
  done
  die "$what did not open port $port in 60 s (see $RUN_DIR/*.log)"
}

pid_alive() { [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null; }

# A port answering is not enough: another checkout's services, a system server or anything else
# may hold it. Ours are the ones whose PID this RUN_DIR recorded (pg_ours, rmq_ours). Starting
# on a port someone else holds stops with its name, rather than writing this RUN_DIR's
# credentials into $RUN_DIR/env for a server that is not the one answering.
port_holder() {  # " [users:((...pid...))]" of the listener on 127.0.0.1:PORT, when ss can tell
  local who
  command -v ss >/dev/null 2>&1 || return 0
  who=$(ss -Hltnp "sport = :$1" 2>/dev/null | grep -o 'users:(([^)]*))' | head -1 || true)
  [ -z "$who" ] || printf ' [%s]' "$who"
}

refuse_taken_port() {  # PORT VARIABLE WHAT: stop unless the port is free
  port_open "$1" || return 0
  die "$3: port $1 ($2) is in use by another process$(port_holder "$1"), not by this RUN_DIR's \
services ($RUN_DIR): stop that process, or choose free ports with PG_PORT, RMQ_PORT, \
RMQ_MGMT_PORT, RMQ_DIST_PORT and ERL_EPMD_PORT"
}

# Run a command as the owner of the data directory (initdb refuses root), from inside the
# cluster's directory (the caller's directory may be one the postgres user cannot enter).
as_pg() {
  if [ "$(id -u)" = 0 ]; then
    (cd "$PG_DIR" && runuser -u postgres -- "$@")
  else
    "$@"
  fi
}

set_pg_paths() {  # PG_DIR (the cluster's directory) -> the paths inside it
  PG_DATA=$PG_DIR/data
  PG_SOCK=$PG_DIR/sock
}

resolve_pg_dir() {  # where the cluster of this RUN_DIR is (it may not exist yet)
  if [ -L "$PG_LINK" ]; then PG_DIR=$(readlink "$PG_LINK"); else PG_DIR=$PG_LINK; fi
  set_pg_paths
}
resolve_pg_dir

pg_running() { [ -f "$PG_DATA/postmaster.pid" ] && pid_alive "$(head -1 "$PG_DATA/postmaster.pid")"; }
pg_ours() { pg_running && port_open "$PG_PORT"; }

# As root, initdb and postgres run as the `postgres` user, and it must reach the data directory,
# its socket directory and its log. A RUN_DIR inside a private folder (a clone in /root, mode
# 0700, or in a `mktemp -d` folder) is out of its reach, and we never loosen the permissions of
# someone's home. The cluster then lives in $PG_RELOCATED_BASE/<hash of RUN_DIR> (mode 0700,
# owned by postgres) and $RUN_DIR/postgres is a symlink to it: stop and status follow the link,
# and removing RUN_DIR forgets the cluster (sweep_relocated deletes it once it is stopped).
prepare_pg_dir() {
  if [ "$(id -u)" != 0 ]; then
    mkdir -p "$PG_DIR" "$PG_SOCK"
    return
  fi
  id postgres >/dev/null 2>&1 ||
    useradd --system --no-create-home --home-dir /var/lib/postgresql postgres
  if [ ! -L "$PG_LINK" ] && [ ! -f "$PG_LINK/data/PG_VERSION" ] &&
    ! runuser -u postgres -- test -x "$RUN_DIR"; then
    PG_DIR=$PG_RELOCATED_BASE/$(printf '%s' "$RUN_DIR" | sha256sum | cut -c1-12)
    set_pg_paths
    mkdir -p "$PG_RELOCATED_BASE"
    chmod 0755 "$PG_RELOCATED_BASE"
    # Same RUN_DIR path as a removed one: a running cluster is still ours, a stopped one is stale.
    if [ -d "$PG_DIR" ] && ! pg_running; then rm -rf "$PG_DIR"; fi
    mkdir -p "$PG_DIR"
    rm -rf "$PG_LINK"  # what a failed earlier attempt left here (it has no cluster)
    ln -s "$PG_DIR" "$PG_LINK"
    printf '%s\n' "$RUN_DIR" >"$PG_DIR/run-dir"  # after the link: see sweep_relocated
    log "RUN_DIR is out of the postgres user's reach: cluster in $PG_DIR (linked from $PG_LINK)"
  fi
  mkdir -p "$PG_DIR" "$PG_SOCK"
  chown -R postgres "$PG_DIR"
  [ -L "$PG_LINK" ] && chmod 0700 "$PG_DIR"
  return 0
}

# Relocated clusters whose RUN_DIR is gone (e.g. a test's private RUN_DIR, removed after
# pg-stop) and that are not running: delete them. Only ever looks inside $PG_RELOCATED_BASE.
sweep_relocated() {
  [ "$(id -u)" = 0 ] && [ -d "$PG_RELOCATED_BASE" ] || return 0
  local d owner pid
  for d in "$PG_RELOCATED_BASE"/*; do
    [ -f "$d/run-dir" ] || continue
    owner=$(cat "$d/run-dir")
    [ "$(readlink "$owner/postgres" 2>/dev/null)" = "$d" ] && continue
    pid=$(head -1 "$d/data/postmaster.pid" 2>/dev/null || true)
    pid_alive "$pid" && continue
    rm -rf "$d"
  done
}

start_postgres() {
  local bin
  bin=$(pg_bin)
  sweep_relocated
  pg_running || prepare_pg_dir  # (prepare_pg_dir may find this RUN_DIR's cluster still running)
  if pg_running; then
    log "PostgreSQL already running on port $PG_PORT"
    return
  fi
  refuse_taken_port "$PG_PORT" PG_PORT PostgreSQL
  if [ ! -f "$PG_DATA/PG_VERSION" ]; then
    as_pg "$bin/initdb" -D "$PG_DATA" -U postgres --auth-local=trust --auth-host=scram-sha-256 \
      -E UTF8 --locale=C.UTF-8 --no-sync >"$PG_DIR/initdb.log" 2>&1 ||
      { cat "$PG_DIR/initdb.log" >&2; die "initdb failed"; }
  fi
  # TCP (127.0.0.1, reachable by every local user) needs the password; the unix socket, in a
  # directory only the cluster's owner can enter, is how this script administers it. Written at
  # every start, so clusters made by older versions (trust everywhere) are closed too.
  printf '%s\n' "local all all trust" "host all all 127.0.0.1/32 scram-sha-256" \
    "host all all ::1/128 scram-sha-256" | as_pg tee "$PG_DATA/pg_hba.conf" >/dev/null
  chmod 0700 "$PG_SOCK"
  local extra=()
  if [ "${PG_FAST:-0}" = 1 ]; then
    # Throwaway clusters only (tests): never for benchmarks that are quoted.
    extra=(-c fsync=off -c synchronous_commit=off -c full_page_writes=off)
  fi
  as_pg "$bin/pg_ctl" -D "$PG_DATA" -l "$PG_DIR/postgres.log" -w -t 60 \
    -o "-k $PG_SOCK -p $PG_PORT -c listen_addresses=127.0.0.1 -c max_connections=200 ${extra[*]}" \
    start >/dev/null || { tail -20 "$PG_DIR/postgres.log" >&2; die "PostgreSQL did not start"; }
  local psql=(as_pg psql -h "$PG_SOCK" -p "$PG_PORT" -U postgres -v ON_ERROR_STOP=1 -qtA)
  if [ -z "$("${psql[@]}" -d postgres -c "select 1 from pg_roles where rolname='$PG_USER'")" ]; then
    "${psql[@]}" -d postgres -c "create role \"$PG_USER\" login superuser"
  fi
  # (Again at every start: the password in $RUN_DIR/env is the one that works.)
  "${psql[@]}" -d postgres -c "alter role \"$PG_USER\" password '${PG_PASSWORD//\'/\'\'}'"
  if [ -z "$("${psql[@]}" -d postgres -c "select 1 from pg_database where datname='$PG_DB'")" ]; then
    "${psql[@]}" -d postgres -c "create database \"$PG_DB\" owner \"$PG_USER\""
  fi
  log "PostgreSQL ready on 127.0.0.1:$PG_PORT (data in $PG_DATA)"
}

stop_postgres() {
  local bin
  bin=$(pg_bin) || true
  if pg_running; then
    as_pg "$bin/pg_ctl" -D "$PG_DATA" -m fast -w stop >/dev/null && log "PostgreSQL stopped"
  fi
  sweep_relocated
}

rmq_ours() { pid_alive "$(cat "$RMQ_DIR/rabbitmq.pid" 2>/dev/null || true)" && port_open "$RMQ_PORT"; }

start_rabbitmq() {
  local pidfile=$RMQ_DIR/rabbitmq.pid
  if rmq_ours; then
    log "RabbitMQ already running on port $RMQ_PORT"
    return
  fi
  # (A running epmd on ERL_EPMD_PORT is fine: it is a name server, nodes of any owner share it.)
  refuse_taken_port "$RMQ_PORT" RMQ_PORT RabbitMQ
  refuse_taken_port "$RMQ_MGMT_PORT" RMQ_MGMT_PORT "RabbitMQ management"
  refuse_taken_port "$RMQ_DIST_PORT" RMQ_DIST_PORT "RabbitMQ distribution"
  mkdir -p "$RMQ_DIR/home" "$RMQ_DIR/mnesia" "$RMQ_DIR/log"
  cat >"$RMQ_DIR/rabbitmq.conf" <<EOF
listeners.tcp.default = $RMQ_PORT
management.tcp.port = $RMQ_MGMT_PORT
management.tcp.ip = 127.0.0.1
# Queue statistics (ready / unacked, read by /healthz, the System page and the reliability tests)
# every second instead of every five.
collect_statistics_interval = 1000
loopback_users = none
default_user = $RMQ_USER
default_pass = $RMQ_PASS
default_user_tags.administrator = true
EOF
  echo "[rabbitmq_management]." >"$RMQ_DIR/enabled_plugins"
  : >"$RMQ_DIR/rabbitmq-env.conf"
  local env=(
    HOME="$RMQ_DIR/home"
    RABBITMQ_NODENAME="pacer-dashboard-$RMQ_PORT@localhost"
    RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
    RABBITMQ_NODE_PORT="$RMQ_PORT"
    RABBITMQ_DIST_PORT="$RMQ_DIST_PORT"
    ERL_EPMD_PORT="$ERL_EPMD_PORT"
    ERL_EPMD_ADDRESS=127.0.0.1
    RABBITMQ_MNESIA_BASE="$RMQ_DIR/mnesia"
    RABBITMQ_LOG_BASE="$RMQ_DIR/log"
    RABBITMQ_PID_FILE="$pidfile"
    RABBITMQ_CONFIG_FILE="$RMQ_DIR/rabbitmq.conf"
    RABBITMQ_ENABLED_PLUGINS_FILE="$RMQ_DIR/enabled_plugins"
    RABBITMQ_CONF_ENV_FILE="$RMQ_DIR/rabbitmq-env.conf"
  )
  # Our own epmd, in the foreground of a background job so we hold its PID (a daemonized epmd
  # outlives the node and could not be told apart from someone else's).
  local epmd
  epmd=$(command -v epmd || ls /usr/lib/erlang/erts-*/bin/epmd 2>/dev/null | head -1)
  if ! port_open "$ERL_EPMD_PORT"; then
    env ERL_EPMD_ADDRESS=127.0.0.1 setsid "$epmd" -port "$ERL_EPMD_PORT" \
      >"$RMQ_DIR/epmd.log" 2>&1 </dev/null &
    echo $! >"$RMQ_DIR/epmd.pid"
    wait_port "$ERL_EPMD_PORT" epmd
  fi
  env "${env[@]}" setsid /usr/lib/rabbitmq/bin/rabbitmq-server >"$RMQ_DIR/server.log" 2>&1 \
    </dev/null &
  echo $! >"$RMQ_DIR/launcher.pid"
  wait_port "$RMQ_PORT" RabbitMQ "$(cat "$RMQ_DIR/launcher.pid")"
  log "RabbitMQ ready on 127.0.0.1:$RMQ_PORT (management on $RMQ_MGMT_PORT)"
}

stop_rabbitmq() {
  local f pid
  for f in rabbitmq.pid launcher.pid; do
    pid=$(cat "$RMQ_DIR/$f" 2>/dev/null || true)
    if pid_alive "$pid"; then kill "$pid" 2>/dev/null || true; fi
  done
  # The launcher (rabbitmq-server in the foreground) forwards TERM to the Erlang VM and exits
  # when the VM has stopped: wait for both, or a restart finds the dist port still taken.
  for _ in $(seq 1 300); do
    pid_alive "$(cat "$RMQ_DIR/rabbitmq.pid" 2>/dev/null || true)" ||
      pid_alive "$(cat "$RMQ_DIR/launcher.pid" 2>/dev/null || true)" || break
    sleep 0.1
  done
  pid=$(cat "$RMQ_DIR/rabbitmq.pid" 2>/dev/null || true)
  if pid_alive "$pid"; then kill -9 "$pid" 2>/dev/null || true; fi
  pid=$(cat "$RMQ_DIR/launcher.pid" 2>/dev/null || true)
  if pid_alive "$pid"; then
    pkill -9 -P "$pid" 2>/dev/null || true  # the VM is the launcher's child
    kill -9 "$pid" 2>/dev/null || true
  fi
  pid=$(cat "$RMQ_DIR/epmd.pid" 2>/dev/null || true)
  if pid_alive "$pid"; then kill "$pid" 2>/dev/null || true; fi
  rm -f "$RMQ_DIR/rabbitmq.pid" "$RMQ_DIR/launcher.pid" "$RMQ_DIR/epmd.pid"
  log "RabbitMQ stopped"
}

write_env() {
  cat >"$RUN_DIR/env" <<EOF
# Written by scripts/services.sh: the private services of this checkout.
# Use in a shell with:  set -a; . $RUN_DIR/env; set +a
POSTGRES_HOST=127.0.0.1
POSTGRES_PORT=$PG_PORT
POSTGRES_DB=$PG_DB
POSTGRES_USER=$PG_USER
POSTGRES_PASSWORD=$PG_PASSWORD
RMQ_PROTOCOL=amqp
RMQ_HOST=127.0.0.1
RMQ_PORT=$RMQ_PORT
RMQ_MANAGEMENT_PORT=$RMQ_MGMT_PORT
RMQ_USERNAME=$RMQ_USER
RMQ_PASSWORD='$RMQ_PASS'
RMQ_VHOST=/
EOF
}

PG_PASSWORD=${POSTGRES_PASSWORD:-$(secret postgres-password "")}
legacy_rmq=""  # a broker node made before passwords were generated keeps the one it was given
[ -n "$(ls -A "$RMQ_DIR/mnesia" 2>/dev/null)" ] && legacy_rmq='pa/ss@w:rd%local'
RMQ_PASS=${RMQ_PASSWORD:-$(secret rabbitmq-password "$legacy_rmq" '/s@p:%')}

case "${1:-start}" in
  start)
    ensure_packages
    start_postgres
    start_rabbitmq
    write_env
    RUN_DIR=$RUN_DIR RMQ_PORT=$RMQ_PORT ERL_EPMD_PORT=$ERL_EPMD_PORT RMQ_USERNAME=$RMQ_USER "$ROOT/scripts/rmq-users.sh"  # re-ingest broker user (SECURITY.md), appends to env
    log "environment written to $RUN_DIR/env"
    ;;
  stop)
    stop_rabbitmq
    stop_postgres
    ;;
  pg-start)  # only PostgreSQL (tests that stop/start a private database)
    ensure_packages
    start_postgres
    ;;
  pg-stop)
    stop_postgres
    ;;
  rmq-start)  # only RabbitMQ (tests that restart a private broker)
    ensure_packages
    start_rabbitmq
    ;;
  rmq-stop)
    stop_rabbitmq
    ;;
  status)
    rc=0
    # Up means this RUN_DIR's: a port held by anything else is not our service.
    if pg_ours; then echo "postgres: up ($PG_PORT, data in $PG_DATA)"; else
      rc=1
      if port_open "$PG_PORT"; then
        echo "postgres: down (port $PG_PORT is held by another process$(port_holder "$PG_PORT"))"
      else echo "postgres: down"; fi
    fi
    if rmq_ours; then echo "rabbitmq: up ($RMQ_PORT)"; else
      rc=1
      if port_open "$RMQ_PORT"; then
        echo "rabbitmq: down (port $RMQ_PORT is held by another process$(port_holder "$RMQ_PORT"))"
      else echo "rabbitmq: down"; fi
    fi
    exit "$rc"
    ;;
  *) die "usage: $0 start|stop|status|pg-start|pg-stop|rmq-start|rmq-stop" ;;
esac
