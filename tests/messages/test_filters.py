"""Every list filter alone and combined, through the query layer, the page and the API."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime, timedelta

import pytest
from werkzeug.datastructures import MultiDict

from tests.factories import ack
from tests.factories import report_body as body
from webapp.auth.scope import admin_scope
from webapp.errors import InvalidFilter
from webapp.messages import queries
from webapp.messages.filters import MessageFilter

HASH_A = "aaaaaa1111111111"
NOW = datetime.now(UTC).replace(microsecond=0)
T1, T2, T3 = NOW - timedelta(hours=3), NOW - timedelta(hours=2), NOW - timedelta(hours=1)


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


@pytest.fixture
def corpus(write_reports, pg):
    """Six messages with distinct attributes, in three batches; F is acknowledged."""
    a, b = write_reports(
        body(hash=HASH_A),
        body(
            object_identifiers={
                "instrument": "bl06",
                "investigation": "2023000001",
                "dataset": "saxs_02",
            },
            errored=True,
            error_message={
                "callback_func_main_dataset_creation": "InvestigationNotFound: Investigation "
                "2023000001 not found in ICAT"
            },
            hash="bbbbbb2222222222",
        ),
        now=T1,
    )
    c, d = write_reports(
        body(
            message_type="internal-dataset-ingestion",
            object_identifiers={
                "dataset_id": "555",
                "visit_id": "BL13-1",
                "investigation": "2022097034",
            },
            hash=HASH_A,
            routing_key="internal.dataset.ingest",
            exchange_name="internal-dataset-exchange",
        ),
        body(
            message_type="user-sync",
            object_identifiers={"profile_id": "42", "usernames": ["alice"]},
            payload="<user><name>alice</name></user>",
            errored=True,
            error_message={"callback_func_sync_user": "LDAPError: user 100%_done not found"},
            hash="cccccc3333333333",
            routing_key="user.sync",
            exchange_name="user-exchange",
        ),
        now=T2,
    )
    e, f = write_reports(
        body(
            message_type="proposal-sync",
            object_identifiers={"name": "2024000009", "instrument": "BL09", "visit_id": "V-9"},
            payload="just some text",
            hash="eeeeee5555555555",
            routing_key="proposal.sync",
        ),
        body(
            message_type="dataset-index",
            object_identifiers={"dataset_id": "777", "index_name": "datasets"},
            errored=True,
            error_message={"callback_func_index": "ConnectionError: refused"},
            hash="dddddd4444444444",
            routing_key="dataset.index",
        ),
        now=T3,
    )
    ack(pg, [f])
    ids = dict(zip("abcdef", (a, b, c, d, e, f), strict=True))
    with pg.cursor() as cur:
        cur.execute("SELECT error_fingerprint, report_id FROM messages WHERE id = %s", (b,))
        fingerprint_b, _ = cur.fetchone()
        cur.execute("SELECT report_id FROM messages WHERE id = %s", (d,))
        report_d = cur.fetchone()[0]
    return {"ids": ids, "fingerprint_b": fingerprint_b, "report_d": report_d}


def labels_for(corpus, args) -> str:
    """The matching messages as a sorted string of letters (newest first ordering checked apart)."""
    filters = MessageFilter.from_args(MultiDict(args))
    page = queries.list_messages(admin_scope(), filters, None, 50)
    by_id = {v: k for k, v in corpus["ids"].items()}
    return "".join(sorted(by_id[r.id] for r in page.rows))


SINGLE = [
    ([], "abcde"),
    ([("acknowledged", "shown")], "abcdef"),
    ([("acknowledged", "only")], "f"),
    ([("type", "dataset-ingestion")], "ab"),
    ([("type", "dataset-ingestion"), ("type", "user-sync")], "abd"),
    ([("status", "errored")], "bd"),
    ([("status", "ok")], "ace"),
    ([("status", "all")], "abcde"),
    ([("instrument", "BL13")], "a"),
    ([("instrument", "bl13")], "a"),
    ([("instrument", "bl09")], "e"),
    ([("investigation", "2022097034")], "ac"),
    ([("dataset", "mx_01")], "a"),
    ([("dataset_id", "555")], "c"),
    ([("visit_id", "BL13-1")], "c"),
    ([("hash", "aaaaaa")], "ac"),
    ([("hash", "AAAAAA11")], "ac"),
    ([("hash", HASH_A)], "ac"),
    ([("hash", "aaaaaa2")], ""),
    ([("routing_key", "user.sync")], "d"),
    ([("payload_format", "xml")], "d"),
    ([("payload_format", "text")], "e"),
    ([("payload_format", "json")], "abc"),
    ([("q", "InvestigationNotFound")], "b"),
    ([("q", "alice")], "d"),
    ([("q", "100%_done")], "d"),
    ([("q", "0%_d")], "d"),
    ([("q", "1%0")], ""),  # % is literal, not a wildcard
    ([("q", "s_x")], ""),  # _ is literal, not a wildcard
    ([("since", iso(T2))], "cde"),
    ([("until", iso(T2))], "ab"),
    ([("since", iso(T2)), ("until", iso(T3))], "cd"),
    ([("since", T1.date().isoformat())], "abcde"),
    ([("until", T3.date().isoformat())], "abcde"),  # a bare date includes that day
]


@pytest.mark.parametrize(("args", "expected"), SINGLE)
def test_each_filter_alone(corpus, args, expected):
    assert labels_for(corpus, args) == expected


def test_id_and_fingerprint_filters(corpus):
    ids = corpus["ids"]
    assert labels_for(corpus, [("id", str(ids["b"]))]) == "b"
    assert labels_for(corpus, [("id", corpus["report_d"])]) == "d"
    assert labels_for(corpus, [("id", "no-such-report")]) == ""
    assert labels_for(corpus, [("id", "99999999999999999999999")]) == ""
    assert corpus["fingerprint_b"].startswith("v1:")
    assert labels_for(corpus, [("fingerprint", corpus["fingerprint_b"])]) == "b"


COMBINED = [
    ([("type", "dataset-ingestion"), ("status", "errored")], "b"),
    ([("investigation", "2022097034"), ("type", "internal-dataset-ingestion")], "c"),
    ([("status", "errored"), ("acknowledged", "shown")], "bdf"),
    ([("hash", "aaaaaa"), ("status", "ok"), ("since", iso(T2))], "c"),
    ([("type", "user-sync"), ("q", "alice"), ("routing_key", "user.sync")], "d"),
    ([("type", "user-sync"), ("q", "alice"), ("routing_key", "other")], ""),
    ([("instrument", "bl06"), ("status", "ok")], ""),
]


@pytest.mark.parametrize(("args", "expected"), COMBINED)
def test_filters_combine_with_and(corpus, args, expected):
    assert labels_for(corpus, args) == expected


def test_list_is_newest_first(corpus):
    page = queries.list_messages(admin_scope(), MessageFilter(), None, 50)
    keys = [(r.received_at, r.id) for r in page.rows]
    assert keys == sorted(keys, reverse=True)
    assert len(keys) == 5


def test_page_and_api_apply_the_same_filters(client, corpus):
    ids = corpus["ids"]
    query = "type=dataset-ingestion&type=user-sync&status=errored"
    html = client.get(f"/?{query}").get_data(as_text=True)
    shown = [int(x) for x in re.findall(r'<tr class="msg [^"]*" data-id="(\d+)"', html)]
    api = client.get(f"/api/v1/messages?{query}").get_json()
    assert shown == [item["id"] for item in api["items"]] == [ids["d"], ids["b"]]
    assert api["count"] == 2 and api["count_exact"] is True
    assert re.search(r'id="message-count"[^>]*>2<', html)


def test_filter_state_round_trips_through_the_url():
    args = MultiDict(
        [
            ("type", "a-type"),
            ("type", "b-type"),
            ("status", "errored"),
            ("acknowledged", "shown"),
            ("instrument", "BL13"),
            ("hash", "abcdef12"),
            ("q", "50% done"),
            ("since", "2026-01-01"),
            ("until", "2026-01-02T10:00:00Z"),
            ("cursor", "ignored"),
            ("unknown", "ignored"),
        ]
    )
    parsed = MessageFilter.from_args(args)
    assert MessageFilter.from_args(MultiDict(parsed.to_args())) == parsed
    assert parsed.instrument == "bl13"
    assert MessageFilter.from_args({}).is_default
    assert not parsed.is_default


BAD = [
    ({"status": "broken"}, "status"),
    ({"acknowledged": "maybe"}, "acknowledged"),
    ({"payload_format": "yaml"}, "payload_format"),
    ({"hash": "abc"}, "hash"),
    ({"q": "ab"}, "q"),
    ({"since": "yesterday"}, "since"),
    ({"since": "2026-02-30"}, "since"),
    ({"until": "2026-13-01T00:00"}, "until"),
    ({"since": "2026-03-02", "until": "2026-03-01"}, "since"),
    ({"instrument": "x" * 501}, "instrument"),
    ({"investigation": "a\x00b"}, "investigation"),
    ({"cursor": "not-a-cursor"}, "cursor"),
    ({"limit": "0"}, "limit"),
    ({"limit": "many"}, "limit"),
    ({"status": ["ok", "errored"]}, "status"),
]


@pytest.mark.parametrize(("args", "field"), BAD)
def test_bad_values_are_a_400_with_a_reason_on_page_and_api(client, args, field):
    api = client.get("/api/v1/messages", query_string=args)
    assert api.status_code == 400, args
    data = api.get_json()
    assert data["field"] == field
    assert data["message"]
    page = client.get("/", query_string=args, headers={"Accept": "text/html"})
    assert page.status_code == 400, args
    assert page.mimetype == "text/html"
    assert data["message"] in html.unescape(page.get_data(as_text=True))


def test_invalid_filter_names_the_problem():
    with pytest.raises(InvalidFilter, match="at least 6"):
        MessageFilter.from_args({"hash": "abc"})
    with pytest.raises(InvalidFilter, match="before 'until'"):
        MessageFilter.from_args({"since": "2026-03-02", "until": "2026-03-01"})


def test_acknowledged_messages_are_hidden_by_default(client, corpus):
    f = corpus["ids"]["f"]
    assert f'data-id="{f}"' not in client.get("/").get_data(as_text=True)
    assert f'data-id="{f}"' in client.get("/?acknowledged=shown").get_data(as_text=True)
