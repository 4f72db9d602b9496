"""Alert rules, the incidents they raise and the notifications sent about them (issue 18)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Double,
    ForeignKey,
    Identity,
    Index,
    Integer,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .base import Base


class AlertRule(Base):
    """A condition an administrator wants to hear about, and where to send the notices."""

    __tablename__ = "alert_rules"

    id: Mapped[int] = mapped_column(Integer, Identity(), primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    #: new_error_group | error_rate | silence | queue_backlog | no_consumer | expired_checks |
    #: stalled_pipelines
    #: (webapp.alerts.services.KINDS)
    kind: Mapped[str] = mapped_column(Text)
    #: Restricts the rule to one message type / instrument (None = every one).
    message_type: Mapped[str | None] = mapped_column(Text)
    instrument: Mapped[str | None] = mapped_column(Text)
    #: Meaning by kind: error_rate %, silence minutes (fixed override of the learned gap),
    #: queue_backlog reports, no_consumer seconds, expired_checks and stalled_pipelines counts.
    #: None = the kind's default.
    threshold: Mapped[float | None] = mapped_column(Double)
    #: Look-back window of error_rate, new_error_group (quiet time that resolves) and expired_checks.
    window_minutes: Mapped[int] = mapped_column(Integer, server_default="15")
    #: error_rate: fewer messages than this in the window never fire (1 of 1 failed is no flood).
    min_messages: Mapped[int] = mapped_column(Integer, server_default="10")
    emails: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default="{}")
    webhook_url: Mapped[str | None] = mapped_column(Text)
    #: json (generic) | text (Slack / Mattermost incoming webhook: {"text": ...})
    webhook_format: Mapped[str] = mapped_column(Text, server_default="json")
    #: Whose scope the notices respect (the administrator who saved the rule).
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    is_enabled: Mapped[bool] = mapped_column(Boolean, server_default="true")
    #: Incidents still open and resolve, but no notice is sent before this time.
    muted_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    #: {incident key: ISO time the condition was first seen} for conditions that must last
    #: (no_consumer) before an incident opens.
    pending: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default="{}")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    created_by: Mapped[str | None] = mapped_column(Text)

    incidents: Mapped[list[Incident]] = relationship(
        back_populates="rule", cascade="all, delete-orphan", passive_deletes=True
    )


class Incident(Base):
    """One firing of a rule for one key (a message type, an error group...): open → resolved."""

    __tablename__ = "alert_incidents"
    __table_args__ = (
        # At most one open incident per rule and key: a second evaluation (two beats, a retried
        # task) cannot open another one.
        Index(
            "uq_alert_incidents_open_rule_key",
            "rule_id",
            "key",
            unique=True,
            postgresql_where=text("state = 'open'"),
        ),
        Index("ix_alert_incidents_opened_at", "opened_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    rule_id: Mapped[int] = mapped_column(
        ForeignKey("alert_rules.id", ondelete="CASCADE"), index=True
    )
    #: What fired inside the rule: a message type, an error fingerprint, 'queue'...
    key: Mapped[str] = mapped_column(Text)
    #: open | resolved
    state: Mapped[str] = mapped_column(Text, server_default="open")
    title: Mapped[str] = mapped_column(Text)
    #: Figures of the last evaluation (rate, gap, depth...), within the owner's scope.
    detail: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default="{}")
    opened_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    #: No notice for this incident before this time (its resolve notice included).
    snoozed_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    snoozed_by: Mapped[str | None] = mapped_column(Text)

    rule: Mapped[AlertRule] = relationship(back_populates="incidents")
    deliveries: Mapped[list[Delivery]] = relationship(
        back_populates="incident",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="Delivery.id",
    )


class Delivery(Base):
    """One notice (opened / resolved) to one destination, with its outcome."""

    __tablename__ = "alert_deliveries"
    __table_args__ = (
        # A notice is sent once per destination, however often the evaluation runs.
        UniqueConstraint("incident_id", "event", "channel", "target"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    incident_id: Mapped[int] = mapped_column(
        ForeignKey("alert_incidents.id", ondelete="CASCADE"), index=True
    )
    #: opened | resolved
    event: Mapped[str] = mapped_column(Text)
    #: email | webhook
    channel: Mapped[str] = mapped_column(Text)
    #: E-mail address or webhook URL.
    target: Mapped[str] = mapped_column(Text)
    #: pending | sent | failed
    status: Mapped[str] = mapped_column(Text, server_default="pending")
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    incident: Mapped[Incident] = relationship(back_populates="deliveries")
