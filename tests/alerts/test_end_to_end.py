"""End to end: a real worker and beat evaluate the rules, a real SMTP server and HTTP receiver get
the notices; the demo PACER is silenced with `flask demo silence` and resumed."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid

import psycopg2
import pytest
from kombu import Connection, Exchange, Producer, Queue

from tests.conftest import admin_dsn
from tests.factories import report_body
from tests.processes import ROOT, Process, process_environ, wait_for

pytestmark = pytest.mark.slow


def _query(dsn: str, sql: str, *params):
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute(sql, params)
        rows = cur.fetchall()
    conn.close()
    return rows


def _insert_rule(dsn: str, **fields) -> None:
    columns = ", ".join(fields)
    marks = ", ".join(["%s"] * len(fields))
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute(f"INSERT INTO alert_rules ({columns}) VALUES ({marks})", list(fields.values()))
    conn.close()


@pytest.fixture
def alert_env(unique_names, smtp_server, tmp_path):
    """Environment of the worker, beat and CLI: the test's queues, SMTP, evaluation each second."""
    return {
        **unique_names,
        **smtp_server.settings,
        "PUBLIC_URL": "https://dashboard.example.org",
        "ALERT_EVALUATE_SECONDS": "1",
    }


@pytest.fixture
def cleanup_broker(settings, unique_names):
    yield
    with Connection(settings.broker_url) as conn:
        Queue(unique_names["DASHBOARD_QUEUE"], channel=conn.channel()).delete()
        Exchange(unique_names["DASHBOARD_EXCHANGE"], channel=conn.channel()).delete()


def _mails_by_subject(smtp_server, word: str) -> list:
    return [m for m in smtp_server.mails if word in m["Subject"]]


def test_silenced_demo_consumer_opens_then_resolves_one_incident(
    app,
    db,
    settings,
    test_db_name,
    tmp_path,
    start_worker,
    start_beat,
    smtp_server,
    http_receiver,
    alert_env,
    cleanup_broker,
):
    dsn = admin_dsn(test_db_name)
    _insert_rule(
        dsn,
        name="user sync alive",
        kind="silence",
        message_type="user-sync",
        threshold=0.25,  # 15 s: the demo sends user-sync every second or so
        emails=["ops@example.org"],
        webhook_url=http_receiver.url,
    )
    start_worker(**alert_env)
    start_beat(**alert_env)
    suffix = f"-alerts-{uuid.uuid4().hex[:6]}"
    # The demo PACER and `flask demo silence` share RUN_DIR (the control file lives there).
    demo_run_dir = str(tmp_path / "demo-run")
    demo_env = process_environ(
        test_db_name, **alert_env, PACER_DEMO_SUFFIX=suffix, RUN_DIR=demo_run_dir
    )
    demo = Process(
        [sys.executable, "-m", "pacer.demo.run", "--failure-rate=0"],
        demo_env,
        tmp_path / "demo.log",
    ).start()
    traffic = Process(
        [sys.executable, "-m", "pacer.demo.traffic", "--rate", "15", "--seed", "3"],
        demo_env,
        tmp_path / "traffic.log",
    ).start()

    def flask_demo(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "flask", "demo", "silence", *args],
            cwd=ROOT,
            env=demo_env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    def incidents():
        return _query(dsn, "SELECT id, state FROM alert_incidents ORDER BY id")

    try:
        wait_for(
            lambda: (
                _query(dsn, "SELECT count(*) FROM messages WHERE message_type='user-sync'")[0][0]
                >= 3
            ),
            90,
            "user-sync reports from the demo PACER",
        )
        time.sleep(3)
        assert incidents() == [], "the type was not silent yet"

        assert "silenced: user-sync" in flask_demo("user-sync")
        wait_for(lambda: incidents(), 60, "the silence incident")
        wait_for(lambda: smtp_server.mails and http_receiver.bodies, 60, "the opening notices")
        (mail,) = smtp_server.mails
        assert mail["Subject"].startswith(
            "[PACER ALERT] user sync alive: user-sync has been silent"
        )
        (hook,) = http_receiver.bodies
        assert hook["event"] == "opened" and hook["incident"]["key"] == "user-sync"

        assert "silenced: none" in flask_demo("--resume", "user-sync")
        wait_for(lambda: incidents()[0][1] == "resolved", 60, "the incident to resolve")
        wait_for(
            lambda: len(smtp_server.mails) == 2 and len(http_receiver.bodies) == 2,
            60,
            "the resolved notices",
        )
        assert smtp_server.mails[1]["Subject"].startswith("[PACER RESOLVED] user sync alive")
        assert http_receiver.bodies[1]["event"] == "resolved"
        time.sleep(3)  # several evaluations later: still one incident, no further notice
        assert len(incidents()) == 1
        assert len(smtp_server.mails) == 2 and len(http_receiver.bodies) == 2
        statuses = _query(dsn, "SELECT event, channel, status FROM alert_deliveries ORDER BY id")
        assert sorted(statuses) == [
            ("opened", "email", "sent"),
            ("opened", "webhook", "sent"),
            ("resolved", "email", "sent"),
            ("resolved", "webhook", "sent"),
        ]
    finally:
        traffic.stop()
        demo.stop()
        from pacer.demo.topology import DemoTopology

        with Connection(settings.broker_url) as conn:
            channel = conn.channel()
            for route in DemoTopology(suffix).routes():
                Queue(route.queue, channel=channel).delete()
            for route in DemoTopology(suffix).routes():
                Exchange(route.exchange, channel=channel).delete()


