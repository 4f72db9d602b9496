"""The filter form's date pickers show what the URL said, and a page keeps what it can use of a
query (webapp.errors.parse_keeping_input)."""

from __future__ import annotations

import pytest
from flask import Flask
from werkzeug.datastructures import MultiDict

from webapp.errors import InvalidFilter, parse_keeping_input
from webapp.messages.filters import MessageFilter, datetime_local_value


@pytest.mark.parametrize(
    ("text", "end_of_day", "value"),
    [
        ("2026-03-31", False, "2026-03-31T00:00"),
        ("2026-03-31", True, "2026-04-01T00:00"),  # a bare `until` date: through that day
        ("2026-03-31T10:15", True, "2026-03-31T10:15"),  # what the picker submits
        ("2026-03-31T10:15:07Z", False, "2026-03-31T10:15:07"),
        ("2026-03-31 12:15+02:00", False, "2026-03-31T10:15"),  # shown in UTC
        ("0900-01-02", False, "0900-01-02T00:00"),  # four-digit years
        ("2026-13-45", False, ""),
        (None, False, ""),
    ],
)
def test_datetime_local_value(text, end_of_day, value):
    assert datetime_local_value(text, end_of_day=end_of_day) == value
    if value:  # submitting the picker's value unchanged filters the same way
        key = "until" if end_of_day else "since"
        original = getattr(MessageFilter.from_args({key: text}), key)
        assert getattr(MessageFilter.from_args({key: value}), key) == original


def test_parse_keeping_input_leaves_out_only_what_it_refuses():
    app = Flask(__name__)
    args = MultiDict(
        [("since", "2026-13-45"), ("status", "broken"), ("type", "a"), ("routing_key", "rk")]
    )
    with app.test_request_context("/", headers={"Accept": "text/html"}):
        flt, refused = parse_keeping_input(MessageFilter.from_args, args)
    assert set(refused) == {"since", "status"}
    assert "2026-13-45" in refused["since"]
    assert (flt.types, flt.routing_key, flt.since, flt.status) == (("a",), "rk", None, "all")
    assert args.get("since") == "2026-13-45"  # the request's own arguments are left alone

    # JSON callers and errors without a field still get the error.
    with app.test_request_context("/api/v1/messages"), pytest.raises(InvalidFilter):
        parse_keeping_input(MessageFilter.from_args, args)
    with app.test_request_context("/"), pytest.raises(InvalidFilter):
        parse_keeping_input(lambda a: (_ for _ in ()).throw(InvalidFilter("no field")), args)
