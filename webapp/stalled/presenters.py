"""Stalled runs as the page and the API show them, through the scope's field rule."""

from __future__ import annotations

from typing import Any

from flask import url_for

from .queries import StageGroup, StalledReport, StalledRun

#: What identifies a run's dataset: shown only to a scope that `can_see` each (DESIGN §7). The
#: rest of a run (its stage, state, times, types, report count, hash, message id) is read from
#: metadata: type, status, received time, hash.
IDENTIFIERS = ("instrument", "investigation", "dataset", "dataset_id")


def run_fields(run: StalledRun, scope: Any) -> dict[str, Any]:
    """One run as a dict (JSON-ready), identifiers only where the scope may see them."""
    out: dict[str, Any] = {
        "hash": run.hash,
        "stage": run.stage.number,
        "stage_types": list(run.stage.types),
        "state": run.state,
        "started_at": run.started_at.isoformat(),
        "since": run.last_at.isoformat(),
        "latest_message_id": run.latest_id,
        "latest_type": run.latest_type,
        "reports": run.reports,
        "retried": run.retried,
        "links": {
            "trace": url_for("messages.trace", message_id=run.latest_id),
            "api_trace": url_for("api.trace_message", message_id=run.latest_id),
        },
    }
    for name in IDENTIFIERS:
        if scope.can_see(name):
            out[name] = getattr(run, name)
    return out


def group_fields(group: StageGroup, scope: Any) -> dict[str, Any]:
    return {
        "pipeline": group.stage.pipeline,
        "stage": group.stage.number,
        "stage_types": list(group.stage.types),
        "stage_key": group.stage.key,
        "count": group.count,
        "runs": [run_fields(r, scope) for r in group.runs],
    }


def report_fields(report: StalledReport, scope: Any) -> dict[str, Any]:
    """The whole report for /api/v1/stalled."""
    return {
        "since": report.since.isoformat(),
        "now": report.now.isoformat(),
        "days": report.days,
        "total": report.total,
        "stalled_after_minutes": report.stalled_after,
        "hidden_types": list(report.hidden_types),
        "groups": [group_fields(g, scope) for g in report.groups],
    }
