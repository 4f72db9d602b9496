"""Helpers of the stats and errors tests."""

from __future__ import annotations

import re
from contextlib import contextmanager

from sqlalchemy import event

from tests.factories import report_body

_MESSAGES = re.compile(r"\bmessages\b(?!_)", re.I)


def error_body(
    message_type="dataset-ingestion",
    callback="callback_func_main_dataset_creation",
    error="InvestigationNotFound: Investigation 2022097034 not found",
    instrument="BL13",
    ms=(0, 500),
    **kwargs,
) -> bytes:
    """An errored report."""
    return report_body(
        message_type=message_type,
        errored=True,
        error_message={callback: error},
        object_identifiers={
            "instrument": instrument,
            "investigation": "2022097034",
            "dataset": "d",
        },
        **_times(ms),
        **kwargs,
    )


def ok_body(message_type="dataset-ingestion", instrument="BL13", ms=(0, 200), **kwargs) -> bytes:
    return report_body(
        message_type=message_type,
        object_identifiers={
            "instrument": instrument,
            "investigation": "2022097034",
            "dataset": "d",
        },
        **_times(ms),
        **kwargs,
    )


def basic_mix() -> list[bytes]:
    """bl13 dataset-ingestion: 3 ok + 2 'not found' errors (ids differ); bl06 user-sync: 1 ok +
    1 timeout error."""
    return [
        ok_body(ms=(0, 100)),
        ok_body(ms=(0, 200)),
        ok_body(ms=(0, 300)),
        error_body(error="InvestigationNotFound: Investigation 2022097034 not found"),
        error_body(error="InvestigationNotFound: Investigation 2023000111 not found"),
        ok_body(message_type="user-sync", instrument="BL06", ms=(0, 50)),
        error_body(
            message_type="user-sync",
            instrument="BL06",
            callback="callback_func_sync",
            error="TimeoutError: ICAT at https://icat.example/icat did not answer in 30 s",
        ),
    ]


def _times(ms) -> dict:
    """processing_start/end `duration` ms apart (under an hour)."""
    _, duration = ms
    seconds, millis = divmod(duration, 1000)
    minutes, seconds = divmod(seconds, 60)
    return {
        "processing_start": "2026-03-31T10:00:00.000000",
        "processing_end": f"2026-03-31T10:{minutes:02d}:{seconds:02d}.{millis * 1000:06d}",
    }


@contextmanager
def no_messages_scan(engine):
    """Collect SQL sent through `engine`; fail if any statement reads the `messages` table."""
    statements: list[str] = []

    def before(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", before)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", before)
    touching = [s for s in statements if _MESSAGES.search(s)]
    assert not touching, f"statements touched messages: {touching}"
    assert statements, "no SQL was captured (listener not on the app's engine?)"
