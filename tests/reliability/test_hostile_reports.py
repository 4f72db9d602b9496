"""Hostile report bodies, property-based, through a real worker: valid ones stored, the rest
quarantined with a reason, the worker alive, every stored one's pages render (no error, no hang,
no entity expansion, no fetch, no code run)."""

from __future__ import annotations

import json
import socket
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import psycopg2
import pytest
import requests
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

from tests.conftest import admin_dsn
from tests.factories import report_body
from tests.processes import wait_for
from tests.reliability.conftest import Publisher, delete_queue

pytestmark = pytest.mark.slow

TASK = "dashboard.tasks.log_pacer_message"
XSS = '<script>alert("pwned")</script>'
PAGE_TIMEOUT = 15


@dataclass(frozen=True)
class Case:
    kind: str
    body: bytes
    expect: str  # "stored" | "quarantined" | "either"
    report_id: str | None = None


# Sentinels: a listener that must never be contacted, a file that must never be read, a file
# that must never be created.
_SENTINEL = socket.socket()
_SENTINEL.bind(("127.0.0.1", 0))
_SENTINEL.listen(16)
SENTINEL_PORT = _SENTINEL.getsockname()[1]
SECRET_FILE = Path(f"/tmp/pd-reliability-secret-{uuid.uuid4().hex}")  # noqa: S108
SECRET = f"SECRET-{uuid.uuid4().hex}"
PWNED_FILE = Path(f"/tmp/pd-reliability-pwned-{uuid.uuid4().hex}")  # noqa: S108


def valid(kind: str, **kwargs) -> Case:
    rid = f"hostile-{uuid.uuid4()}"
    return Case(kind, report_body(id=rid, **kwargs), "stored", rid)


def either(kind: str, **kwargs) -> Case:
    rid = f"hostile-{uuid.uuid4()}"
    return Case(kind, report_body(id=rid, **kwargs), "either", rid)


def invalid(kind: str, body: bytes) -> Case:
    return Case(kind, body, "quarantined")


def envelope_text(kwargs_json: str, rid: str | None = None) -> str:
    rid = rid or f"hostile-{uuid.uuid4()}"
    return f'{{"id": "{rid}", "task": "{TASK}", "args": [], "kwargs": {kwargs_json}}}'


# Payloads -----------------------------------------------------------------------------------

BILLION_LAUGHS = (
    '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    + "".join(
        f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">'
        for i in range(1, 10)
    )
    + "]><lolz>&lol9;</lolz>"
)
XXE_HTTP = (
    f'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "http://127.0.0.1:{SENTINEL_PORT}/xxe">]>'
    "<r>&x;</r>"
)
XXE_FILE = (
    f'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file://{SECRET_FILE}">]><r>&x;</r>'
)
XXE_PARAM = (
    '<?xml version="1.0"?><!DOCTYPE r [<!ENTITY % p SYSTEM '
    f'"http://127.0.0.1:{SENTINEL_PORT}/dtd"> %p;]><r/>'
)
XINCLUDE = (
    '<r xmlns:xi="http://www.w3.org/2001/XInclude">'
    f'<xi:include href="http://127.0.0.1:{SENTINEL_PORT}/xi" parse="text"/></r>'
)
PY_REPR = "{'instrument': 'BL13', 'n': 1, 'ok': True, 'none': None, 't': (1, 2), 'x': 1.5e3}"
PY_EVIL = [
    f"__import__('os').system('touch {PWNED_FILE}')",
    f"{{'a': __import__('os').system('touch {PWNED_FILE}')}}",
    f"{{'a': (lambda: open('{PWNED_FILE}', 'w'))()}}",
    "{'a': 1, " * 300 + "}" * 300,
]

#: Text PostgreSQL can store (NUL is refused on purpose: see the "unstorable text" cases).
safe_text = st.text(st.characters(exclude_characters="\x00"))

payloads = st.one_of(
    st.sampled_from(
        [BILLION_LAUGHS, XXE_HTTP, XXE_FILE, XXE_PARAM, XINCLUDE, PY_REPR, *PY_EVIL, XSS]
    ),
    st.integers(1, 200).map(lambda n: "[" * n + "]" * n),  # deep but decodable
    st.integers(2000, 20000).map(lambda n: "[" * n + "]" * n),  # too deep for any decoder
    st.integers(1, 60).map(lambda n: '{"a": ' * n + "1" + "}" * n),
    st.just('{"big": 1e400, "neg": -1e400, "tiny": 1e-400}'),
    st.just('{"n": NaN}'),  # not JSON: kept as text
    safe_text,
    st.recursive(
        st.none()
        | st.booleans()
        | st.integers()
        | st.floats(allow_nan=False, allow_infinity=False)
        | safe_text,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(safe_text, inner, max_size=4),
        max_leaves=20,
    ),
)


