"""The demo PACER end to end on the real broker: pipeline chains, failures, the two commands."""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from kombu import Exchange, Queue

from pacer import ReportSettings
from pacer.demo.consumers import build_consumers
from pacer.demo.samples import dataset_payload, dataset_xml
from pacer.demo.tasks import Simulation
from pacer.demo.topology import (
    DATASET_INGESTION,
    INTERNAL_DATASET_INGESTION,
    INTERNAL_DATASET_LINKS,
    INTERNAL_STATISTICS,
    INVESTIGATION_OPS,
    USER_SYNC,
    DemoTopology,
)

ROOT = Path(__file__).resolve().parents[2]
PIPELINE = {
    DATASET_INGESTION,
    INTERNAL_DATASET_INGESTION,
    INTERNAL_STATISTICS,
    INTERNAL_DATASET_LINKS,
}


@pytest.fixture
def demo(names, connection, report_sink, run_worker):
    """The demo consumers on a private topology, no random failures, reporting to the sink."""
    topology = DemoTopology(names.suffix)
    consumers = build_consumers(
        topology,
        Simulation(failure_rate=0.0, work_ms=(0.0, 1.0), rng=random.Random(7)),
        ReportSettings(exchange=report_sink.exchange, routing_key=report_sink.routing_key),
    )
    run_worker(consumers, declare=topology.entities())
    yield topology
    delete_topology(connection, topology)


def delete_topology(connection, topology):
    channel = connection.channel()
    for route in topology.routes():
        Queue(route.queue, channel=channel).delete()
    for route in topology.routes():
        Exchange(route.exchange, channel=channel).delete()
    channel.close()


def send(publisher, topology, message_type, body, content_type=None):
    route = topology.route(message_type)
    publisher.publish(
        body, exchange=route.exchange, routing_key=route.routing_key, content_type=content_type
    )


def by_type(reports):
    return {r["kwargs"]["message_type"]: r["kwargs"] for r in reports}


def test_dataset_message_yields_four_linked_reports(demo, publisher, report_sink):
    payload = dataset_payload(random.Random(1), instrument="bl13", investigation="2022097034")
    body = json.dumps(payload)
    send(publisher, demo, DATASET_INGESTION, body)

    reports = by_type(report_sink.get(4))
    report_sink.assert_silent(1.0)

    assert set(reports) == PIPELINE
    assert not any(r["errored"] for r in reports.values()), reports
    stage1 = reports[DATASET_INGESTION]
    # Every stage carries the stage-1 payload hash, so the dashboard links them.
    assert {r["hash"] for r in reports.values()} == {hashlib.sha256(body.encode()).hexdigest()}
    assert stage1["payload"] == body
    assert stage1["exchange_name"] == demo.route(DATASET_INGESTION).exchange
    ids = stage1["object_identifiers"]
    assert ids["instrument"] == "bl13"
    assert ids["investigation"] == "2022097034"
    assert ids["dataset"] == payload["dataset"]
    assert isinstance(ids["dataset_id"], int) and ids["visit_id"] == "2022097034-1"
    for message_type in PIPELINE - {DATASET_INGESTION}:
        later = reports[message_type]["object_identifiers"]
        assert later == {
            "instrument": "bl13",
            "investigation": "2022097034",
            "dataset": payload["dataset"],
            "dataset_id": ids["dataset_id"],
            "visit_id": "2022097034-1",
        }, message_type
        assert reports[message_type]["routing_key"] == demo.route(message_type).routing_key


def test_injected_stage_two_failure_is_reported_and_stops_the_chain(demo, publisher, report_sink):
    payload = dataset_payload(random.Random(2), fail_stage=2)
    send(publisher, demo, DATASET_INGESTION, payload)

    reports = by_type(report_sink.get(2))
    report_sink.assert_silent(1.5)

    assert set(reports) == {DATASET_INGESTION, INTERNAL_DATASET_INGESTION}
    assert reports[DATASET_INGESTION]["errored"] is False
    stage2 = reports[INTERNAL_DATASET_INGESTION]
    assert stage2["errored"] is True
    assert list(stage2["error_message"]) == ["callback_func_datafiles"]
    assert stage2["error_message"]["callback_func_datafiles"].startswith(
        "ICATSessionError: Session "
    )
    assert "Traceback" in stage2["traceback"]["callback_func_datafiles"]
    assert stage2["hash"] == reports[DATASET_INGESTION]["hash"]


