"""Alert rules: evaluation (beat, at least once a minute), incidents, rule edits (issue 18).

One evaluation (`evaluate_rules`):

1. takes the advisory lock `LOCK_ALERT_EVALUATION` for its transaction (a second beat or a
   manual run at the same moment does nothing and says so);
2. for each enabled rule computes what fires *now*, as {key: Finding}, within the scope of the
   rule's owner (their groups' message types and identifiers; without details, no error text);
3. opens an incident for each key without an open one (`INSERT ... ON CONFLICT DO NOTHING` on the
   unique partial index `(rule_id, key) WHERE state = 'open'`), updates the figures of those
   still firing and resolves the open ones that no longer fire;
4. records one `pending` delivery per destination for each incident that opened or resolved
   (unique per incident, event and destination), unless the rule is muted or the incident
   snoozed. The caller commits, then queues `tasks.alerts.deliver` for those deliveries.

A condition that is unknown in this run (the broker did not answer) leaves its incidents as
they are. A flood of failures is one incident (one key per rule and type), not one per message.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from models import AlertRule, Delivery, ErrorGroup, Incident, InvestigationCheck, Message
from models.stats import ErrorGroupStat, MessageStat

from ..auth.scope import Scope, admin_scope, scope_for_user
from ..errors import DomainError
from ..locks import LOCK_ALERT_EVALUATION, try_xact_lock
from . import silence

logger = logging.getLogger(__name__)

OPEN, RESOLVED = "open", "resolved"


@dataclass(frozen=True)
class Kind:
    label: str
    #: What `threshold` means for this kind ("" = no threshold), and its default.
    threshold_label: str = ""
    default_threshold: float | None = None
    uses_type: bool = False
    uses_window: bool = False


KINDS: dict[str, Kind] = {
    "new_error_group": Kind(
        "New error group seen", uses_type=True, uses_window=True
    ),  # window: quiet time that resolves it
    "error_rate": Kind("Failure rate above X % over a window", "failure rate %", 10.0, True, True),
    "silence": Kind(
        "Message type silent (learned gap, or fixed minutes)",
        "fixed minutes (empty = learned)",
        None,
        True,
    ),
    "queue_backlog": Kind("Report queue backlog above N", "reports waiting", 1000.0),
    "no_consumer": Kind("No consumer on the report queue for N seconds", "seconds", 60.0),
    "expired_checks": Kind(
        "Investigation checks expired (in the window)", "expired checks", 0.0, uses_window=True
    ),
    "stalled_pipelines": Kind("Stalled pipeline runs above N", "stalled runs", 0.0),
}
WEBHOOK_FORMATS = ("json", "text")


class RuleError(DomainError):
    """A rule form with a bad value (names the field)."""


@dataclass
class Finding:
    """One condition that fires now: its key inside the rule, its title and figures."""

    key: str
    title: str
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class EvaluationRun:
    locked_out: bool = False
    rules: int = 0
    opened: list[int] = field(default_factory=list)
    resolved: list[int] = field(default_factory=list)
    deliveries: list[int] = field(default_factory=list)
    errors: dict[int, str] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        return {
            "locked_out": self.locked_out,
            "rules": self.rules,
            "opened": len(self.opened),
            "resolved": len(self.resolved),
            "deliveries": len(self.deliveries),
            "errors": len(self.errors),
        }


class BrokerFacts:
    """The report queue's depth and consumers, read once per run through the health code."""

    def __init__(self, settings, reader: Callable | None = None):
        self.settings = settings
        self._reader = reader
        self._facts: dict | None = None

    def report_queue(self) -> dict | None:
        """`{"exists", "ready", "consumers"}` or None when the broker did not answer."""
        if self._facts is None:
            reader = self._reader
            if reader is None:
                from ..health.queries import read_broker as reader
            broker, report, _ = reader(self.settings)
            self._facts = {"ok": broker.get("ok", False), "report": report}
        return self._facts["report"] if self._facts["ok"] else None


# ---- evaluation ----------------------------------------------------------------------------------