# Timestamps --------------------------------------------------------------------------------


@st.composite
def accepted_timestamps(draw) -> str:
    """ISO 8601 shapes the parser must accept: T or space, any fraction (dot or comma), Z,
    +hh:mm, +hhmm, with or without a space before the offset."""
    moment = draw(st.datetimes(datetime(1971, 1, 2), datetime(2199, 12, 30)))
    text = moment.strftime("%Y-%m-%d") + draw(st.sampled_from(["T", " "]))
    text += moment.strftime("%H:%M:%S")
    digits = draw(st.integers(0, 9))
    if digits:
        text += draw(st.sampled_from([".", ","])) + draw(
            st.text("0123456789", min_size=digits, max_size=digits)
        )
    hours, minutes = draw(st.integers(0, 14)), draw(st.sampled_from([0, 30, 45]))
    sign = draw(st.sampled_from("+-"))
    zone = draw(
        st.sampled_from(
            ["", "Z", f"{sign}{hours:02d}:{minutes:02d}", f"{sign}{hours:02d}{minutes:02d}"]
        )
    )
    if zone and zone != "Z" and draw(st.booleans()):
        zone = " " + zone
    return text + zone


rejected_timestamps = st.sampled_from(
    [
        "2026-13-01T00:00:00",
        "2026-02-30T10:00:00",
        "2026-03-31T25:00:00",
        "yesterday",
        "31/03/2026 10:15",
        "9999-12-31T00:00:00",
        "1900-01-01T00:00:00",
        "   ",
        "2026-03-31T10:15:02" + "0" * 60,
        "2026-03-31T10:15:02+25:00",
    ]
)


# Cases -------------------------------------------------------------------------------------

#: Fields with a declared type, and values of a type they must refuse.
TYPED_FIELDS = {
    "message_type": [1, 2.5, True, ["t"], {"t": 1}],
    "type": [1, False, ["t"], {}],
    "object_identifiers": ["BL13", 7, True, ["instrument"]],
    "error_message": [1, 0.5, True, ["e"]],
    "processing_start": [1711880102, 1.5, True, ["2026"], {}],
    "processing_end": [1711880102, False, []],
    "processed_at": [1711880102, ["x"]],
    "hash": [123, True, ["h"], {"h": 1}],
    "payload_format": [1, ["json"]],
    "payload": [1, 2.5, True, False],
    "errored": ["yes", "false", 1, 0, [], {}],
    "exchange_name": [1, ["x"], {}],
    "routing_key": [1, True, ["x"]],
    "traceback": [1, True, ["t"]],
}


def wrong_type_cases() -> st.SearchStrategy[Case]:
    kwargs_cases = st.sampled_from(
        [(field, value) for field, values in TYPED_FIELDS.items() for value in values]
    ).map(lambda fv: invalid(f"wrong type: {fv[0]}={fv[1]!r}", report_body(**{fv[0]: fv[1]})))

    def envelope_case(field_value) -> Case:
        field, value = field_value
        body = json.loads(report_body())
        body[field] = value
        return invalid(f"wrong type: envelope {field}={value!r}", json.dumps(body).encode())

    envelope_cases = st.sampled_from(
        [
            ("id", 42),
            ("id", ""),
            ("id", ["x"]),
            ("id", "x" * 300),
            ("task", 1),
            ("task", "celery.backend_cleanup"),
            ("kwargs", ["a"]),
            ("kwargs", "x"),
            ("kwargs", None),
        ]
    ).map(envelope_case)
    return kwargs_cases | envelope_cases


def _insert_byte(case_body: bytes, data) -> bytes:
    at = data.draw(st.integers(1, len(case_body) - 1))
    bad = data.draw(st.sampled_from([b"\xff", b"\xc3", b"\xe2\x82", b"\xed\xa0\x80", b"\x80"]))
    return case_body[:at] + bad + case_body[at:]


