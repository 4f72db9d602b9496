"""Stalled pipeline runs: which datasets did not get through their pipeline, and where they stopped.
Reads only, never commits; every function takes the caller's `Scope` and applies it.

Definitions (the page's explanation and README "Stalled pipelines" say the same):

- A *pipeline* is one of PIPELINES (stages of message types, in order; types of one stage run in
  parallel). A *run* is the reports of one pipeline's types that share a hash (a dataset's
  stages carry its payload's hash, DESIGN §3), received within the window: the last `days` days
  (default STALLED_WINDOW_DAYS). Reports without a hash belong to no run.
- A run has *completed* when every type of the pipeline's last stage has a report whose latest
  attempt succeeded. A failed stage retried with the same hash counts by its latest attempt: a
  successful retry is progress, a failed one is not.
- A run is *stalled* when it has not completed and its first report in the window is older than
  the pipeline's time (STALLED_AFTER_BY_PIPELINE, else STALLED_AFTER_MINUTES).
- It *stopped at* the furthest stage it reached: `failed` when the latest attempt of a type of that
  stage failed, else `waiting` (the stage succeeded, or part of a parallel stage did, and nothing
  later came). *Since* is the time of its latest report.
- Runs are judged on the reports the user's scope sees (the one permission gate): a stage of a
  type the user may not see counts as not reached; the page says which types those are.

Cost: one statement over the window only, through ix_messages_message_type_received_at (the
pipeline's types and received_at), grouped in PostgreSQL; no scan of older history.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import (
    DateTime,
    Integer,
    Text,
    and_,
    column,
    func,
    not_,
    select,
    values,
)
from sqlalchemy.dialects.postgresql import aggregate_order_by

from models import Message

from ..config import Pipeline, parse_pipelines
from ..errors import InvalidFilter
from ..extensions import db
from ..messages.queries import scope_types
from .filters import StalledFilter


@dataclass(frozen=True)
class Stage:
    """One stage of one pipeline (`pipeline` counts from 1, as does `number`)."""

    pipeline: int
    number: int
    types: tuple[str, ...]

    @property
    def label(self) -> str:
        return " + ".join(self.types)

    @property
    def key(self) -> str:
        """The `stage` filter value naming this stage: its first message type."""
        return self.types[0]


@dataclass
class StalledRun:
    """One stalled run: where it stopped, since when, and what it is about."""

    hash: str
    stage: Stage
    state: str  # failed | waiting
    started_at: datetime
    last_at: datetime
    #: The latest report of the run (the trace link).
    latest_id: int
    latest_type: str
    reports: int
    retried: bool
    instrument: str | None
    investigation: str | None
    dataset: str | None
    dataset_id: str | None


@dataclass
class StageGroup:
    """The stalled runs stopped at one stage: all counted, the newest `limit` listed."""

    stage: Stage
    count: int
    runs: list[StalledRun] = field(default_factory=list)


@dataclass
class StalledReport:
    """The stalled runs of a window, grouped by the stage they stopped at (pipeline order)."""

    since: datetime
    now: datetime
    days: int
    groups: list[StageGroup]
    #: Minutes after which a run of each pipeline counts as stalled, by its first type.
    stalled_after: dict[str, int]
    #: Types of the pipelines this scope may not see (their stages count as not reached).
    hidden_types: tuple[str, ...] = ()

    @property
    def total(self) -> int:
        return sum(g.count for g in self.groups)


def _pipelines(settings: Any) -> tuple[Pipeline, ...]:
    return parse_pipelines(settings.PIPELINES)


def stages(settings: Any = None) -> list[Stage]:
    """Every stage of every pipeline, in order (the page's stage filter offers these)."""
    settings = settings or current_app.extensions["settings"]
    return [
        Stage(p, n, types)
        for p, pipeline in enumerate(_pipelines(settings), start=1)
        for n, types in enumerate(pipeline, start=1)
    ]


def _stage_of(settings: Any, message_type: str) -> Stage:
    for stage in stages(settings):
        if message_type in stage.types:
            return stage
    raise InvalidFilter(
        f"'stage': {message_type[:100]!r} is not a message type of any pipeline.", field="stage"
    )


def check_stage(message_type: str | None, settings: Any = None) -> None:
    """InvalidFilter (field `stage`) unless `message_type` is None or a type of a pipeline."""
    if message_type is not None:
        _stage_of(settings or current_app.extensions["settings"], message_type)


def _runs(scope: Any, flt: StalledFilter, settings: Any, now: datetime):
    """SELECT of the stalled runs (one row each) in scope and filter: a subquery to list or count."""
    since = now - timedelta(days=flt.days or settings.STALLED_WINDOW_DAYS)
    pipelines = _pipelines(settings)
    # One row per pipeline type: its pipeline and stage, and per pipeline what "complete" needs
    # (the last stage and how many types it has) and the cut-off before which a start is stalled.
    rows = []
    for p, pipeline in enumerate(pipelines, start=1):
        cutoff = now - timedelta(minutes=settings.stalled_after_minutes(pipeline))
        for n, types in enumerate(pipeline, start=1):
            rows += [(t, p, n, len(pipeline), len(pipeline[-1]), cutoff) for t in types]
    stage_map = (
        values(
            column("message_type", Text),
            column("pipeline", Integer),
            column("stage", Integer),
            column("last_stage", Integer),
            column("last_types", Integer),
            column("cutoff", DateTime(timezone=True)),
            name="stage_map",
        )
        .data(rows)
        .alias("stage_map")
    )
    types = sorted(r[0] for r in rows)

    # 1. The latest attempt of each type of each hash in the window (retries collapse here).
    reports = scope.apply(
        select(
            Message.hash,
            Message.message_type,
            func.min(Message.received_at).label("first_at"),
            func.max(Message.received_at).label("last_at"),
            func.array_agg(
                aggregate_order_by(Message.errored, Message.received_at.desc(), Message.id.desc())
            )[1].label("last_errored"),
            func.max(Message.id).label("last_id"),
            func.count().label("attempts"),
            func.max(Message.instrument).label("instrument"),
            func.max(Message.investigation).label("investigation"),
            func.max(Message.dataset).label("dataset"),
            func.max(Message.dataset_id).label("dataset_id"),
        ).where(
            Message.received_at >= since,
            Message.received_at <= now,
            Message.message_type.in_(types),
            Message.hash.is_not(None),
        ),
        Message,
    ).group_by(Message.hash, Message.message_type)
    per_type = reports.subquery("per_type")

    # 2. With its stage, and the furthest stage the run (pipeline, hash) reached.
    staged = (
        select(
            per_type,
            stage_map.c.pipeline,
            stage_map.c.stage,
            stage_map.c.last_stage,
            stage_map.c.last_types,
            stage_map.c.cutoff,
            func.max(stage_map.c.stage)
            .over(partition_by=(stage_map.c.pipeline, per_type.c.hash))
            .label("furthest"),
        )
        .join_from(per_type, stage_map, stage_map.c.message_type == per_type.c.message_type)
        .subquery("staged")
    )
    s = staged.c
    at_furthest = s.stage == s.furthest
    ok_at_furthest = func.count().filter(and_(at_furthest, not_(s.last_errored)))
    instrument = func.max(s.instrument)
    investigation = func.max(s.investigation)
    started_at = func.min(s.first_at)

    # 3. One row per run; only those not complete and started before their pipeline's cut-off.
    stmt = (
        select(
            s.pipeline,
            s.hash,
            func.max(s.furthest).label("stage"),
            func.coalesce(func.bool_or(s.last_errored).filter(at_furthest), False).label("failed"),
            started_at.label("started_at"),
            func.max(s.last_at).label("last_at"),
            func.max(s.last_id).label("latest_id"),
            func.array_agg(aggregate_order_by(s.message_type, s.last_at.desc(), s.last_id.desc()))[
                1
            ].label("latest_type"),
            func.sum(s.attempts).label("reports"),
            (func.sum(s.attempts) > func.count()).label("retried"),
            instrument.label("instrument"),
            investigation.label("investigation"),
            func.max(s.dataset).label("dataset"),
            func.max(s.dataset_id).label("dataset_id"),
        )
        .group_by(s.pipeline, s.hash)
        .having(
            not_(
                and_(
                    func.max(s.furthest) == func.max(s.last_stage),
                    ok_at_furthest == func.max(s.last_types),
                )
            ),
            started_at < func.max(s.cutoff),
        )
    )
    if flt.stage is not None:
        stage = _stage_of(settings, flt.stage)
        stmt = stmt.where(s.pipeline == stage.pipeline).having(func.max(s.furthest) == stage.number)
    if flt.state is not None:
        failed = func.coalesce(func.bool_or(s.last_errored).filter(at_furthest), False)
        stmt = stmt.having(failed if flt.state == "failed" else not_(failed))
    if flt.instrument is not None:
        stmt = stmt.having(instrument == flt.instrument)
    if flt.investigation is not None:
        stmt = stmt.having(investigation == flt.investigation)
    return stmt, since


def _now(now: datetime | None) -> datetime:
    return now if now is not None else datetime.now(UTC)


def count_stalled(
    scope: Any, now: datetime | None = None, flt: StalledFilter | None = None, settings: Any = None
) -> int:
    """How many runs are stalled now in `scope` (default window, or `flt`): for alert rules."""
    settings = settings or current_app.extensions["settings"]
    stmt, _ = _runs(scope, flt or StalledFilter(), settings, _now(now))
    runs = stmt.subquery("runs")
    return db.session.execute(select(func.count()).select_from(runs)).scalar_one()


def list_stalled(
    scope: Any, flt: StalledFilter, now: datetime | None = None, settings: Any = None
) -> StalledReport:
    """Stalled runs grouped by the stage they stopped at (pipeline order), every group counted
    and its `flt.limit` newest runs listed, newest stop first (one statement)."""
    settings = settings or current_app.extensions["settings"]
    now = _now(now)
    stmt, since = _runs(scope, flt, settings, now)
    runs = stmt.subquery("runs")
    per_stage = (runs.c.pipeline, runs.c.stage)
    ranked = select(
        runs,
        func.count().over(partition_by=per_stage).label("stage_count"),
        func.row_number()
        .over(partition_by=per_stage, order_by=(runs.c.last_at.desc(), runs.c.hash))
        .label("rank"),
    ).subquery("ranked")
    listed = (
        select(ranked)
        .where(ranked.c.rank <= flt.limit)
        .order_by(ranked.c.pipeline, ranked.c.stage, ranked.c.last_at.desc(), ranked.c.hash)
    )
    by_key = {(st.pipeline, st.number): st for st in stages(settings)}
    groups: dict[tuple[int, int], StageGroup] = {}
    for row in db.session.execute(listed):
        stage = by_key[(row.pipeline, row.stage)]
        group = groups.setdefault((row.pipeline, row.stage), StageGroup(stage, row.stage_count))
        group.runs.append(
            StalledRun(
                hash=row.hash,
                stage=stage,
                state="failed" if row.failed else "waiting",
                started_at=row.started_at,
                last_at=row.last_at,
                latest_id=row.latest_id,
                latest_type=row.latest_type,
                reports=int(row.reports),
                retried=bool(row.retried),
                instrument=row.instrument,
                investigation=row.investigation,
                dataset=row.dataset,
                dataset_id=row.dataset_id,
            )
        )
    pipelines = _pipelines(settings)
    allowed = scope_types(scope)
    hidden = (
        ()
        if allowed is None
        else tuple(t for p in pipelines for st in p for t in st if t not in allowed)
    )
    return StalledReport(
        since=since,
        now=now,
        days=flt.days or settings.STALLED_WINDOW_DAYS,
        groups=list(groups.values()),
        stalled_after={p[0][0]: settings.stalled_after_minutes(p) for p in pipelines},
        hidden_types=hidden,
    )
