"""Factories of test data: reports (the wire format), messages written by the real ingestion
writer, groups and users, and the seeded permission-test messages. One module for every test
(their fixtures are in tests/fixtures.py)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

#: The Celery task name of a PACER report.
REPORT_TASK = "dashboard.tasks.log_pacer_message"

#: The kwargs of a minimal valid report; report_body(**overrides) replaces any of them.
REPORT_KWARGS: dict[str, Any] = {
    "object_identifiers": {
        "instrument": "BL13",
        "investigation": "2022097034",
        "dataset": "mx_01",
    },
    "error_message": {},
    "processing_start": "2026-03-31T10:15:02.123456",
    "processing_end": "2026-03-31T10:15:02.987654",
    "hash": "9a1b2c3d4e5f6071",
    "message_type": "dataset-ingestion",
    "payload_format": "",
    "payload": '{"investigation": "2022097034"}',
    "errored": False,
    "exchange_name": "dataset-ingest-exchange",
    "routing_key": "dataset.ingest",
}


def report_body(**kwargs) -> bytes:
    """A minimal valid report (wire format); kwargs override its fields (`id`: the report id)."""
    report_id = kwargs.pop("id", None) or str(uuid.uuid4())
    return json.dumps(
        {
            "id": report_id,
            "task": REPORT_TASK,
            "args": [],
            "retries": 10,
            "kwargs": {**REPORT_KWARGS, **kwargs},
        }
    ).encode()


# ---- messages: reports written by the real ingestion writer --------------------------------------


def parse_options(settings):
    """The writer's options from the settings, as the worker builds them."""
    from webapp.ingest.writer import ParseOptions

    return ParseOptions(settings.REPORT_TASK_NAME, settings.timezone, settings.REPORT_MAX_BYTES)


def write(pg, settings, bodies: Iterable[bytes], now: datetime | None = None) -> list[int]:
    """Write `bodies` in one batch on `pg` (commit + NOTIFY); their message ids in order."""
    from webapp.ingest.writer import RawReport, write_batch

    bodies = list(bodies)
    result = write_batch(
        pg, [RawReport(b, "application/json") for b in bodies], parse_options(settings), now=now
    )
    assert result.quarantined == 0, "a test report was quarantined"
    return [result.ids_by_report[json.loads(b)["id"]] for b in bodies]


def store_messages(db, settings, bodies: Iterable[bytes]) -> list[int]:
    """`write` on a raw connection of the app's engine (committed, outside the test's session)."""
    raw = db.engine.raw_connection()
    try:
        return write(raw.dbapi_connection, settings, bodies)
    finally:
        raw.close()


def store_message(app, db, **kwargs) -> int:
    """One message from report_body(**kwargs), stored by the writer; its id."""
    return store_messages(db, app.extensions["settings"], [report_body(**kwargs)])[0]


def ack(pg, ids: Iterable[int], by: str = "tester") -> None:
    """Mark messages acknowledged (the actions area owns the real service)."""
    with pg.cursor() as cur:
        cur.execute(
            "UPDATE messages SET acknowledged_at = now(), acknowledged_by = %s WHERE id = ANY(%s)",
            (by, list(ids)),
        )
    pg.commit()


# ---- groups and users ----------------------------------------------------------------------------


def new_group(session, name: str, **fields):
    """A committed Group granting nothing unless `fields` say so."""
    from models import Group

    group = Group(
        name=name,
        message_types=fields.pop("message_types", []),
        identifier_rules=fields.pop("identifier_rules", {}),
        can_acknowledge=fields.pop("can_acknowledge", False),
        can_reingest=fields.pop("can_reingest", False),
        reingest_message_types=fields.pop("reingest_message_types", []),
        synced_from_sso=fields.pop("synced_from_sso", False),
        **fields,
    )
    session.add(group)
    session.commit()
    return group


def new_user(session, sub: str, groups=(), **fields):
    """A committed User (email `<sub>@example.org` unless given) in `groups`."""
    from models import User

    user = User(sub=sub, email=fields.pop("email", f"{sub}@example.org"), **fields)
    user.groups = list(groups)
    session.add(user)
    session.commit()
    return user


# ---- the permission tests' messages --------------------------------------------------------------

#: Exchanges of the seeded messages exist nowhere: a permitted re-ingest fails at the broker
#: instead of publishing into somebody's real exchange.
EXCHANGE_SUFFIX = "-test-" + uuid.uuid4().hex[:8]


@dataclass
class Seeded:
    """Ids of the seeded messages by key, and the marker strings of each."""

    ids: dict[str, int]
    markers: dict[str, list[str]]
    hashes: dict[str, str]


#: key -> (message_type, identifiers, exchange, routing key, hash). Every free-text value holds a
#: marker unique to its message so a test can tell whose details leaked where.
SEED = {
    "A": (
        "dataset-ingestion",
        {"instrument": "BL06", "investigation": "INVMARKA", "dataset": "DSMARKA"},
        "dataset-ingest-exchange",
        "dataset.ingest",
        "aaaa0000aaaa0001",
    ),
    "B": (
        "dataset-ingestion",
        {"instrument": "bl13", "investigation": "INVMARKB", "dataset": "DSMARKB"},
        "dataset-ingest-exchange",
        "dataset.ingest",
        "bbbb0000bbbb0002",
    ),
    "C": (
        "user-sync",
        {"profile_id": "PROFMARKC", "usernames": ["USERMARKC"]},
        "user-sync-exchange",
        "user.sync",
        "cccc0000cccc0003",
    ),
    "D": (
        "proposal-sync",
        {"name": "PROPMARKD", "instrument": "Bl06", "visit_id": "VISITMARKD"},
        "proposal-sync-exchange",
        "proposal.sync",
        "dddd0000dddd0004",
    ),
    # Same hash as A (a later pipeline stage), on another instrument: linked in A's trace.
    "E": (
        "internal-dataset-ingestion",
        {"instrument": "BL13", "investigation": "INVMARKE", "dataset": "DSMARKE"},
        "internal-dataset-exchange",
        "internal.dataset.ingest",
        "aaaa0000aaaa0001",
    ),
}


def seed_messages(app, db) -> Seeded:
    """The five errored messages of SEED, written by the real ingestion writer."""
    bodies, markers, hashes, keys = [], {}, {}, []
    for key, (mtype, identifiers, exchange, routing_key, digest) in SEED.items():
        payload_marker = f"PAYLOADMARK{key}"
        error_marker = f"ERRTEXTMARK{key}"
        bodies.append(
            report_body(
                id=f"00000000-0000-4000-8000-00000000000{ord(key) - 64}",
                message_type=mtype,
                object_identifiers=identifiers,
                payload=f'{{"note": "{payload_marker}"}}',
                errored=True,
                error_message={
                    f"callback_func_{key.lower()}": f"RuntimeError: {error_marker} failed"
                },
                exchange_name=exchange + EXCHANGE_SUFFIX,
                routing_key=routing_key,
                hash=digest,
            )
        )
        keys.append(key)
        values = [v for v in identifiers.values() if isinstance(v, str)]
        values += [u for v in identifiers.values() if isinstance(v, list) for u in v]
        markers[key] = [payload_marker, error_marker] + [v for v in values if "MARK" in v]
        hashes[key] = digest
    ids = store_messages(db, app.extensions["settings"], bodies)
    return Seeded(ids=dict(zip(keys, ids, strict=True)), markers=markers, hashes=hashes)
