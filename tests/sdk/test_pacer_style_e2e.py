"""A consumer written in PACER's documented style, run unchanged on `pacer/` against the real
dashboard: a real `celery worker` stores its reports with the right identifiers, errors (in callback
order, stopping at the first) and attempt numbers, including the retries of a transient failure
that went round the delayed retry route."""

from __future__ import annotations

import hashlib
import json
import time

import psycopg2
import pytest

from pacer import RETRIES_HEADER
from tests.conftest import admin_dsn
from tests.ingest.test_worker_e2e import delete_queue
from tests.processes import wait_for
from tests.sdk.pacer_style.consumers import DatasetsConsumer

pytestmark = pytest.mark.slow

ROUTING_KEY = "dataset.ingest"
RETRY_DELAY = 0.5
DATASET = {"instrument": "bl13", "investigation": "2022097034"}


@pytest.fixture
def consumer(db, settings, unique_names, start_worker, names, run_worker):
    """A dashboard worker on private report names, and the PACER-style consumer reporting to it."""
    start_worker(**unique_names, INGEST_FLUSH_MS="50")
    consumer = DatasetsConsumer(
        queue_name=names.queue("pacer-style-datasets"),
        exchange_name=names.exchange("pacer-style-input"),
        routing_key=ROUTING_KEY,
        report_exchange=unique_names["DASHBOARD_EXCHANGE"],
        report_routing_key=unique_names["DASHBOARD_ROUTING_KEY"],
        max_retries=2,
        retry_delay=RETRY_DELAY,
    )
    names.queues.append(consumer.retry_queue_name)
    names.exchanges.append(consumer.retry_queue_name)
    run_worker([consumer])
    yield consumer
    delete_queue(settings, unique_names)


def stored(settings, digest: str) -> list[dict]:
    """The stored reports with this hash, oldest attempt first."""
    with psycopg2.connect(admin_dsn(settings.POSTGRES_DB)) as pg, pg.cursor() as cur:
        cur.execute(
            "SELECT message_type, errored, error_message, traceback, object_identifiers,"
            " instrument, investigation, dataset, dataset_id, exchange_name, routing_key, extra"
            " FROM messages WHERE hash = %s ORDER BY (extra->>'attempt')::int, id",
            (digest,),
        )
        columns = [c.name for c in cur.description]
        rows = [dict(zip(columns, row, strict=True)) for row in cur.fetchall()]
    pg.close()
    return rows


def send(publisher, consumer, payload: dict) -> str:
    body = json.dumps(payload)
    publisher.publish(body, exchange=consumer.exchange_name, routing_key=ROUTING_KEY)
    return hashlib.sha256(body.encode()).hexdigest()


def wait_stored(settings, digest: str, count: int) -> list[dict]:
    def enough():
        rows = stored(settings, digest)
        return rows if len(rows) >= count else None

    return wait_for(enough, 30, f"{count} stored reports with hash {digest[:12]}")


def test_pacer_style_consumer_reports_stored_by_the_dashboard(consumer, publisher, settings):
    ok = send(publisher, consumer, {**DATASET, "dataset": "mx_ok"})
    failing = send(
        publisher,
        consumer,
        # Both the first and the second callback would fail: only the first one runs.
        {**DATASET, "dataset": "mx_bad", "investigation": "0000", "missing_file": "/data/x.h5"},
    )
    recovers = send(
        publisher, consumer, {**DATASET, "dataset": "mx_retry", "icat_session_lost_times": 1}
    )
    gives_up = send(
        publisher, consumer, {**DATASET, "dataset": "mx_lost", "icat_session_lost_times": 99}
    )

    (row,) = wait_stored(settings, ok, 1)
    assert row["message_type"] == "dataset-ingestion"
    assert row["errored"] is False and row["error_message"] == {}
    assert row["object_identifiers"] == {**DATASET, "dataset": "mx_ok", "dataset_id": 4711}
    assert (row["instrument"], row["investigation"], row["dataset"], row["dataset_id"]) == (
        "bl13",
        "2022097034",
        "mx_ok",
        "4711",
    )
    assert (row["exchange_name"], row["routing_key"]) == (consumer.exchange_name, ROUTING_KEY)
    assert row["extra"]["attempt"] == 1
    assert row["extra"]["consumer"] == "tests.sdk.pacer_style.consumers.DatasetsConsumer"

    (row,) = wait_stored(settings, failing, 1)
    assert row["errored"] is True
    assert row["error_message"] == {
        "callback_func_check_files": "FileNotFoundError: [Errno 2] No such file or directory: "
        "'/data/x.h5'"
    }
    assert set(row["traceback"]) == {"callback_func_check_files"}
    assert row["object_identifiers"] == {**DATASET, "dataset": "mx_bad", "investigation": "0000"}

    first, second = wait_stored(settings, recovers, 2)
    assert (first["extra"]["attempt"], first["errored"]) == (1, True)
    assert first["error_message"] == {
        "callback_func_main_dataset_creation": "ICATSessionError: Session 1000 has expired"
    }
    assert (second["extra"]["attempt"], second["errored"]) == (2, False)
    assert second["extra"]["headers"][RETRIES_HEADER] == 1
    assert second["dataset_id"] == "4711"
    assert (second["exchange_name"], second["routing_key"]) == (consumer.exchange_name, ROUTING_KEY)

    rows = wait_stored(settings, gives_up, 3)
    assert [r["extra"]["attempt"] for r in rows] == [1, 2, 3]
    assert [r["extra"]["headers"].get(RETRIES_HEADER) for r in rows] == [None, 1, 2]
    assert [r["error_message"] for r in rows] == [
        {"callback_func_main_dataset_creation": f"ICATSessionError: Session {n} has expired"}
        for n in (1000, 1001, 1002)
    ]
    # Given up after max_retries=2: no fourth attempt comes.
    time.sleep(RETRY_DELAY * 4)
    assert len(stored(settings, gives_up)) == 3
    assert len(stored(settings, recovers)) == 2
