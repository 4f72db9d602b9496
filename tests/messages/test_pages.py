"""Detail, payload download, trace and list pages: rendering, scope, hostile reports, 404s."""

from __future__ import annotations

import re

import pytest

from tests.factories import report_body as body
from webapp.auth.scope import ANONYMOUS, Rule, Scope

HOSTILE = {
    "message_type": "<script>alert('type')</script>",
    "hash": "<img src=x onerror=alert(1)>",
    "routing_key": '"><script>alert(2)</script>',
    "exchange_name": "<iframe src=javascript:alert(7)>",
    "object_identifiers": {
        "instrument": "<script>alert(3)</script>",
        "dataset": '"><svg onload=alert(4)>',
        "investigation": "2022<b>1</b>",
    },
    "errored": True,
    "error_message": {"<b>callback</b>": "<script>alert(5)</script>"},
    "traceback": {"<b>callback</b>": "Traceback <script>alert(8)</script>"},
    "payload": "<script>alert(6)</script>",
}
RAW_MARKUP = ("<script>alert", "<svg onload", "<img src=x", "<iframe", "<b>callback", "<b>1</b>")


def scope_as(monkeypatch, scope: Scope) -> None:
    for module in ("webapp.messages.routes", "webapp.api.routes"):
        monkeypatch.setattr(f"{module}.current_scope", lambda fresh=False: scope)


def assert_inert(html: str) -> None:
    found = [m for m in RAW_MARKUP if m in html]
    assert not found, f"unescaped report markup in the page: {found}"


def test_hostile_report_is_shown_literally_everywhere(client, write_reports):
    (mid,) = write_reports(body(**HOSTILE))
    pages = {
        "list": client.get("/?acknowledged=shown").get_data(as_text=True),
        "detail": client.get(f"/messages/{mid}").get_data(as_text=True),
        "trace": client.get(f"/messages/{mid}/trace", follow_redirects=True).get_data(as_text=True),
    }
    for name, html in pages.items():
        assert_inert(html)
        assert "&lt;script&gt;alert(&#39;type&#39;)&lt;/script&gt;" in html, name
    detail = pages["detail"]
    for text in ("alert(2)", "alert(3)", "alert(4)", "alert(5)", "alert(6)", "alert(8)"):
        assert text in detail
    # The copy button carries the full (hostile) hash as an escaped attribute.
    assert 'data-copy="&lt;img src=x onerror=alert(1)&gt;"' in detail


def test_detail_shows_pretty_json_errors_tracebacks_timings_and_links(client, write_reports):
    (mid,) = write_reports(
        body(
            payload='{"b": [1, 2], "a": "x"}',
            errored=True,
            error_message={
                "callback_func_main_dataset_creation": "InvestigationNotFound: nope",
                "callback_func_check_files": "FileNotFoundError: /data/x",
            },
            traceback={"callback_func_check_files": "Traceback (most recent call last):\n  ..."},
            hash="9a1b2c3d4e5f6071",
            consumer="DatasetConsumer",
        )
    )
    html = client.get(f"/messages/{mid}").get_data(as_text=True)
    assert "{\n  &#34;b&#34;: [\n    1,\n    2\n  ],\n  &#34;a&#34;: &#34;x&#34;\n}" in html
    # One entry per callback (jsonb does not keep the producer's key order).
    assert html.count('<li class="error-entry">') == 2
    assert "callback_func_main_dataset_creation" in html and "callback_func_check_files" in html
    assert "Traceback (most recent call last)" in html
    assert "InvestigationNotFound: nope" in html
    assert "2026-03-31 10:15:02</time> → " in html and "864 ms" in html
    assert "dataset.ingest" in html and "dataset-ingest-exchange" in html
    assert 'href="/?acknowledged=shown&amp;hash=9a1b2c3d4e5f6071"' in html
    assert 'href="/?acknowledged=shown&amp;instrument=bl13"' in html
    assert 'href="/?acknowledged=shown&amp;investigation=2022097034"' in html
    assert f'href="/messages/{mid}/trace"' in html
    assert "DatasetConsumer" in html


def test_legacy_string_error_is_shown(client, write_reports):
    legacy = "[('callback_func_x', ValueError('bad value'))]"
    (mid,) = write_reports(body(errored=True, error_message=legacy))
    html = client.get(f"/messages/{mid}").get_data(as_text=True)
    assert "[(&#39;callback_func_x&#39;, ValueError(&#39;bad value&#39;))]" in html