@st.composite
def cases(draw) -> Case:
    kind = draw(
        st.sampled_from(
            [
                "valid payload",
                "valid timestamps",
                "valid legacy",
                "valid extras",
                "odd timestamp text",
                "random bytes",
                "invalid utf-8",
                "truncated json",
                "wrong type",
                "deep kwargs",
                "json constants",
                "unstorable text",
                "not a report",
                "rejected timestamp",
            ]
        )
    )
    if kind == "valid payload":
        payload = draw(payloads)
        ids = {"instrument": XSS, "investigation": "<img src=x onerror=alert(1)>"}
        return valid(f"payload {str(payload)[:60]!r}", payload=payload, object_identifiers=ids)
    if kind == "valid timestamps":
        start, end = draw(accepted_timestamps()), draw(accepted_timestamps())
        return valid(f"timestamps {start!r} {end!r}", processing_start=start, processing_end=end)
    if kind == "valid legacy":
        processed = draw(accepted_timestamps())
        body = report_body(
            processing_start=None,
            processing_end=None,
            processed_at=processed,
            error_message=str([("callback_x", "ValueError('bad <b>value</b>')")]),
            errored=True,
        )
        data = json.loads(body)
        data["kwargs"]["type"] = data["kwargs"].pop("message_type")
        rid = data["id"]
        return Case(f"legacy processed_at {processed!r}", json.dumps(data).encode(), "stored", rid)
    if kind == "valid extras":
        extras = draw(
            st.dictionaries(
                safe_text.filter(lambda k: k and k not in TYPED_FIELDS and k != "id"),
                st.recursive(
                    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | safe_text,
                    lambda inner: (
                        st.lists(inner, max_size=3) | st.dictionaries(safe_text, inner, max_size=3)
                    ),
                    max_leaves=10,
                ),
                max_size=4,
            )
        )
        return valid(f"extras {list(extras)[:3]!r}", **extras)
    if kind == "odd timestamp text":
        text = draw(st.text(max_size=40))
        return either(f"timestamp text {text!r}", processing_start=text)
    if kind == "random bytes":
        body = draw(st.binary(max_size=300).filter(lambda b: not b.lstrip().startswith(b"{")))
        return invalid(f"random bytes {body[:40]!r}", body)
    if kind == "invalid utf-8":
        data = draw(st.data())
        return invalid("invalid utf-8", _insert_byte(report_body(payload="ünïcödé ✓"), data))
    if kind == "truncated json":
        body = report_body()
        cut = draw(st.integers(0, len(body) - 1))
        return invalid(f"truncated at {cut}", body[:cut])
    if kind == "wrong type":
        return draw(wrong_type_cases())
    if kind == "deep kwargs":
        depth = draw(st.sampled_from([65, 100, 1000, 100_000]))
        nested = '{"a": ' * depth + "1" + "}" * depth
        text = envelope_text(f'{{"message_type": "t", "object_identifiers": {nested}}}')
        return invalid(f"kwargs nested {depth} deep", text.encode())
    if kind == "json constants":
        constant = draw(st.sampled_from(["NaN", "Infinity", "-Infinity"]))
        text = envelope_text(f'{{"message_type": "t", "payload": {{"x": {constant}}}}}')
        return invalid(f"JSON constant {constant}", text.encode())
    if kind == "unstorable text":
        escape = draw(st.sampled_from(["\\u0000", "\\ud800", "\\udfff", "a\\u0000b"]))
        text = envelope_text(f'{{"message_type": "t", "payload": "x{escape}y"}}')
        return invalid(f"unstorable {escape}", text.encode())
    if kind == "not a report":
        body = draw(
            st.sampled_from(
                [
                    BILLION_LAUGHS.encode(),
                    XXE_HTTP.encode(),
                    repr(json.loads(report_body())).encode(),  # a Python-repr body
                    b"[]",
                    b"null",
                    b'"a string"',
                    b"{}",
                    json.dumps({"id": "x", "task": TASK, "kwargs": {"hash": "h"}}).encode(),
                ]
            )
        )
        return invalid(f"not a report {body[:40]!r}", body)
    assert kind == "rejected timestamp"
    value = draw(rejected_timestamps)
    field = draw(st.sampled_from(["processing_start", "processing_end"]))
    return invalid(f"{field}={value!r}", report_body(**{field: value}))


