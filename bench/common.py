"""Helpers shared by the benchmarks: settings, databases, processes, result table."""

from __future__ import annotations

import functools
import json
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import psycopg2

from tests.processes import BIND_SETTINGS, Process, process_command

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
#: Where results (JSON, logs, EXPLAIN output) go; tests point it at a temporary directory.
RESULTS = Path(os.environ.get("BENCH_RESULTS") or ROOT / "bench" / "results")


def settings(**overrides):
    sys.path.insert(0, str(ROOT))
    from webapp.config import Settings

    return Settings.from_env(
        environ={
            **os.environ,
            "ENVIRONMENT": "testing",
            "DISABLED_AUTH": "true",
            "SECRET_KEY": "bench",
            **overrides,
        }
    )


def admin_dsn(dbname: str = "postgres") -> str:
    return (
        f"host={os.environ['POSTGRES_HOST']} port={os.environ['POSTGRES_PORT']} "
        f"user={os.environ['POSTGRES_USER']} password={os.environ['POSTGRES_PASSWORD']} "
        f"dbname={dbname}"
    )


def create_database(name: str) -> None:
    """Drop and create `name`, migrate it and create its partitions (current + 2 ahead)."""
    conn = psycopg2.connect(admin_dsn())
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        cur.execute(f'CREATE DATABASE "{name}"')
    conn.close()
    for args in (["db", "upgrade"], ["partitions", "create"]):
        subprocess.run(  # noqa: S603
            [str(BIN / "flask"), "--app", "wsgi", *args],
            env=env(name),
            cwd=ROOT,
            check=True,
            capture_output=True,
        )


def drop_database(name: str) -> None:
    conn = psycopg2.connect(admin_dsn())
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    conn.close()


def env(db_name: str, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "POSTGRES_DB": db_name,
        "ENVIRONMENT": "testing",
        "DISABLED_AUTH": "true",
        "SECRET_KEY": "bench",
        **extra,
    }


class Proc(Process):
    """A started Process (tests/processes.py, the tests' own helper) with a fresh log; `p` is
    its Popen."""

    def __init__(self, args: list[str], environ: dict[str, str], log: Path):
        log.unlink(missing_ok=True)
        super().__init__(args, environ, log)
        self.start()

    @property
    def p(self):
        return self.proc


def start_worker(node: str, environ: dict[str, str], log: Path) -> Proc:
    """The worker exactly as users start it (the real report consumer step), named `node`."""
    return Proc(
        process_command("worker"),
        {**environ, "WORKER_NAME": node, "LOG_LEVEL": "WARNING", "RUN_DIR": str(RESULTS / "run")},
        log,
    )


def start_server(name: str, port: int, environ: dict[str, str], log: Path, **settings: str) -> Proc:
    """The web or the live process (`name`) exactly as users start it, on 127.0.0.1:`port`."""
    return Proc(
        process_command(name),
        {
            **environ,
            BIND_SETTINGS[name]: f"127.0.0.1:{port}",
            "RUN_DIR": str(RESULTS / "run"),
            "LOG_LEVEL": "WARNING",
            **settings,
        },
        log,
    )


#: The page tier: start_web(port, environ, log, **settings).
start_web = functools.partial(start_server, "web")


def peak_rss_mb(pid: int) -> float:
    """VmHWM of a process (kB → MB)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def machine() -> str:
    cpus = os.cpu_count()
    mem = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem = int(line.split()[1]) // (1024 * 1024)
    return f"{platform.system()} {platform.machine()}, {cpus} cores, {mem} GiB"


def save(name: str, result: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    result = {
        "benchmark": name,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        **result,
    }
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(result, indent=2))
    return path


def wait_until(predicate, timeout: float, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError("benchmark wait timed out")
