"""Every real-traffic fact of DESIGN §3 has its own test here."""

from __future__ import annotations

import json
import zoneinfo
from datetime import UTC, datetime

import pytest

from tests.factories import REPORT_KWARGS, REPORT_TASK
from webapp.ingest.report import NotAReport, body_digest, parse_report

TASK = REPORT_TASK


def kwargs(**over):
    """The factories' report kwargs with `over` applied (`...` drops a field)."""
    return {k: v for k, v in {**REPORT_KWARGS, **over}.items() if v is not ...}


def body(report_id="0d4c7c3e-6c59-4b59-9a3f-1d2b1f4c0b11", task=TASK, **over) -> bytes:
    envelope = {"id": report_id, "task": task, "args": [], "retries": 10, "kwargs": kwargs(**over)}
    if report_id is None:
        del envelope["id"]
    return json.dumps(envelope).encode()


def parse(raw: bytes, tz="UTC", max_bytes=8 * 1024 * 1024):
    return parse_report(raw, task_name=TASK, timezone=zoneinfo.ZoneInfo(tz), max_bytes=max_bytes)


def test_design_example_is_parsed_into_columns():
    r = parse(
        body(
            error_message={
                "callback_func_main_dataset_creation": "InvestigationNotFound: 2022097034"
            },
            errored=True,
        )
    )
    assert r.report_id == "0d4c7c3e-6c59-4b59-9a3f-1d2b1f4c0b11"
    assert r.message_type == "dataset-ingestion"
    assert r.processing_ms == 864
    assert (r.instrument, r.investigation, r.dataset) == ("bl13", "2022097034", "mx_01")
    assert r.object_identifiers["instrument"] == "BL13"  # raw identifiers kept as sent
    assert r.errored is True
    assert r.error_fingerprint.startswith("v1:")
    assert (r.exchange_name, r.routing_key) == ("dataset-ingest-exchange", "dataset.ingest")


# payload: JSON string, XML string, text, JSON object, Python repr -----------------------------


def test_payload_json_string_is_kept_exactly():
    raw = '{"investigation":  "2022097034",\n "files": [1, 2]}'
    r = parse(body(payload=raw))
    assert (r.payload, r.payload_format) == (raw, "json")


def test_payload_xml_string():
    raw = "<?xml version='1.0'?><dataset><name>mx_01</name><instrument>BL13</instrument></dataset>"
    r = parse(body(payload=raw))
    assert (r.payload, r.payload_format) == (raw, "xml")


def test_payload_plain_text():
    r = parse(body(payload="re-sync profile 4242 please"))
    assert (r.payload, r.payload_format) == ("re-sync profile 4242 please", "text")


def test_payload_json_object_already_decoded():
    r = parse(body(payload={"instrument": "BL06", "investigation": "1", "n": [1, 2]}))
    assert r.payload_format == "json"
    assert json.loads(r.payload) == {"instrument": "BL06", "investigation": "1", "n": [1, 2]}


def test_payload_python_repr_of_a_dict():
    raw = "{'instrument': 'BL09', 'investigation': '2022', 'ok': True, 'n': None}"
    r = parse(body(payload=raw, object_identifiers={}))
    assert r.payload == raw  # raw text kept for re-ingestion
    assert r.payload_format == "json"
    assert r.extra["payload_is_python_repr"] is True
    assert r.instrument == "bl09"  # decoded for identifier promotion


def test_payload_format_hint_is_only_a_hint():
    r = parse(body(payload="<not>xml", payload_format="xml"))
    assert r.payload_format == "text"
    assert r.extra["payload_format_hint"] == "xml"
    r = parse(body(payload='{"a": 1}', payload_format="text"))
    assert r.payload_format == "json"


def test_xml_with_entities_is_xml_but_never_expanded():
    bomb = (
        '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
        '<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;">]><lolz>&lol2;</lolz>'
    )
    r = parse(body(payload=bomb))
    assert (r.payload, r.payload_format) == (bomb, "xml")


def test_large_payload_is_never_truncated():
    raw = json.dumps({"files": ["f" * 100] * 20_000})
    r = parse(body(payload=raw))
    assert r.payload == raw


# timestamps ------------------------------------------------------------------------------------


def test_naive_timestamps_are_local_time_of_pacer_timezone():
    r = parse(body(), tz="Europe/Madrid")
    assert r.processing_start == datetime(2026, 3, 31, 8, 15, 2, 123456, tzinfo=UTC)


def test_aware_timestamps_keep_their_offset():
    r = parse(
        body(processing_start="2026-03-31T10:15:02+02:00", processing_end="2026-03-31T08:15:03Z"),
        tz="America/New_York",
    )
    assert r.processing_start == datetime(2026, 3, 31, 8, 15, 2, tzinfo=UTC)
    assert r.processing_ms == 1000


def test_mixed_naive_and_aware_pair_does_not_fail():
    r = parse(
        body(processing_start="2026-03-31T10:15:02", processing_end="2026-03-31T10:15:04+00:00")
    )
    assert r.processing_ms == 2000


@pytest.mark.parametrize(
    "value",
    [
        "2026-03-31 10:15:02",
        "2026-03-31T10:15:02.5",
        "2026-03-31T10:15:02,123",
        "2026-03-31T10:15:02.123456789",
        "2026-03-31T10:15:02.123+0000",
        "2026-03-31 10:15:02.123 +0000",
        "2026-03-31T10:15:02z",
    ],
)
def test_timestamp_variants(value):
    r = parse(body(processing_start=value, processing_end=value))
    assert r.processing_start.replace(microsecond=0) == datetime(2026, 3, 31, 10, 15, 2, tzinfo=UTC)


