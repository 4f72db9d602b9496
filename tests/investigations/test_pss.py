"""The PSS client against a real local HTTP server."""

from __future__ import annotations

import base64

from webapp.investigations.pss import PssClient, PssState, pss_client_for


def test_answers(pss):
    pss.answer("present", 200)
    pss.answer("refused", 401)
    pss.answer("broken", 500)
    client = PssClient(pss.url, timeout=1)

    assert client.item_state("present", "1").state is PssState.PRESENT
    assert client.item_state("absent", "1").state is PssState.ABSENT
    refused = client.item_state("refused", "1")
    assert (refused.state, refused.present, refused.unreachable) == (PssState.UNKNOWN, None, False)
    assert "401" in refused.reason and "PANOSC_API_USERNAME" in refused.reason
    assert "HTTP 500" in client.item_state("broken", "1").reason


def test_path_segments_are_quoted(pss):
    pss.answer("a/b c?d#e", 200, visit_id="v/1")
    client = PssClient(pss.url + "/", timeout=1)

    assert client.item_state("a/b c?d#e", "v/1").state is PssState.PRESENT
    assert pss.requests[-1]["path"] == "/api/items/a%2Fb%20c%3Fd%23e/v%2F1"


def test_basic_auth_only_when_configured(pss):
    PssClient(pss.url, timeout=1).item_state("x", "1")
    PssClient(pss.url, username="reader", timeout=1).item_state("x", "1")
    PssClient(pss.url, username="reader", password="s3:cr/t", timeout=1).item_state("x", "1")

    headers = [r["authorization"] for r in pss.requests]
    expected = "Basic " + base64.b64encode(b"reader:s3:cr/t").decode()
    assert headers == [None, None, expected]


def test_timeout_and_unreachable_are_unknown(pss):
    pss.answer("slow", "slow")
    slow = PssClient(pss.url, timeout=1).item_state("slow", "1")
    assert (slow.state, slow.unreachable) == (PssState.UNKNOWN, True)
    assert "within 1 s" in slow.reason

    down = PssClient("http://127.0.0.1:1/api", timeout=1).item_state("x", "1")
    assert (down.state, down.unreachable) == (PssState.UNKNOWN, True)
    assert "unreachable" in down.reason


def test_client_from_settings(check_settings):
    client = pss_client_for(check_settings)
    assert client.base_url == check_settings.PANOSC_API_URL
    assert client.timeout == 1
    assert client.session.auth is None