def evaluate_rules(
    session: Session,
    settings,
    now: datetime | None = None,
    broker: BrokerFacts | None = None,
) -> EvaluationRun:
    """Evaluate every enabled rule once (advisory-locked; flush only, the caller commits)."""
    now = now or datetime.now(UTC)
    run = EvaluationRun()
    if not try_xact_lock(session, LOCK_ALERT_EVALUATION):
        run.locked_out = True
        return run
    broker = broker or BrokerFacts(settings)
    rules = session.scalars(
        select(AlertRule).where(AlertRule.is_enabled).order_by(AlertRule.id)
    ).all()
    for rule in rules:
        run.rules += 1
        try:
            with session.begin_nested():
                findings = evaluate_rule(session, rule, settings, now, broker)
                if findings is not None:
                    _reconcile(session, rule, findings, now, run)
        except Exception as exc:
            # One broken rule never stops the others; it is logged and shown on its page.
            logger.exception("alert rule %s (%s) failed to evaluate", rule.id, rule.kind)
            run.errors[rule.id] = f"{type(exc).__name__}: {exc}"[:300]
    session.flush()
    return run


def owner_scope(rule: AlertRule, settings) -> Scope:
    """The scope the rule's notices respect: its owner's groups (admin when auth is disabled)."""
    if settings.DISABLED_AUTH:
        return admin_scope()
    return scope_for_user(rule.owner_id, settings)


def evaluate_rule(
    session: Session, rule: AlertRule, settings, now: datetime, broker: BrokerFacts
) -> dict[str, Finding] | None:
    """What fires now for `rule` ({key: Finding}); None when it cannot be known in this run."""
    scope = owner_scope(rule, settings)
    evaluate = _EVALUATORS[rule.kind]
    findings = evaluate(session, rule, settings, now, scope, broker)
    if findings is None:
        return None
    return {f.key: f for f in findings}


def _threshold(rule: AlertRule) -> float | None:
    return rule.threshold if rule.threshold is not None else KINDS[rule.kind].default_threshold


def _where_type(stmt, model, rule: AlertRule):
    if rule.message_type:
        stmt = stmt.where(model.message_type == rule.message_type)
    if rule.instrument and hasattr(model, "instrument"):
        stmt = stmt.where(model.instrument == rule.instrument.lower())
    return stmt


def _scope_suffix(rule: AlertRule) -> str:
    return f" on instrument {rule.instrument}" if rule.instrument else ""


def _error_rate(session, rule, settings, now, scope, broker) -> list[Finding]:
    since = now - timedelta(minutes=rule.window_minutes)
    stmt = (
        select(
            Message.message_type,
            func.count(),
            func.count().filter(Message.errored),
        )
        .where(Message.received_at >= since, scope.clause(Message))
        .group_by(Message.message_type)
    )
    stmt = _where_type(stmt, Message, rule)
    limit = _threshold(rule)
    findings = []
    for mtype, total, errored in session.execute(stmt):
        rate = 100.0 * errored / total if total else 0.0
        if total >= rule.min_messages and rate > limit:
            findings.append(
                Finding(
                    mtype,
                    f"{mtype}{_scope_suffix(rule)}: {rate:.0f} % of messages failed in the last "
                    f"{rule.window_minutes} minutes ({errored} of {total}; limit {limit:g} %)",
                    {"rate": round(rate, 1), "errored": errored, "total": total},
                )
            )
    return findings


def _silence(session, rule, settings, now, scope, broker) -> list[Finding]:
    days = settings.ALERT_SILENCE_LEARN_DAYS
    window_start = now - timedelta(days=days)
    clause = scope.clause(MessageStat)
    hours = silence.hourly_reports(session, now, days, clause, rule.message_type, rule.instrument)
    if rule.message_type and rule.message_type not in hours:
        hours[rule.message_type] = []
    findings = []
    for mtype, series in sorted(hours.items()):
        learned = silence.learn_usual_gap(
            series, now, settings.timezone, settings.ALERT_SILENCE_PERCENTILE
        )
        if rule.threshold is not None:
            limit = rule.threshold
        elif learned.minutes is not None:
            limit = max(float(settings.ALERT_SILENCE_FLOOR_MINUTES), learned.minutes)
        else:
            continue  # nothing learned and no fixed threshold: not watched
        last = silence.last_report_at(
            session, mtype, window_start, scope.clause(Message), rule.instrument
        )
        silent = (now - (last or window_start)).total_seconds() / 60
        if silent <= limit:
            continue
        usually = (
            f"usually every {_minutes(learned.minutes)} ({learned.band})"
            if learned.minutes is not None
            else "no usual gap learned yet"
        )
        fixed = f"; fixed threshold {_minutes(limit)}" if rule.threshold is not None else ""
        findings.append(
            Finding(
                mtype,
                f"{mtype}{_scope_suffix(rule)} has been silent for {_minutes(silent)}, "
                f"{usually}{fixed}",
                {
                    "silent_minutes": round(silent, 1),
                    "usual_gap_minutes": None
                    if learned.minutes is None
                    else round(learned.minutes, 1),
                    "threshold_minutes": round(limit, 2),
                    "last_report_at": last.isoformat() if last else None,
                    "band": learned.band,
                },
            )
        )
    return findings


