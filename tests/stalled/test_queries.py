"""Stalled runs against real PostgreSQL: the definition, retries, windows, filters and scope."""

from __future__ import annotations

from datetime import timedelta

import pytest
from werkzeug.datastructures import MultiDict

from tests.stalled.support import NOW, RUNS, STALLED
from webapp.auth.scope import ANONYMOUS, Rule, Scope, admin_scope
from webapp.errors import InvalidFilter
from webapp.stalled import queries
from webapp.stalled.filters import StalledFilter


def by_stage(report) -> dict[int, set[str]]:
    return {g.stage.number: {r.hash for r in g.runs} for g in report.groups}


def flt(**args) -> StalledFilter:
    return StalledFilter.from_args(MultiDict(args))


def test_stalled_runs_grouped_by_the_stage_they_stopped_at(db, runs):
    report = queries.list_stalled(admin_scope(), StalledFilter(), now=NOW)
    assert by_stage(report) == STALLED
    assert [g.count for g in report.groups] == [1, 3, 2]
    assert report.total == 6 == queries.count_stalled(admin_scope(), now=NOW)
    found = {r.hash: r for g in report.groups for r in g.runs}
    # A failed stage retried and failed again: failed, retried; retried and succeeded: waiting.
    assert found["re7r1edfa1100005"].state == "failed"
    assert found["re7r1edfa1100005"].retried
    assert found["f1xedwa171000010"].state == "waiting"
    assert found["fa11ed2000000003"].state == "failed"
    assert found["pa7a11e100000006"].state == "waiting"  # one of two parallel types missing
    assert found["1a57fa1100000007"].state == "failed"
    run = found["57uck0n1e0000002"]
    assert (run.instrument, run.investigation) == ("bl06", "INV-SIX")
    assert run.latest_id == runs.ids["57uck0n1e0000002"][-1]
    assert run.last_at == NOW - timedelta(hours=5)
    # The latest report of a run is the trace link and its type is shown.
    assert found["fa11ed2000000003"].latest_type == "internal-dataset-ingestion"


def test_complete_young_and_out_of_window_runs_are_not_stalled(db, runs):
    listed = {
        r.hash
        for g in queries.list_stalled(admin_scope(), StalledFilter(), now=NOW).groups
        for r in g.runs
    }
    assert "c0mp1e7e00000001" not in listed  # every stage ok
    assert "re7r1ed0k0000004" not in listed  # failed stage 2, retried ok, then completed
    assert "y0un900000000008" not in listed  # started 30 minutes ago (< 120)
    assert "01d0u751de000009" not in listed  # 5 days ago: outside the default 3 days
    week = queries.list_stalled(admin_scope(), flt(days="7"), now=NOW)
    assert "01d0u751de000009" in by_stage(week)[1]
    # A run becomes stalled when its time passes.
    later = queries.count_stalled(admin_scope(), now=NOW + timedelta(hours=2))
    assert later == 7


def test_per_pipeline_time(db, runs, settings):
    import dataclasses

    longer = dataclasses.replace(settings, STALLED_AFTER_BY_PIPELINE="internal-statistics=600")
    assert queries.count_stalled(admin_scope(), now=NOW, settings=longer) == 0
    shorter = dataclasses.replace(settings, STALLED_AFTER_BY_PIPELINE="dataset-ingestion=10")
    assert queries.count_stalled(admin_scope(), now=NOW, settings=shorter) == 7


def test_filters(db, runs):
    def listed(**args):
        return by_stage(queries.list_stalled(admin_scope(), flt(**args), now=NOW))

    assert listed(stage="internal-dataset-ingestion") == {2: STALLED[2]}
    assert listed(stage="internal-dataset-links") == {3: STALLED[3]}  # any type of the stage
    assert listed(state="failed") == {
        2: {"fa11ed2000000003", "re7r1edfa1100005"},
        3: {"1a57fa1100000007"},
    }
    assert listed(state="waiting") == {
        1: STALLED[1],
        2: {"f1xedwa171000010"},
        3: {"pa7a11e100000006"},
    }
    assert listed(instrument="bl06") == {1: STALLED[1]}
    assert listed(instrument="BL06") == {1: STALLED[1]}
    assert listed(investigation="INV-LAST") == {3: {"1a57fa1100000007"}}
    # Counts stay complete when the list is limited.
    report = queries.list_stalled(admin_scope(), flt(limit="1"), now=NOW)
    assert [(g.count, len(g.runs)) for g in report.groups] == [(1, 1), (3, 1), (2, 1)]
    with pytest.raises(InvalidFilter) as refused:
        queries.list_stalled(admin_scope(), flt(stage="user-sync"), now=NOW)
    assert refused.value.field == "stage"


@pytest.mark.parametrize(
    ("args", "field"),
    [
        ({"days": "0"}, "days"),
        ({"days": "31"}, "days"),
        ({"state": "x"}, "state"),
        ({"limit": "501"}, "limit"),
        ({"limit": "a"}, "limit"),
        ({"days": "²"}, "days"),  # a digit to str.isdigit, not to int()
        ({"instrument": "bl\x0006"}, "instrument"),  # PostgreSQL refuses NUL in text
    ],
)
def test_bad_arguments_name_their_field(args, field):
    with pytest.raises(InvalidFilter) as refused:
        StalledFilter.from_args(MultiDict(args))
    assert refused.value.field == field


def restricted(*rules: Rule) -> Scope:
    return Scope(details=True, rules=rules, restricted=True)


def test_scope_by_type_sees_nothing_of_other_types(db, runs):
    scope = restricted(Rule(message_types=frozenset({"user-sync"})))
    report = queries.list_stalled(scope, StalledFilter(), now=NOW)
    assert report.groups == []
    assert queries.count_stalled(scope, now=NOW) == 0
    assert set(report.hidden_types) == {
        "dataset-ingestion",
        "internal-dataset-ingestion",
        "internal-statistics",
        "internal-dataset-links",
    }


def test_scope_by_instrument(db, runs):
    scope = restricted(Rule(identifiers=(("instrument", frozenset({"bl06"})),)))
    assert by_stage(queries.list_stalled(scope, StalledFilter(), now=NOW)) == {1: STALLED[1]}
    assert queries.count_stalled(scope, now=NOW) == 1


def test_scope_judges_runs_on_the_types_it_sees(db, runs):
    scope = restricted(Rule(message_types=frozenset({"dataset-ingestion"})))
    report = queries.list_stalled(scope, StalledFilter(), now=NOW)
    # Only stage 1 is visible: every old-enough run in the window stops there for this user.
    assert set(by_stage(report)) == {1}
    assert len(by_stage(report)[1]) == len([h for h, r in RUNS.items() if 1 < r[2] < 72])
    assert "internal-dataset-ingestion" in report.hidden_types


def test_metadata_only_scope_counts_every_run(db, runs):
    assert queries.count_stalled(ANONYMOUS, now=NOW) == 6
