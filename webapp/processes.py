"""How each process starts: the one definition used by `make up`, docker-compose.yml, the
Dockerfile, the README, the tests and the benchmarks.

    python -m webapp.processes web|live|worker|beat|flower [extra arguments for that program]

reads the settings (the same validation as every other entry point: a bad variable stops it with
one line naming it), builds the command line below and replaces itself with it (`exec`), so the
process a user starts is the process the tests and benchmarks start. Each process's control
files (gunicorn's control socket, beat's schedule) live under `RUN_DIR`.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from .config import ConfigError, Settings

PROCESSES = ("web", "live", "worker", "beat", "flower")


def _program(name: str) -> str:
    """A console script of this interpreter's environment (the venv, or the image's Python)."""
    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.exists() else name


def run_dir(settings: Settings) -> Path:
    """Where this process keeps its control files (created when missing)."""
    path = Path(settings.RUN_DIR).resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def command(name: str, settings: Settings, extra: tuple[str, ...] = ()) -> list[str]:
    """The command line of process `name` for these settings."""
    celery = [_program("celery"), "-A", "wsgi.celery_app"]
    if name == "web":
        host, _, port = settings.WEB_BIND.rpartition(":")
        return [
            _program("gunicorn"),
            "-k",
            "gthread",
            "-w",
            str(settings.WEB_WORKERS),
            "--threads",
            str(settings.WEB_THREADS),
            "-b",
            settings.WEB_BIND,
            # Per bind address: two dashboards on one machine never share a control socket.
            "--control-socket",
            str(run_dir(settings) / f"gunicorn-{port}.ctl"),
            "--graceful-timeout",
            "5",
            "--access-logfile",
            "-",
            # Hooks: the request-latency metrics of an exited worker (webapp/gunicorn_conf.py).
            "-c",
            "python:webapp.gunicorn_conf",
            *extra,
            "wsgi:app",
        ]
    if name == "live":
        # The live sockets (`/ws/*`, routed here by the reverse proxy): gunicorn's gevent worker,
        # where an open socket is a greenlet (a few KB), not one of the page tier's threads.
        # One process: the pushes are rendered once per distinct (filters, scope) and fanned out
        # (webapp/live/fanout.py); the page tier (`web`) stays as it is.
        host, _, port = settings.LIVE_BIND.rpartition(":")
        return [
            _program("gunicorn"),
            "-k",
            "gevent",
            "-w",
            "1",
            # Room for every allowed socket plus the handshakes being refused.
            "--worker-connections",
            str(settings.LIVE_MAX_SOCKETS + 100),
            "-b",
            settings.LIVE_BIND,
            "--control-socket",
            str(run_dir(settings) / f"gunicorn-{port}.ctl"),
            "--graceful-timeout",
            "5",
            "--access-logfile",
            "-",
            *extra,
            "wsgi:app",
        ]
    if name == "worker":
        # One process: the report consumer step ingests in the main process (with its parser
        # and writer threads) and the thread pool runs the Celery tasks (bulk actions,
        # investigation checks, maintenance), which mostly wait on the network. A prefork pool
        # would fork children that each import the whole app for work that does not need them.
        return [
            *celery,
            "worker",
            "-P",
            "threads",
            "-c",
            str(settings.WORKER_CONCURRENCY),
            "-n",
            settings.WORKER_NAME,
            "--loglevel",
            settings.LOG_LEVEL,
            *extra,
        ]
    if name == "beat":
        return [
            *celery,
            "beat",
            "--schedule",
            str(run_dir(settings) / "celerybeat-schedule"),
            "--pidfile=",
            "--loglevel",
            settings.LOG_LEVEL,
            *extra,
        ]
    if name == "flower":
        host, _, port = settings.FLOWER_BIND.rpartition(":")
        # Credentials reach Flower through its own FLOWER_BASIC_AUTH variable, never argv
        # (visible to every local user in `ps`).
        return [
            *celery,
            "flower",
            f"--address={host}",
            f"--port={port}",
            *extra,
        ]
    raise ValueError(f"unknown process {name!r}: expected one of {', '.join(PROCESSES)}")


def lower_priority(nice: int) -> str:
    """Add `nice` to this process's niceness, so that it yields a core to the others; what the
    kernel then reports (for logs and the benchmark).

    Where Linux groups tasks per session (autogroups: the root cgroup, `sched_autogroup_enabled`)
    the CPU is shared fairly between sessions before niceness counts, and each of our processes
    runs in a session of its own (`make up`, the tests and benchmarks start them with setsid):
    a process that leads its session gives the session's autogroup the same niceness, or its
    niceness would only rank it against itself. A process that does not lead its session (one
    started in a terminal) leaves the session alone: it is the terminal's. Under a service
    manager or a container runtime the process has a cgroup of its own and autogroups do not
    apply: there its share is the cgroup's weight (systemd `CPUWeight=`, compose `cpu_shares`,
    README "Live sockets behind a reverse proxy")."""
    if nice <= 0:
        return f"nice {os.nice(0)}"
    niceness = os.nice(nice)
    autogroup = Path("/proc/self/autogroup")
    group = "no autogroup"
    if os.getsid(0) == os.getpid() and autogroup.exists():
        try:
            autogroup.write_text(str(niceness))
            # empty for a task in the kernel's default group (not one a setsid created)
            group = autogroup.read_text().strip() or "no autogroup"
        except OSError as exc:  # a rate limit or a kernel without write support: niceness only
            group = f"autogroup unchanged ({exc.strerror})"
    return f"nice {niceness}, {group}"


def metrics_dir(settings: Settings) -> Path:
    """The web process's prometheus-client multiprocess directory, emptied: every gunicorn
    worker writes its request latencies there and /metrics adds them up (webapp/health/prom.py).
    One per bind address, like the control socket; PROMETHEUS_MULTIPROC_DIR, when set, wins."""
    host, _, port = settings.WEB_BIND.rpartition(":")
    given = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    path = Path(given) if given else run_dir(settings) / "prometheus" / f"web-{port}"
    path.mkdir(parents=True, exist_ok=True)
    for stale in path.glob("*.db"):
        stale.unlink()
    return path


def main(argv: list[str] | None = None) -> None:
    """Entry point: exec the named process."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in PROCESSES:
        raise SystemExit(f"usage: python -m webapp.processes {{{','.join(PROCESSES)}}} [args...]")
    from dotenv import load_dotenv

    load_dotenv(override=False)
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        raise SystemExit(f"pacer-dashboard: configuration error: {exc}") from None
    args = command(argv[0], settings, tuple(argv[1:]))
    if argv[0] == "web":
        # Before gunicorn starts: prometheus-client chooses multiprocess mode at import.
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir(settings))
    if argv[0] == "live":
        # Sockets must not starve page requests: each push is a burst of writes to every socket
        # (~30 ms of one core for a thousand, twice a second); on two cores a burst like it at
        # the pages' priority put the list page's p95 at 1.54x, at a lower one 1.07x
        # (bench/README.md, "2026-12-05, third session").
        print(f"live: {lower_priority(settings.LIVE_NICE)}", flush=True)
    sys.stdout.flush()
    os.execvp(args[0], args)  # noqa: S606 - a fixed program with arguments we built


if __name__ == "__main__":
    main()
