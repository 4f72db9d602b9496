#!/usr/bin/env bash
# `make up`: the whole dashboard with demo PACER traffic, then print the URL.
#
# With a working Docker engine: docker compose (docker-compose.yml). Otherwise: private
# PostgreSQL + RabbitMQ under .run/ (scripts/services.sh) and every process from .venv, each
# started in its own session with its PID in .run/pids/ so `make down` stops exactly those.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
RUN_DIR=${RUN_DIR:-$ROOT/.run}
export RUN_DIR
WEB_PORT=${WEB_PORT:-8000}
LIVE_PORT=${LIVE_PORT:-8001}
FLOWER_PORT=${FLOWER_PORT:-5555}
DEMO_RATE=${DEMO_RATE:-5}
PIDS=$RUN_DIR/pids
LOGS=$RUN_DIR/logs

log() { printf '[up] %s\n' "$*"; }
die() { printf '[up] error: %s\n' "$*" >&2; exit 1; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

if [ "${USE_DOCKER:-auto}" != no ] && command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
  log "Docker engine found: docker compose up"
  if [ ! -f .env ]; then
    log "no .env: creating one for local use (DISABLED_AUTH=true, ports on 127.0.0.1, generated passwords)"
    gen() { python3 -c 'import secrets; print(secrets.token_urlsafe(24))'; }
    (umask 077; {
      echo "DISABLED_AUTH=true"
      echo "SECRET_KEY=$(gen)"
      echo "POSTGRES_PASSWORD=$(gen)"
      echo "RMQ_PASSWORD=$(gen)"
      echo "REINGEST_RMQ_PASSWORD=$(gen)"  # the re-ingest broker user (SECURITY.md)
      echo "FLOWER_BASIC_AUTH=admin:$(gen)"
    } > .env)
  fi
  if docker compose version >/dev/null 2>&1; then
    docker compose up -d --build --wait
  else
    docker-compose up -d --build
  fi
  mkdir -p "$RUN_DIR" && touch "$RUN_DIR/docker-mode"
  log "PACER Dashboard: http://127.0.0.1:${WEB_PORT:-8000}/   (Flower: http://127.0.0.1:${FLOWER_PORT:-5555}/, FLOWER_BASIC_AUTH in .env)"
  log "Through the reverse proxy (live sockets on the live process): http://127.0.0.1:${PROXY_PORT:-8080}/"
  exit 0
fi

mkdir -p "$PIDS" "$LOGS"
scripts/services.sh start
set -a
# shellcheck disable=SC1091
. "$RUN_DIR/env"
[ -f .env ] && . ./.env
set +a
# Local defaults: no SSO unless configured in .env; a persistent random secret key.
export DISABLED_AUTH=${DISABLED_AUTH:-true}
export ENVIRONMENT=${ENVIRONMENT:-development}
if [ -z "${SECRET_KEY:-}" ]; then
  [ -s "$RUN_DIR/secret_key" ] || python3 -c 'import secrets; print(secrets.token_hex(32))' > "$RUN_DIR/secret_key"
  SECRET_KEY=$(cat "$RUN_DIR/secret_key")
  export SECRET_KEY
fi
export FLASK_APP=wsgi
# Flower can revoke and inspect tasks: always behind a password, generated once per RUN_DIR.
if [ -z "${FLOWER_BASIC_AUTH:-}" ]; then
  [ -s "$RUN_DIR/flower_auth" ] ||
    (umask 077; echo "admin:$(python3 -c 'import secrets; print(secrets.token_urlsafe(18))')" > "$RUN_DIR/flower_auth")
  FLOWER_BASIC_AUTH=$(cat "$RUN_DIR/flower_auth")
  export FLOWER_BASIC_AUTH
fi

V=$ROOT/.venv/bin
log "migrating the database"
"$V/flask" db upgrade 2>&1 | grep -v '^INFO' || true
"$V/flask" partitions create

running() { [ -f "$PIDS/$1.pid" ] && kill -0 "$(cat "$PIDS/$1.pid")" 2>/dev/null; }

start() {  # start NAME COMMAND... — in its own session, PID recorded, log in .run/logs
  local name=$1; shift
  if running "$name"; then log "$name already running (pid $(cat "$PIDS/$name.pid"))"; return; fi
  setsid "$@" >>"$LOGS/$name.log" 2>&1 < /dev/null &
  echo $! > "$PIDS/$name.pid"
  log "started $name (pid $!, log $LOGS/$name.log)"
}

if ! running web && port_open "$WEB_PORT"; then
  die "port $WEB_PORT is in use by something else; run with WEB_PORT=<free port> make up"
fi
# Every process through its one definition (webapp/processes.py), as compose and the tests do.
run=("$V/python" -m webapp.processes)
export WEB_BIND=${WEB_BIND:-127.0.0.1:$WEB_PORT}
export FLOWER_BIND=${FLOWER_BIND:-127.0.0.1:$FLOWER_PORT}
export LIVE_BIND=${LIVE_BIND:-127.0.0.1:$LIVE_PORT}
start web "${run[@]}" web
# The live sockets' process (README "Live sockets behind a reverse proxy"): without a proxy the
# browser's sockets go to web, which serves a bounded number itself.
if port_open "$LIVE_PORT" && ! running live; then
  log "port $LIVE_PORT busy: live process not started (set LIVE_PORT)"
else
  start live "${run[@]}" live
fi
start worker "${run[@]}" worker
start beat "${run[@]}" beat
if port_open "$FLOWER_PORT" && ! running flower; then
  log "port $FLOWER_PORT busy: Flower not started (set FLOWER_PORT)"
else
  start flower "${run[@]}" flower
fi
start demo-pacer "$V/python" -m pacer.demo.run
start demo-traffic "$V/python" -m pacer.demo.traffic --rate "$DEMO_RATE"

log "waiting for the dashboard to answer"
for _ in $(seq 1 60); do
  if "$V/python" -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' \
    "http://127.0.0.1:$WEB_PORT/" 2>/dev/null; then
    log "ready. Logs: $LOGS/   Stop everything with: make down"
    log "Flower: http://127.0.0.1:$FLOWER_PORT/ (user:password in $RUN_DIR/flower_auth or .env)"
    echo
    echo "PACER Dashboard: http://127.0.0.1:$WEB_PORT/"
    exit 0
  fi
  running web || { tail -30 "$LOGS/web.log" >&2; die "the web process exited"; }
  sleep 1
done
tail -30 "$LOGS/web.log" >&2
die "the dashboard did not answer on port $WEB_PORT in 60 s"
