"""Health and metrics. Both are cheap: no scan of `messages` (rollups, catalogue, heartbeats)."""

from __future__ import annotations

import logging

from flask import Response, current_app, jsonify
from sqlalchemy import text

from models.messages import PARTITION_PREFIX

from ..extensions import db
from . import bp, status

logger = logging.getLogger(__name__)


def _check_broker() -> dict:
    """The report queue's depth and consumers (for /metrics)."""
    broker, _, _ = status.read_broker(current_app.extensions["settings"])
    return broker


@bp.get("/healthz")
def healthz():
    """Database, broker, queues, workers, beat and its schedule, with each problem named.

    503 when the database or the broker is unreachable (`down`); otherwise 200, `ok` or
    `degraded` with `problems` (webapp/health/status.py says why)."""
    body, code = status.system_status()
    if not _may_see_details():
        body = summary(body)
    return jsonify(body), code


def _may_see_details() -> bool:
    """Administrators, and monitoring that passes the /metrics guard when one is configured
    (METRICS_TOKEN / METRICS_ALLOW_NETWORKS), see every detail; anyone else the summary."""
    from ..auth.scope import current_scope
    from .metrics_access import refusal

    if current_scope().is_admin:
        return True
    settings = current_app.extensions["settings"]
    guarded = bool(settings.METRICS_TOKEN or settings.METRICS_ALLOW_NETWORKS)
    return guarded and refusal(settings) is None


def summary(body: dict) -> dict:
    """What /healthz tells anyone: the verdict and which parts are up, not the worker names,
    hosts, pids, schedule or error texts of the full answer (the System page has them)."""
    return {
        "status": body["status"],
        "problem_count": len(body.get("problems", [])),
        "database": {"ok": body["database"]["ok"]},
        "broker": {"ok": body["broker"]["ok"]},
        "time": body.get("time"),
        "detail": "sign in as an administrator (the System page) or use the metrics token",
    }


def _escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


@bp.get("/metrics")
def metrics():
    """Prometheus text format. Totals come from rollups and worker heartbeats, never a scan."""
    from .metrics_access import cap_message_types, refusal

    refused = refusal(current_app.extensions["settings"])
    if refused is not None:
        return refused
    lines: list[str] = []

    def metric(name: str, kind: str, help_text: str, samples: list[tuple[dict, float]]):
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            label = ",".join(f'{k}="{_escape_label(str(v))}"' for k, v in labels.items())
            lines.append(f"{name}{{{label}}} {value}" if label else f"{name} {value}")

    up = 1
    try:
        conn = db.session.connection()
        by_type = conn.execute(
            text(
                "SELECT message_type, sum(total) AS total, sum(errored) AS errored "
                "FROM message_stats GROUP BY message_type ORDER BY message_type"
            )
        ).all()
        quarantined = conn.execute(
            text(
                "SELECT count(*) FILTER (WHERE replayed_at IS NULL), count(*) FROM quarantined_reports"
            )
        ).one()
        workers = conn.execute(
            text("SELECT name, at, detail FROM heartbeats WHERE name LIKE 'ingest:%'")
        ).all()
        beats = conn.execute(
            text(
                "SELECT name, extract(epoch FROM now() - at) AS age, detail FROM heartbeats "
                "WHERE name NOT LIKE 'ingest:%' ORDER BY name"
            )
        ).all()
        parts = conn.execute(
            text(
                "SELECT count(*) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                "WHERE i.inhparent = 'messages'::regclass AND c.relname LIKE :p"
            ),
            {"p": PARTITION_PREFIX + "%"},
        ).scalar_one()
        db.session.rollback()
    except Exception:  # noqa: BLE001
        logger.exception("metrics: database unavailable")
        db.session.rollback()
        up, by_type, quarantined, workers, beats, parts = 0, [], (0, 0), [], [], 0

    metric("pacer_dashboard_database_up", "gauge", "1 when the database answered.", [({}, up)])
    metric(
        "pacer_dashboard_reports_ingested_total",
        "counter",
        "Reports stored, by message type (from the hourly rollups).",
        [({"message_type": r.message_type}, r.total) for r in cap_message_types(by_type)],
    )
    metric(
        "pacer_dashboard_reports_errored_total",
        "counter",
        "Stored reports that carried errors, by message type.",
        [({"message_type": r.message_type}, r.errored) for r in cap_message_types(by_type)],
    )
    metric(
        "pacer_dashboard_reports_quarantined_total",
        "counter",
        "Bodies quarantined as not-a-report (replayed or not).",
        [({}, int(quarantined[1]))],
    )
    metric(
        "pacer_dashboard_quarantine_waiting",
        "gauge",
        "Quarantined bodies not yet replayed.",
        [({}, int(quarantined[0]))],
    )
    metric(
        "pacer_dashboard_ingest_batch_seconds",
        "gauge",
        "Duration of the last committed batch, per worker.",
        [
            ({"worker": w.name.removeprefix("ingest:")}, w.detail.get("last_batch_seconds", 0))
            for w in workers
        ],
    )
    metric(
        "pacer_dashboard_ingest_batch_size",
        "gauge",
        "Reports in the last committed batch, per worker.",
        [
            ({"worker": w.name.removeprefix("ingest:")}, w.detail.get("last_batch_size", 0))
            for w in workers
        ],
    )
    metric(
        "pacer_dashboard_ingest_last_batch_timestamp_seconds",
        "gauge",
        "Unix time of the last committed batch, per worker.",
        [({"worker": w.name.removeprefix("ingest:")}, round(w.at.timestamp(), 3)) for w in workers],
    )
    metric(
        "pacer_dashboard_heartbeat_age_seconds",
        "gauge",
        "Seconds since each process's heartbeat: beat, tasks (the heartbeat task), worker:<node>.",
        [({"heartbeat": b.name}, round(float(b.age), 1)) for b in beats],
    )
    metric(
        "pacer_dashboard_worker_reports_held",
        "gauge",
        "Reports a worker holds unacked (pending + in flight + retry), as of its heartbeat.",
        [
            ({"worker": b.name.removeprefix("worker:")}, (b.detail or {}).get("held_unacked", 0))
            for b in beats
            if b.name.startswith("worker:")
        ],
    )
    broker = _check_broker()
    metric(
        "pacer_dashboard_report_queue_messages",
        "gauge",
        "Reports waiting in the report queue (queue lag); -1 when the broker is unreachable.",
        [({}, broker.get("report_queue_depth", 0 if broker["ok"] else -1))],
    )
    metric(
        "pacer_dashboard_report_queue_consumers",
        "gauge",
        "Consumers on the report queue.",
        [({}, broker.get("report_consumers", 0))],
    )
    metric("pacer_dashboard_partitions", "gauge", "Range partitions of messages.", [({}, parts)])
    return Response("\n".join(lines) + "\n", mimetype="text/plain; version=0.0.4")
