"""The presenters are the one place that decides which fields a scope sees (issue 15 item 2):
summary, detail, who acknowledged, the filter form and the CSV export all take the Scope."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

from models.identifiers import IDENTIFIERS, PROMOTED_IDENTIFIERS
from webapp.auth.scope import ANONYMOUS, METADATA_FIELDS, admin_scope
from webapp.messages import presenters

NOW = datetime(2026, 3, 31, 10, 15, tzinfo=UTC)


def _message(**overrides):
    values = dict(
        id=7,
        received_at=NOW,
        processing_start=NOW,
        processing_end=NOW,
        processing_ms=3,
        message_type="dataset-ingestion",
        errored=True,
        acknowledged_at=NOW,
        acknowledged_by="alice@example.org",
        exchange_name="dataset-ingest-exchange",
        routing_key="dataset.ingest",
        hash="9a1b2c3d4e5f6071",
        payload_format="json",
        payload='{"a": 1}',
        report_id="r-7",
        object_identifiers={"instrument": "BL13", "investigation": "2022097034"},
        error_message={"callback_func_x": "KeyError: 'a'"},
        error_fingerprint="v1:abc",
        traceback=None,
        extra={},
        **{name: f"{name}-value" for name in PROMOTED_IDENTIFIERS},
    )
    values.update(overrides)
    return SimpleNamespace(**values)


def test_summary_and_detail_show_metadata_only_without_details():
    message = _message()
    for present in (presenters.summary, presenters.detail):
        hidden = present(message, ANONYMOUS)
        assert set(hidden) <= METADATA_FIELDS
        assert hidden["details"] is False
        shown = present(message, admin_scope())
        assert {"identifiers", "error_summary", *PROMOTED_IDENTIFIERS} <= set(shown)
    detail = presenters.detail(message, admin_scope())
    assert detail["payload"] == '{"a": 1}'
    assert detail["errors"] == [
        {"callback": "callback_func_x", "text": "KeyError: 'a'", "traceback": None}
    ]
    assert presenters.payload_view(detail).pretty is not None
    assert presenters.payload_view(presenters.detail(message, ANONYMOUS)) is None


def test_who_acknowledged_is_decided_by_the_presenter():
    message = _message()
    assert presenters.acknowledged_by(message, admin_scope()) == "alice@example.org"
    assert presenters.acknowledged_by(message, ANONYMOUS) is None


def test_filter_form_offers_only_the_filters_the_scope_may_use():
    hidden = presenters.filter_form(ANONYMOUS)
    assert hidden["identifiers"] == [] and "q" not in hidden["fields"]
    assert hidden["details_hidden"] is True
    shown = presenters.filter_form(admin_scope())
    assert [i.name for i in shown["identifiers"]] == [
        i.name for i in IDENTIFIERS if i.in_filter_form
    ]
    assert "q" in shown["fields"] and shown["details_hidden"] is False
    assert shown["hidden_identifiers"] == [i.name for i in IDENTIFIERS if not i.in_filter_form]


def test_csv_header_and_cells_follow_the_scope():
    row = (
        7, NOW, NOW, NOW, 3, "dataset-ingestion", True, None, "x", "k", "h" * 16, "json", "r-7",
        *(f"{name}-value" for name in PROMOTED_IDENTIFIERS),
        {"cb": "Err: boom"}, "v1:abc",
    )  # fmt: skip
    assert len(row) == len(presenters.CSV_QUERY_COLUMNS)
    for scope, details in ((ANONYMOUS, False), (admin_scope(), True)):
        header = presenters.csv_columns(scope)
        (cells,) = presenters.csv_rows([row], scope)
        assert len(cells) == len(header)
        assert (set(header) <= METADATA_FIELDS) is not details
        assert ("Err: boom" in " ".join(cells)) is details


def test_same_identifier_links_follow_the_declaration():
    message = _message()
    assert presenters.same_identifier_links(presenters.detail(message, ANONYMOUS)) == []
    links = presenters.same_identifier_links(presenters.detail(message, admin_scope()))
    assert [name for _, name, _ in links] == list(PROMOTED_IDENTIFIERS)
    assert ("dataset id", "dataset_id", "dataset_id-value") in links