def _minutes(value: float) -> str:
    if value >= 120:
        return f"{value / 60:.1f} hours"
    if value >= 2:
        return f"{value:.0f} minutes"
    return f"{value * 60:.0f} seconds"


def _new_error_group(session, rule, settings, now, scope, broker) -> list[Finding]:
    quiet_since = now - timedelta(minutes=rule.window_minutes)
    stmt = select(ErrorGroup).where(
        ErrorGroup.first_seen_at >= rule.created_at, ErrorGroup.last_seen_at >= quiet_since
    )
    if rule.message_type:
        stmt = stmt.where(ErrorGroup.message_type == rule.message_type)
    if rule.instrument or (scope.restricted and not scope.see_all):
        # Only groups with errors the owner sees (error_group_stats carries the instrument).
        seen = _where_type(
            select(ErrorGroupStat.fingerprint).where(
                ErrorGroupStat.bucket >= rule.created_at - timedelta(hours=1),
                scope.clause(ErrorGroupStat),
            ),
            ErrorGroupStat,
            rule,
        )
        stmt = stmt.where(ErrorGroup.fingerprint.in_(seen))
    groups = session.scalars(stmt.order_by(ErrorGroup.first_seen_at).limit(100)).all()
    if not groups:
        return []
    # A group fires once: after its incident resolved it is no longer new.
    had = set(
        session.scalars(
            select(Incident.key).where(
                Incident.rule_id == rule.id,
                Incident.key.in_([g.fingerprint for g in groups]),
                Incident.state == RESOLVED,
            )
        )
    )
    findings = []
    for group in groups:
        if group.fingerprint in had:
            continue
        what = f": {group.exception_class or ''} {group.normalized_text}" if scope.details else ""
        findings.append(
            Finding(
                group.fingerprint,
                f"new error group in {group.message_type}{what}"[:500],
                {
                    "message_type": group.message_type,
                    "count": group.count,
                    "first_seen_at": group.first_seen_at.isoformat(),
                    "fingerprint": group.fingerprint,
                },
            )
        )
    return findings


def _queue_backlog(session, rule, settings, now, scope, broker) -> list[Finding] | None:
    report = broker.report_queue()
    if report is None:
        return None
    limit = _threshold(rule)
    ready = report.get("ready") or 0
    if ready <= limit:
        return []
    return [
        Finding(
            "report-queue",
            f"{ready} reports wait in the report queue {report['name']} (limit {limit:g})",
            {"ready": ready, "consumers": report.get("consumers")},
        )
    ]


def _no_consumer(session, rule, settings, now, scope, broker) -> list[Finding] | None:
    report = broker.report_queue()
    if report is None:
        return None
    key = "report-queue"
    pending = dict(rule.pending or {})
    if report.get("consumers"):
        if key in pending:
            pending.pop(key)
            rule.pending = pending
        return []
    since = datetime.fromisoformat(pending[key]) if key in pending else now
    if key not in pending:
        rule.pending = {**pending, key: now.isoformat()}
    elapsed = (now - since).total_seconds()
    limit = _threshold(rule)
    if elapsed < limit:
        return []
    return [
        Finding(
            key,
            f"no worker consumes the report queue {report['name']} for "
            f"{_minutes(elapsed / 60)} ({report.get('ready') or 0} reports waiting)",
            {"since": since.isoformat(), "ready": report.get("ready")},
        )
    ]


def _expired_checks(session, rule, settings, now, scope, broker) -> list[Finding]:
    since = now - timedelta(minutes=rule.window_minutes)
    count = session.execute(
        select(func.count()).where(
            InvestigationCheck.status == "expired", InvestigationCheck.last_checked_at >= since
        )
    ).scalar_one()
    if count <= _threshold(rule):
        return []
    return [
        Finding(
            "expired-checks",
            f"{count} investigation checks expired with their DOI or search item still missing "
            f"(in the last {rule.window_minutes} minutes)",
            {"expired": count},
        )
    ]


def _stalled_pipelines(session, rule, settings, now, scope, broker) -> list[Finding]:
    # The stalled area's own count (its window and STALLED_AFTER_* times), in the owner's scope.
    from ..stalled.filters import StalledFilter
    from ..stalled.queries import count_stalled

    flt = StalledFilter(instrument=rule.instrument.lower() if rule.instrument else None)
    count = count_stalled(scope, now=now, flt=flt, settings=settings)
    limit = _threshold(rule)
    if count <= limit:
        return []
    return [
        Finding(
            "stalled-pipelines",
            f"{count} pipeline run{'s' if count != 1 else ''} stalled{_scope_suffix(rule)} "
            f"(limit {limit:g})",
            {"stalled": count},
        )
    ]


