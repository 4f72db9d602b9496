"""Pipeline runs written by the real ingestion writer at chosen received times."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from tests.factories import report_body as body

#: The pages ask with the real time: the runs are written relative to it (seconds before a test).
NOW = datetime.now(UTC).replace(microsecond=0)
S1, S2, STAT, LINKS = (
    "dataset-ingestion",
    "internal-dataset-ingestion",
    "internal-statistics",
    "internal-dataset-links",
)
ALL_OK = ((S1, False), (S2, False), (STAT, False), (LINKS, False))

#: hash -> (instrument, investigation, hours before NOW of the first report, [(type, errored)]).
#: Reports of a run arrive one minute apart, in this order.
RUNS = {
    "c0mp1e7e00000001": ("BL13", "INV-DONE", 5, ALL_OK),
    "57uck0n1e0000002": ("BL06", "INV-SIX", 5, ((S1, False),)),
    "fa11ed2000000003": ("BL13", "INV-F2", 5, ((S1, False), (S2, True))),
    "re7r1ed0k0000004": (
        "BL13",
        "INV-RETRY-OK",
        5,
        ((S1, False), (S2, True), (S2, False), (STAT, False), (LINKS, False)),
    ),
    "re7r1edfa1100005": ("BL13", "INV-RETRY-BAD", 5, ((S1, False), (S2, True), (S2, True))),
    "pa7a11e100000006": ("BL13", "INV-PARALLEL", 5, ((S1, False), (S2, False), (STAT, False))),
    "1a57fa1100000007": (
        "BL13",
        "INV-LAST",
        5,
        ((S1, False), (S2, False), (STAT, False), (LINKS, True)),
    ),
    "y0un900000000008": ("BL13", "INV-YOUNG", 0.5, ((S1, False),)),
    "01d0u751de000009": ("BL13", "INV-OLD", 24 * 5, ((S1, False),)),
    "f1xedwa171000010": ("BL13", "INV-FIXED", 5, ((S1, False), (S2, True), (S2, False))),
}
#: Stalled at NOW in the default 3-day window, by stage number.
STALLED = {
    1: {"57uck0n1e0000002"},
    2: {"fa11ed2000000003", "re7r1edfa1100005", "f1xedwa171000010"},
    3: {"pa7a11e100000006", "1a57fa1100000007"},
}


@dataclass
class Written:
    ids: dict[str, list[int]]  # hash -> message ids in order


@pytest.fixture
def runs(write_reports) -> Written:
    """RUNS written (plus a user-sync report, which belongs to no pipeline)."""
    ids: dict[str, list[int]] = {}
    for number, (digest, (instrument, investigation, hours, reports)) in enumerate(RUNS.items()):
        start = NOW - timedelta(hours=hours)
        ids[digest] = []
        for n, (message_type, errored) in enumerate(reports):
            identifiers = (
                {
                    "instrument": instrument,
                    "investigation": investigation,
                    "dataset": f"ds_{number}",
                }
                if message_type == S1
                else {"dataset_id": str(1000 + number), "investigation": investigation}
            )
            (message_id,) = write_reports(
                body(
                    message_type=message_type,
                    hash=digest,
                    errored=errored,
                    error_message={"callback_func_x": "RuntimeError: boom"} if errored else {},
                    object_identifiers=identifiers,
                    payload=f'{{"instrument": "{instrument}", "investigation": "{investigation}"}}',
                ),
                now=start + timedelta(minutes=n),
            )
            ids[digest].append(message_id)
    write_reports(
        body(message_type="user-sync", hash="5ca1ab1e00000011", object_identifiers={}),
        now=NOW - timedelta(hours=5),
    )
    return Written(ids)
