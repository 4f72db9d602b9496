#!/usr/bin/env bash
# Vulnerability scan of the pinned dependencies installed in .venv (part of `make lint`).
#
# pip-audit asks PyPI's per-release JSON API for the advisories of each installed version. Where
# that database cannot be reached (an air-gapped facility, a registry mirror without the
# per-release endpoints) the scan is skipped with one clear line instead of failing the lint;
# where it answers, any known vulnerability fails the target.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
V=.venv/bin
[ -x "$V/pip-audit" ] || { echo "[audit] pip-audit missing: run make install" >&2; exit 1; }

probe() {
  "$V/python" - <<'PY'
import importlib.metadata, urllib.request
version = importlib.metadata.version("pip")
url = f"https://pypi.org/pypi/pip/{version}/json"
try:
    with urllib.request.urlopen(url, timeout=10) as response:
        ok = response.status == 200 and b'"vulnerabilities"' in response.read()
except Exception as exc:  # noqa: BLE001
    print(f"{type(exc).__name__}: {exc}")
    raise SystemExit(1)
raise SystemExit(0 if ok else 1)
PY
}

if ! reason=$(probe); then
  echo "[audit] vulnerability scan skipped: PyPI's advisory database (per-release JSON API) is not reachable from this machine${reason:+ ($reason)}"
  exit 0
fi
echo "[audit] scanning the installed dependencies for known vulnerabilities"
"$V/pip-audit" --progress-spinner off --skip-editable --strict
