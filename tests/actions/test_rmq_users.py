"""scripts/rmq-users.sh against the real broker: the re-ingest user gets exactly the password it
is given, even one rabbitmqctl could read as an option."""

from __future__ import annotations

import os
import secrets
import subprocess
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import pytest
from kombu import Connection

ROOT = Path(__file__).resolve().parents[2]


def _rabbitmqctl(*args: str) -> subprocess.CompletedProcess:
    """rabbitmqctl in the environment scripts/services.sh gives the private broker."""
    run_dir = Path(os.environ["RUN_DIR"])
    port = os.environ["RMQ_PORT"]
    env = {
        **os.environ,
        "HOME": str(run_dir / "rabbitmq" / "home"),
        "RABBITMQ_NODENAME": f"pacer-dashboard-{port}@localhost",
        "ERL_EPMD_PORT": os.environ.get("ERL_EPMD_PORT", "25675"),
    }
    return subprocess.run(
        ["/usr/lib/rabbitmq/bin/rabbitmqctl", "--quiet", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _as(broker_url: str, user: str, password: str) -> str:
    parts = urlsplit(broker_url)
    netloc = f"{quote(user, safe='')}:{quote(password, safe='')}@{parts.hostname}:{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


@pytest.mark.parametrize("first", ["-", "--"])
def test_a_password_starting_with_a_dash_is_the_users_password(tmp_path, broker_url, first):
    user = f"test-reingest-{secrets.token_hex(4)}"
    password = first + "Z" + secrets.token_urlsafe(12)
    env = {
        **os.environ,
        "REINGEST_RMQ_USERNAME": user,
        "REINGEST_RMQ_PASSWORD": password,
        "REINGEST_EXCHANGES": "dataset-ingest-exchange",
        "RMQ_USERS_ENV_FILE": str(tmp_path / "env"),
    }
    try:
        done = subprocess.run(
            ["bash", str(ROOT / "scripts" / "rmq-users.sh")],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert done.returncode == 0, done.stderr
        with Connection(_as(broker_url, user, password), connect_timeout=10) as conn:
            conn.connect()  # refused (ACCESS_REFUSED) when the password was not set
        assert f"REINGEST_RMQ_USERNAME={user}" in (tmp_path / "env").read_text()
    finally:
        _rabbitmqctl("delete_user", "--", user)
