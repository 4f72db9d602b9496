"""Stalled runs as the page and the API show them, through the scope's field rule."""

from __future__ import annotations

from typing import Any

from flask import url_for

from ..auth.scope import Scope
from .queries import StageGroup, StalledReport, StalledRun

#: What identifies a run's dataset: shown only to a scope that `can_see` each (DESIGN §7). The
#: rest of a run (its stage, state, times, types, report count, hash, message id) is read from
#: metadata: type, status, received time, hash.
IDENTIFIERS = ("instrument", "investigation", "dataset", "dataset_id")


class Links:
    """URLs of a message's pages, built once per response (url_for per row is measurable on
    a page of hundreds of runs): the route's URL with the id put in."""

    _SENTINEL = 987654321

    def __init__(self) -> None:
        self._patterns = {
            name: url_for(endpoint, message_id=self._SENTINEL).replace(str(self._SENTINEL), "{}")
            for name, endpoint in (
                ("detail", "messages.detail"),
                ("trace", "messages.trace"),
                ("api_trace", "api.trace_message"),
            )
        }

    def __getattr__(self, name: str):
        try:
            pattern = self.__dict__["_patterns"][name]
        except KeyError:
            raise AttributeError(name) from None
        return pattern.format


def run_fields(run: StalledRun, scope: Scope, links: Links | None = None) -> dict[str, Any]:
    """One run as a dict (JSON-ready), identifiers only where the scope may see them."""
    links = links or Links()
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
            "trace": links.trace(run.latest_id),
            "api_trace": links.api_trace(run.latest_id),
        },
    }
    for name in IDENTIFIERS:
        if scope.can_see(name):
            out[name] = getattr(run, name)
    return out


def group_fields(group: StageGroup, scope: Scope, links: Links | None = None) -> dict[str, Any]:
    return {
        "pipeline": group.stage.pipeline,
        "stage": group.stage.number,
        "stage_types": list(group.stage.types),
        "stage_key": group.stage.key,
        "count": group.count,
        "runs": [run_fields(r, scope, links) for r in group.runs],
    }


def report_fields(report: StalledReport, scope: Scope) -> dict[str, Any]:
    """The whole report for /api/v1/stalled."""
    links = Links()
    return {
        "since": report.since.isoformat(),
        "now": report.now.isoformat(),
        "days": report.days,
        "total": report.total,
        "stalled_after_minutes": report.stalled_after,
        "hidden_types": list(report.hidden_types),
        "groups": [group_fields(g, scope, links) for g in report.groups],
    }
