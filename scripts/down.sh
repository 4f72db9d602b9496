#!/usr/bin/env bash
# `make down`: stop everything `make up` started (by PID, process group first), then the services.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
RUN_DIR=${RUN_DIR:-$ROOT/.run}
export RUN_DIR
PIDS=$RUN_DIR/pids

if [ -f "$RUN_DIR/docker-mode" ]; then
  if docker compose version >/dev/null 2>&1; then docker compose down; else docker-compose down; fi
  rm -f "$RUN_DIR/docker-mode"
  exit 0
fi

stop() {
  local name=$1 file=$PIDS/$1.pid pid
  [ -f "$file" ] || return 0
  pid=$(cat "$file")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
      kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null
    fi
    echo "[down] stopped $name (pid $pid)"
  fi
  rm -f "$file"
}

# Producers first, then the consumers, then the web tier; then any other process `make up`
# recorded (a pid file per process), so a process added to up.sh is never left running.
for name in demo-traffic demo-pacer beat flower worker live web; do stop "$name"; done
for file in "$PIDS"/*.pid; do
  [ -e "$file" ] && stop "$(basename "$file" .pid)"
done
scripts/services.sh stop