def test_injected_stage_one_failure_names_the_investigation(demo, publisher, report_sink):
    payload = dataset_payload(random.Random(3), investigation="2022097034", fail_stage=1)
    send(publisher, demo, DATASET_INGESTION, payload)
    (report,) = report_sink.get(1)
    report_sink.assert_silent(1.0)
    assert report["kwargs"]["error_message"] == {
        "callback_func_main_dataset_creation": (
            "InvestigationNotFound: Investigation 2022097034 not found in ICAT"
        )
    }
    assert report["kwargs"]["object_identifiers"] == {
        "instrument": payload["instrument"],
        "investigation": "2022097034",
        "dataset": payload["dataset"],
    }


def test_legacy_xml_dataset_goes_through_the_pipeline(demo, publisher, report_sink):
    payload = dataset_payload(random.Random(4), instrument="BL13")
    document = dataset_xml(payload)
    send(publisher, demo, DATASET_INGESTION, document, content_type="application/xml")
    reports = by_type(report_sink.get(4))
    stage1 = reports[DATASET_INGESTION]
    assert stage1["payload_format"] == "xml" and stage1["payload"] == document
    assert not any(r["errored"] for r in reports.values()), reports
    assert reports[INTERNAL_STATISTICS]["object_identifiers"]["instrument"] == "BL13"


def test_investigation_ops_and_user_sync_identifiers(demo, publisher, report_sink):
    send(
        publisher,
        demo,
        INVESTIGATION_OPS,
        {"name": "2022097034", "visit_id": "2022097034-1", "operations": ["doi", "pss"]},
    )
    send(
        publisher,
        demo,
        USER_SYNC,
        "<UserSync><ProfileId>4242</ProfileId><Username>garcia7</Username></UserSync>",
    )
    reports = by_type(report_sink.get(2))
    ops = reports[INVESTIGATION_OPS]
    assert ops["object_identifiers"] == {
        "investigation": "2022097034",
        "operations": ["doi", "pss"],
        "visit_id": "2022097034-1",
    }
    assert ops["exchange_name"] == f"investigation-ops-exchange{demo.suffix}"
    assert ops["routing_key"] == "investigation.ops"
    user = reports[USER_SYNC]
    assert user["errored"] is False, user["error_message"]
    assert user["object_identifiers"] == {"profile_id": 4242, "usernames": ["garcia7"]}


def test_run_and_traffic_commands(rmq, names, connection, report_sink):
    """`python -m pacer.demo.run` consumes what `pacer.demo.traffic` sends and stops on SIGTERM."""
    env = {
        **os.environ,
        "DASHBOARD_EXCHANGE": report_sink.exchange,
        "DASHBOARD_ROUTING_KEY": report_sink.routing_key,
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("DASHBOARD_QUEUE", None)
    suffix = f"-cli{names.suffix}"
    run = subprocess.Popen(
        [sys.executable, "-m", "pacer.demo.run", f"--name-suffix={suffix}", "--failure-rate=0"]
        + ["--no-report-queue"],
        cwd=ROOT,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        traffic = subprocess.run(
            [sys.executable, "-m", "pacer.demo.traffic", f"--name-suffix={suffix}"]
            + ["--count", "12", "--rate", "100", "--seed", "5"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert traffic.returncode == 0, traffic.stderr
        totals = json.loads(traffic.stdout.strip().splitlines()[-1])
        sent = totals["by_type"]
        assert totals["published"] == sum(sent.values()) == 12
        expected = 4 * sent.get(DATASET_INGESTION, 0) + 12 - sent.get(DATASET_INGESTION, 0)

        reports = report_sink.get(expected, timeout=30)
        report_sink.assert_silent(1.0)
        assert not any(r["kwargs"]["errored"] for r in reports)
        assert {r["kwargs"]["message_type"] for r in reports} >= {DATASET_INGESTION}

        started = time.monotonic()
        run.send_signal(signal.SIGTERM)
        _, stderr = run.communicate(timeout=15)
        assert run.returncode == 0, stderr
        assert time.monotonic() - started < 10
        assert "demo PACER stopped" in stderr
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
        delete_topology(connection, DemoTopology(suffix))
