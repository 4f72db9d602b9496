"""Child processes for tests and benchmarks: the dashboard's processes started exactly as users
start them (`python -m webapp.processes NAME`, webapp/processes.py), each with its log file and
its own process group, stopped by PID."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent


def process_environ(db_name: str, **extra: str) -> dict[str, str]:
    """Environment for processes (worker, gunicorn, flask CLI) that should use the test database."""
    env = dict(os.environ)
    env.update(
        POSTGRES_DB=db_name,
        ENVIRONMENT="testing",
        DISABLED_AUTH=env.get("DISABLED_AUTH", "true"),
        FLASK_APP="wsgi",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


class Process:
    """A child process with its log file; stopped by PID (its own process group)."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path):
        self.args, self.env, self.log_path = args, env, log
        self.proc: subprocess.Popen | None = None

    def start(self) -> Process:
        self.log_file = open(self.log_path, "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(  # noqa: S603
            self.args,
            env=self.env,
            cwd=ROOT,
            stdout=self.log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return self

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig: int) -> None:
        if self.alive:
            os.killpg(self.proc.pid, sig)

    @property
    def pid(self) -> int:
        assert self.proc is not None, "not started"
        return self.proc.pid

    def stop(self, timeout: float = 15) -> None:
        if self.proc is None:
            return
        if self.alive:
            self.signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.signal(signal.SIGKILL)
                self.proc.wait(5)
        self.log_file.close()

    def kill(self) -> None:
        self.signal(signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(10)

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")


def process_command(name: str, *extra: str) -> list[str]:
    """The command line users run for process `name` (webapp/processes.py: the one definition)."""
    return [sys.executable, "-m", "webapp.processes", name, *extra]


def wait_for(predicate, timeout: float, what: str = "a condition", interval: float = 0.1):
    """The predicate's first true value; AssertionError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def free_port() -> int:
    """A TCP port the OS picked, free when asked."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


#: The setting that gives each serving process its address (webapp/processes.py).
BIND_SETTINGS = {"web": "WEB_BIND", "live": "LIVE_BIND"}


def serve(name: str, env: dict[str, str], log: Path, port: int | None = None) -> Process:
    """Process `name` ("web" or "live") as users start it, on 127.0.0.1:`port` (a free port when
    None), its log in `log` ({port} filled in); returned once it accepts connections, its port
    in `.port`. If it exits first, AssertionError with the end of its log."""
    port = port or free_port()
    env = {**env, BIND_SETTINGS[name]: f"127.0.0.1:{port}"}
    proc = Process(process_command(name), env, Path(str(log).format(port=port))).start()
    proc.port = port

    def up() -> bool:
        if not proc.alive:
            raise AssertionError(proc.output()[-3000:])
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", port)) == 0

    try:
        wait_for(up, 30, f"the {name} process on port {port}")
    except BaseException:
        proc.stop()
        raise
    return proc


@contextmanager
def serve_in_process(app) -> Iterator[Any]:
    """`app` on a threaded werkzeug server in this process (flask-sock works on it), for tests
    that need a real socket but the test's own app and database session. On exit the server
    stops and so do the live fan-out and hub its sockets started: their threads would otherwise
    keep a LISTEN connection and push with this app for the rest of the session."""
    from werkzeug.serving import make_server

    from webapp.live.fanout import stop_all

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        thread.join(5)
        stop_all()
