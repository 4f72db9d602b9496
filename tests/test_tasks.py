"""Beat tasks run their services: partitions, receipts pruning, heartbeat."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import text

from tasks.maintenance import prune_receipts, tasks_heartbeat
from tasks.partitions import maintain_partitions


def test_beat_schedule_has_the_maintenance_tasks(app):
    schedule = app.extensions["celery"].conf.beat_schedule
    tasks = {entry["task"] for entry in schedule.values()}
    assert {
        "tasks.partitions.maintain_partitions",
        "tasks.maintenance.prune_receipts",
        "tasks.maintenance.tasks_heartbeat",
    } <= tasks


def test_report_queue_is_not_a_celery_task_queue(app, settings):
    conf = app.extensions["celery"].conf
    assert conf.task_default_queue == settings.CELERY_QUEUE != settings.DASHBOARD_QUEUE


def test_maintain_partitions_is_idempotent(db):
    result = maintain_partitions()
    assert result["created"] == []
    assert result["locked_out"] is False
    assert result["dropped"] == []


def test_prune_receipts_keeps_the_dedupe_window(db, settings):
    old = datetime.now(UTC) - timedelta(days=settings.DEDUPE_WINDOW_DAYS + 1)
    db.session.execute(
        text("INSERT INTO report_receipts VALUES ('old', :old), ('new', now())"), {"old": old}
    )
    db.session.commit()
    assert prune_receipts() == 1
    remaining = db.session.execute(text("SELECT report_id FROM report_receipts")).scalars().all()
    assert remaining == ["new"]


def test_tasks_heartbeat_is_recorded_under_its_own_name(db):
    """The task proves a worker consumes the task queue: it must not pose as beat's heartbeat."""
    tasks_heartbeat()
    tasks_heartbeat()
    rows = db.session.execute(text("SELECT name FROM heartbeats")).scalars().all()
    assert rows == ["tasks"]


def test_tasks_heartbeat_forgets_workers_gone_for_a_day(db):
    db.session.execute(
        text(
            "INSERT INTO heartbeats (name, at, detail) VALUES "
            "('worker:old@h', now() - interval '25 hours', '{}'), "
            "('worker:recent@h', now() - interval '2 hours', '{}'), "
            "('ingest:h:1', now() - interval '25 hours', '{}')"
        )
    )
    db.session.commit()
    tasks_heartbeat()
    rows = db.session.execute(text("SELECT name FROM heartbeats ORDER BY name")).scalars().all()
    assert rows == ["ingest:h:1", "tasks", "worker:recent@h"]


def test_beat_writes_its_own_heartbeat_from_its_scheduler(app):
    conf = app.extensions["celery"].conf
    assert conf.beat_scheduler == "tasks.beat:HeartbeatScheduler"