def test_xml_is_pretty_printed_and_entities_are_never_expanded(client, write_reports, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-CONTENT")
    good, evil, broken, text = write_reports(
        body(payload="<proposal><name>2022</name><instrument>BL13</instrument></proposal>"),
        body(
            payload=f'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY xxe SYSTEM "file://{secret}">'
            '<!ENTITY lol "lollollol">]><d>&xxe;&lol;</d>'
        ),
        body(payload="<a><b></a>"),
        body(payload="plain text payload"),
    )
    html = client.get(f"/messages/{good}").get_data(as_text=True)
    assert "&lt;proposal&gt;\n  &lt;name&gt;2022&lt;/name&gt;" in html
    html = client.get(f"/messages/{evil}").get_data(as_text=True)
    assert "TOP-SECRET-CONTENT" not in html and "lollollol</d" not in html
    assert "is not parsed (entities are never expanded)" in html
    assert "&amp;xxe;&amp;lol;" in html  # the raw text, as received
    html = client.get(f"/messages/{text}").get_data(as_text=True)
    assert "plain text payload" in html and 'id="payload-pretty"' not in html
    client.get(f"/messages/{broken}")  # not well-formed: shown raw, no error page
    assert client.get(f"/messages/{broken}").status_code == 200


def test_payload_download_is_the_exact_raw_text(client, write_reports):
    raw = '{"z": 1,   "a": "é"}'
    (mid,) = write_reports(body(payload=raw))
    response = client.get(f"/messages/{mid}/payload")
    assert response.status_code == 200
    assert response.get_data(as_text=True) == raw
    assert response.mimetype == "application/json"
    assert f'filename="message-{mid}.json"' in response.headers["Content-Disposition"]


def test_unknown_and_out_of_scope_messages_are_404(client, write_reports, monkeypatch):
    dataset, user = write_reports(body(), body(message_type="user-sync"))
    for url in (
        "/messages/999999",
        "/messages/999999/trace",
        "/api/v1/messages/999999",
        "/messages/99999999999999999999999",
        "/messages/abc",
    ):
        assert client.get(url).status_code == 404, url
    assert "404" in client.get("/messages/999999").get_data(as_text=True)
    office = Scope(
        details=True, rules=(Rule(message_types=frozenset({"user-sync"})),), restricted=True
    )
    scope_as(monkeypatch, office)
    for url in (
        f"/messages/{dataset}",
        f"/messages/{dataset}/trace",
        f"/messages/{dataset}/payload",
        f"/api/v1/messages/{dataset}",
    ):
        assert client.get(url).status_code == 404, url
    assert client.get(f"/messages/{user}").status_code == 200
    listed = client.get("/api/v1/messages").get_json()["items"]
    assert [i["id"] for i in listed] == [user]
    html = client.get("/").get_data(as_text=True)
    assert f'data-id="{user}"' in html and f'data-id="{dataset}"' not in html


def test_metadata_only_users_never_see_payload_identifiers_or_errors(
    client, write_reports, monkeypatch
):
    (mid,) = write_reports(
        body(
            object_identifiers={"instrument": "SECRET-INSTRUMENT", "dataset": "secret-dataset"},
            payload='{"secret": "SECRET-PAYLOAD"}',
            errored=True,
            error_message={"cb": "SECRET-ERROR"},
        )
    )
    scope_as(monkeypatch, ANONYMOUS)
    secrets_ = (
        "SECRET-INSTRUMENT",
        "secret-instrument",
        "secret-dataset",
        "SECRET-PAYLOAD",
        "SECRET-ERROR",
    )
    responses = [
        client.get("/"),
        client.get(f"/messages/{mid}"),
        client.get(f"/messages/{mid}/trace"),
        client.get("/api/v1/messages"),
        client.get(f"/api/v1/messages/{mid}"),
        client.get(f"/api/v1/messages/{mid}/trace"),
        client.get("/api/v1/messages?format=csv"),
    ]
    for response in responses:
        assert response.status_code == 200
        text = response.get_data(as_text=True)
        assert [s for s in secrets_ if s in text] == [], response.request.path
    assert f'data-id="{mid}"' in responses[0].get_data(as_text=True)  # metadata still listed
    assert client.get(f"/messages/{mid}/payload").status_code == 403
    # Filtering by an identifier would reveal it.
    assert client.get("/?instrument=secret-instrument").status_code == 403
    assert client.get("/api/v1/messages?q=secret").status_code == 403


def _stage_states(html: str) -> list[tuple[str, str]]:
    return re.findall(r'data-stage="([^"]+)" data-state="([^"]+)"', html)


def test_trace_orders_stages_and_marks_failed_and_missing(client, write_reports):
    ids = {"instrument": "BL13", "investigation": "2022097034", "dataset": "mx_09"}
    linked = {**ids, "dataset_id": "4242", "visit_id": "BL13-1"}
    # Written newest stage first: the page must still show pipeline order.
    stats, stage2_ok, stage2_fail, stage1, other = write_reports(
        body(
            message_type="internal-statistics",
            object_identifiers={"dataset_id": "4242"},
            hash="1111111111111111",
            errored=True,
            error_message={"cb": "TimeoutError: statistics"},
        ),
        body(
            message_type="internal-dataset-ingestion",
            object_identifiers=linked,
            hash="2222222222222222",
            processing_start="2026-03-31T10:16:00",
        ),
        body(
            message_type="internal-dataset-ingestion",
            object_identifiers=linked,
            hash="2222222222222222",
            errored=True,
            error_message={"cb": "ICATSessionError: x"},
            processing_start="2026-03-31T10:15:30",
        ),
        body(message_type="dataset-ingestion", object_identifiers=ids, hash="3333333333333333"),
        body(
            message_type="dataset-ingestion",
            object_identifiers={**ids, "dataset": "other"},
            hash="4444444444444444",
        ),
    )
    for start in (stats, stage1, stage2_fail):
        html = client.get(f"/messages/{start}/trace").get_data(as_text=True)
        assert _stage_states(html) == [
            ("dataset-ingestion", "ok"),
            ("internal-dataset-ingestion", "ok"),
            ("internal-statistics", "failed"),
            ("internal-dataset-links", "missing"),
        ], start
        assert f'data-id="{other}"' not in html
    # Both attempts of stage 2 are listed, oldest first; the retry that succeeded decides.
    data = client.get(f"/api/v1/messages/{stats}/trace").get_json()
    stage2 = data["stages"][1]
    assert [a["id"] for a in stage2["attempts"]] == [stage2_fail, stage2_ok]
    assert [s["state"] for s in data["stages"]] == ["ok", "ok", "failed", "missing"]
    assert "3 of 4 stages" not in html and "2 of 4 stages are failed or missing" in html


def test_trace_follows_the_same_hash(client, write_reports):
    # Demo-style traffic: later stages carry only dataset_id, linked to stage 1 by the hash.
    digest = "abcabcabcabcabca"
    stage1, stage2, links = write_reports(
        body(message_type="dataset-ingestion", hash=digest),
        body(
            message_type="internal-dataset-ingestion",
            hash=digest,
            object_identifiers={"dataset_id": "77", "visit_id": "V", "investigation": "1"},
        ),
        body(
            message_type="internal-dataset-links",
            object_identifiers={"dataset_id": "77"},
            hash="ffffffffffffffff",
        ),
    )
    html = client.get(f"/messages/{stage1}/trace").get_data(as_text=True)
    assert _stage_states(html) == [
        ("dataset-ingestion", "ok"),
        ("internal-dataset-ingestion", "ok"),
        ("internal-statistics", "missing"),
        ("internal-dataset-links", "ok"),
    ]


def test_metrics_are_prometheus_text(client, write_reports):
    write_reports(body())
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    samples = [
        line
        for line in response.get_data(as_text=True).splitlines()
        if line and not line.startswith("#")
    ]
    assert samples and all(
        re.match(r"^[a-zA-Z_:][\w:]*(\{[^}]*\})? -?[\d.e+-]+$", s) for s in samples
    ), samples[:5]


@pytest.mark.parametrize(
    "url",
    [
        "/?type=%00",
        "/?since=9999-12-31T23:59:59-01:00",
        "/?hash=%F0%9F%92%A9%F0%9F%92%A9%F0%9F%92%A9",
        "/?id=-1",
        "/?limit=99999999999999999999",
        "/?q=%5C%5C%5C",
        "/?cursor=" + "A" * 300,
    ],
)
def test_odd_input_never_ends_in_a_500(client, url):
    assert client.get(url).status_code in (200, 400)
