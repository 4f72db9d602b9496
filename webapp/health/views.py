"""Health and metrics. Both are cheap: no scan of `messages` (rollups and catalogue only)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from flask import Response, current_app, jsonify
from sqlalchemy import text

from models.messages import PARTITION_PREFIX

from ..extensions import db
from ..partitions import services as partitions
from . import bp

logger = logging.getLogger(__name__)

#: The beat heartbeat is written every minute; older than this = beat is not running.
BEAT_STALE_SECONDS = 300


def _check_database() -> dict:
    try:
        conn = db.session.connection()
        conn.execute(text("SELECT 1"))
        ahead = partitions.partitions_ahead(conn)
        default_rows = partitions.default_partition_rows(conn)
        rows = conn.execute(text("SELECT name, at, detail FROM heartbeats")).all()
        db.session.rollback()
    except Exception as exc:  # noqa: BLE001 - any failure means "down", with its reason
        db.session.rollback()
        return {"ok": False, "error": f"{type(exc).__name__}: {str(exc).splitlines()[0]}"}
    beat = next((r for r in rows if r.name == "beat"), None)
    ingest = [r for r in rows if r.name.startswith("ingest:")]
    last_ingest = max((r.detail.get("last_batch_at") for r in ingest if r.detail), default=None)
    return {
        "ok": True,
        "partitions_ahead": ahead,
        "default_partition_rows": default_rows,
        "beat_heartbeat": beat.at.isoformat() if beat else None,
        "last_ingest_at": last_ingest,
    }


def _check_broker() -> dict:
    from amqp.exceptions import NotFound
    from kombu import Connection

    settings = current_app.extensions["settings"]
    try:
        with Connection(settings.broker_url, ssl=settings.broker_use_ssl, connect_timeout=3) as c:
            c.ensure_connection(max_retries=1, timeout=3)
            try:
                _, messages, consumers = c.default_channel.queue_declare(
                    queue=settings.DASHBOARD_QUEUE, passive=True
                )
            except NotFound:
                # The broker answers; the queue appears when the first worker declares it.
                return {"ok": True, "report_queue_exists": False, "report_consumers": 0}
        return {
            "ok": True,
            "report_queue_exists": True,
            "report_queue_depth": messages,
            "report_consumers": consumers,
        }
    except Exception as exc:  # noqa: BLE001
        return {"ok": False, "error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"}


@bp.get("/healthz")
def healthz():
    settings = current_app.extensions["settings"]
    database = _check_database()
    broker = _check_broker()
    problems = []
    if not database["ok"]:
        problems.append("database unreachable")
    else:
        if database["partitions_ahead"] < settings.MESSAGE_PARTITIONS_AHEAD:
            problems.append(
                f"only {database['partitions_ahead']} partitions ahead "
                f"(want {settings.MESSAGE_PARTITIONS_AHEAD}); run `flask partitions create`"
            )
        if database["default_partition_rows"]:
            problems.append(
                f"{database['default_partition_rows']} rows in the default partition; "
                "run `flask partitions create`"
            )
        beat = database["beat_heartbeat"]
        if (
            beat is None
            or (datetime.now(UTC) - datetime.fromisoformat(beat)).total_seconds()
            > BEAT_STALE_SECONDS
        ):
            problems.append("no beat heartbeat in the last 5 minutes")
    if not broker["ok"]:
        problems.append("broker unreachable")
    elif not broker["report_queue_exists"]:
        problems.append(
            f"report queue '{settings.DASHBOARD_QUEUE}' does not exist yet: no worker has started"
        )
    # Database or broker down = unhealthy (503); the rest is reported as degraded but served.
    healthy = database["ok"] and broker["ok"]
    status = "ok" if not problems else ("degraded" if healthy else "down")
    body = {
        "status": status,
        "problems": problems,
        "database": database,
        "broker": broker,
        "time": datetime.now(UTC).isoformat(),
    }
    return jsonify(body), 200 if healthy else 503


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
        up, by_type, quarantined, workers, parts = 0, [], (0, 0), [], 0

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
