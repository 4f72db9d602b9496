"""Migrations: autogenerate finds nothing on an up-to-date database (runtime partitions are
ignored), and the revisions downgrade and upgrade again."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import psycopg2
import pytest

from tests.conftest import admin_dsn
from tests.processes import process_environ

ROOT = Path(__file__).resolve().parent.parent
FLASK = str(Path(sys.executable).parent / "flask")


def flask(db_name: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(  # noqa: S603
        [FLASK, "--app", "wsgi", *args],
        env=process_environ(db_name),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_autogenerate_finds_no_changes_with_partitions_present(app, test_db_name, tmp_path):
    # The session database has the ranged partitions and the DEFAULT one.
    check = flask(test_db_name, "db", "check")
    assert check.returncode == 0, check.stderr
    assert "No new upgrade operations detected" in check.stdout + check.stderr
    before = set((ROOT / "migrations" / "versions").iterdir())
    migrate = flask(test_db_name, "db", "migrate", "-m", "should be empty")
    after = set((ROOT / "migrations" / "versions").iterdir())
    for created in after - before:  # never leave a stray revision behind
        created.unlink()
    assert after == before, migrate.stdout + migrate.stderr
    assert "drop" not in (migrate.stdout + migrate.stderr).lower()


@pytest.mark.services
def test_downgrade_to_base_and_upgrade_again():
    name = f"pd_mig_{uuid.uuid4().hex[:8]}"
    admin = psycopg2.connect(admin_dsn())
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    try:
        for args in (
            ("db", "upgrade"),
            ("partitions", "create"),
            ("db", "downgrade", "base"),
            ("db", "upgrade"),
            ("db", "check"),
        ):
            proc = flask(name, *args)
            assert proc.returncode == 0, f"{args}: {proc.stderr[-2000:]}"
    finally:
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        admin.close()
