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
FLOWER_PORT=${FLOWER_PORT:-5555}
DEMO_RATE=${DEMO_RATE:-5}
PIDS=$RUN_DIR/pids
LOGS=$RUN_DIR/logs

log() { printf '[up] %s\n' "$*"; }
die() { printf '[up] error: %s\n' "$*" >&2; exit 1; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

if [ "${USE_DOCKER:-auto}" != no ] && command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
  log "Docker engine found: docker compose up"
  [ -f .env ] || { log "no .env: creating one for local use (DISABLED_AUTH=true, random SECRET_KEY)";
    printf 'DISABLED_AUTH=true\nSECRET_KEY=%s\n' "$(python3 -c 'import secrets; print(secrets.token_hex(32))')" > .env; }
  if docker compose version >/dev/null 2>&1; then
    docker compose up -d --build --wait
  else
    docker-compose up -d --build
  fi
  mkdir -p "$RUN_DIR" && touch "$RUN_DIR/docker-mode"
  log "PACER Dashboard: http://localhost:${WEB_PORT}/   (Flower: http://localhost:${FLOWER_PORT}/)"
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
start web "$V/gunicorn" -k gthread --threads 16 -w 2 -b "0.0.0.0:$WEB_PORT" \
  --access-logfile - --graceful-timeout 5 wsgi:app
start worker "$V/celery" -A wsgi.celery_app worker -P threads -c 4 -n "worker-$$@%h" --loglevel INFO
start beat "$V/celery" -A wsgi.celery_app beat --loglevel INFO \
  --schedule "$RUN_DIR/celerybeat-schedule" --pidfile=
if port_open "$FLOWER_PORT" && ! running flower; then
  log "port $FLOWER_PORT busy: Flower not started (set FLOWER_PORT)"
else
  start flower "$V/celery" -A wsgi.celery_app flower --port="$FLOWER_PORT" --address=127.0.0.1
fi
start demo-pacer "$V/python" -m pacer.demo.run
start demo-traffic "$V/python" -m pacer.demo.traffic --rate "$DEMO_RATE"

log "waiting for the dashboard to answer"
for _ in $(seq 1 60); do
  if curl -fs -o /dev/null "http://127.0.0.1:$WEB_PORT/"; then
    log "ready. Logs: $LOGS/   Stop everything with: make down"
    log "Flower: http://127.0.0.1:$FLOWER_PORT/"
    echo
    echo "PACER Dashboard: http://127.0.0.1:$WEB_PORT/"
    exit 0
  fi
  running web || { tail -30 "$LOGS/web.log" >&2; die "the web process exited"; }
  sleep 1
done
tail -30 "$LOGS/web.log" >&2
die "the dashboard did not answer on port $WEB_PORT in 60 s"
