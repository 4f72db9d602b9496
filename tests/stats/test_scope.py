"""A restricted user's statistics and error groups count only the messages in their scope."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tests.auth.support import login
from tests.factories import report_body
from tests.stats.support import basic_mix, no_messages_scan

NOW = datetime.now(UTC).replace(minute=30, second=0, microsecond=0)


@pytest.fixture
def mixed(write_reports):
    """BL13 dataset-ingestion: 3 ok + 2 errors; BL06 user-sync: 1 ok + 1 error; one
    proposal-sync on bl06 of another investigation, errored."""
    return write_reports(
        *basic_mix(),
        report_body(
            message_type="proposal-sync",
            object_identifiers={"name": "MX9999", "instrument": "bl06", "investigation": "OTHER1"},
            errored=True,
            error_message={"callback_func_proposal": "ValueError: no PI for MX9999"},
        ),
        now=NOW,
    )


def _as(client, make_group, make_user, **rules):
    groups = [make_group(f"g-{i}", **r) for i, r in enumerate(rules.values())]
    login(client, make_user("restricted", groups=groups))
    return client


def _numbers(client) -> tuple[int, int, dict[str, int]]:
    stats = client.get("/api/v1/stats?range=24h").get_json()
    groups = client.get("/api/v1/error-groups?range=24h").get_json()["items"]
    by_class = {g["exception_class"]: g["count"] for g in groups}
    return stats["summary"]["total"], stats["summary"]["errored"], by_class


def test_admin_view_counts_everything(client, mixed):
    assert _numbers(client) == (
        8,
        4,
        {"InvestigationNotFound": 2, "TimeoutError": 1, "ValueError": 1},
    )


def test_instrument_rule_counts_only_that_instrument(
    client, db, auth_enabled, make_group, make_user, mixed
):
    _as(client, make_group, make_user, a={"identifier_rules": {"instrument": ["BL06"]}})
    with no_messages_scan(db.engine):  # instrument is a rollup dimension: no scan needed
        numbers = _numbers(client)
    assert numbers == (3, 2, {"TimeoutError": 1, "ValueError": 1})
    page = client.get("/stats?range=24h").get_data(as_text=True)
    assert "dataset-ingestion" not in page and "InvestigationNotFound" not in page


def test_type_rule_counts_only_that_type(client, db, auth_enabled, make_group, make_user, mixed):
    _as(client, make_group, make_user, a={"message_types": ["dataset-ingestion"]})
    with no_messages_scan(db.engine):
        numbers = _numbers(client)
    assert numbers == (5, 2, {"InvestigationNotFound": 2})
    errors = client.get("/errors?range=24h").get_data(as_text=True)
    assert "TimeoutError" not in errors and "ValueError" not in errors


def test_type_and_instrument_in_one_group_is_their_intersection(
    client, auth_enabled, make_group, make_user, mixed
):
    _as(
        client,
        make_group,
        make_user,
        a={"message_types": ["user-sync"], "identifier_rules": {"instrument": ["bl06"]}},
    )
    assert _numbers(client) == (2, 1, {"TimeoutError": 1})


def test_two_groups_count_their_union(client, auth_enabled, make_group, make_user, mixed):
    _as(
        client,
        make_group,
        make_user,
        a={"message_types": ["user-sync"]},
        b={"message_types": ["proposal-sync"]},
    )
    assert _numbers(client) == (3, 2, {"TimeoutError": 1, "ValueError": 1})


def test_rule_on_an_identifier_the_rollups_lack_still_counts_exactly(
    client, auth_enabled, make_group, make_user, mixed
):
    # Rollups have no investigation dimension: the numbers come from the scoped messages.
    _as(client, make_group, make_user, a={"identifier_rules": {"investigation": ["other1"]}})
    assert _numbers(client) == (1, 1, {"ValueError": 1})
    stats = client.get("/api/v1/stats?range=24h").get_json()
    assert stats["source"] != "rollups"
