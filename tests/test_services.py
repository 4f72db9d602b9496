"""scripts/services.sh as root with a RUN_DIR the `postgres` user cannot reach.

A clone in /root (mode 0700) or in a `mktemp -d` folder: initdb and postgres run as `postgres`
(initdb refuses root), so the cluster must live elsewhere, without loosening anyone's home. Uses
its own PostgreSQL on its own port; the shared services are not touched.
"""

from __future__ import annotations

import os
import pwd
import random
import shutil
import socket
import stat
import subprocess
import tempfile
from pathlib import Path

import psycopg2
import pytest

ROOT = Path(__file__).resolve().parent.parent
SERVICES = str(ROOT / "scripts" / "services.sh")
RESERVED_PORTS = set(range(25400, 25700)) | set(range(26400, 26700))


def postgres_installed() -> bool:
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        return False
    return any(Path("/usr/lib/postgresql").glob("*/bin/initdb"))


pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not postgres_installed(),
    reason="the relocation only happens as root, with PostgreSQL installed",
)


def free_low_port() -> int:
    while True:
        port = random.randrange(20000, 32000)
        if port in RESERVED_PORTS:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port


def port_open(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def services(command: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(  # noqa: S603
        [SERVICES, command], env=env, capture_output=True, text=True, timeout=180, check=False
    )


PASSWORD = "test-" + os.urandom(8).hex()


def query(port: int, sql: str, password: str = PASSWORD):
    conn = psycopg2.connect(
        host="127.0.0.1",
        port=port,
        dbname="pacer-dashboard",
        user="pacer-dashboard",
        password=password,
        connect_timeout=5,
    )
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            return cur.fetchall() if cur.description else None
    finally:
        conn.close()


def test_root_with_a_private_run_dir_keeps_the_cluster_where_postgres_can_reach_it(tmp_path):
    private = tmp_path / "home"  # like /root: mode 0700, owned by root
    private.mkdir(mode=0o700)
    run_dir = private / "pd" / ".run"
    base = Path(tempfile.mkdtemp(prefix="pd-relocated-"))  # stands for /var/lib/pacer-dashboard
    base.chmod(0o755)
    port = free_low_port()
    env = {
        **os.environ,
        "RUN_DIR": str(run_dir),
        "PG_PORT": str(port),
        "PG_FAST": "1",
        "PG_RELOCATED_BASE": str(base),
        "POSTGRES_PASSWORD": PASSWORD,
    }
    reach = subprocess.run(  # noqa: S603
        ["runuser", "-u", "postgres", "--", "test", "-x", str(private)],  # noqa: S607
        check=False,
    )
    assert reach.returncode != 0, "precondition: the postgres user cannot enter the private folder"
    try:
        started = services("pg-start", env)
        assert started.returncode == 0, started.stderr
        link = run_dir / "postgres"
        assert link.is_symlink()
        cluster = Path(os.readlink(link))
        assert cluster.parent == base
        info = cluster.stat()
        assert stat.S_IMODE(info.st_mode) == 0o700
        assert info.st_uid == pwd.getpwnam("postgres").pw_uid
        assert (cluster / "data" / "PG_VERSION").exists()
        assert (cluster / "postgres.log").exists()
        assert stat.S_IMODE(private.stat().st_mode) == 0o700, "the private folder is untouched"
        query(port, "CREATE TABLE kept (x int)")

        status = services("status", env)
        assert f"postgres: up ({port}, data in {cluster}/data)" in status.stdout

        # pg-stop / pg-start (what the reliability tests do) find the same cluster again.
        assert services("pg-stop", env).returncode == 0
        assert not port_open(port)
        assert services("pg-start", env).returncode == 0
        assert query(port, "SELECT count(*) FROM kept") == [(0,)]

        # RUN_DIR removed while PostgreSQL runs: the next start finds it by the RUN_DIR's hash.
        shutil.rmtree(run_dir)
        again = services("pg-start", env)
        assert again.returncode == 0, again.stderr
        assert "already running" in again.stderr
        assert Path(os.readlink(link)) == cluster

        assert services("pg-stop", env).returncode == 0
        assert not port_open(port)

        # RUN_DIR removed after pg-stop (as the reliability fixtures do): the cluster is an orphan,
        # deleted by the next services.sh start or stop of any RUN_DIR.
        shutil.rmtree(run_dir)
        other = {**env, "RUN_DIR": str(tmp_path / "other-run")}
        assert services("pg-stop", other).returncode == 0
        assert not cluster.exists()
    finally:
        services("pg-stop", env)
        shutil.rmtree(base, ignore_errors=True)


def test_each_run_dir_generates_its_own_passwords_and_tcp_needs_them(tmp_path):
    """No shared default password: without POSTGRES_PASSWORD/RMQ_PASSWORD a RUN_DIR generates its
    own (mode 600, written to $RUN_DIR/env); TCP on 127.0.0.1 needs the password."""
    run_dir = tmp_path / "run"
    port = free_low_port()
    env = {k: v for k, v in os.environ.items() if k not in ("POSTGRES_PASSWORD", "RMQ_PASSWORD")}
    env.update(RUN_DIR=str(run_dir), PG_PORT=str(port), PG_FAST="1")
    try:
        started = services("pg-start", env)
        assert started.returncode == 0, started.stderr
        secret = run_dir / "secrets" / "postgres-password"
        assert stat.S_IMODE(secret.stat().st_mode) == 0o600
        generated = secret.read_text().strip()
        assert len(generated) >= 32 and generated != "pacer-local"
        assert query(port, "SELECT 1", password=generated) == [(1,)]
        for wrong in ("pacer-local", ""):
            with pytest.raises(psycopg2.OperationalError, match="password"):
                query(port, "SELECT 1", password=wrong)
        # The broker's is generated too, with / @ : % in it (URL quoting is always exercised).
        rmq = (run_dir / "secrets" / "rabbitmq-password").read_text().strip()
        assert rmq != "pa/ss@w:rd%local" and all(c in rmq for c in "/@:%")
        # The same RUN_DIR keeps its passwords.
        assert services("pg-stop", env).returncode == 0
        assert services("pg-start", env).returncode == 0
        assert secret.read_text().strip() == generated
        assert query(port, "SELECT 1", password=generated) == [(1,)]
    finally:
        services("pg-stop", env)
