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

Cost: one statement reading the window only (through the received_at index of each partition it
touches), one hash aggregate per run in PostgreSQL; no scan of older history, no new index.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import and_, case, false, func, literal, literal_column, not_, or_, select

from models import Message

from ..auth.scope import Scope
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


def _runs(scope: Scope, flt: StalledFilter, settings: Any, now: datetime):
    """SELECT of the stalled runs (one row each) in scope and filter: a subquery to list or count.

    One pass over the window's rows (a hash aggregate per pipeline and hash): for every pipeline
    type, the time of its latest successful and of its latest failed attempt. Which stage a run
    reached, whether its latest attempt there failed and whether it completed are then read from
    those few columns per run, not from the rows again."""
    since = now - timedelta(days=flt.days or settings.STALLED_WINDOW_DAYS)
    pipelines = _pipelines(settings)
    all_stages = stages(settings)
    types = [t for st in all_stages for t in st.types]
    pipeline_of = {t: st.pipeline for st in all_stages for t in st.types}
    m = Message

    ok_at = {
        t: func.max(m.received_at).filter(and_(m.message_type == t, not_(m.errored))) for t in types
    }
    failed_at = {
        t: func.max(m.received_at).filter(and_(m.message_type == t, m.errored)) for t in types
    }
    # Identifiers are aggregated only to filter by them (the listed runs get theirs afterwards,
    # `_identifiers`): every aggregate widens each run's state in the hash table.
    filtered = [name for name in ("instrument", "investigation") if getattr(flt, name)]
    per_run = scope.apply(
        select(
            case(pipeline_of, value=m.message_type).label("pipeline"),
            m.hash,
            func.min(m.received_at).label("started_at"),
            func.max(m.received_at).label("last_at"),
            func.max(m.id).label("latest_id"),
            func.count().label("reports"),
            *(_any_value(getattr(m, name)).label(name) for name in filtered),
            *(ok_at[t].label(f"ok_{i}") for i, t in enumerate(types)),
            *(failed_at[t].label(f"failed_{i}") for i, t in enumerate(types)),
        ).where(_window(since, now, types)),
        Message,
    ).group_by(literal_column("1"), m.hash)
    r = per_run.subquery("per_run")

    ok = {t: r.c[f"ok_{i}"] for i, t in enumerate(types)}
    bad = {t: r.c[f"failed_{i}"] for i, t in enumerate(types)}
    reached = {t: or_(ok[t].is_not(None), bad[t].is_not(None)) for t in types}
    # The latest attempt of a type failed (a retry after it decides; a tie counts as failed).
    latest_failed = {
        t: and_(bad[t].is_not(None), or_(ok[t].is_(None), bad[t] >= ok[t])) for t in types
    }
    latest_ok = {t: and_(ok[t].is_not(None), or_(bad[t].is_(None), ok[t] > bad[t])) for t in types}
    # Stages of a run's own pipeline only (each type belongs to one pipeline).
    furthest = case(
        *(
            (or_(*(reached[t] for t in st.types)), st.number)
            for st in sorted(all_stages, key=lambda st: -st.number)
        ),
        else_=0,
    )
    complete = or_(
        false(),
        *(
            and_(r.c.pipeline == p, *(latest_ok[t] for t in pipeline[-1]))
            for p, pipeline in enumerate(pipelines, 1)
        ),
    )
    cutoff = case(
        {
            p: literal(now - timedelta(minutes=settings.stalled_after_minutes(pipeline)))
            for p, pipeline in enumerate(pipelines, 1)
        },
        value=r.c.pipeline,
    )
    types_reached = sum((case((reached[t], 1), else_=0) for t in types), literal(0))
    latest_type = case(*((or_(ok[t] == r.c.last_at, bad[t] == r.c.last_at), t) for t in types))
    # Each run's flags, computed once (the outer query reads them by name).
    flags = (
        select(
            r.c.pipeline,
            r.c.hash,
            furthest.label("stage"),
            r.c.started_at,
            r.c.last_at,
            r.c.latest_id,
            latest_type.label("latest_type"),
            r.c.reports,
            (r.c.reports > types_reached).label("retried"),
            *(r.c[name] for name in filtered),
            *(
                or_(*(latest_failed[t] for t in st.types)).label(f"failed_{i}")
                for i, st in enumerate(all_stages)
            ),
        )
        .where(not_(complete), r.c.started_at < cutoff)
        .subquery("flags")
    )
    f = flags.c
    # Failed: the latest attempt of a type of the stage the run stopped at failed.
    failed = or_(
        false(),
        *(
            and_(f.pipeline == st.pipeline, f.stage == st.number, f[f"failed_{i}"])
            for i, st in enumerate(all_stages)
        ),
    )
    stmt = select(
        f.pipeline,
        f.hash,
        f.stage,
        failed.label("failed"),
        f.started_at,
        f.last_at,
        f.latest_id,
        f.latest_type,
        f.reports,
        f.retried,
    )
    if flt.stage is not None:
        stage = _stage_of(settings, flt.stage)
        stmt = stmt.where(f.pipeline == stage.pipeline, f.stage == stage.number)
    if flt.state is not None:
        stmt = stmt.where(failed if flt.state == "failed" else not_(failed))
    if flt.instrument is not None:
        stmt = stmt.where(f.instrument == flt.instrument)
    if flt.investigation is not None:
        stmt = stmt.where(f.investigation == flt.investigation)
    return stmt, since


