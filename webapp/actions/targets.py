"""Where re-ingest may publish: only the exchanges of REINGEST_EXCHANGES, never the dashboard's,
Celery's or the broker's own (SECURITY.md, "Re-ingest").

A stored message's exchange comes from a producer's report: untrusted. Every path checks it here
before it shows a preview and again before it publishes (single and bulk), and the publisher
checks it once more (`reingest_publisher` gives `webapp.amqp.Publisher.publish` this policy).
"""

from __future__ import annotations

import functools
from typing import Any

from sqlalchemy import false

from models import Message

from ..amqp import Publisher
from ..config import never_reingest_reason
from ..errors import DomainError

#: Header naming the dashboard message a re-ingested message was re-published from.
REINGEST_HEADER = "x-dashboard-reingest-of"

#: Exchange names are quoted in messages at most this long (they are producer-chosen).
SHOWN_NAME_CHARS = 80

DISABLED = (
    "Re-ingest is disabled: no exchange is allowed (REINGEST_EXCHANGES is empty). "
    "An administrator lists PACER's exchanges there to enable it."
)


class ReingestRefused(DomainError):
    """The exchange is not a permitted re-ingest target (or re-ingest is disabled)."""

    status = 403


def shown(exchange: str | None) -> str:
    """An exchange name, quoted and shortened, for messages and audit rows."""
    if exchange is None:
        return "(none recorded)"
    if len(exchange) > SHOWN_NAME_CHARS:
        return repr(exchange[:SHOWN_NAME_CHARS]) + f"… ({len(exchange)} characters)"
    return repr(exchange)


def refusal(exchange: str | None, settings: Any) -> str | None:
    """Why re-ingest may not publish to `exchange`; None when it may."""
    if not settings.REINGEST_EXCHANGES:
        return DISABLED
    name = exchange or ""
    reason = never_reingest_reason(name, settings)
    if reason:
        return f"Exchange {shown(exchange)} can never be a re-ingest target: {reason}."
    if name not in settings.REINGEST_EXCHANGES:
        return (
            f"Exchange {shown(exchange)} is not on the re-ingest allow-list "
            "(REINGEST_EXCHANGES): only PACER's exchanges listed there can be re-ingested to."
        )
    return None


def check(exchange: str | None, settings: Any) -> None:
    """Raise ReingestRefused unless re-ingest may publish to `exchange`."""
    reason = refusal(exchange, settings)
    if reason:
        raise ReingestRefused(reason, field="exchange")


def allowed(settings: Any) -> list[str]:
    """The listed exchanges that may be targets (a name that may never be one is dropped)."""
    return [
        name for name in settings.REINGEST_EXCHANGES if not never_reingest_reason(name, settings)
    ]


def allowed_clause(settings: Any):
    """SQL condition: the message's exchange is a permitted re-ingest target."""
    names = allowed(settings)
    return Message.exchange_name.in_(names) if names else false()


def reingest_publisher(settings: Any) -> Publisher:
    """A publisher for re-ingest: as the re-ingest broker user (REINGEST_RMQ_USERNAME) when one
    is configured, and refusing in `publish` every exchange `refusal` refuses."""
    return Publisher(
        settings,
        broker_url=settings.reingest_broker_url,
        refusal=functools.partial(refusal, settings=settings),
    )
