"""Sending one alert notice: e-mail (SMTP, STARTTLS, login) or webhook (JSON or Slack/Mattermost).

`deliver(session, settings, delivery_id)` sends the notice of one `Delivery` row and records the
attempt; `tasks.alerts.deliver` retries it with backoff until ALERT_DELIVERY_ATTEMPTS is reached,
then the row stays `failed` with the reason. The content is built from the incident, whose title
and figures were computed within the rule owner's scope; links come from PUBLIC_URL.
"""

from __future__ import annotations

import json
import logging
import smtplib
import ssl
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

import requests
from sqlalchemy.orm import Session

from models import Delivery, Incident

logger = logging.getLogger(__name__)


class DeliveryFailed(Exception):
    """The notice could not be sent (the reason is recorded); may succeed on a later attempt."""


def incident_url(settings, incident_id: int) -> str:
    """Link to the incident's page: absolute when PUBLIC_URL is set."""
    return f"{settings.PUBLIC_URL.rstrip('/')}/alerts/incidents/{incident_id}"


def one_line(text: str) -> str:
    """Whitespace runs (line breaks from a report's error text included) as one space."""
    return " ".join(text.split())


def chat_safe(text: str) -> str:
    """Text for a Slack / Mattermost message: a report's text may not mention anyone (@channel,
    <!here>) or format links; &, < and > escaped as Slack asks, every @ defused."""
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return text.replace("@", "@\u200b")


def subject(incident: Incident, event: str) -> str:
    state = "RESOLVED" if event == "resolved" else "ALERT"
    return one_line(f"[PACER {state}] {incident.rule.name}: {incident.title}")[:250]


def text_body(settings, incident: Incident, event: str) -> str:
    lines = [
        f"{'Resolved' if event == 'resolved' else 'Opened'}: {incident.title}",
        "",
        f"Rule: {incident.rule.name} ({incident.rule.kind})",
        f"Opened at: {incident.opened_at:%Y-%m-%d %H:%M:%S} UTC",
    ]
    if incident.resolved_at:
        lines.append(f"Resolved at: {incident.resolved_at:%Y-%m-%d %H:%M:%S} UTC")
    for key, value in sorted((incident.detail or {}).items()):
        lines.append(f"{key.replace('_', ' ')}: {value}")
    lines += ["", f"Incident: {incident_url(settings, incident.id)}"]
    return "\n".join(lines) + "\n"


def webhook_payload(settings, incident: Incident, event: str, fmt: str) -> dict:
    """The webhook body: generic JSON, or `{"text": ...}` for Slack / Mattermost."""
    url = incident_url(settings, incident.id)
    if fmt == "text":
        mark = ":white_check_mark: Resolved" if event == "resolved" else ":rotating_light: Alert"
        name, title = chat_safe(one_line(incident.rule.name)), chat_safe(one_line(incident.title))
        return {"text": f"{mark} **{name}**: {title} ({url})"}
    return {
        "event": event,
        "state": incident.state,
        "title": incident.title,
        "rule": {"id": incident.rule.id, "name": incident.rule.name, "kind": incident.rule.kind},
        "incident": {
            "id": incident.id,
            "key": incident.key,
            "opened_at": incident.opened_at.isoformat(),
            "resolved_at": incident.resolved_at.isoformat() if incident.resolved_at else None,
            "detail": incident.detail or {},
            "url": url,
        },
    }


def send_email(settings, to: str, subject_: str, body: str) -> None:
    """Send one e-mail through SMTP_HOST (STARTTLS and login when configured)."""
    if not settings.SMTP_HOST:
        raise DeliveryFailed("SMTP_HOST is not set: e-mail notices cannot be sent")
    msg = EmailMessage()
    msg["From"] = settings.ALERT_MAIL_FROM
    msg["To"] = to
    msg["Subject"] = subject_
    msg["Date"] = formatdate(usegmt=True)
    msg["Message-ID"] = make_msgid(domain=settings.ALERT_MAIL_FROM.rpartition("@")[2] or None)
    msg.set_content(body)
    try:
        with smtplib.SMTP(
            settings.SMTP_HOST, settings.SMTP_PORT, timeout=settings.SMTP_TIMEOUT
        ) as smtp:
            smtp.ehlo()
            if settings.SMTP_STARTTLS:
                # Certificate and host name verified, against SMTP_CA_FILE or the system's store.
                context = ssl.create_default_context(cafile=settings.SMTP_CA_FILE or None)
                smtp.starttls(context=context)
                smtp.ehlo()
            if settings.SMTP_USER:
                smtp.login(settings.SMTP_USER, settings.SMTP_PASSWORD)
            smtp.send_message(msg)
    except (OSError, smtplib.SMTPException) as exc:
        raise DeliveryFailed(f"SMTP {settings.SMTP_HOST}:{settings.SMTP_PORT}: {exc}") from exc


def post_webhook(settings, url: str, payload: dict) -> None:
    """POST the JSON payload; any answer but 2xx is a failure."""
    try:
        response = requests.post(
            url,
            data=json.dumps(payload),
            headers={"Content-Type": "application/json", "User-Agent": "pacer-dashboard-alerts"},
            timeout=settings.WEBHOOK_TIMEOUT,
            allow_redirects=False,
        )
    except requests.RequestException as exc:
        raise DeliveryFailed(f"webhook: {type(exc).__name__}: {exc}"[:500]) from exc
    if not 200 <= response.status_code < 300:
        raise DeliveryFailed(f"webhook answered HTTP {response.status_code}")


def deliver(session: Session, settings, delivery_id: int, final_attempt: bool) -> str:
    """Send one pending delivery and record the attempt (flush only). Returns its status.

    Raises DeliveryFailed when it failed and another attempt should follow."""
    delivery = session.get(Delivery, delivery_id, with_for_update=True)
    if delivery is None or delivery.status != "pending":
        return delivery.status if delivery else "gone"
    incident = delivery.incident
    delivery.attempts += 1
    try:
        if delivery.channel == "email":
            send_email(
                settings,
                delivery.target,
                subject(incident, delivery.event),
                text_body(settings, incident, delivery.event),
            )
        else:
            post_webhook(
                settings,
                delivery.target,
                webhook_payload(settings, incident, delivery.event, incident.rule.webhook_format),
            )
    except DeliveryFailed as exc:
        delivery.last_error = str(exc)[:1000]
        if final_attempt:
            delivery.status = "failed"
            logger.error(
                "alert delivery %s (%s to %s) failed for good: %s",
                delivery.id,
                delivery.channel,
                delivery.target,
                exc,
            )
            session.flush()
            return "failed"
        logger.warning(
            "alert delivery %s attempt %s failed: %s", delivery.id, delivery.attempts, exc
        )
        session.flush()
        raise
    delivery.status = "sent"
    delivery.sent_at = datetime.now(UTC)
    delivery.last_error = None
    session.flush()
    logger.info("alert delivery %s sent (%s to %s)", delivery.id, delivery.channel, delivery.target)
    return "sent"
