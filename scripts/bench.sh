#!/usr/bin/env bash
# `make bench`: the benchmarks of bench/ against a dedicated, durable (fsync on) PostgreSQL and
# RabbitMQ under .run-bench/ (never the fsync=off test services). Arguments go to `python -m bench`.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
export RUN_DIR=${BENCH_RUN_DIR:-$ROOT/.run-bench}
export PG_PORT=${BENCH_PG_PORT:-24432} RMQ_PORT=${BENCH_RMQ_PORT:-24672}
export RMQ_MGMT_PORT=${BENCH_RMQ_MGMT_PORT:-24673} RMQ_DIST_PORT=${BENCH_RMQ_DIST_PORT:-24674}
export ERL_EPMD_PORT=${BENCH_EPMD_PORT:-24675} PG_FAST=0
[ -x .venv/bin/python ] || make install
started=0
if ! scripts/services.sh status >/dev/null 2>&1; then
  scripts/services.sh start
  started=1
fi
cleanup() { if [ "$started" = 1 ] && [ "${KEEP_SERVICES:-0}" != 1 ]; then scripts/services.sh stop || true; fi; }
trap cleanup EXIT
set -a
# shellcheck disable=SC1091
. "$RUN_DIR/env"
set +a
# Memory settings of a modest production server (24 GiB here; see bench/README.md). Planner
# costs stay at their defaults. Applied once to the bench cluster; shared_buffers needs a restart.
tune=(shared_buffers=2GB effective_cache_size=12GB maintenance_work_mem=512MB max_wal_size=8GB
  checkpoint_timeout=15min)
# The unix socket (local trust, only its owner may enter): TCP needs a password (services.sh).
psql=(psql -h "$RUN_DIR/postgres/sock" -p "$PG_PORT" -U postgres -d postgres -qtA -v ON_ERROR_STOP=1)
restart=0
for kv in "${tune[@]}"; do
  name=${kv%%=*} value=${kv#*=}
  if [ "$("${psql[@]}" -c "SHOW $name")" != "$value" ]; then
    "${psql[@]}" -c "ALTER SYSTEM SET $name = '$value'"
    restart=1
  fi
done
if [ "$restart" = 1 ]; then
  scripts/services.sh pg-stop && scripts/services.sh pg-start
fi
.venv/bin/python -m bench "$@"
