"""Celery settings (lowercase, Celery's names) and the beat schedule, in one place.

`build(settings)` returns them for the app's validated settings: the schedules are configurable.
"""

from __future__ import annotations

from typing import Any

from celery.schedules import crontab

TASK_MODULES = [
    "tasks.partitions",
    "tasks.maintenance",
    "tasks.actions",
    "tasks.investigations",
    "tasks.alerts",
]


def _cron(expr: str) -> crontab:
    minute, hour, day_of_month, month_of_year, day_of_week = expr.split()
    return crontab(
        minute=minute,
        hour=hour,
        day_of_month=day_of_month,
        month_of_year=month_of_year,
        day_of_week=day_of_week,
    )


def build(settings: Any) -> dict[str, Any]:
    """Celery configuration for these settings."""
    return {
        "broker_url": settings.broker_url,
        "broker_use_ssl": settings.broker_use_ssl,
        "broker_connection_retry_on_startup": True,
        "broker_connection_max_retries": None,
        "result_backend": None,
        "task_ignore_result": True,
        "task_serializer": "json",
        "accept_content": ["json"],
        "result_serializer": "json",
        "timezone": "UTC",
        "enable_utc": True,
        "include": TASK_MODULES,
        # Our own task queue; never the report queue, which only the consumer step reads.
        "task_default_queue": settings.CELERY_QUEUE,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "worker_send_task_events": True,
        "task_send_sent_event": True,
        "task_time_limit": 3600,
        "task_soft_time_limit": 3300,
        "beat_schedule": {
            "partitions-maintain": {
                "task": "tasks.partitions.maintain_partitions",
                "schedule": _cron(settings.PARTITIONS_CRON),
                "options": {"expires": 3600},
            },
            "receipts-prune": {
                "task": "tasks.maintenance.prune_receipts",
                "schedule": crontab(minute="7", hour="*"),
                "options": {"expires": 3000},
            },
            # Bulk re-ingestion jobs whose worker died mid-job are marked failed.
            "reingest-jobs-sweep": {
                "task": "tasks.actions.sweep_stale_jobs",
                "schedule": 120.0,
                "options": {"expires": 110},
            },
            "investigation-checks": {
                "task": "tasks.investigations.run_checks",
                "schedule": _cron(settings.INVESTIGATION_CHECKS_CRON),
                "options": {"expires": 6 * 3600},
            },
            # Alert rules (webapp/alerts): advisory-locked, so two beats never fire twice.
            "alerts-evaluate": {
                "task": "tasks.alerts.evaluate_rules",
                "schedule": float(settings.ALERT_EVALUATE_SECONDS),
                "options": {"expires": settings.ALERT_EVALUATE_SECONDS},
            },
            # Proves a worker consumes the task queue (row `tasks`); beat's own heartbeat (row
            # `beat`) is written by the scheduler below, without any worker.
            "tasks-heartbeat": {
                "task": "tasks.maintenance.tasks_heartbeat",
                "schedule": 60.0,
                "options": {"expires": 55},
            },
        },
        "beat_scheduler": "tasks.beat:HeartbeatScheduler",
    }
