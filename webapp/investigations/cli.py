"""`flask investigations check [--dry-run] [--investigation NAME --visit-id V]`."""

from __future__ import annotations

import click
from flask import current_app
from flask.cli import AppGroup

from ..extensions import db
from . import services
from .gateway import gateway_for
from .pss import pss_client_for

investigations_cli = AppGroup(
    "investigations", help="DOI and PaNOSC search item checks of finished investigations."
)


@investigations_cli.command("check")
@click.option("--dry-run", is_flag=True, help="Query ICAT and the PSS; publish and save nothing.")
@click.option("--investigation", "name", metavar="NAME", help="Check only this investigation.")
@click.option("--visit-id", metavar="V", help="Its visit id (required with --investigation).")
def check(dry_run: bool, name: str | None, visit_id: str | None):
    """Ask PACER for the missing DOI / PSS item of each finished investigation."""
    if (name is None) != (visit_id is None):
        raise click.UsageError("--investigation and --visit-id go together")
    settings = current_app.extensions["settings"]
    try:
        services.check_configuration(settings)
    except services.CheckError as exc:
        raise click.ClickException(str(exc)) from None
    failure: str | None = None
    try:
        run = services.run_checks(
            db.session,
            settings,
            gateway=gateway_for(settings, current_app),
            pss=pss_client_for(settings),
            dry_run=dry_run,
            investigation=(name, visit_id) if name is not None else None,
        )
    except services.CheckError as exc:
        raise click.ClickException(str(exc)) from None
    except services.TransientCheckError as exc:
        failure = str(exc)
        run = exc.run or services.CheckRun(dry_run=dry_run)
    if run.locked_out:
        raise click.ClickException("another investigation check is running; try again later")
    if dry_run:
        click.echo("dry run: nothing is published and nothing is saved")
    for outcome in run.outcomes:
        click.echo(outcome.describe(dry_run))
    summary = run.summary()
    click.echo(
        f"checked {summary['checked']}: {summary['complete']} complete, "
        f"{summary['pending']} pending, {summary['expired']} expired, {summary['error']} error; "
        f"{summary['already_final']} already complete or expired; "
        f"{'would publish' if dry_run else 'published'} "
        f"{sum(1 for o in run.outcomes if o.operations)} request(s)"
    )
    if failure:
        raise click.ClickException(failure)
    if summary["error"]:
        raise click.ClickException(f"{summary['error']} check(s) ended with an error")