def _window(since: datetime, now: datetime, types: Sequence[str]):
    """The rows runs are made of: pipeline types with a hash, received in the window."""
    return and_(
        Message.received_at >= since,
        Message.received_at <= now,
        Message.message_type.in_(sorted(types)),
        Message.hash.is_not(None),
    )


def _any_value(column):
    """The run's value of an identifier: any stage's (stage 1 names the dataset, later stages
    its id); byte order ("C") is enough to pick the one non-null value, and cheaper."""
    return func.max(column.collate("C"))


def _identifiers(
    scope: Scope, hashes: Sequence[str], since: datetime, now: datetime, types: Sequence[str]
) -> dict[str, Any]:
    """Instrument, investigation, dataset and dataset id of the runs of these hashes (the
    listed ones), from the same rows in scope: one probe of ix_messages_hash per hash."""
    if not hashes:
        return {}
    m = Message
    stmt = scope.apply(
        select(
            m.hash,
            *(_any_value(getattr(m, name)).label(name) for name in IDENTIFIER_COLUMNS),
        ).where(_window(since, now, types), m.hash.in_(sorted(set(hashes)))),
        Message,
    ).group_by(m.hash)
    return {row.hash: row for row in db.session.execute(stmt)}


#: Identifier columns of a listed run.
IDENTIFIER_COLUMNS = ("instrument", "investigation", "dataset", "dataset_id")


def _now(now: datetime | None) -> datetime:
    return now if now is not None else datetime.now(UTC)


def count_stalled(
    scope: Scope,
    now: datetime | None = None,
    flt: StalledFilter | None = None,
    settings: Any = None,
) -> int:
    """How many runs are stalled now in `scope` (default window, or `flt`): for alert rules."""
    settings = settings or current_app.extensions["settings"]
    stmt, _ = _runs(scope, flt or StalledFilter(), settings, _now(now))
    runs = stmt.subquery("runs")
    return db.session.execute(select(func.count()).select_from(runs)).scalar_one()


def list_stalled(
    scope: Scope, flt: StalledFilter, now: datetime | None = None, settings: Any = None
) -> StalledReport:
    """Stalled runs grouped by the stage they stopped at (pipeline order), every group counted
    and its `flt.limit` newest runs listed, newest stop first (two statements: the runs, then
    the identifiers of the listed ones)."""
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
    all_stages = stages(settings)
    by_key = {(st.pipeline, st.number): st for st in all_stages}
    groups: dict[tuple[int, int], StageGroup] = {}
    rows = db.session.execute(listed).all()
    types = [t for st in all_stages for t in st.types]
    found = _identifiers(scope, [row.hash for row in rows], since, now, types)
    for row in rows:
        identifiers = found.get(row.hash)
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
                **{name: getattr(identifiers, name, None) for name in IDENTIFIER_COLUMNS},
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