@pytest.mark.parametrize(
    "value", ["yesterday", "31/03/2026 10:15", "2026-13-01T00:00:00", "9" * 80]
)
def test_unparseable_timestamp_is_quarantined(value):
    with pytest.raises(NotAReport, match="processing_start is not a timestamp"):
        parse(body(processing_start=value))


# error_message forms ---------------------------------------------------------------------------


def test_error_message_dict_and_empty_dict_on_success():
    ok = parse(body())
    assert ok.error_message == {} and ok.errored is False and ok.error_fingerprint is None
    failed = parse(body(error_message={"callback_func_a": "KeyError: 'x'"}, errored=True))
    assert failed.error_message == {"callback_func_a": "KeyError: 'x'"}


def test_error_message_legacy_string_repr_of_tuples():
    legacy = "[('callback_func_main', InvestigationNotFound('Investigation 42 not found'))]"
    r = parse(body(error_message=legacy, errored=True))
    assert r.error_message == legacy  # stored as sent
    assert r.error_cause.callback == "callback_func_main"
    assert "investigation 42" in r.search_text


def test_errored_is_derived_when_missing():
    r = parse(body(error_message={"cb": "ValueError: bad"}, errored=...))
    assert r.errored is True


# older producers -------------------------------------------------------------------------------


def test_older_producer_type_processed_at_no_routing_sha256_hash():
    digest = "a" * 64
    raw = body(
        message_type=...,
        type="user-sync",
        processing_start=...,
        processing_end=...,
        processed_at="2026-03-31 10:15:02.123 +0200",
        exchange_name=...,
        routing_key=...,
        hash=digest,
        object_identifiers={"profile_id": 17, "usernames": ["ab", "cd"]},
    )
    r = parse(raw)
    assert r.message_type == "user-sync"
    assert r.processing_start == datetime(2026, 3, 31, 8, 15, 2, 123000, tzinfo=UTC)
    assert r.processing_ms is None or r.processing_ms == 0
    assert (r.exchange_name, r.routing_key) == (None, None)
    assert r.hash == digest


def test_hash_is_opaque_16_or_64_hex():
    assert parse(body(hash="9A1B2C3D4E5F6071")).hash == "9a1b2c3d4e5f6071"


# dedupe ids ------------------------------------------------------------------------------------


def test_report_id_is_the_envelope_id():
    assert parse(body(report_id="abc")).report_id == "abc"


def test_report_id_without_envelope_id_is_a_body_digest():
    raw = body(report_id=None)
    r = parse(raw)
    assert r.report_id == body_digest(raw)
    assert parse(raw).report_id == r.report_id  # the same bytes dedupe


# extras ----------------------------------------------------------------------------------------


def test_unknown_kwargs_and_sdk_extras_are_kept():
    r = parse(
        body(
            traceback={"callback_func_a": "Traceback (most recent call last): ..."},
            consumer="DatasetConsumer",
            host="pacer-01",
            attempt=2,
            headers={"x-retry": 1},
            something_new={"a": [1]},
        )
    )
    assert r.traceback == {"callback_func_a": "Traceback (most recent call last): ..."}
    assert r.extra == {
        "consumer": "DatasetConsumer",
        "host": "pacer-01",
        "attempt": 2,
        "headers": {"x-retry": 1},
        "something_new": {"a": [1]},
    }


# identifiers -----------------------------------------------------------------------------------


def test_instrument_mixed_case_is_lower_cased():
    assert parse(body(object_identifiers={"instrument": "Bl13"})).instrument == "bl13"


def test_instrument_from_payload_when_identifiers_lack_it():
    r = parse(body(object_identifiers={"dataset_id": "77"}, payload='{"instrument": "BL22"}'))
    assert (r.instrument, r.dataset_id) == ("bl22", "77")


def test_proposal_sync_name_is_the_investigation():
    r = parse(
        body(
            message_type="proposal-sync",
            object_identifiers={"name": "2022097034", "instrument": "BL13", "visit_id": "1"},
        )
    )
    assert (r.investigation, r.visit_id) == ("2022097034", "1")


# quarantine reasons ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"not json at all", "not JSON"),
        (b"\xff\xfe\x00garbage", "not UTF-8"),
        (b'["a", "list"]', "not an object"),
        (b'{"id": "1", "task": "x", "kwargs": {}', "not JSON"),
        (body(task="celery.chord_unlock"), "task is"),
        (body(message_type=...), "neither message_type nor type"),
        (body(errored="yes"), "errored"),
        (body(object_identifiers=["BL13"]), "object_identifiers"),
        (body(payload=12), "payload"),
        (body(hash=1234), "hash"),
        (b'{"id": "1", "task": "dashboard.tasks.log_pacer_message", "kwargs": "x"}', "kwargs"),
        (b'{"id": 5, "task": "dashboard.tasks.log_pacer_message", "kwargs": {"type": "a"}}', "id"),
        (body(payload={"v": float("nan")}), "NaN"),
        (body(payload="nul\x00byte"), "NUL"),
        (body(payload="\ud800"), "surrogate"),
        (b"[" * 5000 + b"]" * 5000, "nested"),
    ],
)
def test_not_a_report_has_a_reason(raw, reason):
    with pytest.raises(NotAReport) as exc:
        parse(raw)
    assert reason.lower() in exc.value.reason.lower()


def test_over_report_max_bytes_is_quarantined_before_decoding():
    raw = body(payload="x" * 5000)
    with pytest.raises(NotAReport, match="over REPORT_MAX_BYTES"):
        parse(raw, max_bytes=4096)
