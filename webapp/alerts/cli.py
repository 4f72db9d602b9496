"""`flask alerts evaluate`: run the alert rules now (as beat does), `flask alerts incidents`."""

from __future__ import annotations

import click
from flask import current_app
from flask.cli import AppGroup

from ..extensions import db

alerts_cli = AppGroup("alerts", help="Alert rules and their incidents.")


@alerts_cli.command("evaluate")
@click.option("--send/--no-send", default=True, show_default=True, help="Queue the notices.")
def alerts_evaluate(send: bool):
    """Evaluate every enabled rule once, like the beat task (same lock, same incidents)."""
    from . import services

    run = services.evaluate_rules(db.session, current_app.extensions["settings"])
    db.session.commit()
    if run.locked_out:
        raise click.ClickException("another evaluation holds the lock; try again")
    if send and run.deliveries:
        from tasks.alerts import deliver

        for delivery_id in run.deliveries:
            deliver.delay(delivery_id)
    summary = run.summary()
    click.echo(", ".join(f"{k} {v}" for k, v in summary.items() if k != "locked_out"))
    for rule_id, error in run.errors.items():
        click.echo(f"rule {rule_id}: {error}", err=True)


@alerts_cli.command("incidents")
@click.option("--state", type=click.Choice(["open", "snoozed", "resolved"]), default=None)
def alerts_incidents(state: str | None):
    """List the newest incidents (id, state, opened, rule, title)."""
    from . import queries

    for incident in queries.list_incidents(db.session, state):
        click.echo(
            f"{incident.id}\t{incident.state}\t{incident.opened_at:%Y-%m-%d %H:%M}\t"
            f"{incident.rule.name}\t{incident.title}"
        )