_EVALUATORS = {
    "new_error_group": _new_error_group,
    "error_rate": _error_rate,
    "silence": _silence,
    "queue_backlog": _queue_backlog,
    "no_consumer": _no_consumer,
    "expired_checks": _expired_checks,
    "stalled_pipelines": _stalled_pipelines,
}


def _reconcile(
    session: Session, rule: AlertRule, findings: dict[str, Finding], now, run: EvaluationRun
) -> None:
    open_now = {
        i.key: i
        for i in session.scalars(
            select(Incident).where(Incident.rule_id == rule.id, Incident.state == OPEN)
        )
    }
    for key, finding in findings.items():
        incident = open_now.get(key)
        if incident is not None:
            incident.title, incident.detail = finding.title, finding.detail
            continue
        new_id = session.execute(
            insert(Incident)
            .values(
                rule_id=rule.id,
                key=key,
                state=OPEN,
                title=finding.title,
                detail=finding.detail,
                opened_at=now,
            )
            .on_conflict_do_nothing(
                index_elements=["rule_id", "key"], index_where=Incident.state == OPEN
            )
            .returning(Incident.id)
        ).scalar()
        if new_id is not None:
            logger.info("alert rule %s opened incident %s: %s", rule.id, new_id, finding.title)
            run.opened.append(new_id)
            run.deliveries += _record_notices(session, rule, new_id, "opened", None, now)
    for key, incident in open_now.items():
        if key in findings:
            continue
        resolved = session.execute(
            update(Incident)
            .where(Incident.id == incident.id, Incident.state == OPEN)
            .values(state=RESOLVED, resolved_at=now)
            .returning(Incident.id)
        ).scalar()
        if resolved is not None:
            logger.info("alert rule %s resolved incident %s", rule.id, incident.id)
            run.resolved.append(incident.id)
            run.deliveries += _record_notices(
                session, rule, incident.id, "resolved", incident.snoozed_until, now
            )
    session.flush()
    for incident in open_now.values():
        session.expire(incident)


def destinations(rule: AlertRule) -> list[tuple[str, str]]:
    """(channel, target) pairs of a rule: each e-mail address, then the webhook."""
    out = [("email", address) for address in rule.emails or []]
    if rule.webhook_url:
        out.append(("webhook", rule.webhook_url))
    return out


def _record_notices(
    session: Session,
    rule: AlertRule,
    incident_id: int,
    event: str,
    snoozed_until: datetime | None,
    now: datetime,
) -> list[int]:
    if rule.muted_until is not None and rule.muted_until > now:
        return []
    if snoozed_until is not None and snoozed_until > now:
        return []
    ids = []
    for channel, target in destinations(rule):
        new_id = session.execute(
            insert(Delivery)
            .values(incident_id=incident_id, event=event, channel=channel, target=target)
            .on_conflict_do_nothing()
            .returning(Delivery.id)
        ).scalar()
        if new_id is not None:
            ids.append(new_id)
    return ids


# ---- rules and incidents (pages) ----------------------------------------------------------------