def test_failure_flood_is_one_incident_and_a_new_cause_one_notice(
    app,
    db,
    settings,
    test_db_name,
    start_worker,
    start_beat,
    smtp_server,
    http_receiver,
    alert_env,
    unique_names,
    cleanup_broker,
):
    dsn = admin_dsn(test_db_name)
    for name, kind, extra in (
        ("failure flood", "error_rate", {"threshold": 50.0, "window_minutes": 5}),
        ("new causes", "new_error_group", {}),
    ):
        _insert_rule(
            dsn,
            name=name,
            kind=kind,
            emails=["ops@example.org"],
            webhook_url=http_receiver.url,
            **extra,
        )
    start_worker(**alert_env)
    start_beat(**alert_env)
    with Connection(settings.broker_url, connect_timeout=5) as conn:
        exchange = Exchange(unique_names["DASHBOARD_EXCHANGE"], type="direct", durable=True)
        producer = Producer(conn.channel(), exchange=exchange)
        for i in range(300):
            producer.publish(
                report_body(
                    errored=True,
                    error_message={"callback_func_store": f"OSError: disk /data/{i} is full"},
                ),
                routing_key=unique_names["DASHBOARD_ROUTING_KEY"],
                content_type="application/json",
                delivery_mode=2,
            )
            if i % 50 == 49:
                time.sleep(1)  # a flood over several evaluations
    wait_for(
        lambda: _query(dsn, "SELECT count(*) FROM messages")[0][0] == 300, 60, "the failures stored"
    )
    wait_for(lambda: len(smtp_server.mails) >= 2, 60, "the two opening e-mails")
    time.sleep(4)  # several more evaluations
    rows = _query(
        dsn,
        "SELECT r.kind, count(*) FROM alert_incidents i JOIN alert_rules r ON r.id = i.rule_id "
        "GROUP BY r.kind ORDER BY r.kind",
    )
    assert rows == [("error_rate", 1), ("new_error_group", 1)]
    subjects = sorted(m["Subject"] for m in smtp_server.mails)
    assert len(subjects) == 2, subjects
    assert subjects[0].startswith(
        "[PACER ALERT] failure flood: dataset-ingestion: 100 % of messages"
    )
    assert subjects[1].startswith(
        "[PACER ALERT] new causes: new error group in dataset-ingestion: OSError"
    )
    assert sorted(b["rule"]["kind"] for b in http_receiver.bodies) == [
        "error_rate",
        "new_error_group",
    ]
