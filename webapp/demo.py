"""Realistic synthetic PACER reports: `flask demo seed`, tests and benchmarks share this generator.

Reports come in pipelines like real traffic: a dataset goes through dataset-ingestion →
internal-dataset-ingestion → internal-statistics + internal-dataset-links with the same hash and
linked identifiers; around 10 % fail with errors shaped like PACER's.
"""

from __future__ import annotations

import hashlib
import json
import random
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import click
from flask import current_app
from flask.cli import AppGroup

TASK_NAME = "dashboard.tasks.log_pacer_message"
INSTRUMENTS = ["BL13", "bl06", "BL09", "BL11", "bl22", "BL24", "BL29", "BL31"]
PIPELINE = [
    ("dataset-ingestion", "dataset-ingest-exchange", "dataset.ingest"),
    ("internal-dataset-ingestion", "internal-dataset-exchange", "internal.dataset.ingest"),
    ("internal-statistics", "internal-dataset-exchange", "internal.statistics"),
    ("internal-dataset-links", "internal-dataset-exchange", "internal.dataset.links"),
]
ERRORS = {
    "dataset-ingestion": [
        (
            "callback_func_main_dataset_creation",
            "InvestigationNotFound: Investigation {inv} not found in ICAT",
        ),
        (
            "callback_func_check_files",
            "FileNotFoundError: [Errno 2] No such file or directory: '/data/{ins}/{inv}/{ds}/master.h5'",
        ),
    ],
    "internal-dataset-ingestion": [
        ("callback_func_datafiles", "ICATSessionError: Session {hex} has expired"),
        ("callback_func_parameters", "ValueError: invalid literal for int() with base 10: '{ds}'"),
    ],
    "internal-statistics": [
        ("callback_func_statistics", "TimeoutError: statistics service timed out after {n} s")
    ],
    "internal-dataset-links": [
        ("callback_func_links", "ICATObjectExistsError: Dataset link {n} already exists")
    ],
    "user-sync": [("callback_func_sync_user", "LDAPError: user {n} not found in directory")],
    "proposal-sync": [("callback_func_proposal", "KeyError: 'visit_id'")],
    "dataset-index": [
        (
            "callback_func_index",
            "ConnectionError: search index at http://search:9200 refused connection",
        )
    ],
}


def _error(rng: random.Random, message_type: str, ids: dict) -> dict:
    callback, template = rng.choice(ERRORS[message_type])
    return {
        callback: template.format(
            inv=ids.get("investigation", "20230001"),
            ins=str(ids.get("instrument", "bl13")).lower(),
            ds=ids.get("dataset", "ds_1"),
            hex=uuid.UUID(int=rng.getrandbits(128)).hex[:20],
            n=rng.randint(1, 99999),
        )
    }


def envelope(kwargs: dict, rng: random.Random | None = None) -> dict:
    rid = str(uuid.UUID(int=rng.getrandbits(128), version=4)) if rng else str(uuid.uuid4())
    return {"id": rid, "task": TASK_NAME, "args": [], "retries": 10, "kwargs": kwargs}


def _kwargs(rng, message_type, ids, payload, digest, start, exchange, routing_key, error_rate):
    duration = timedelta(milliseconds=rng.randint(5, 4000))
    errors = (
        _error(rng, message_type, ids)
        if rng.random() < error_rate and message_type in ERRORS
        else {}
    )
    return {
        "object_identifiers": ids,
        "error_message": errors,
        "processing_start": start.replace(tzinfo=None).isoformat(),
        "processing_end": (start + duration).replace(tzinfo=None).isoformat(),
        "hash": digest,
        "message_type": message_type,
        "payload_format": "",
        "payload": payload,
        "errored": bool(errors),
        "exchange_name": exchange,
        "routing_key": routing_key,
    }