@dataclass
class RuleForm:
    """A rule as typed in the form, validated (`RuleError` names the field)."""

    name: str
    kind: str
    message_type: str | None
    instrument: str | None
    threshold: float | None
    window_minutes: int
    min_messages: int
    emails: list[str]
    webhook_url: str | None
    webhook_format: str
    is_enabled: bool

    @classmethod
    def parse(cls, form) -> RuleForm:
        name = (form.get("name") or "").strip()
        if not name or len(name) > 200:
            raise RuleError("A name of 1 to 200 characters is required.", field="name")
        kind = form.get("kind") or ""
        if kind not in KINDS:
            raise RuleError(f"Unknown rule kind {kind[:50]!r}.", field="kind")
        threshold = _number(form.get("threshold"), "threshold", minimum=0)
        if kind == "error_rate" and threshold is not None and threshold > 100:
            raise RuleError("A failure rate is at most 100 %.", field="threshold")
        window = _number(form.get("window_minutes") or "15", "window_minutes", 1, 44640)
        min_messages = _number(form.get("min_messages") or "10", "min_messages", 1, 10**9)
        emails = [e.strip() for e in (form.get("emails") or "").replace(";", ",").split(",")]
        emails = [e for e in emails if e]
        for address in emails:
            local, at, domain = address.rpartition("@")
            if not at or not local or "." not in domain or any(c.isspace() for c in address):
                raise RuleError(f"Not an e-mail address: {address[:100]!r}.", field="emails")
        if len(emails) > 20:
            raise RuleError("At most 20 e-mail addresses.", field="emails")
        webhook_url = (form.get("webhook_url") or "").strip() or None
        if webhook_url:
            parts = urlsplit(webhook_url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise RuleError(
                    "The webhook URL must be an http:// or https:// URL.", field="webhook_url"
                )
        webhook_format = form.get("webhook_format") or "json"
        if webhook_format not in WEBHOOK_FORMATS:
            raise RuleError("Webhook format: json or text.", field="webhook_format")
        return cls(
            name=name,
            kind=kind,
            message_type=(form.get("message_type") or "").strip() or None,
            instrument=(form.get("instrument") or "").strip().lower() or None,
            threshold=threshold,
            window_minutes=int(window),
            min_messages=int(min_messages),
            emails=emails,
            webhook_url=webhook_url,
            webhook_format=webhook_format,
            is_enabled=form.get("is_enabled", "on") in ("on", "true", "1", "yes"),
        )


def _number(raw, field_name: str, minimum: float | None = None, maximum: float | None = None):
    raw = (raw or "").strip() if isinstance(raw, str) else raw
    if raw in ("", None):
        return None
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise RuleError(f"{field_name}: expected a number.", field=field_name) from None
    if value != value or (minimum is not None and value < minimum):  # NaN or below
        raise RuleError(f"{field_name}: must be at least {minimum:g}.", field=field_name)
    if maximum is not None and value > maximum:
        raise RuleError(f"{field_name}: must be at most {maximum:g}.", field=field_name)
    return value


def save_rule(
    session: Session, scope: Scope, form: RuleForm, rule: AlertRule | None = None
) -> AlertRule:
    """Create or update a rule (administrators); audited; flush only."""
    from ..actions.services import audit

    creating = rule is None
    if creating:
        rule = AlertRule(created_by=scope.actor, owner_id=scope.user_id)
        session.add(rule)
    for name in (
        "name",
        "kind",
        "message_type",
        "instrument",
        "threshold",
        "window_minutes",
        "min_messages",
        "emails",
        "webhook_url",
        "webhook_format",
        "is_enabled",
    ):
        setattr(rule, name, getattr(form, name))
    if not creating:
        rule.owner_id = scope.user_id or rule.owner_id
        rule.pending = {}
        if not rule.is_enabled:
            # A disabled rule is no longer evaluated: its open incidents end now, without notice.
            session.execute(
                update(Incident)
                .where(Incident.rule_id == rule.id, Incident.state == OPEN)
                .values(state=RESOLVED, resolved_at=datetime.now(UTC))
            )
    rule.updated_at = datetime.now(UTC)
    session.flush()
    audit(
        scope.actor,
        "alert-rule-create" if creating else "alert-rule-edit",
        "ok",
        target=f"alert rule {rule.id}",
        name=rule.name,
        kind=rule.kind,
    )
    return rule


def delete_rule(session: Session, scope: Scope, rule: AlertRule) -> None:
    """Delete a rule and its incident history (administrators); audited."""
    from ..actions.services import audit

    audit(scope.actor, "alert-rule-delete", "ok", target=f"alert rule {rule.id}", name=rule.name)
    session.delete(rule)
    session.flush()


def mute_rule(session: Session, scope: Scope, rule: AlertRule, minutes: int | None) -> None:
    """Mute a rule's notices for `minutes` (None or 0 = unmute); incidents still open/resolve."""
    from ..actions.services import audit

    rule.muted_until = datetime.now(UTC) + timedelta(minutes=minutes) if minutes else None
    session.flush()
    audit(
        scope.actor,
        "alert-rule-mute" if minutes else "alert-rule-unmute",
        "ok",
        target=f"alert rule {rule.id}",
        minutes=minutes,
    )


def snooze_incident(session: Session, scope: Scope, incident: Incident, minutes: int | None):
    """Snooze an incident's notices for `minutes` (None or 0 = wake it); audited."""
    from ..actions.services import audit

    if minutes:
        incident.snoozed_until = datetime.now(UTC) + timedelta(minutes=minutes)
        incident.snoozed_by = scope.actor
    else:
        incident.snoozed_until = None
        incident.snoozed_by = None
    session.flush()
    audit(
        scope.actor,
        "alert-incident-snooze" if minutes else "alert-incident-wake",
        "ok",
        target=f"alert incident {incident.id}",
        minutes=minutes,
    )