def one_of_each() -> list[Case]:
    """Every hostile shape at least once (the explicit example), whatever the random draw."""
    out = [
        valid(f"payload {p[:40]!r}", payload=p, object_identifiers={"instrument": XSS})
        for p in [
            BILLION_LAUGHS,
            XXE_HTTP,
            XXE_FILE,
            XXE_PARAM,
            XINCLUDE,
            PY_REPR,
            *PY_EVIL,
            XSS,
            "[" * 20000 + "]" * 20000,
            '{"big": 1e400}',
            '{"n": NaN}',
            "plain text",
        ]
    ]
    out.append(valid("payload object", payload={"a": [1, {"b": None}], "instrument": "BL06"}))
    out += [
        valid(f"timestamps {t!r}", processing_start=t, processing_end=t)
        for t in [
            "2026-03-31T10:15:02",
            "2026-03-31 10:15:02.123",
            "2026-03-31T10:15:02,123456789Z",
            "2026-03-31T10:15:02+02:00",
            "2026-03-31 10:15:02.123 +0200",
            "2026-03-31T10:15:02.5-14:00",
        ]
    ]
    out.append(
        valid(
            "mixed naive/aware",
            processing_start="2026-03-31T10:15:02",
            processing_end="2026-03-31T10:15:03+00:00",
        )
    )
    out += [
        invalid(f"wrong type: {field}={value!r}", report_body(**{field: value}))
        for field, values in TYPED_FIELDS.items()
        for value in values
    ]
    out += [
        invalid(f"rejected {t!r}", report_body(processing_start=t))
        for t in ["2026-13-01T00:00:00", "yesterday", "9999-12-31T00:00:00", "   "]
    ]
    out += [invalid("random bytes", b"\x00\xff\xfe garbage"), invalid("empty body", b"")]
    out.append(
        invalid("invalid utf-8", report_body(payload="caf\u00e9").replace(b"caf", b"caf\xff"))
    )
    out.append(invalid("truncated json", report_body()[:-1]))
    for depth in (65, 100_000):
        nested = '{"a": ' * depth + "1" + "}" * depth
        out.append(
            invalid(
                f"nested {depth}",
                envelope_text(f'{{"message_type": "t", "object_identifiers": {nested}}}').encode(),
            )
        )
    out.append(
        invalid("NaN", envelope_text('{"message_type": "t", "payload": {"x": NaN}}').encode())
    )
    out.append(
        invalid("NUL", envelope_text('{"message_type": "t", "payload": "a\\u0000"}').encode())
    )
    out.append(
        invalid("surrogate", envelope_text('{"message_type": "t", "payload": "\\ud800"}').encode())
    )
    out += [
        invalid("xml body", BILLION_LAUGHS.encode()),
        invalid("xxe body", XXE_HTTP.encode()),
        invalid("python-repr body", repr(json.loads(report_body())).encode()),
    ]
    return out


# The test ----------------------------------------------------------------------------------


class Ingestion:
    """Publishes one example's bodies and collects what the worker made of them."""

    def __init__(self, dsn: str, publisher: Publisher):
        self.dsn, self.publisher = dsn, publisher

    def _rows(self, sql: str, params: tuple = ()) -> list[tuple]:
        conn = psycopg2.connect(self.dsn)
        try:
            with conn.cursor() as cur:
                cur.execute(sql, params)
                return cur.fetchall()
        finally:
            conn.close()

    def watermarks(self) -> tuple[int, int]:
        return self._rows(
            "SELECT (SELECT coalesce(max(id), 0) FROM messages), "
            "(SELECT coalesce(max(id), 0) FROM quarantined_reports)"
        )[0]

    def run(self, bodies: list[bytes]) -> tuple[list[tuple], list[tuple]]:
        messages_after, quarantine_after = self.watermarks()
        for body in bodies:
            self.publisher.publish(body)

        def outcome():
            stored = self._rows(
                "SELECT id, report_id, payload FROM messages WHERE id > %s", (messages_after,)
            )
            quarantined = self._rows(
                "SELECT body, reason FROM quarantined_reports WHERE id > %s", (quarantine_after,)
            )
            return stored, quarantined

        wait_for(
            lambda: sum(map(len, outcome())) >= len(bodies), 60, f"{len(bodies)} bodies handled"
        )
        time.sleep(0.3)  # anything extra (a body handled twice) would show up now
        return outcome()


@pytest.fixture
def hostile_env(db, settings, unique_names, start_worker, live_server):
    SECRET_FILE.write_text(SECRET)
    knobs = {"INGEST_FLUSH_MS": "50", **unique_names}
    worker = start_worker("hostile", **knobs)
    base = live_server(**unique_names)
    publisher = Publisher(settings.broker_url, unique_names)
    http = requests.Session()
    try:
        yield worker, base, Ingestion(admin_dsn(settings.POSTGRES_DB), publisher), http
    finally:
        http.close()
        publisher.close()
        worker.stop()
        delete_queue(settings.broker_url, unique_names)
        SECRET_FILE.unlink(missing_ok=True)


