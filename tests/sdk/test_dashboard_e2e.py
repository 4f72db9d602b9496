"""The demo PACER (built with the SDK) reporting to the real dashboard: a real `celery worker`
stores its reports, the trace page links the four stages, a stage-2 failure shows as failed, and
re-ingesting stage 1 goes round the demo pipeline again and produces new reports."""

from __future__ import annotations

import hashlib
import json
import random
import uuid

import psycopg2
import pytest

from pacer import ReportSettings
from pacer.demo.consumers import build_consumers
from pacer.demo.samples import dataset_payload
from pacer.demo.tasks import Simulation
from pacer.demo.topology import (
    DATASET_INGESTION,
    INTERNAL_DATASET_INGESTION,
    INTERNAL_DATASET_LINKS,
    INTERNAL_STATISTICS,
    DemoTopology,
)
from tests.auth.support import csrf_token
from tests.conftest import admin_dsn
from tests.ingest.test_worker_e2e import delete_queue
from tests.processes import wait_for
from tests.sdk.test_demo import delete_topology, send

pytestmark = pytest.mark.slow

STAGES = [
    DATASET_INGESTION,
    INTERNAL_DATASET_INGESTION,
    INTERNAL_STATISTICS,
    INTERNAL_DATASET_LINKS,
]


@pytest.fixture
def pipeline(db, settings, unique_names, start_worker, connection, run_worker):
    """A dashboard worker on private report names, and the demo consumers reporting to it."""
    start_worker(**unique_names, INGEST_FLUSH_MS="50")
    topology = DemoTopology(f"-{uuid.uuid4().hex[:10]}")
    consumers = build_consumers(
        topology,
        Simulation(failure_rate=0.0, work_ms=(0.0, 1.0), rng=random.Random(11)),
        ReportSettings(
            exchange=unique_names["DASHBOARD_EXCHANGE"],
            routing_key=unique_names["DASHBOARD_ROUTING_KEY"],
        ),
    )
    run_worker(consumers, declare=topology.entities())
    yield topology
    delete_topology(connection, topology)
    delete_queue(settings, unique_names)


def stored(settings, digest: str) -> list[tuple]:
    """(id, message_type, errored, extra) of the stored messages with this hash, by id."""
    with psycopg2.connect(admin_dsn(settings.POSTGRES_DB)) as pg, pg.cursor() as cur:
        cur.execute(
            "SELECT id, message_type, errored, extra FROM messages WHERE hash = %s ORDER BY id",
            (digest,),
        )
        rows = cur.fetchall()
    pg.close()
    return rows


def wait_stored(settings, digest: str, count: int) -> list[tuple]:
    def enough():
        rows = stored(settings, digest)
        return rows if len(rows) >= count else None

    return wait_for(enough, 30, f"{count} stored reports with hash {digest[:12]}")


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def test_four_stages_stored_and_linked_then_reingest_goes_round_again(
    pipeline,
    publisher,
    client,
    settings,
    reingest_allowed,  # noqa: F811 - the fixture
):
    reingest_allowed(*sorted({route.exchange for route in pipeline.routes()}))
    payload = dataset_payload(random.Random(21), instrument="bl13", investigation="2022097034")
    body = json.dumps(payload)
    digest = sha256(body)
    send(publisher, pipeline, DATASET_INGESTION, body)
    rows = wait_stored(settings, digest, 4)
    assert sorted(r[1] for r in rows) == sorted(STAGES)
    assert not any(r[2] for r in rows)
    stage1_id = next(r[0] for r in rows if r[1] == DATASET_INGESTION)

    # Stored with every field the SDK sent, including its extras.
    detail = client.get(f"/api/v1/messages/{stage1_id}").get_json()
    assert detail["payload"] == body and detail["payload_format"] == "json"
    assert detail["exchange_name"] == pipeline.route(DATASET_INGESTION).exchange
    assert detail["routing_key"] == pipeline.route(DATASET_INGESTION).routing_key
    assert detail["identifiers"]["dataset"] == payload["dataset"]
    assert detail["instrument"] == "bl13" and detail["dataset_id"]
    assert detail["processing_ms"] is not None
    assert {"consumer", "host", "attempt", "headers"} <= set(detail["extra"])

    # The trace page shows the four stages, in pipeline order, all done.
    trace = client.get(f"/messages/{stage1_id}/trace").get_data(as_text=True)
    order = [trace.index(f'data-stage="{stage}"') for stage in STAGES]
    assert order == sorted(order), order
    assert trace.count('data-state="ok"') == 4
    assert 'data-state="missing"' not in trace and 'data-state="failed"' not in trace

    # Re-ingest stage 1 from the dashboard: the demo consumer takes it again, the whole chain
    # runs again, and the new stage-1 report carries the re-ingestion header.
    token = csrf_token(client)
    response = client.post(
        f"/messages/{stage1_id}/reingest",
        data={"csrf_token": token, "payload": body, "routing_key": detail["routing_key"]},
    )
    assert response.status_code == 200, response.get_data(as_text=True)[-2000:]
    rows = wait_stored(settings, digest, 8)
    again = [r for r in rows if r[1] == DATASET_INGESTION and r[0] != stage1_id]
    assert len(again) == 1
    headers = again[0][3]["headers"]
    assert headers.get("x-dashboard-reingest-of") == str(stage1_id)
    history = client.get(f"/messages/{stage1_id}").get_data(as_text=True)
    assert "reingest" in history.lower()


def test_injected_stage_two_failure_shows_as_failed_on_the_trace(
    pipeline, publisher, client, settings
):
    payload = dataset_payload(random.Random(22), fail_stage=2)
    body = json.dumps(payload)
    digest = sha256(body)
    send(publisher, pipeline, DATASET_INGESTION, body)
    rows = wait_stored(settings, digest, 2)
    assert [(r[1], r[2]) for r in rows] == [
        (DATASET_INGESTION, False),
        (INTERNAL_DATASET_INGESTION, True),
    ]
    stage2_id = rows[1][0]
    page = client.get(f"/messages/{stage2_id}/trace").get_data(as_text=True)
    stage2 = page[page.index(f'data-stage="{INTERNAL_DATASET_INGESTION}"') :]
    assert stage2.startswith(f'data-stage="{INTERNAL_DATASET_INGESTION}" data-state="failed"')
    assert "ICATSessionError" in stage2[:3000]
    # The later stages never ran: after the failure they are marked not reached.
    for later in (INTERNAL_STATISTICS, INTERNAL_DATASET_LINKS):
        assert f'data-stage="{later}" data-state="not-reached"' in page, later
