"""Beat tasks run their services: partitions, receipts pruning, heartbeat."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import text

from tasks.maintenance import beat_heartbeat, prune_receipts
from tasks.partitions import maintain_partitions


def test_beat_schedule_has_the_maintenance_tasks(app):
    schedule = app.extensions["celery"].conf.beat_schedule
    tasks = {entry["task"] for entry in schedule.values()}
    assert {
        "tasks.partitions.maintain_partitions",
        "tasks.maintenance.prune_receipts",
        "tasks.maintenance.beat_heartbeat",
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


def test_beat_heartbeat_is_recorded(db):
    beat_heartbeat()
    beat_heartbeat()
    rows = db.session.execute(text("SELECT name FROM heartbeats")).scalars().all()
    assert rows == ["beat"]
