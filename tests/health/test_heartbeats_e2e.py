"""Real worker and beat processes write their own heartbeats, and /healthz reads them right:
ok when both run, the reports a worker holds while its batch cannot commit, a task queue nobody
consumes named as such (not blamed on beat), and a stopped beat named as beat."""

from __future__ import annotations

import contextlib
import json
from dataclasses import replace

import psycopg2
import pytest
from kombu import Connection, Exchange, Producer

from tests.conftest import admin_dsn
from tests.factories import report_body
from tests.processes import wait_for
from webapp.health import queries as status

pytestmark = pytest.mark.slow


@contextlib.contextmanager
def app_settings(app, **changes):
    original = app.extensions["settings"]
    app.extensions["settings"] = replace(original, **changes)
    try:
        yield app.extensions["settings"]
    finally:
        app.extensions["settings"] = original


def heartbeat_rows(dsn: str) -> dict[str, dict]:
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT name, detail FROM heartbeats")
        rows = dict(cur.fetchall())
    conn.close()
    return rows


def workers(dsn: str) -> dict[str, dict]:
    return {k: v for k, v in heartbeat_rows(dsn).items() if k.startswith("worker:")}


def publish(settings, names, count: int) -> None:
    with Connection(settings.broker_url, connect_timeout=5) as conn:
        exchange = Exchange(names["DASHBOARD_EXCHANGE"], type="direct", durable=True)
        producer = Producer(conn.channel(), exchange=exchange)
        for _ in range(count):
            producer.publish(
                report_body(),
                routing_key=names["DASHBOARD_ROUTING_KEY"],
                content_type="application/json",
                content_encoding="utf-8",
                delivery_mode=2,
            )


def test_worker_and_beat_heartbeats_and_healthz(
    app, db, settings, unique_names, start_worker, start_beat, monkeypatch
):
    dsn = admin_dsn(settings.POSTGRES_DB)
    worker = start_worker("hb", **unique_names)
    beat = start_beat(**unique_names)
    client = app.test_client()

    # Each process writes its own row: the worker from its heartbeat thread, beat from its tick.
    rows = wait_for(lambda: (w := workers(dsn)) and w, 20, "the worker's heartbeat")
    (row_name, detail), *others = rows.items()
    assert others == []
    node = detail["node"]
    assert row_name == f"worker:{node}" and node.startswith("hb-")
    assert detail["pid"] > 0 and detail["report_queue"] == unique_names["DASHBOARD_QUEUE"]
    detail = wait_for(
        lambda: (d := workers(dsn)[row_name])["started"] and d, 20, "the worker to be ready"
    )
    assert detail["consuming_reports"] is True and detail["held_unacked"] == 0
    assert detail["up_seconds"] >= 0 and detail["ready_at"]
    beat_row = wait_for(lambda: heartbeat_rows(dsn).get("beat"), 30, "beat's heartbeat", 0.2)
    entries = {e["name"]: e for e in beat_row["schedule"]}
    assert {"tasks-heartbeat", "partitions-maintain", "receipts-prune"} <= set(entries)
    assert entries["tasks-heartbeat"]["task"] == "tasks.maintenance.tasks_heartbeat"
    assert entries["tasks-heartbeat"]["next_run_at"]
    assert "tasks" not in heartbeat_rows(dsn), "beat must not need a worker for its heartbeat"

    with app_settings(app, **unique_names):
        # Nobody consumes a task queue of another name: the task queue is named, beat and the
        # worker (both fine) are not.
        with app_settings(app, CELERY_QUEUE=unique_names["CELERY_QUEUE"] + "-nobody"):
            body = client.get("/healthz").get_json()
        assert body["problems"] == [
            f"no worker consumes {unique_names['CELERY_QUEUE']}-nobody "
            "(the queue does not exist yet; no task has run yet)"
        ]

        # The heartbeat task, sent as beat sends it, is run by the worker from the task queue.
        app.extensions["celery"].send_task(
            "tasks.maintenance.tasks_heartbeat", queue=unique_names["CELERY_QUEUE"]
        )
        tasks_row = wait_for(lambda: heartbeat_rows(dsn).get("tasks"), 20, "the task heartbeat")
        assert tasks_row["worker"] == node

        response = client.get("/healthz")
        body = response.get_json()
        assert response.status_code == 200, body
        assert body["status"] == "ok", body["problems"]
        assert body["report_queue"]["consumers"] == 1
        assert body["task_queue"]["consumers"] >= 1
        assert body["beat"]["alive"] and body["tasks_heartbeat"]["worker"] == node
        assert [w["name"] for w in body["workers"]] == [node]
        assert body["workers"][0]["alive"] and body["workers"][0]["started"]
        assert {e["name"] for e in body["schedule"]} >= {"tasks-heartbeat"}

        # A batch that cannot commit (its receipts insert waits on a lock): the worker's
        # heartbeat thread reports the held deliveries although the batch never finishes.
        locker = psycopg2.connect(dsn)
        try:
            with locker.cursor() as cur:
                cur.execute("LOCK TABLE report_receipts IN SHARE MODE")
            publish(settings, unique_names, 5)
            held = wait_for(
                lambda: (d := workers(dsn)[row_name])["held_unacked"] == 5 and d,
                20,
                "the heartbeat to show 5 held reports",
                0.2,
            )
            assert held["held_in_flight"] == 5 and held["oldest_held_seconds"] >= 0
            monkeypatch.setattr(status, "HELD_STALE_SECONDS", 0)
            body = client.get("/healthz").get_json()
            assert body["workers"][0]["held_unacked"] == 5
            assert len(body["problems"]) == 1, body["problems"]
            assert body["problems"][0].startswith(f"worker {node} holds 5 reports unacked for ")
            # The broker agrees (its management statistics lag a few seconds).
            wait_for(
                lambda: client.get("/healthz").get_json()["report_queue"]["unacked"] == 5,
                20,
                "the management API to count 5 unacked",
                0.5,
            )
        finally:
            locker.rollback()
            locker.close()
        # Committed and acked: the next heartbeat (poked by the batch) holds nothing.
        wait_for(lambda: workers(dsn)[row_name]["held_unacked"] == 0, 10, "held back to 0", 0.2)
        detail = workers(dsn)[row_name]
        assert detail["last_batch_size"] == 5 and detail["totals"]["stored"] == 5
        monkeypatch.setattr(status, "HELD_STALE_SECONDS", 30)
        assert client.get("/healthz").get_json()["problems"] == []

        # Beat stops: beat is named, the task queue (still consumed) is not.
        beat.stop()
        monkeypatch.setattr(status, "BEAT_STALE_SECONDS", 0)
        body = client.get("/healthz").get_json()
        assert len(body["problems"]) == 1 and body["problems"][0].startswith(
            "beat has not ticked for "
        ), body["problems"]

    # A worker that stops on purpose removes its row: it is not missing.
    worker.stop()
    assert workers(dsn) == {}, worker.output()[-2000:]
    assert json.dumps(heartbeat_rows(dsn).get("beat")), "beat's row stays: one beat must run"
