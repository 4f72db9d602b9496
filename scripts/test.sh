#!/usr/bin/env bash
# `make test`: install what is missing, start the private services, run every test, stop what we
# started. Extra arguments go to pytest (e.g. scripts/test.sh tests/ingest -x).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
RUN_DIR=${RUN_DIR:-$ROOT/.run}
export RUN_DIR

# The Debian packages of scripts/os-packages.txt (Chromium, the libraries of Playwright's node...):
# quick when they are all there already.
scripts/ensure-apt.sh -f scripts/os-packages.txt
# The deployment test validates docker-compose.yml wherever a docker client exists.
if command -v docker >/dev/null 2>&1 && ! docker compose version >/dev/null 2>&1; then
  command -v docker-compose >/dev/null 2>&1 || scripts/ensure-apt.sh docker-compose
fi
[ -x .venv/bin/pytest ] || make install

started_services=0
if ! scripts/services.sh status >/dev/null 2>&1; then
  PG_FAST=${PG_FAST:-1} scripts/services.sh start
  started_services=1
fi
cleanup() {
  if [ "$started_services" = 1 ] && [ "${KEEP_SERVICES:-0}" != 1 ]; then
    scripts/services.sh stop || true
  fi
}
trap cleanup EXIT

set -a
# shellcheck disable=SC1091
. "$RUN_DIR/env"
set +a
export CHROMIUM=${CHROMIUM:-/usr/bin/chromium}

set +e
.venv/bin/pytest "$@"
rc=$?
set -e
if [ "$rc" = 5 ]; then
  echo "no tests collected"
  rc=0
fi
exit "$rc"
