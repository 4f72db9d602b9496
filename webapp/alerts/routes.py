"""/alerts pages (administrators): incidents with their history, rules, snooze and mute."""

from __future__ import annotations

from datetime import UTC, datetime

from flask import abort, flash, redirect, render_template, request, url_for

from models import AlertRule

from ..auth.scope import current_scope
from ..extensions import db
from . import bp, queries, services
from .services import KINDS, WEBHOOK_FORMATS, RuleError, RuleForm

#: Durations offered by the snooze and mute buttons (minutes).
SNOOZE_CHOICES = (30, 120, 480, 1440)
#: Largest id of a rule (integer column) and of an incident (bigint); larger ones do not exist.
MAX_RULE_ID, MAX_INCIDENT_ID = 2**31 - 1, 2**63 - 1


def _rule_or_404(rule_id: int) -> AlertRule:
    rule = db.session.get(AlertRule, rule_id) if 0 < rule_id <= MAX_RULE_ID else None
    if rule is None:
        abort(404)
    return rule


def _incident_or_404(incident_id: int):
    found = (
        queries.get_incident(db.session, incident_id)
        if 0 < incident_id <= MAX_INCIDENT_ID
        else None
    )
    if found is None:
        abort(404)
    return found


@bp.context_processor
def _now():
    return {"now": datetime.now(UTC)}


def _admin():
    scope = current_scope()
    if not scope.is_admin:
        # Rules name destinations, incidents carry what their owner's scope sees.
        abort(403, "Only administrators may see and manage alerts.")
    return scope


def _minutes(raw) -> int | None:
    try:
        value = int(raw or 0)
    except ValueError:
        abort(400, "minutes: expected a whole number")
    if not 0 <= value <= 7 * 24 * 60:
        abort(400, "minutes: between 0 and 10080")
    return value or None


@bp.get("/alerts")
def index():
    """Incidents, newest first: open, snoozed, resolved (the history), with a state filter."""
    _admin()
    state = request.args.get("state") or None
    if state not in (None, *queries.STATES):
        abort(400, "state: open, snoozed or resolved")
    before = request.args.get("before", type=int)
    if before is not None and not 0 < before <= MAX_INCIDENT_ID:
        abort(400, "before: an incident id")
    incidents = queries.list_incidents(db.session, state, before)
    return render_template(
        "alerts/index.html",
        incidents=incidents,
        state=state,
        counts=queries.state_counts(db.session),
        has_more=len(incidents) == queries.PAGE_SIZE,
        snooze_choices=SNOOZE_CHOICES,
    )


@bp.get("/alerts/incidents/<int:incident_id>")
def incident(incident_id: int):
    """One incident: its figures, its notices and their outcomes."""
    _admin()
    found = _incident_or_404(incident_id)
    return render_template("alerts/incident.html", incident=found, snooze_choices=SNOOZE_CHOICES)


@bp.post("/alerts/incidents/<int:incident_id>/snooze")
def snooze_incident(incident_id: int):
    """Snooze an incident's notices for some minutes (0 = wake it)."""
    scope = _admin()
    found = _incident_or_404(incident_id)
    minutes = _minutes(request.form.get("minutes"))
    services.snooze_incident(db.session, scope, found, minutes)
    db.session.commit()
    flash(f"Incident {incident_id} snoozed." if minutes else f"Incident {incident_id} woken.")
    if request.form.get("next") == "list":
        return redirect(url_for("alerts.index"), 303)
    return redirect(url_for("alerts.incident", incident_id=incident_id), 303)


@bp.get("/alerts/rules")
def rules():
    """Every alert rule with its destinations, state and open incidents."""
    _admin()
    return render_template(
        "alerts/rules.html",
        rules=queries.list_rules(db.session),
        open_counts=queries.open_counts(db.session),
        kinds=KINDS,
        snooze_choices=SNOOZE_CHOICES,
    )


def _form_page(rule: AlertRule | None, values: dict, error: RuleError | None = None, status=200):
    return (
        render_template(
            "alerts/rule_form.html",
            rule=rule,
            values=values,
            error=error,
            kinds=KINDS,
            formats=WEBHOOK_FORMATS,
        ),
        status,
    )


def _values(rule: AlertRule) -> dict:
    return {
        "name": rule.name,
        "kind": rule.kind,
        "message_type": rule.message_type or "",
        "instrument": rule.instrument or "",
        "threshold": "" if rule.threshold is None else f"{rule.threshold:g}",
        "window_minutes": rule.window_minutes,
        "min_messages": rule.min_messages,
        "emails": ", ".join(rule.emails or []),
        "webhook_url": rule.webhook_url or "",
        "webhook_format": rule.webhook_format,
        "is_enabled": "on" if rule.is_enabled else "",
    }


@bp.route("/alerts/rules/new", methods=["GET", "POST"])
def new_rule():
    """Create an alert rule."""
    scope = _admin()
    if request.method == "GET":
        return _form_page(
            None,
            {
                "kind": "silence",
                "is_enabled": "on",
                "window_minutes": 15,
                "min_messages": 10,
                "webhook_format": "json",
            },
        )
    try:
        form = RuleForm.parse(request.form)
    except RuleError as exc:
        return _form_page(None, request.form.to_dict(), exc, 400)
    rule = services.save_rule(db.session, scope, form)
    db.session.commit()
    flash(f"Rule {rule.name!r} created.")
    return redirect(url_for("alerts.rules"), 303)


@bp.route("/alerts/rules/<int:rule_id>/edit", methods=["GET", "POST"])
def edit_rule(rule_id: int):
    """Edit an alert rule."""
    scope = _admin()
    rule = _rule_or_404(rule_id)
    if request.method == "GET":
        return _form_page(rule, _values(rule))
    try:
        form = RuleForm.parse(request.form)
    except RuleError as exc:
        return _form_page(rule, request.form.to_dict(), exc, 400)
    services.save_rule(db.session, scope, form, rule)
    db.session.commit()
    flash(f"Rule {rule.name!r} saved.")
    return redirect(url_for("alerts.rules"), 303)


@bp.post("/alerts/rules/<int:rule_id>/delete")
def delete_rule(rule_id: int):
    """Delete an alert rule and its incident history."""
    scope = _admin()
    rule = _rule_or_404(rule_id)
    name = rule.name
    services.delete_rule(db.session, scope, rule)
    db.session.commit()
    flash(f"Rule {name!r} deleted.")
    return redirect(url_for("alerts.rules"), 303)


@bp.post("/alerts/rules/<int:rule_id>/mute")
def mute_rule(rule_id: int):
    """Mute a rule's notices for some minutes (0 = unmute)."""
    scope = _admin()
    rule = _rule_or_404(rule_id)
    minutes = _minutes(request.form.get("minutes"))
    services.mute_rule(db.session, scope, rule, minutes)
    db.session.commit()
    flash(f"Rule {rule.name!r} muted." if minutes else f"Rule {rule.name!r} unmuted.")
    return redirect(url_for("alerts.rules"), 303)
