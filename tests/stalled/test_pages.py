"""/stalled and /api/v1/stalled over HTTP: the filter, the scope of the signed-in user (types,
identifiers, metadata only), refused arguments, the OpenAPI document and the nav."""

from __future__ import annotations

import pytest

from tests.auth.support import login
from tests.stalled.support import STALLED

ALL_STALLED = set().union(*STALLED.values())


def hashes(body: dict) -> set[str]:
    return {r["hash"] for g in body["groups"] for r in g["runs"]}


def test_api_lists_runs_grouped_by_stage(client, runs):
    body = client.get("/api/v1/stalled").get_json()
    assert body["total"] == 6
    assert [(g["stage"], g["count"]) for g in body["groups"]] == [(1, 1), (2, 3), (3, 2)]
    assert {g["stage"]: {r["hash"] for r in g["runs"]} for g in body["groups"]} == STALLED
    run = body["groups"][0]["runs"][0]
    assert run["instrument"] == "bl06" and run["investigation"] == "INV-SIX"
    assert run["links"]["trace"] == f"/messages/{run['latest_message_id']}/trace"
    assert client.get(run["links"]["trace"]).status_code == 200
    assert client.get(run["links"]["api_trace"]).status_code == 200
    assert body["stalled_after_minutes"] == {"dataset-ingestion": 120}


def test_api_filters_and_refusals(client, runs):
    body = client.get("/api/v1/stalled?stage=internal-statistics&state=failed").get_json()
    assert hashes(body) == {"1a57fa1100000007"}
    assert hashes(client.get("/api/v1/stalled?instrument=BL06").get_json()) == STALLED[1]
    bad = client.get("/api/v1/stalled?days=99")
    assert bad.status_code == 400 and bad.get_json()["field"] == "days"
    assert client.get("/api/v1/stalled?stage=user-sync").status_code == 400


def test_page_groups_filters_and_links_to_the_trace(client, runs):
    page = client.get("/stalled").get_data(as_text=True)
    assert "Stopped at stage 2: internal-dataset-ingestion" in page
    assert 'data-count="3"' in page
    for digest in ALL_STALLED:
        assert f'data-hash="{digest}"' in page
    assert "c0mp1e7e00000001" not in page
    assert f'href="/messages/{runs.ids["fa11ed2000000003"][-1]}/trace"' in page
    assert 'href="/stalled" aria-current="page">Stalled</a>' in page
    # A refused argument is marked beside its field; the rest of the page is still answered.
    refused = client.get("/stalled?days=0&state=failed")
    text = refused.get_data(as_text=True)
    assert refused.status_code == 400
    assert 'id="error-days"' in text and 'data-hash="1a57fa1100000007"' in text
    assert 'data-hash="57uck0n1e0000002"' not in text  # state=failed still applied


def as_user(client, make_group, make_user, **group):
    groups = [make_group("stalled-group", **group)] if group else []
    login(client, make_user("stalled-user", groups=groups))
    return client


def test_without_the_types_nothing_of_them(client, runs, auth_enabled, make_group, make_user):
    as_user(client, make_group, make_user, message_types=["user-sync"])
    body = client.get("/api/v1/stalled").get_json()
    assert body["total"] == 0 and body["groups"] == []
    page = client.get("/stalled").get_data(as_text=True)
    assert "stalled-empty" in page and "stalled-hidden-types" in page
    for digest in ALL_STALLED:
        assert digest not in page


def test_identifier_rule(client, runs, auth_enabled, make_group, make_user):
    as_user(client, make_group, make_user, identifier_rules={"instrument": ["BL06"]})
    assert hashes(client.get("/api/v1/stalled").get_json()) == STALLED[1]
    assert "INV-F2" not in client.get("/stalled").get_data(as_text=True)


@pytest.mark.parametrize("signed_in", [False, True])
def test_metadata_only(client, runs, auth_enabled, make_group, make_user, signed_in):
    if signed_in:
        as_user(client, make_group, make_user)  # in no group: metadata only
    body = client.get("/api/v1/stalled").get_json()
    assert hashes(body) == ALL_STALLED
    for group in body["groups"]:
        for run in group["runs"]:
            assert not {"instrument", "investigation", "dataset", "dataset_id"} & set(run)
    page = client.get("/stalled").get_data(as_text=True)
    assert "INV-" not in page and "bl06" not in page.lower()
    assert 'id="field-instrument"' not in page
    assert client.get("/api/v1/stalled?instrument=bl06").status_code == 403
    assert client.get("/api/v1/stalled?investigation=INV-SIX").status_code == 403


def test_documented_arguments_are_the_filters():
    import dataclasses

    from webapp.stalled.filters import ARGUMENTS, StalledFilter
    from webapp.stalled.openapi import STALLED_PARAMETERS

    assert {p["name"] for p in STALLED_PARAMETERS} == set(ARGUMENTS)
    assert {f.name for f in dataclasses.fields(StalledFilter)} == set(ARGUMENTS)


NASTY = [
    "",
    " ",
    "0",
    "-1",
    "99999999999999999999",
    "²",
    "١",
    "a\x00b",
    "x" * 600,
    "'; --",
    "%",
    "\u202e",
]


@pytest.mark.parametrize("path", ["/stalled", "/api/v1/stalled"])
def test_hostile_arguments_never_500(client, runs, path):
    for name in ("days", "stage", "state", "instrument", "investigation", "limit"):
        for value in NASTY:
            response = client.get(path, query_string={name: value})
            assert response.status_code in (200, 400), (name, value, response.status_code)


def test_two_statements_on_messages_whatever_the_number_of_runs(client, runs, count_queries):
    with count_queries() as statements:
        assert client.get("/stalled").status_code == 200
        assert client.get("/api/v1/stalled").status_code == 200
    on_messages = [s for s in statements if "FROM messages" in s]
    # Per request: the runs, then the identifiers of the listed ones (never one per run).
    assert len(on_messages) == 4, on_messages


def test_help_says_what_the_page_answers(client):
    text = client.get("/help").get_data(as_text=True)
    assert 'href="/stalled">Stalled</a>' in text
    assert "did not get through their pipeline" in text
