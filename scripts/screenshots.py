"""Screenshots of the message list, detail, trace, errors, stats and alerts pages from demo data,
for the README.

    set -a; . .run/env; set +a; .venv/bin/python scripts/screenshots.py [--out docs/screenshots]

Uses the running PostgreSQL (`make services`) and the system Chromium: creates a throwaway
database, migrates it, seeds demo reports (`flask demo seed`), serves it with gunicorn, takes the
screenshots in the light and dark themes, then stops gunicorn and drops the database.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import psycopg2

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run"]


def _admin_conn():
    conn = psycopg2.connect(
        host=os.environ["POSTGRES_HOST"],
        port=os.environ.get("POSTGRES_PORT", "5432"),
        user=os.environ.get("POSTGRES_USER", "pacer-dashboard"),
        password=os.environ.get("POSTGRES_PASSWORD", ""),
        dbname="postgres",
    )
    conn.autocommit = True
    return conn


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_port(port: int, proc: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit("gunicorn exited early")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise SystemExit("gunicorn did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "screenshots"))
    parser.add_argument("--count", type=int, default=600)
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    db_name = f"pd_screens_{os.getpid()}"
    env = {
        **os.environ,
        "POSTGRES_DB": db_name,
        "DISABLED_AUTH": "true",
        "ENVIRONMENT": "testing",
        "FLASK_APP": "wsgi",
        "SECRET_KEY": "screenshots-only",
    }
    admin = _admin_conn()
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{db_name}"')
    gunicorn = None
    try:
        flask = [str(BIN / "flask")]
        for command in (
            ["db", "upgrade"],
            ["partitions", "create"],
            ["demo", "seed", "--count", str(args.count), "--days", "2"],
        ):
            subprocess.run(flask + command, env=env, cwd=ROOT, check=True)  # noqa: S603
        _seed_alerts(db_name, flask, env)
        port = _free_port()
        # The web process as users start it (webapp/processes.py), on a free local port.
        gunicorn = subprocess.Popen(  # noqa: S603
            [sys.executable, "-m", "webapp.processes", "web"],
            env={**env, "WEB_BIND": f"127.0.0.1:{port}", "WEB_WORKERS": "1"},
            cwd=ROOT,
        )
        _wait_port(port, gunicorn)
        _shoot(f"http://127.0.0.1:{port}", out, db_name)
    finally:
        if gunicorn is not None:
            gunicorn.terminate()
            gunicorn.wait(10)
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')
        admin.close()


def _connect(db_name: str):
    return psycopg2.connect(
        host=os.environ["POSTGRES_HOST"],
        port=os.environ.get("POSTGRES_PORT", "5432"),
        user=os.environ.get("POSTGRES_USER", "pacer-dashboard"),
        password=os.environ.get("POSTGRES_PASSWORD", ""),
        dbname=db_name,
    )


#: Rules of the alerts screenshot: (name, kind, message type, threshold, window minutes).
# The seeded reports all arrive at once, so the silence rules get a threshold of a few seconds
# (fixed overrides; a real deployment learns them from the rollups) and the evaluation waits.
ALERT_RULES = [
    ("Every type reports", "silence", None, 0.05, 15),
    ("Proposal sync alive", "silence", "proposal-sync", 0.05, 15),
    ("Dataset ingestion failures", "error_rate", "dataset-ingestion", 5.0, 4320),
]


def _seed_alerts(db_name: str, flask: list[str], env: dict) -> None:
    """A few rules evaluated twice (`flask alerts evaluate`): open, snoozed and resolved incidents."""
    conn = _connect(db_name)
    with conn, conn.cursor() as cur:
        for name, kind, message_type, threshold, window in ALERT_RULES:
            cur.execute(
                "INSERT INTO alert_rules (name, kind, message_type, threshold, window_minutes, "
                "emails) VALUES (%s, %s, %s, %s, %s, %s)",
                (name, kind, message_type, threshold, window, ["ops@example.org"]),
            )
    evaluate = flask + ["alerts", "evaluate", "--no-send"]
    time.sleep(5)
    subprocess.run(evaluate, env=env, cwd=ROOT, check=True)  # noqa: S603
    with conn, conn.cursor() as cur:
        # Proposal sync 'reported again': its incident resolves at the next evaluation.
        cur.execute("UPDATE alert_rules SET threshold = 1e6 WHERE message_type = 'proposal-sync'")
        cur.execute(
            "UPDATE alert_incidents SET snoozed_until = now() + interval '2 hours', "
            "snoozed_by = 'ops@example.org' WHERE key = 'investigation-ops'"
        )
    subprocess.run(evaluate, env=env, cwd=ROOT, check=True)  # noqa: S603
    conn.close()


def _pick_message(db_name: str) -> int:
    """An errored internal stage of a complete 4-stage pipeline: a telling detail and trace."""
    conn = psycopg2.connect(
        host=os.environ["POSTGRES_HOST"],
        port=os.environ.get("POSTGRES_PORT", "5432"),
        user=os.environ.get("POSTGRES_USER", "pacer-dashboard"),
        password=os.environ.get("POSTGRES_PASSWORD", ""),
        dbname=db_name,
    )
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT m.id FROM messages m WHERE m.errored AND m.message_type IN "
                "('internal-dataset-ingestion', 'internal-statistics') AND (SELECT count(*) "
                "FROM messages o WHERE o.hash = m.hash) = 4 ORDER BY m.id LIMIT 1"
            )
            row = cur.fetchone()
            if row is None:
                cur.execute("SELECT id FROM messages WHERE errored ORDER BY id LIMIT 1")
                row = cur.fetchone()
            return row[0]
    finally:
        conn.close()


def _shoot(url: str, out: Path, db_name: str) -> None:
    from playwright.sync_api import sync_playwright

    message_id = _pick_message(db_name)
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=os.environ.get("CHROMIUM", "/usr/bin/chromium"), args=CHROMIUM_ARGS
        )
        for scheme in ("light", "dark"):
            page = browser.new_page(viewport={"width": 1440, "height": 900}, color_scheme=scheme)
            suffix = "" if scheme == "light" else "-dark"
            page.goto(url + "/")
            page.wait_for_selector("#live-status[data-state=live]")
            page.screenshot(path=str(out / f"list{suffix}.png"))
            page.goto(f"{url}/messages/{message_id}")
            page.screenshot(path=str(out / f"detail{suffix}.png"), full_page=True)
            page.goto(f"{url}/messages/{message_id}/trace")
            page.screenshot(path=str(out / f"trace{suffix}.png"), full_page=True)
            page.goto(f"{url}/errors?range=7d")
            page.wait_for_selector("[data-sparkline] svg")
            page.screenshot(path=str(out / f"errors{suffix}.png"))
            page.goto(f"{url}/stats?range=7d")
            page.wait_for_selector("#chart-volume canvas")
            page.screenshot(path=str(out / f"stats{suffix}.png"), full_page=True)
            page.goto(f"{url}/alerts")
            page.wait_for_selector("#incidents")
            page.screenshot(path=str(out / f"alerts{suffix}.png"))
            page.close()
        browser.close()
    print(f"screenshots written to {out}")  # noqa: T201


if __name__ == "__main__":
    main()
