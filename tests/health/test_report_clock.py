"""PACER_TIMEZONE detection (issue 19 §2.1): reports whose processing times sit a whole number of
hours from their arrival make /healthz and the System page name the setting."""

from __future__ import annotations

import dataclasses
import zoneinfo
from datetime import UTC, datetime, timedelta

import pytest

from tests.factories import report_body, write
from tests.health.test_problems import healthy
from webapp.health import clock
from webapp.health.queries import diagnose

MADRID = zoneinfo.ZoneInfo("Europe/Madrid")


def samples(offset: timedelta, n: int = 20, start=datetime(2026, 6, 1, 9, tzinfo=UTC)):
    """n (processing_end, received_at): processed 2 s before arrival, shifted by `offset`."""
    return [
        (start + timedelta(minutes=i) - timedelta(seconds=2) + offset, start + timedelta(minutes=i))
        for i in range(n)
    ]


@pytest.mark.unit
@pytest.mark.parametrize(("hours", "side"), [(1, "ahead of"), (2, "ahead of"), (-5, "behind")])
def test_whole_hour_offset_is_named_with_the_setting(hours, side):
    offset = clock.clock_offset(samples(timedelta(hours=hours)), zoneinfo.ZoneInfo("UTC"))
    assert offset["hours"] == hours
    text = clock.problem(offset, "UTC")
    assert f"consistently {abs(hours)} h {side} their arrival" in text
    assert "PACER probably stamps local time; set PACER_TIMEZONE (now UTC)" in text


@pytest.mark.unit
@pytest.mark.parametrize(
    "data",
    [
        samples(timedelta(0)),  # right setting
        samples(timedelta(hours=1), n=clock.MIN_SAMPLES - 1),  # too few to tell
        samples(timedelta(hours=1), n=10) + samples(timedelta(0), n=10),  # no consensus
        samples(timedelta(minutes=30)),  # a backlog, not a zone
        [],
    ],
)
def test_no_verdict_without_a_consistent_whole_hour(data):
    offset = clock.clock_offset(data, zoneinfo.ZoneInfo("UTC"))
    assert offset["hours"] is None and clock.problem(offset, "UTC") is None


@pytest.mark.unit
def test_repeated_hour_at_the_end_of_dst_is_left_out():
    # 2026-10-25, Madrid: 02:00-03:00 local happens twice (CEST until 01:00 UTC, then CET).
    # Reports processed in the second 02:xx (01:xx UTC), stamped naive, read with fold=0 (the
    # first 02:xx, 00:xx UTC): an hour behind their arrival by construction, with the right zone.
    second = datetime(2026, 10, 25, 1, 0, tzinfo=UTC)
    data = [
        (second + timedelta(minutes=2 * i) - timedelta(hours=1), second + timedelta(minutes=2 * i))
        for i in range(25)
    ]
    assert clock.in_repeated_hour(data[0][0], MADRID)
    assert clock.clock_offset(data, MADRID)["hours"] is None
    # The same data judged in UTC (no repeated hour): a real one-hour offset.
    assert clock.clock_offset(data, zoneinfo.ZoneInfo("UTC"))["hours"] == -1


@pytest.mark.unit
def test_diagnose_adds_the_problem():
    facts = healthy()
    assert diagnose(facts) == []
    facts["database"]["report_clock"] = {
        "hours": 1,
        "samples": 30,
        "agreeing": 30,
        "setting": "UTC",
    }
    problems = diagnose(facts)
    assert any("set PACER_TIMEZONE (now UTC)" in p for p in problems)


def madrid_reports(n: int, now: datetime) -> list[bytes]:
    """Reports a Madrid PACER sends: naive local time, processed just before `now`."""
    bodies = []
    for i in range(n):
        end = (now - timedelta(seconds=3 + i)).astimezone(MADRID).replace(tzinfo=None)
        start = end - timedelta(milliseconds=400)
        bodies.append(
            report_body(processing_start=start.isoformat(), processing_end=end.isoformat())
        )
    return bodies


def test_healthz_and_system_page_name_the_setting(app, client, pg, settings):
    now = datetime.now(UTC)
    write(pg, settings, madrid_reports(15, now), now=now)  # read in the default UTC
    hours = round(MADRID.utcoffset(now.replace(tzinfo=None)).total_seconds() / 3600)

    body = client.get("/healthz").get_json()  # DISABLED_AUTH: an administrator
    expected = f"consistently {hours} h ahead of their arrival"
    matching = [p for p in body["problems"] if expected in p]
    assert matching and "set PACER_TIMEZONE (now UTC)" in matching[0]
    assert body["database"]["report_clock"]["hours"] == hours
    html = client.get("/system").get_data(as_text=True)
    assert expected in html and "set PACER_TIMEZONE (now UTC)" in html


def test_right_setting_is_no_problem(app, client, pg, settings):
    now = datetime.now(UTC)
    madrid = dataclasses.replace(settings, PACER_TIMEZONE="Europe/Madrid")
    write(pg, madrid, madrid_reports(15, now), now=now)
    original = app.extensions["settings"]
    app.extensions["settings"] = madrid
    try:
        body = client.get("/healthz").get_json()
    finally:
        app.extensions["settings"] = original
    assert body["database"]["report_clock"]["hours"] is None
    assert not [p for p in body["problems"] if "PACER_TIMEZONE" in p]
