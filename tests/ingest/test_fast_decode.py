"""The fast JSON decode (pydantic-core first, the standard library when it refuses) changes nothing.

`decode_json` must give exactly what `_DECODER.decode` (the standard library) gives, or raise
exactly its error; and `parse_report` on the same bytes must give the same ParsedReport, or the
same quarantine reason, as the parser that decodes with the standard library only. The corpus
holds the odd bodies real producers send and hostile ones.
"""

from __future__ import annotations

import json
import random
import re
import zoneinfo

import pytest

from models.identifiers import IDENTIFIERS
from tests.factories import REPORT_KWARGS, REPORT_TASK
from webapp.demo import generate_reports
from webapp.ingest import report as report_module
from webapp.ingest.report import NotAReport, _scalar, decode_json, parse_report, promote_identifiers

TEXTS = [
    '"a\nb"',  # raw control characters in strings: refused by both
    '"a\tb"',
    '"a\x01b"',
    '"a\x7fb"',
    "01",
    "1.",
    ".5",
    "+1",
    "1e",
    "0x1",
    "-",
    "[1,]",
    '{"a":1,}',
    "[1 2]",
    " [1] ",
    "\t[1]\r\n",
    "[1]\x00",
    '"\\udc00"',  # unpaired surrogates: the standard library decodes them, jiter refuses
    '"\\ud800"',
    '"\\ud800\\u0041"',
    '"\\ud800x"',
    '"\\ud83d\\ude00"',  # a pair
    '"\\u0000"',
    '"\\/"',
    '"\\x"',
    "'a'",
    "[" + "1" * 4300 + "]",  # the int_max_str_digits limit, and one over it
    "[" + "1" * 4301 + "]",
    "[-" + "1" * 4300 + "]",
    "[" + "1" * 4400 + ".5]",
    "[123456789012345678901234567890, -0, -0.0, 0e0, 1E+2, 1e-2, 1E400, -1e400, 0.1e-400]",
    "[9007199254740993, 1.7976931348623157e308, 5e-324, 2.2250738585072014e-308, 0.1, 1.0]",
    '{"a": NaN}',
    '{"a": Infinity}',
    '{"a": -Infinity}',
    "NaN",
    '{"":1}',
    '{"a":1,"b":2,"a":3}',  # duplicate keys: the last value, the first position
    '{"a":{"a":1},"a":2,"b":{"c":1,"c":[1]}}',
    "[true,false,null]",
    "tru",
    '"\u2028"',
    '"é"',
    '"\\u00E9\\u00e9"',
    "\ufeff{}",  # a byte order mark
    "\u00a0[1]",
    "[1]\u00a0",
    "",
    " ",
    "null",
    "1",
    '"s"',
    '"x\\"y"',
    "[" * 100 + "]" * 100,  # deeper than jiter's limit, within the standard library's
    "[" * 3000 + "]" * 3000,  # deeper than both
    '{"a": [1, 2, {"b": "c"}]} x',  # extra data
]


def _outcome(decode, text):
    try:
        value = decode(text)
    except RecursionError:
        return ("recursion",)
    except ValueError as exc:
        return ("error", type(exc).__name__, str(exc))
    # repr: 1 and 1.0, 0.0 and -0.0 are different values here, and key order counts.
    return ("value", repr(value))


@pytest.mark.parametrize("text", TEXTS, ids=range(len(TEXTS)))
def test_decode_json_is_the_standard_librarys_decode(text):
    assert _outcome(decode_json, text) == _outcome(report_module._DECODER.decode, text)


def test_random_floats_and_ints_decode_identically():
    rng = random.Random(7)
    numbers = []
    for _ in range(3000):
        numbers.append(repr(rng.uniform(-1e6, 1e6)))
        numbers.append(f"{rng.random():.{rng.randint(1, 25)}g}e{rng.randint(-330, 310)}")
        numbers.append(str(rng.randint(-(10**40), 10**40)))
    text = "[" + ",".join(numbers) + "]"
    assert _outcome(decode_json, text) == _outcome(report_module._DECODER.decode, text)


def _parse(body: bytes, tz: str = "Europe/Madrid"):
    try:
        return parse_report(
            body, task_name=REPORT_TASK, timezone=zoneinfo.ZoneInfo(tz), max_bytes=1 << 20
        )
    except NotAReport as exc:
        return ("quarantined", exc.reason)


def _envelope(kwargs, **extra) -> dict:
    return {"id": "0d4c7c3e", "task": REPORT_TASK, "args": [], "kwargs": kwargs, **extra}


