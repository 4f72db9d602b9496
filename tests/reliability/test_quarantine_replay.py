"""Quarantine replay after a fix: `flask quarantine replay` ingests what is valid now, keeps the
rest (with its current reason), never stores a report twice, and can be run again safely."""

from __future__ import annotations

import json
import subprocess
import uuid

import psycopg2
import pytest

from tests.conftest import admin_dsn
from tests.factories import report_body
from tests.processes import ROOT, VENV_BIN, process_environ, wait_for
from tests.reliability.conftest import Publisher, delete_queue

pytestmark = pytest.mark.slow

RENAMED_TASK = "pacer.tasks.log_message_v2"


def renamed(rid: str | None = None, **kwargs) -> bytes:
    body = json.loads(report_body(id=rid or f"renamed-{uuid.uuid4()}", **kwargs))
    body["task"] = RENAMED_TASK
    return json.dumps(body).encode()


def rows(dsn: str, sql: str, params: tuple = ()) -> list[tuple]:
    conn = psycopg2.connect(dsn)
    try:
        with conn.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall()
    finally:
        conn.close()


def replay(db_name: str, **env: str) -> str:
    done = subprocess.run(  # noqa: S603
        [str(VENV_BIN / "flask"), "--app", "wsgi", "quarantine", "replay"],
        env=process_environ(db_name, **env),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout.strip().splitlines()[-1]


def test_replay_after_fixes_ingests_the_now_valid_and_keeps_the_rest(
    db, settings, unique_names, start_worker
):
    dsn = admin_dsn(settings.POSTGRES_DB)
    stored_first = [report_body(id=f"ok-{i}-{uuid.uuid4()}") for i in range(3)]
    # PACER renamed its task before the dashboard was told...
    renamed_reports = [renamed() for _ in range(5)]
    # ...one of them a re-send of a report the dashboard already has...
    duplicate = renamed(rid=json.loads(stored_first[0])["id"])
    # ...some reports were over a REPORT_MAX_BYTES set too low...
    too_big = [report_body(id=f"big-{uuid.uuid4()}", payload="p" * 6000) for _ in range(3)]
    # ...and some bodies are simply not reports.
    garbage = [b"not json at all", b'{"id": "g", "task": 7}', renamed(errored="no")]

    worker = start_worker("strict", REPORT_MAX_BYTES="4096", INGEST_FLUSH_MS="50", **unique_names)
    publisher = Publisher(settings.broker_url, unique_names)
    try:
        publisher.publish_all(stored_first + renamed_reports + [duplicate] + too_big + garbage)
        quarantined_total = len(renamed_reports) + 1 + len(too_big) + len(garbage)
        wait_for(
            lambda: (
                rows(dsn, "SELECT count(*) FROM quarantined_reports")[0][0] == quarantined_total
            ),
            60,
            "the bodies to be quarantined",
        )
        assert rows(dsn, "SELECT count(*) FROM messages")[0][0] == len(stored_first)
    finally:
        publisher.close()
        worker.stop()
        delete_queue(settings.broker_url, unique_names)

    # Fix 1: a sensible REPORT_MAX_BYTES (the default). Only the big reports become valid.
    assert replay(settings.POSTGRES_DB) == "ingested 3, already stored 0, still invalid 9"
    # Fix 2: the new task name. The renamed reports become valid; the re-sent one is a duplicate.
    assert (
        replay(settings.POSTGRES_DB, REPORT_TASK_NAME=RENAMED_TASK)
        == "ingested 5, already stored 1, still invalid 3"
    )

    ids = [json.loads(b)["id"] for b in stored_first + renamed_reports + too_big]
    stored = rows(dsn, "SELECT report_id, count(*) FROM messages GROUP BY report_id")
    assert dict(stored) == dict.fromkeys(ids, 1)  # each once, the duplicate not twice
    # The big payloads were stored whole.
    lengths = rows(dsn, "SELECT length(payload) FROM messages WHERE report_id LIKE 'big-%%'")
    assert lengths == [(6000,)] * 3
    # Replayed rows point at the message they became (the duplicate at none: already stored).
    replayed = rows(
        dsn,
        "SELECT q.body, m.report_id FROM quarantined_reports q "
        "LEFT JOIN messages m ON m.id = q.replayed_message_id WHERE q.replayed_at IS NOT NULL",
    )
    assert len(replayed) == len(renamed_reports) + 1 + len(too_big)
    for body, report_id in replayed:
        if bytes(body) == duplicate:
            assert report_id is None
        else:
            assert report_id == json.loads(bytes(body))["id"]
    # The rest stays waiting, with the reason the current configuration gives.
    waiting = rows(
        dsn, "SELECT body, reason FROM quarantined_reports WHERE replayed_at IS NULL ORDER BY id"
    )
    assert sorted(bytes(b) for b, _ in waiting) == sorted(garbage)
    reasons = {bytes(b): r for b, r in waiting}
    assert reasons[b"not json at all"].startswith("body is not JSON")
    assert "errored" in reasons[garbage[2]]

    # Replaying again changes nothing.
    assert replay(settings.POSTGRES_DB, REPORT_TASK_NAME=RENAMED_TASK) == (
        "ingested 0, already stored 0, still invalid 3"
    )
    assert rows(dsn, "SELECT count(*) FROM messages")[0][0] == len(ids)
