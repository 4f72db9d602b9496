"""Alert rule evaluation against the real database: incidents open once, resolve once, and each
transition records one notice per destination; silence learning is aware of nights and weekends."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import psycopg2
import pytest
from sqlalchemy import func, select

from models import AlertRule, Delivery, ErrorGroup, Incident
from tests.conftest import admin_dsn
from tests.factories import report_body
from webapp.alerts import services, silence
from webapp.alerts.services import BrokerFacts
from webapp.ingest.writer import ParseOptions, RawReport, write_batch
from webapp.locks import LOCK_ALERT_EVALUATION

UTC_TZ = UTC


# ---- silence learning (pure) ---------------------------------------------------------------------


def _office_hours_series(until: datetime, weeks: int = 4, per_hour: int = 30):
    """A type that reports only Monday–Friday 07:00–19:00 UTC, `per_hour` reports an hour."""
    start = (until - timedelta(weeks=weeks)).replace(minute=0, second=0, microsecond=0)
    hours, t = [], start
    while t < until:
        if t.weekday() < 5 and 7 <= t.hour < 19:
            hours.append((t, per_hour))
        t += timedelta(hours=1)
    return hours


def test_usual_gap_is_learned_per_band_nights_and_weekends_apart():
    saturday_night = datetime(2026, 11, 28, 3, 0, tzinfo=UTC)  # a Saturday
    series = _office_hours_series(datetime(2026, 11, 27, 19, 0, tzinfo=UTC))
    quiet = silence.learn_usual_gap(series, saturday_night, UTC_TZ, 95)
    assert quiet.band == silence.QUIET
    # Its quiet hours are whole nights (13 h) and weekends (61 h): a silent Saturday is usual.
    assert quiet.minutes == 61 * 60

    monday_morning = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
    busy = silence.learn_usual_gap(series, monday_morning, UTC_TZ, 95)
    assert busy.band == silence.WORKING
    assert busy.minutes == 2.0  # 30 reports an hour


def test_too_few_samples_learn_nothing():
    now = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
    series = [(now - timedelta(hours=h), 5) for h in range(5, 0, -1)]
    assert silence.learn_usual_gap(series, now, UTC_TZ, 95).minutes is None


# ---- helpers -------------------------------------------------------------------------------------


def _store(pg, settings, received_at: datetime, count: int = 1, **kwargs) -> None:
    options = ParseOptions(settings.REPORT_TASK_NAME, settings.timezone, settings.REPORT_MAX_BYTES)
    raws = [RawReport(report_body(**kwargs)) for _ in range(count)]
    write_batch(pg, raws, options, now=received_at)


def _rule(db, **fields) -> AlertRule:
    defaults = {
        "name": "test rule",
        "kind": "silence",
        "emails": ["ops@example.org"],
        "webhook_url": "http://127.0.0.1:9/hook",
        "created_at": datetime.now(UTC) - timedelta(days=1),
    }
    rule = AlertRule(**{**defaults, **fields})
    db.session.add(rule)
    db.session.commit()
    return rule


def _evaluate(db, settings, now=None, broker=None):
    run = services.evaluate_rules(db.session, settings, now=now, broker=broker)
    db.session.commit()
    return run


def _deliveries(db) -> list[tuple[int, str, str]]:
    rows = db.session.execute(
        select(Delivery.incident_id, Delivery.event, Delivery.channel).order_by(Delivery.id)
    )
    return [tuple(r) for r in rows]


# ---- silence -------------------------------------------------------------------------------------


def test_silence_opens_one_incident_then_resolves_with_one_notice_each(db, pg, settings):
    now = datetime.now(UTC)
    _store(pg, settings, now - timedelta(minutes=30), message_type="user-sync")
    rule = _rule(db, kind="silence", message_type="user-sync", threshold=10)

    run = _evaluate(db, settings, now)
    assert len(run.opened) == 1
    incident = db.session.get(Incident, run.opened[0])
    assert incident.state == "open" and incident.key == "user-sync"
    assert "user-sync has been silent for 30 minutes" in incident.title
    assert _deliveries(db) == [(incident.id, "opened", "email"), (incident.id, "opened", "webhook")]

    # Evaluating again (next minute, or a second beat) changes nothing and sends nothing.
    run = _evaluate(db, settings, now + timedelta(minutes=1))
    assert run.opened == [] and run.deliveries == []
    assert db.session.scalar(select(func.count()).select_from(Incident)) == 1

    _store(pg, settings, now + timedelta(minutes=2), message_type="user-sync")
    run = _evaluate(db, settings, now + timedelta(minutes=3))
    assert run.resolved == [incident.id]
    db.session.expire_all()
    assert db.session.get(Incident, incident.id).state == "resolved"
    assert [d[1] for d in _deliveries(db)] == ["opened", "opened", "resolved", "resolved"]
    assert rule.id == incident.rule_id


def test_learned_silence_fires_in_working_hours_only(db, pg, settings):
    """Office-hours type: silent since Friday evening is usual on Saturday, not on Monday."""
    from models import MessageStat

    last = datetime(2026, 11, 27, 18, 30, tzinfo=UTC)
    for bucket, total in _office_hours_series(datetime(2026, 11, 27, 19, 0, tzinfo=UTC)):
        db.session.add(
            MessageStat(
                bucket=bucket,
                message_type="office-sync",
                instrument="",
                total=total,
                errored=0,
                sum_processing_ms=0,
                max_processing_ms=0,
                timed=0,
            )
        )
    db.session.commit()
    _store(pg, settings, last, message_type="office-sync")
    _rule(db, kind="silence", message_type=None, threshold=None)

    assert _evaluate(db, settings, datetime(2026, 11, 28, 3, 0, tzinfo=UTC)).opened == []
    run = _evaluate(db, settings, datetime(2026, 11, 30, 9, 0, tzinfo=UTC))
    assert len(run.opened) == 1
    title = db.session.get(Incident, run.opened[0]).title
    assert "office-sync has been silent for 62.5 hours, usually every 2 minutes" in title


# ---- failure rate, new error groups --------------------------------------------------------------


def test_a_flood_of_failures_is_one_incident(db, pg, settings):
    now = datetime.now(UTC)
    _rule(db, kind="error_rate", message_type="dataset-ingestion", threshold=50)
    failing = {"errored": True, "error_message": {"callback_func_x": "ValueError: bad 1"}}
    for minute in range(5):
        _store(pg, settings, now - timedelta(minutes=5 - minute), count=40, **failing)
        run = _evaluate(db, settings, now - timedelta(minutes=5 - minute) + timedelta(seconds=1))
    assert db.session.scalar(select(func.count()).select_from(Incident)) == 1
    assert len(_deliveries(db)) == 2  # one e-mail, one webhook
    incident = db.session.scalars(select(Incident)).one()
    assert "100 % of messages failed" in incident.title
    assert run.opened == []


def test_few_failures_below_min_messages_do_not_fire(db, pg, settings):
    now = datetime.now(UTC)
    _rule(db, kind="error_rate", threshold=10, min_messages=10)
    _store(pg, settings, now - timedelta(minutes=1), count=3, errored=True)
    assert _evaluate(db, settings, now).opened == []


def test_new_error_group_fires_once_per_cause(db, pg, settings):
    now = datetime.now(UTC)
    _store(
        pg,
        settings,
        now - timedelta(minutes=2),
        errored=True,
        error_message={"callback_func_old": "KeyError: 'old'"},
    )
    rule = _rule(db, kind="new_error_group", created_at=now - timedelta(minutes=1))
    # The old cause predates the rule: not new.
    assert _evaluate(db, settings, now).opened == []
    new_cause = {"errored": True, "error_message": {"callback_func_new": "OSError: disk 7 full"}}
    _store(pg, settings, now, count=5, **new_cause)
    _store(pg, settings, now + timedelta(seconds=10), count=5, **new_cause)
    run = _evaluate(db, settings, now + timedelta(seconds=20))
    assert len(run.opened) == 1
    incident = db.session.get(Incident, run.opened[0])
    assert incident.title.startswith("new error group in dataset-ingestion: OSError")
    assert (
        incident.key
        == db.session.scalars(
            select(ErrorGroup.fingerprint).where(ErrorGroup.callback == "callback_func_new")
        ).one()
    )
    # Quiet for the rule's window: resolved; the same cause later is not new again.
    later = now + timedelta(minutes=rule.window_minutes + 1)
    assert _evaluate(db, settings, later).resolved == [incident.id]
    _store(pg, settings, later, **new_cause)
    assert _evaluate(db, settings, later + timedelta(seconds=5)).opened == []


# ---- report queue (health code's facts) ----------------------------------------------------------


def _broker(ready: int, consumers: int, ok: bool = True):
    report = {"name": "dashboard-logging", "exists": True, "ready": ready, "consumers": consumers}
    return BrokerFacts(None, reader=lambda s: ({"ok": ok}, report, {}))


def test_no_consumer_must_last_before_an_incident_opens(db, settings):
    now = datetime.now(UTC)
    _rule(db, kind="no_consumer", threshold=60)
    assert _evaluate(db, settings, now, _broker(5, 0)).opened == []
    assert _evaluate(db, settings, now + timedelta(seconds=30), _broker(5, 0)).opened == []
    run = _evaluate(db, settings, now + timedelta(seconds=61), _broker(9, 0))
    assert len(run.opened) == 1
    # The broker not answering is no news: the incident stays open.
    assert (
        _evaluate(db, settings, now + timedelta(seconds=90), _broker(0, 0, ok=False)).resolved == []
    )
    assert (
        _evaluate(db, settings, now + timedelta(seconds=120), _broker(0, 1)).resolved == run.opened
    )


def test_queue_backlog(db, settings):
    _rule(db, kind="queue_backlog", threshold=100)
    assert _evaluate(db, settings, None, _broker(100, 1)).opened == []
    run = _evaluate(db, settings, None, _broker(101, 1))
    assert "101 reports wait" in db.session.get(Incident, run.opened[0]).title


# ---- mute, snooze, lock, scope -------------------------------------------------------------------


def test_muted_rule_and_snoozed_incident_send_no_notice(db, pg, settings):
    now = datetime.now(UTC)
    _store(pg, settings, now - timedelta(minutes=30), message_type="user-sync")
    rule = _rule(
        db,
        kind="silence",
        message_type="user-sync",
        threshold=10,
        muted_until=now + timedelta(hours=1),
    )
    run = _evaluate(db, settings, now)
    assert len(run.opened) == 1 and _deliveries(db) == []
    incident = db.session.get(Incident, run.opened[0])
    incident.snoozed_until = now + timedelta(hours=2)
    rule.muted_until = None
    db.session.commit()
    _store(pg, settings, now + timedelta(minutes=1), message_type="user-sync")
    assert _evaluate(db, settings, now + timedelta(minutes=2)).resolved == [incident.id]
    assert _deliveries(db) == []


def test_a_second_evaluation_holding_no_lock_does_nothing(db, pg, settings, app):
    now = datetime.now(UTC)
    _store(pg, settings, now - timedelta(minutes=30), message_type="user-sync")
    _rule(db, kind="silence", message_type="user-sync", threshold=10)
    other = psycopg2.connect(admin_dsn(settings.POSTGRES_DB))
    try:
        with other.cursor() as cur:
            cur.execute("BEGIN; SELECT pg_advisory_xact_lock(%s)", (LOCK_ALERT_EVALUATION,))
            run = _evaluate(db, settings, now)
            assert run.locked_out and run.opened == []
            other.rollback()
    finally:
        other.close()
    assert len(_evaluate(db, settings, now).opened) == 1


def test_notice_content_respects_the_owners_scope(db, pg, settings):
    """An owner who may not see error texts gets the type, not the text."""
    import dataclasses

    from models import User

    auth_settings = dataclasses.replace(settings, DISABLED_AUTH=False)
    owner = User(sub=f"owner-{uuid.uuid4().hex[:6]}", email="owner@example.org")
    db.session.add(owner)
    db.session.commit()
    now = datetime.now(UTC)
    _rule(db, kind="new_error_group", owner_id=owner.id, created_at=now - timedelta(minutes=1))
    _store(pg, settings, now, errored=True, error_message={"cb": "SecretError: token abc"})
    run = _evaluate(db, auth_settings, now + timedelta(seconds=5))
    title = db.session.get(Incident, run.opened[0]).title
    assert title == "new error group in dataset-ingestion"
    assert "Secret" not in json.dumps(db.session.get(Incident, run.opened[0]).detail)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("webhook_url", "ftp://example.org/x", "http:// or https://"),
        ("webhook_url", "javascript:alert(1)", "http:// or https://"),
        ("emails", "not-an-address", "Not an e-mail address"),
        ("threshold", "150", "at most 100"),
        ("kind", "bogus", "Unknown rule kind"),
    ],
)
def test_rule_form_refuses_bad_values(field, value, message):
    form = {"name": "r", "kind": "error_rate", field: value}
    with pytest.raises(services.RuleError, match=message) as info:
        services.RuleForm.parse(form)
    assert info.value.field == field


def test_stalled_pipelines_rule_counts_with_the_stalled_query(db, pg, settings):
    """A dataset that got no further than stage 1 for longer than STALLED_AFTER_MINUTES."""
    now = datetime.now(UTC)
    _rule(db, kind="stalled_pipelines", threshold=0)
    _store(pg, settings, now - timedelta(minutes=30), hash="00000000000000aa")
    assert _evaluate(db, settings, now).opened == []  # recent: not stalled yet
    _store(pg, settings, now - timedelta(minutes=settings.STALLED_AFTER_MINUTES + 30), hash="bb")
    run = _evaluate(db, settings, now)
    assert db.session.get(Incident, run.opened[0]).title == "1 pipeline run stalled (limit 0)"


def test_flask_alerts_evaluate_and_incidents(app, db, pg, settings):
    _store(pg, settings, datetime.now(UTC) - timedelta(minutes=30), message_type="user-sync")
    _rule(db, kind="silence", message_type="user-sync", threshold=10, emails=[], webhook_url=None)
    runner = app.test_cli_runner()
    result = runner.invoke(args=["alerts", "evaluate", "--no-send"])
    assert result.exit_code == 0, result.output
    assert "opened 1" in result.output
    listed = runner.invoke(args=["alerts", "incidents", "--state", "open"]).output
    assert "user-sync has been silent for 30 minutes" in listed


def test_the_database_allows_one_open_incident_per_rule_and_key(db):
    from sqlalchemy.exc import IntegrityError

    rule = _rule(db)
    db.session.add(Incident(rule_id=rule.id, key="user-sync", title="first", state="resolved"))
    db.session.add(Incident(rule_id=rule.id, key="user-sync", title="second"))
    db.session.commit()  # one resolved and one open: fine
    db.session.add(Incident(rule_id=rule.id, key="user-sync", title="third"))
    with pytest.raises(IntegrityError, match="uq_alert_incidents_open_rule_key"):
        db.session.commit()
    db.session.rollback()


def test_disabling_a_rule_ends_its_open_incidents_without_notice(db, pg, settings):
    from webapp.auth.scope import admin_scope

    now = datetime.now(UTC)
    _store(pg, settings, now - timedelta(minutes=30), message_type="user-sync")
    rule = _rule(db, kind="silence", message_type="user-sync", threshold=10)
    (incident_id,) = _evaluate(db, settings, now).opened
    form = services.RuleForm.parse(
        {"name": "off", "kind": "silence", "message_type": "user-sync", "is_enabled": "off"}
    )
    services.save_rule(db.session, admin_scope(), form, rule)
    db.session.commit()
    assert db.session.get(Incident, incident_id).state == "resolved"
    assert [d[1] for d in _deliveries(db)] == ["opened", "opened"]
    assert _evaluate(db, settings, now + timedelta(minutes=1)).rules == 0
