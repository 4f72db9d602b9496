"""Reads of the alerts pages: rules, incidents (open / snoozed / resolved history), deliveries."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session, selectinload

from models import AlertRule, Incident

#: Incidents per history page.
PAGE_SIZE = 100
STATES = ("open", "snoozed", "resolved")


def list_rules(session: Session) -> list[AlertRule]:
    """Every rule, by name."""
    return list(session.scalars(select(AlertRule).order_by(AlertRule.name, AlertRule.id)))


def open_counts(session: Session) -> dict[int, int]:
    """{rule id: open incidents}."""
    rows = session.execute(
        select(Incident.rule_id, func.count())
        .where(Incident.state == "open")
        .group_by(Incident.rule_id)
    )
    return dict(rows.all())


def list_incidents(
    session: Session, state: str | None, before_id: int | None = None, limit: int = PAGE_SIZE
) -> list[Incident]:
    """Newest incidents first (keyset on id), optionally only open / snoozed / resolved."""
    now = datetime.now(UTC)
    stmt = select(Incident).options(selectinload(Incident.rule)).order_by(Incident.id.desc())
    if state == "open":
        stmt = stmt.where(
            Incident.state == "open",
            (Incident.snoozed_until.is_(None)) | (Incident.snoozed_until <= now),
        )
    elif state == "snoozed":
        stmt = stmt.where(Incident.state == "open", Incident.snoozed_until > now)
    elif state == "resolved":
        stmt = stmt.where(Incident.state == "resolved")
    if before_id:
        stmt = stmt.where(Incident.id < before_id)
    return list(session.scalars(stmt.limit(limit)))


def state_counts(session: Session) -> dict[str, int]:
    """Incidents per shown state (open, snoozed, resolved)."""
    now = datetime.now(UTC)
    # NULL-safe: an incident never snoozed is not snoozed (NOT NULL would drop it from both).
    snoozed = and_(
        Incident.state == "open", Incident.snoozed_until.is_not(None), Incident.snoozed_until > now
    )
    row = session.execute(
        select(
            func.count().filter(Incident.state == "open", ~snoozed),
            func.count().filter(snoozed),
            func.count().filter(Incident.state == "resolved"),
        ).select_from(Incident)
    ).one()
    return {"open": row[0] or 0, "snoozed": row[1] or 0, "resolved": row[2] or 0}


def get_incident(session: Session, incident_id: int) -> Incident | None:
    """One incident with its rule and deliveries."""
    return session.scalar(
        select(Incident)
        .options(selectinload(Incident.rule), selectinload(Incident.deliveries))
        .where(Incident.id == incident_id)
    )
