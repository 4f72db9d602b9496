"""Is PACER_TIMEZONE right? Compare the newest reports' processing times with their arrival.

PACER stamps reports with naive local time, read in PACER_TIMEZONE (DESIGN §3). When that is
wrong (the default UTC at a site in Madrid), every processing time is off by a whole number of
hours, silently. A report is processed shortly before it arrives (`received_at`, set by the
dashboard), so when nearly all of the newest reports' `processing_end` sit the same whole number
of hours (not 0) from their arrival, the setting is wrong, and /healthz and the System page say so.

Cheap: the newest `SAMPLE_SIZE` rows of the last day through the `(received_at, id)` index, no
scan. Reports whose processing time falls in the repeated hour at the end of daylight saving
time are left out: their naive stamp is read with fold=0 (the first occurrence, README), so those
of the second occurrence are an hour off by construction, not because the setting is wrong.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import datetime, tzinfo

from sqlalchemy import text

#: The newest reports compared (bounded read).
SAMPLE_SIZE = 200
#: Fewer usable reports than this: no verdict.
MIN_SAMPLES = 10
#: Share of the usable reports that must agree on the same whole-hour offset.
AGREEMENT = 0.9
#: How far from the whole hour a report may be (transport and queueing delay).
TOLERANCE_SECONDS = 15 * 60

_SAMPLE_SQL = text(
    "SELECT processing_end, received_at FROM ("
    " SELECT processing_end, received_at FROM messages"
    " WHERE received_at >= now() - interval '1 day'"
    " ORDER BY received_at DESC LIMIT :n) newest "
    "WHERE processing_end IS NOT NULL"
)


def read_samples(conn, size: int = SAMPLE_SIZE) -> list[tuple[datetime, datetime]]:
    """(processing_end, received_at) of the newest reports (one bounded index read)."""
    return [(r[0], r[1]) for r in conn.execute(_SAMPLE_SQL, {"n": size})]


def in_repeated_hour(moment: datetime, tz: tzinfo) -> bool:
    """True when `moment`'s wall-clock time in `tz` occurs twice (end of daylight saving time)."""
    naive = moment.astimezone(tz).replace(tzinfo=None)
    first = naive.replace(tzinfo=tz, fold=0).utcoffset()
    second = naive.replace(tzinfo=tz, fold=1).utcoffset()
    return first != second


def clock_offset(samples: Iterable[tuple[datetime, datetime]], tz: tzinfo) -> dict:
    """{"hours": whole hours processing times sit from arrival (+ ahead, - behind) or None,
    "samples": usable reports, "agreeing": how many of them have that offset}."""
    offsets: Counter[int] = Counter()
    usable = 0
    for processed, received in samples:
        if processed is None or received is None or in_repeated_hour(processed, tz):
            continue
        usable += 1
        seconds = (processed - received).total_seconds()
        hours = round(seconds / 3600)
        if abs(seconds - hours * 3600) <= TOLERANCE_SECONDS:
            offsets[hours] += 1
    hours, agreeing = offsets.most_common(1)[0] if offsets else (0, 0)
    verdict = hours if hours and usable >= MIN_SAMPLES and agreeing >= AGREEMENT * usable else None
    return {"hours": verdict, "samples": usable, "agreeing": agreeing}


def problem(offset: dict | None, setting: str) -> str | None:
    """The sentence /healthz and the System page show, or None."""
    if not offset or not offset.get("hours"):
        return None
    hours = offset["hours"]
    side = "ahead of" if hours > 0 else "behind"
    return (
        f"reports' processing times are consistently {abs(hours)} h {side} their arrival "
        f"({offset['agreeing']} of the newest {offset['samples']}): PACER probably stamps local "
        f"time; set PACER_TIMEZONE (now {setting})"
    )
