"""Traces only where a pipeline exists (issue 16, item 6): PIPELINES per message type, stages
after a failure 'not reached', related messages for types without a pipeline."""

from __future__ import annotations

import dataclasses
import re

import pytest

from tests.factories import report_body as body
from webapp.config import ConfigError, Settings, _convert, parse_pipelines

pytestmark = pytest.mark.usefixtures("db")


def _stage_states(html: str) -> list[tuple[str, str]]:
    return re.findall(r'data-stage="([^"]+)" data-state="([^"]+)"', html)


@pytest.fixture
def pipelines(app):
    """Factory: set PIPELINES for this test (restored after)."""
    original = app.extensions["settings"]

    def use(raw: str):
        app.extensions["settings"] = dataclasses.replace(
            original, PIPELINES=_convert("PIPELINES", str, raw)
        )

    yield use
    app.extensions["settings"] = original


def test_pipelines_setting_format():
    assert parse_pipelines("a > b, c; d>e") == ((("a",), ("b", "c")), (("d",), ("e",)))
    assert parse_pipelines("") == ()
    for bad in ("a > > b", "a > b; b > c"):
        with pytest.raises(ConfigError, match="PIPELINES"):
            _convert("PIPELINES", str, bad)
    default = Settings()
    assert default.pipeline_for("internal-dataset-links") == (
        ("dataset-ingestion",),
        ("internal-dataset-ingestion",),
        ("internal-statistics", "internal-dataset-links"),
    )
    assert default.pipeline_for("user-sync") is None


def test_stages_after_a_failure_are_not_reached(client, write_reports):
    digest = "5555555555555555"
    stage1, stage2 = write_reports(
        body(message_type="dataset-ingestion", hash=digest),
        body(
            message_type="internal-dataset-ingestion",
            hash=digest,
            errored=True,
            error_message={"cb": "ICATSessionError: x"},
        ),
    )
    html = client.get(f"/messages/{stage1}/trace").get_data(as_text=True)
    assert _stage_states(html) == [
        ("dataset-ingestion", "ok"),
        ("internal-dataset-ingestion", "failed"),
        ("internal-statistics", "not-reached"),
        ("internal-dataset-links", "not-reached"),
    ]
    assert "1 of 4 stages is failed or missing" in html
    assert "2 later stages were not reached" in html
    data = client.get(f"/api/v1/messages/{stage2}/trace").get_json()
    assert [s["state"] for s in data["stages"]] == ["ok", "failed", "not-reached", "not-reached"]


def test_types_without_a_pipeline_offer_related_messages(client, write_reports):
    ids = {"user": "u-17", "facility": "X"}
    sync, same_hash, same_ids, other = write_reports(
        body(message_type="user-sync", object_identifiers=ids, hash="6666666666666666"),
        body(
            message_type="user-sync", object_identifiers={"user": "u-99"}, hash="6666666666666666"
        ),
        body(message_type="proposal-sync", object_identifiers={**ids, "proposal": "p1"}),
        body(message_type="user-sync", object_identifiers={"user": "u-18", "facility": "X"}),
    )
    detail = client.get(f"/messages/{sync}").get_data(as_text=True)
    assert 'data-action="related"' in detail and 'data-action="trace"' not in detail
    trace = client.get(f"/messages/{sync}/trace")
    assert trace.status_code == 302 and trace.location.endswith(f"/messages/{sync}/related")
    html = client.get(f"/messages/{sync}/related").get_data(as_text=True)
    shown = set(map(int, re.findall(r'<li class="attempt [^"]*" data-id="(\d+)"', html)))
    assert shown == {same_hash, same_ids}
    assert "has no pipeline" in html and "data-stage=" not in html

    # Dataset types keep their trace.
    (stage1,) = write_reports(body(message_type="dataset-ingestion"))
    assert 'data-action="trace"' in client.get(f"/messages/{stage1}").get_data(as_text=True)


def test_related_messages_are_scoped(client, write_reports, monkeypatch):
    from webapp.auth.scope import Rule, Scope

    sync, hidden, visible = write_reports(
        body(message_type="user-sync", hash="7777777777777777"),
        body(message_type="proposal-sync", hash="7777777777777777"),
        body(message_type="user-sync", hash="7777777777777777"),
    )
    from tests.messages.test_pages import scope_as

    scope_as(
        monkeypatch,
        Scope(
            details=True,
            restricted=True,
            rules=(Rule(message_types=frozenset({"user-sync"})),),
        ),
    )
    response = client.get(f"/messages/{sync}/related")
    html = response.get_data(as_text=True)
    assert response.status_code == 200, html[-2000:]
    shown = set(map(int, re.findall(r'data-id="(\d+)"', html)))
    assert visible in shown and hidden not in shown


def test_a_configured_pipeline_replaces_the_default(client, write_reports, pipelines):
    pipelines("user-sync > user-notify")
    digest = "8888888888888888"
    sync, notify = write_reports(
        body(message_type="user-sync", hash=digest),
        body(message_type="user-notify", hash=digest, errored=True),
    )
    html = client.get(f"/messages/{sync}/trace").get_data(as_text=True)
    assert _stage_states(html) == [("user-sync", "ok"), ("user-notify", "failed")]
    # Dataset types have no pipeline any more: related messages instead.
    (stage1,) = write_reports(body(message_type="dataset-ingestion"))
    assert client.get(f"/messages/{stage1}/trace").status_code == 302
