"""Health and metrics. Both are cheap: no scan of `messages` (rollups, catalogue, heartbeats)."""

from __future__ import annotations

import logging

from flask import Response, current_app, jsonify, request

from ..extensions import db
from . import bp, queries

logger = logging.getLogger(__name__)


def _check_broker() -> dict:
    """The report queue's depth and consumers (for /metrics)."""
    broker, _, _ = queries.read_broker(current_app.extensions["settings"])
    return broker


@bp.get("/healthz")
def healthz():
    """Database, broker, queues, workers, beat and its schedule, with each problem named.

    503 when the database or the broker is unreachable (`down`); otherwise 200, `ok` or
    `degraded` with `problems` (webapp/health/queries.py says why)."""
    body, code = queries.system_status()
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


@bp.get("/metrics")
def metrics():
    """Prometheus text, or OpenMetrics when asked (`Accept: application/openmetrics-text`).
    Totals come from rollups and worker heartbeats, never a scan (webapp/health/prom.py)."""
    from . import prom
    from .metrics_access import refusal

    refused = refusal(current_app.extensions["settings"])
    if refused is not None:
        return refused
    snapshot = prom.read_database(db)
    body, content_type = prom.exposition(
        request.headers.get("Accept", ""), snapshot, _check_broker()
    )
    return Response(body, headers={"Content-Type": content_type})
