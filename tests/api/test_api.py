"""The JSON API: details, CSV export, the OpenAPI document (filters and paging are shared with
the pages and tested in tests/messages)."""

from __future__ import annotations

import json

from tests.factories import report_body as body


def test_csv_export_is_streamed_filtered_and_inert(client, write_reports):
    write_reports(
        body(message_type="user-sync", routing_key='=HYPERLINK("http://x")'),
        body(message_type="dataset-ingestion"),
        body(message_type="user-sync", errored=True, error_message={"cb": "E: boom"}),
    )
    response = client.get("/api/v1/messages?format=csv&type=user-sync")
    assert response.status_code == 200 and response.is_streamed
    assert response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    lines = response.get_data(as_text=True).splitlines()
    header = lines[0].split(",")
    assert header[:3] == ["id", "received_at", "processing_start"]
    assert "error_summary" in header
    assert len(lines) == 3
    assert "'=HYPERLINK" in lines[2] or "'=HYPERLINK" in lines[1]
    assert "cb: E: boom" in response.get_data(as_text=True)


def test_openapi_lists_every_filter_and_page_parameter(client):
    doc = client.get("/api/v1/openapi.json").get_json()
    params = {p["name"] for p in doc["paths"]["/api/v1/messages"]["get"]["parameters"]}
    assert params >= {
        "type",
        "status",
        "acknowledged",
        "instrument",
        "investigation",
        "dataset",
        "dataset_id",
        "visit_id",
        "hash",
        "id",
        "routing_key",
        "payload_format",
        "fingerprint",
        "q",
        "since",
        "until",
        "cursor",
        "limit",
        "format",
    }
    assert {"/api/v1/messages/{message_id}", "/api/v1/messages/{message_id}/trace"} <= set(
        doc["paths"]
    )


def test_api_detail_has_payload_and_errors(client, write_reports):
    (mid,) = write_reports(body(errored=True, error_message={"cb": "E: x"}))
    data = client.get(f"/api/v1/messages/{mid}").get_json()
    assert data["payload"] == '{"investigation": "2022097034"}'
    assert data["errors"] == [{"callback": "cb", "text": "E: x", "traceback": None}]
    assert data["received_at"].endswith("+00:00")
    assert json.loads(json.dumps(data))["links"]["html"] == f"/messages/{mid}"