def _bodies() -> list[bytes]:
    bodies = [json.dumps(r).encode() for r in generate_reports(300, seed=5, payload_bytes=800)]
    k = dict(REPORT_KWARGS)
    odd = [
        _envelope(k),
        _envelope({**k, "payload": '{"instrument": "BL99", "n": 12345678901234567890123}'}),
        _envelope({**k, "payload": '{"a": NaN}'}),
        _envelope({**k, "payload": '{"instrument": "x", "instrument": "BL7"}'}),
        _envelope({**k, "payload": "{'instrument': 'bl1', 'files': (1, 2)}"}),
        _envelope({**k, "payload": "[" + "1" * 5000 + "]"}),
        _envelope({**k, "payload": '["\\ud800"]'}),
        _envelope({**k, "payload": "<a><b>1</b></a>"}),
        _envelope({**k, "payload": "   [1, 2]  trailing"}),
        _envelope({**k, "payload": {"instrument": "BL2", "deep": [[[[1.5e300]]]]}}),
        _envelope({**k, "object_identifiers": {"instrument": "\ud800"}}),
        _envelope({**k, "object_identifiers": {"instrument": "a\x00b"}}),
        _envelope({**k, "object_identifiers": {"instrument": 10**30, "dataset": 1.5}}),
        _envelope({**k, "error_message": {"x": "é \u2028 ü"}, "errored": True}),
        _envelope({**k, "extra_thing": [1, -0.0, 1e400]}),
        _envelope({**k, "processing_start": "2026-03-29T02:30:00"}),
        {**k},  # bare kwargs
        [1, 2],
        _envelope({**k}, task="other.task"),
    ]
    bodies += [json.dumps(b, ensure_ascii=False).encode("utf-8", "surrogatepass") for b in odd]
    bodies += [json.dumps(b).encode() for b in odd]  # \u escapes
    plain = json.dumps(_envelope(k))
    bodies += [
        b"\xef\xbb\xbf" + plain.encode(),  # BOM
        plain.encode()[:-1] + b"\xff}",  # not UTF-8
        plain.replace('"args": []', '"args": [NaN]').encode(),
        plain.replace('"args": []', '"args": [' + "1" * 4301 + "]").encode(),
        plain.replace('"args": []', '"args": [' + "1" * 400 + "]").encode(),
        plain.replace('"args": []', '"args": [1], "args": [2], "id": "dup"').encode(),
        plain.replace('"args": []', '"args": [' + "[" * 100 + "]" * 100 + "]").encode(),
        plain.replace('"args": []', '"args": "\\u0000"').encode(),
        plain.replace('"args": []', '"args": "\\udfff"').encode(),
        plain.replace('"args": []', '"args": "a\nb"').encode(),
        plain.encode() + b" x",
        plain.encode() + b" \n",
        b"",
        b"null",
    ]
    return bodies


def test_parse_report_is_the_same_as_with_the_standard_library_only(monkeypatch):
    bodies = _bodies()
    fast = [_parse(b) for b in bodies]
    monkeypatch.setattr(report_module, "decode_json", report_module._DECODER.decode)
    reference = [_parse(b) for b in bodies]
    assert len(fast) == len(reference)
    for body, got, want in zip(bodies, fast, reference, strict=True):
        assert repr(got) == repr(want), body[:200]
    # The corpus does reach both outcomes.
    assert sum(isinstance(r, tuple) for r in fast) >= 10
    assert sum(not isinstance(r, tuple) for r in fast) >= 300


def _promote_reference(message_type, identifiers, decoded_payload):
    out = {}
    for identifier in IDENTIFIERS:
        candidates = identifier.candidates(message_type, identifiers, decoded_payload)
        value = next((v for v in map(_scalar, candidates) if v is not None), None)
        out[identifier.name] = identifier.normalise(value)
    return out


@pytest.mark.parametrize(
    ("message_type", "identifiers", "payload"),
    [
        ("dataset-ingestion", {"instrument": "BL13", "dataset": "d"}, None),
        ("dataset-ingestion", {"instrument": "", "dataset": None}, {"instrument": "P"}),
        ("dataset-ingestion", {"instrument": {"a": 1}}, {"instrument": " Q "}),
        ("dataset-ingestion", {"instrument": "   "}, {"instrument": 5}),
        ("proposal-sync", {"name": "2022"}, None),
        ("proposal-sync", {"investigation": "", "name": 7}, None),
        ("other", {"name": "2022"}, None),
        ("other", {}, ["instrument"]),
    ],
)
def test_promote_identifiers_unchanged(message_type, identifiers, payload):
    assert promote_identifiers(message_type, identifiers, payload) == _promote_reference(
        message_type, identifiers, payload
    )


@pytest.mark.parametrize(
    "value",
    [
        {"a": 1},
        {"é": "ü\u2028", "x": [1, 2.5, None, True, -0.0]},
        {"n": float("nan"), "i": float("-inf")},
        {1: 2, None: 3, 1.5: 4, False: 5},
        ["a", {"b": {}}],
        10**30,
        {"s": "\ud800", "t": "\x00"},
        {"when": __import__("datetime").datetime(2026, 12, 4, 23, 0)},  # default=str
    ],
)
def test_shared_encoders_render_as_json_dumps(value):
    from webapp.ingest import writer

    expected = json.dumps(value, ensure_ascii=False, default=str)
    assert writer._json(value) == expected
    assert report_module._to_text(value) == expected
    try:
        payload = json.dumps(value, ensure_ascii=False)
    except TypeError as exc:
        with pytest.raises(TypeError, match=re.escape(str(exc))):
            report_module._PAYLOAD_ENCODE(value)
    else:
        assert report_module._PAYLOAD_ENCODE(value) == payload