def generate_reports(
    count: int,
    *,
    seed: int = 1,
    start: datetime | None = None,
    span: timedelta = timedelta(hours=1),
    error_rate: float = 0.1,
    payload_bytes: int = 300,
) -> Iterator[dict]:
    """`count` wire-format report dicts; deterministic for a seed."""
    rng = random.Random(seed)
    start = start or datetime.now(UTC) - span
    produced = 0
    while produced < count:
        at = start + timedelta(seconds=rng.random() * span.total_seconds())
        kind = rng.random()
        instrument = rng.choice(INSTRUMENTS)
        investigation = str(rng.randint(2020000000, 2026999999))
        visit = f"{instrument.upper()}-{rng.randint(1, 9)}"
        if kind < 0.7:
            dataset = f"{rng.choice(['mx', 'saxs', 'xrd', 'tomo'])}_{rng.randint(1, 999):03d}"
            body = {
                "instrument": instrument,
                "investigation": investigation,
                "dataset": dataset,
                "location": f"/data/{instrument.lower()}/{investigation}/{dataset}",
                "files": [
                    f"/data/{instrument.lower()}/{investigation}/{dataset}/scan_{i:05d}.h5"
                    for i in range(max(1, (payload_bytes - 150) // 48))
                ],
            }
            payload = json.dumps(body)
            digest = hashlib.sha256(payload.encode()).hexdigest()[:16]
            dataset_id = str(rng.randint(10**6, 10**8))
            stages = PIPELINE if rng.random() > 0.05 else PIPELINE[:1]
            for n, (mtype, exchange, rk) in enumerate(stages):
                ids = {"instrument": instrument, "investigation": investigation, "dataset": dataset}
                if n >= 1:
                    ids = {
                        "dataset_id": dataset_id,
                        "visit_id": visit,
                        "investigation": investigation,
                    }
                yield envelope(
                    _kwargs(
                        rng,
                        mtype,
                        ids,
                        payload,
                        digest,
                        at + timedelta(seconds=n),
                        exchange,
                        rk,
                        error_rate,
                    ),
                    rng,
                )
                produced += 1
                if produced >= count:
                    return
            continue
        if kind < 0.8:
            mtype, exchange, rk = "proposal-sync", "proposal-exchange", "proposal.sync"
            ids = {"name": investigation, "instrument": instrument, "visit_id": visit}
            payload = f"<proposal><name>{investigation}</name><instrument>{instrument}</instrument></proposal>"
        elif kind < 0.9:
            mtype, exchange, rk = "user-sync", "user-exchange", "user.sync"
            ids = {
                "profile_id": str(rng.randint(1, 50000)),
                "usernames": [f"user{rng.randint(1, 999)}"],
            }
            payload = json.dumps({"profile_id": ids["profile_id"], "usernames": ids["usernames"]})
        elif kind < 0.95:
            mtype, exchange, rk = "dataset-index", "index-exchange", "dataset.index"
            ids = {
                "dataset_id": str(rng.randint(10**6, 10**8)),
                "index_name": "datasets",
                "investigation": investigation,
                "visit_id": visit,
            }
            payload = json.dumps(ids)
        else:
            mtype, exchange, rk = (
                "investigation-ops",
                "investigation-ops-exchange",
                "investigation.ops",
            )
            ops = ["mint-proposal"]
            ids = {"investigation": investigation, "operations": ops, "visit_id": visit}
            payload = json.dumps({"name": investigation, "visit_id": visit, "operations": ops})
        digest = hashlib.sha256(payload.encode()).hexdigest()[:16]
        yield envelope(_kwargs(rng, mtype, ids, payload, digest, at, exchange, rk, error_rate), rng)
        produced += 1


demo_cli = AppGroup("demo", help="Demo data.")


@demo_cli.command("seed")
@click.option("--count", default=1000, show_default=True, help="Reports to write.")
@click.option("--days", default=7, show_default=True, help="Spread processing times over N days.")
@click.option("--seed", default=1, show_default=True)
def demo_seed(count: int, days: int, seed: int):
    """Write realistic demo reports straight into the database (through the real writer)."""
    from .extensions import db
    from .ingest.writer import ParseOptions, RawReport, write_batch

    s = current_app.extensions["settings"]
    options = ParseOptions(s.REPORT_TASK_NAME, s.timezone, s.REPORT_MAX_BYTES)
    raw = db.engine.raw_connection()
    stored = 0
    try:
        batch: list[RawReport] = []
        for report in generate_reports(count, seed=seed, span=timedelta(days=days)):
            batch.append(RawReport(json.dumps(report).encode(), "application/json"))
            if len(batch) == 500:
                stored += write_batch(raw.dbapi_connection, batch, options).stored
                batch = []
        if batch:
            stored += write_batch(raw.dbapi_connection, batch, options).stored
    finally:
        raw.close()
    click.echo(f"stored {stored} demo reports")


@demo_cli.command("silence")
@click.argument("message_types", nargs=-1)
@click.option("--resume", is_flag=True, help="Let these types (every one when none) report again.")
def demo_silence(message_types: tuple[str, ...], resume: bool):
    """Stop the demo PACER's consumers of these types (as if they died), or --resume them."""
    from pathlib import Path

    from pacer.demo import topology
    from pacer.demo.run import SILENCE_FILE, silenced_types

    known = {
        topology.DATASET_INGESTION,
        topology.INTERNAL_DATASET_INGESTION,
        topology.INTERNAL_STATISTICS,
        topology.INTERNAL_DATASET_LINKS,
        topology.USER_SYNC,
        topology.PROPOSAL_SYNC,
        topology.INVESTIGATION_OPS,
    }
    unknown = sorted(set(message_types) - known)
    if unknown:
        raise click.BadParameter(
            f"not a demo message type: {', '.join(unknown)} (one of {', '.join(sorted(known))})"
        )
    path = Path(current_app.extensions["settings"].RUN_DIR) / SILENCE_FILE
    silenced = silenced_types(path)
    if resume:
        silenced = silenced - set(message_types) if message_types else set()
    else:
        silenced |= set(message_types)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{t}\n" for t in sorted(silenced)))
    click.echo(f"silenced: {', '.join(sorted(silenced)) or 'none'} ({path})")