def check_pages(http: requests.Session, base: str, message_id: int, case: Case) -> None:
    """The stored report's detail page, API record, trace and payload download all answer."""
    for path in (
        f"/messages/{message_id}",
        f"/messages/{message_id}/trace",
        f"/api/v1/messages/{message_id}",
        f"/messages/{message_id}/payload",
    ):
        started = time.monotonic()
        response = http.get(base + path, timeout=PAGE_TIMEOUT)
        elapsed = time.monotonic() - started
        if path.endswith("/payload"):
            assert response.status_code in (200, 404), (case.kind, response.status_code)
            if response.status_code == 200:  # (404: the report had no payload)
                assert "html" not in response.headers["Content-Type"], case.kind
                assert response.headers.get("Content-Disposition", "").startswith("attachment")
            continue
        assert response.status_code == 200, (case.kind, path, response.text[:500])
        assert elapsed < 5, f"{path} took {elapsed:.1f} s for {case.kind}"
        text = response.text
        assert len(text) < 4_000_000, f"{path} rendered {len(text)} characters for {case.kind}"
        assert SECRET not in text, f"{path} shows an external entity's file ({case.kind})"
        if not path.startswith("/api/"):
            assert XSS not in text, f"{path} does not escape report data ({case.kind})"


def assert_no_side_effects() -> None:
    _SENTINEL.settimeout(0.01)
    try:
        conn, _ = _SENTINEL.accept()
    except TimeoutError:
        pass
    else:
        conn.close()
        raise AssertionError("something fetched an external entity from the sentinel listener")
    assert not PWNED_FILE.exists(), "a Python-repr payload ran code"


@settings(
    max_examples=16,
    deadline=None,
    derandomize=True,
    database=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)
@given(batch=st.lists(cases(), min_size=1, max_size=16))
@example(batch=one_of_each())
def test_hostile_reports_interleaved_with_valid_ones(hostile_env, batch):
    worker, base, ingestion, http = hostile_env
    stored, quarantined = ingestion.run([case.body for case in batch])
    assert worker.alive, worker.output()[-3000:]
    assert len(stored) + len(quarantined) == len(batch), (
        "a body was lost or handled twice",
        [c.kind for c in batch],
        len(stored),
        len(quarantined),
    )
    stored_by_id = {report_id: (mid, payload) for mid, report_id, payload in stored}
    quarantined_bodies = Counter(bytes(body) for body, _ in quarantined)
    assert all(reason and reason.strip() for _, reason in quarantined)
    for case in batch:
        if case.expect == "stored":
            assert case.report_id in stored_by_id, (
                f"valid report quarantined: {case.kind}",
                [r for b, r in quarantined if bytes(b) == case.body],
            )
        elif case.expect == "quarantined":
            assert quarantined_bodies[case.body] > 0, f"invalid body stored: {case.kind}"
            quarantined_bodies[case.body] -= 1
        else:
            assert case.report_id in stored_by_id or quarantined_bodies[case.body] > 0, case.kind
    for case in batch:
        if case.report_id in stored_by_id:
            check_pages(http, base, stored_by_id[case.report_id][0], case)
    assert_no_side_effects()


def test_payload_limits_oversized_quarantined_under_limit_stored_whole(hostile_env, settings):
    """10 MB is over REPORT_MAX_BYTES (8 MiB): quarantined whole; 7.5 MB is stored whole."""
    worker, base, ingestion, http = hostile_env
    assert settings.REPORT_MAX_BYTES == 8 * 1024 * 1024
    big_payload = "x" * (10 * 1000 * 1000)
    fits_payload = json.dumps({"files": ["/data/bl13/" + "y" * 90] * 75_000})  # ~7.5 MB
    rid = f"fits-{uuid.uuid4()}"
    over, fits = report_body(payload=big_payload), report_body(id=rid, payload=fits_payload)
    assert len(over) > settings.REPORT_MAX_BYTES > len(fits) > 7 * 1000 * 1000
    stored, quarantined = ingestion.run([over, fits])
    assert worker.alive
    assert [report_id for _, report_id, _ in stored] == [rid]
    assert stored[0][2] == fits_payload  # never truncated
    assert len(quarantined) == 1
    assert bytes(quarantined[0][0]) == over  # kept whole for replay
    assert "REPORT_MAX_BYTES" in quarantined[0][1]
    response = http.get(f"{base}/messages/{stored[0][0]}", timeout=PAGE_TIMEOUT * 2)
    assert response.status_code == 200
    payload = http.get(f"{base}/messages/{stored[0][0]}/payload", timeout=PAGE_TIMEOUT * 2)
    assert payload.status_code == 200
    assert payload.text == fits_payload


def test_sentinels_work():
    """The side-effect checks can fail: a real connection to the sentinel is noticed."""
    with socket.create_connection(("127.0.0.1", SENTINEL_PORT), timeout=2):
        pass
    with pytest.raises(AssertionError, match="sentinel"):
        assert_no_side_effects()
