"""scripts/services.sh with a port someone else holds (another checkout's services, a system
server): `status` does not call them ours, and `start` stops naming the port and its variable
instead of writing this RUN_DIR's credentials for a server that is not the one answering.

Before: `make bench` in a second clone, with the first clone's bench services up, took them for
its own (status only knocked on the port) and failed on a missing `.run-bench/env`; RabbitMQ's
start waited for the port, found the other broker answering and reported itself ready.
"""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.test_services import free_low_port

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def held_port() -> Iterator[int]:
    """A port on 127.0.0.1 that a process other than the services listens on."""
    port = free_low_port()
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", port))
        listener.listen()
        yield port


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(  # noqa: S603
        args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False
    )


def ports_env(run_dir: Path, **ports: int) -> dict[str, str]:
    """This environment with a RUN_DIR of its own and every service port free unless given."""
    env = {**os.environ, "RUN_DIR": str(run_dir)}
    for name in ("PG_PORT", "RMQ_PORT", "RMQ_MGMT_PORT", "RMQ_DIST_PORT", "ERL_EPMD_PORT"):
        env[name] = str(ports.get(name) or free_low_port())
    return env


def test_status_calls_up_only_this_run_dirs_services(tmp_path, held_port):
    own = {
        **os.environ,
        "PG_PORT": os.environ["POSTGRES_PORT"],
        "RMQ_PORT": os.environ["RMQ_PORT"],
    }
    status = run(["scripts/services.sh", "status"], own)
    assert status.returncode == 0, status.stdout
    assert f"postgres: up ({os.environ['POSTGRES_PORT']}," in status.stdout

    # The same ports from another RUN_DIR: they answer, but not for it.
    other = {**own, "RUN_DIR": str(tmp_path / "other")}
    status = run(["scripts/services.sh", "status"], other)
    assert status.returncode == 1
    assert f"postgres: down (port {os.environ['POSTGRES_PORT']} is held by another process" in (
        status.stdout
    )
    assert f"rabbitmq: down (port {os.environ['RMQ_PORT']} is held by another process" in (
        status.stdout
    )


@pytest.mark.parametrize(
    ("command", "variable", "what"),
    [
        ("pg-start", "PG_PORT", "PostgreSQL"),
        ("rmq-start", "RMQ_PORT", "RabbitMQ"),
        ("rmq-start", "RMQ_MGMT_PORT", "RabbitMQ management"),
        ("rmq-start", "RMQ_DIST_PORT", "RabbitMQ distribution"),
    ],
)
def test_start_refuses_a_port_someone_else_holds(tmp_path, held_port, command, variable, what):
    run_dir = tmp_path / "run"
    result = run(["scripts/services.sh", command], ports_env(run_dir, **{variable: held_port}))
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(
        f"[services] error: {what}: port {held_port} ({variable}) is in use by another process"
    ), result.stderr
    assert f"not by this RUN_DIR's services ({run_dir})" in last
    # Nothing was started, and no environment points anywhere.
    assert not (run_dir / "env").exists()
    assert not list(run_dir.glob("rabbitmq/*.pid"))


def test_make_test_in_a_second_checkout_says_which_port_is_taken(tmp_path, held_port):
    """What a newcomer runs (`make test` is scripts/test.sh) on a machine where the default
    port is someone else's: one line naming the port, not a missing-file error."""
    run_dir = tmp_path / "run"
    result = run(
        ["scripts/test.sh", "--collect-only", "-q", "tests/test_smoke.py"],
        ports_env(run_dir, PG_PORT=held_port),
    )
    assert result.returncode != 0
    assert f"PostgreSQL: port {held_port} (PG_PORT) is in use by another process" in (result.stderr)
    assert "No such file" not in result.stderr
