"""Alert notices sent for real: an SMTP server (aiosmtpd) and an HTTP receiver on this machine."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from models import Delivery, Incident
from tests.alerts.test_evaluation import _evaluate, _rule, _store
from webapp.alerts import notify


@pytest.fixture
def open_incident(db, pg, settings, http_receiver):
    """A silence incident of `user-sync` with two e-mail addresses and a webhook."""

    def make(**rule_fields) -> Incident:
        now = datetime.now(UTC)
        _store(pg, settings, now - timedelta(minutes=30), message_type="user-sync")
        fields = {
            "name": "user sync alive",
            "kind": "silence",
            "message_type": "user-sync",
            "threshold": 10,
            "emails": ["ops@example.org", "night@example.org"],
            "webhook_url": http_receiver.url,
            **rule_fields,
        }
        _rule(db, **fields)
        run = _evaluate(db, settings, now)
        return db.session.get(Incident, run.opened[0])

    return make


def _deliver_all(db, settings, final: bool = True) -> list[str]:
    out = []
    for delivery in db.session.query(Delivery).order_by(Delivery.id).all():
        out.append(notify.deliver(db.session, settings, delivery.id, final_attempt=final))
    db.session.commit()
    return out


def test_email_and_webhook_arrive_with_a_link(
    db, alert_settings, smtp_server, http_receiver, open_incident
):
    incident = open_incident()
    assert _deliver_all(db, alert_settings) == ["sent", "sent", "sent"]
    assert sorted(m["To"] for m in smtp_server.mails) == ["night@example.org", "ops@example.org"]
    mail = smtp_server.mails[0]
    assert mail["From"] == "pacer-dashboard@example.org"
    assert mail["Subject"].startswith("[PACER ALERT] user sync alive: user-sync has been silent")
    body = mail.get_payload(decode=True).decode()
    assert f"https://dashboard.example.org/alerts/incidents/{incident.id}" in body
    (hook,) = http_receiver.bodies
    assert hook["event"] == "opened" and hook["rule"]["name"] == "user sync alive"
    assert (
        hook["incident"]["url"] == f"https://dashboard.example.org/alerts/incidents/{incident.id}"
    )
    assert hook["incident"]["detail"]["threshold_minutes"] == 10
    rows = db.session.query(Delivery).all()
    assert all(d.status == "sent" and d.sent_at and d.attempts == 1 for d in rows)
    # Sent is sent: delivering again (a redelivered task) sends nothing more.
    assert _deliver_all(db, alert_settings) == ["sent", "sent", "sent"]
    assert len(smtp_server.mails) == 2 and len(http_receiver.bodies) == 1


def test_mattermost_text_format(db, alert_settings, http_receiver, open_incident):
    open_incident(emails=[], webhook_format="text")
    _deliver_all(db, alert_settings)
    (hook,) = http_receiver.bodies
    assert set(hook) == {"text"}
    assert hook["text"].startswith(":rotating_light: Alert **user sync alive**: user-sync has been")


def test_failures_are_recorded_with_their_reason(db, alert_settings, http_receiver, open_incident):
    open_incident(emails=[])
    http_receiver.status = 503
    (delivery,) = db.session.query(Delivery).all()
    with pytest.raises(notify.DeliveryFailed):
        notify.deliver(db.session, alert_settings, delivery.id, final_attempt=False)
    db.session.commit()
    db.session.refresh(delivery)
    assert (delivery.status, delivery.attempts) == ("pending", 1)
    assert delivery.last_error == "webhook answered HTTP 503"
    assert notify.deliver(db.session, alert_settings, delivery.id, final_attempt=True) == "failed"
    db.session.commit()
    db.session.refresh(delivery)
    assert (delivery.status, delivery.attempts) == ("failed", 2)


def test_unreachable_smtp_server_is_a_recorded_failure(db, alert_settings, open_incident):
    import dataclasses

    from tests.processes import free_port

    open_incident(webhook_url=None, emails=["ops@example.org"])
    closed = dataclasses.replace(alert_settings, SMTP_PORT=free_port(), SMTP_TIMEOUT=3)
    assert _deliver_all(db, closed) == ["failed"]
    (delivery,) = db.session.query(Delivery).all()
    assert delivery.last_error.startswith(f"SMTP 127.0.0.1:{closed.SMTP_PORT}: ")


def test_deliver_task_sends_the_webhook(db, http_receiver, open_incident):
    """The Celery task (run in-process here) sends and records."""
    from tasks.alerts import deliver

    open_incident(emails=[])
    (delivery,) = db.session.query(Delivery).all()
    assert deliver.apply(args=[delivery.id]).get() == "sent"
    db.session.expire_all()
    assert db.session.get(Delivery, delivery.id).status == "sent"
    assert http_receiver.bodies[0]["event"] == "opened"


def test_deliver_task_retries_then_records_the_failure(db, settings, http_receiver, open_incident):
    """Each attempt is recorded; after ALERT_DELIVERY_ATTEMPTS the notice is failed with why."""
    from tasks.alerts import deliver

    open_incident(emails=[])
    http_receiver.status = 500
    (delivery,) = db.session.query(Delivery).all()
    deliver.apply(args=[delivery.id])  # eager: the retries run at once, without their countdown
    db.session.expire_all()
    row = db.session.get(Delivery, delivery.id)
    assert (row.status, row.attempts) == ("failed", settings.ALERT_DELIVERY_ATTEMPTS)
    assert row.last_error == "webhook answered HTTP 500"


def test_starttls_is_required_when_configured(db, alert_settings, smtp_server, open_incident):
    """SMTP_STARTTLS=true and a server without STARTTLS: nothing is sent in the clear."""
    import dataclasses

    open_incident(webhook_url=None, emails=["ops@example.org"])
    assert _deliver_all(db, dataclasses.replace(alert_settings, SMTP_STARTTLS=True)) == ["failed"]
    assert smtp_server.mails == []
    (delivery,) = db.session.query(Delivery).all()
    assert "STARTTLS extension not supported by server" in delivery.last_error


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_smtp_login(db, alert_settings, open_incident):
    """SMTP_USER / SMTP_PASSWORD log in (a server that demands authentication)."""
    import dataclasses

    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult

    from tests.alerts.conftest import _Collect
    from tests.processes import free_port

    logins = []

    def authenticator(server, session, envelope, mechanism, auth_data):
        logins.append((auth_data.login, auth_data.password))
        return AuthResult(success=auth_data.password == b"s3cret/pass")

    handler = _Collect()
    controller = Controller(
        handler,
        hostname="127.0.0.1",
        port=free_port(),
        authenticator=authenticator,
        auth_required=True,
        auth_require_tls=False,
    )
    controller.start()
    try:
        open_incident(webhook_url=None, emails=["ops@example.org"])
        login = dataclasses.replace(
            alert_settings, SMTP_PORT=controller.port, SMTP_USER="alerts", SMTP_PASSWORD="wrong"
        )
        assert _deliver_all(db, login) == ["failed"]
        db.session.query(Delivery).update({"status": "pending"})
        db.session.commit()
        login = dataclasses.replace(login, SMTP_PASSWORD="s3cret/pass")
        assert _deliver_all(db, login) == ["sent"]
    finally:
        controller.stop()
    assert logins == [(b"alerts", b"wrong"), (b"alerts", b"s3cret/pass")]
    assert len(handler.mails) == 1


def test_report_text_cannot_ping_a_chat_or_break_a_mail_header(
    db, alert_settings, smtp_server, http_receiver, open_incident
):
    incident = open_incident(webhook_format="text", emails=["ops@example.org"])
    incident.title = "new error group in x: Boom @channel <!here|here>\r\nBcc: victim@example.org"
    db.session.commit()
    assert _deliver_all(db, alert_settings) == ["sent", "sent"]
    (mail,) = smtp_server.mails
    assert mail["Bcc"] is None and "\n" not in mail["Subject"]
    assert mail["Subject"].endswith("Boom @channel <!here|here> Bcc: victim@example.org")
    text = http_receiver.bodies[0]["text"]
    assert "@channel" not in text and "<!here" not in text
    assert "@\u200bchannel &lt;!here|here&gt; Bcc: victim@\u200bexample.org" in text


def test_a_lost_notice_is_queued_again_by_the_next_evaluation(db, settings, open_incident):
    """Recorded but never tried for an hour (its task was lost): queued again on the task queue
    by the next evaluation; one being retried is left to its own retries."""
    from kombu import Connection, Queue

    from tasks import alerts as alert_tasks

    open_incident()
    lost, retrying, fresh = db.session.query(Delivery).order_by(Delivery.id).all()
    old = datetime.now(UTC) - timedelta(hours=2)
    lost.created_at = retrying.created_at = old
    retrying.attempts = 2
    db.session.commit()
    with Connection(settings.broker_url) as conn:
        queue = Queue(settings.CELERY_QUEUE, channel=conn.channel(), durable=True)
        queue.declare()
        queue.purge()
        alert_tasks.evaluate_rules.apply().get()
        queued = []
        while (message := queue.get(no_ack=True)) is not None:
            queued.append((message.headers["task"], message.decode()[0]))
    assert queued == [("tasks.alerts.deliver", [lost.id])]
    assert fresh.id not in (lost.id, retrying.id)
