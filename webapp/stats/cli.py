"""`flask rollups rebuild [--since]`."""

from __future__ import annotations

import click
from flask.cli import AppGroup

from ..extensions import db
from ..messages.filters import MessageFilter
from .services import rebuild_rollups

rollups_cli = AppGroup("rollups", help="Statistics and error-group rollups.")


@rollups_cli.command("rebuild")
@click.option(
    "--since",
    metavar="DATE",
    help="Only rebuild hours from this ISO date or date-time (UTC) on; default: everything.",
)
def rollups_rebuild(since: str | None):
    """Recompute the rollups exactly from `messages` (holds the rollup-rebuild lock)."""
    from ..errors import InvalidFilter

    try:
        moment = MessageFilter.from_args({"since": since}).since if since else None
    except InvalidFilter as exc:
        raise click.BadParameter(exc.message, param_hint="--since") from None
    with db.engine.begin() as conn:
        result = rebuild_rollups(conn, moment)
    if result.locked_out:
        raise click.ClickException("another rollup rebuild holds the lock; try again later")
    scope = f"since {result.since:%Y-%m-%d %H:00} UTC" if result.since else "all history"
    click.echo(
        f"rebuilt {scope}: {result.message_stats_rows} message_stats rows, "
        f"{result.error_group_stats_rows} error_group_stats rows, "
        f"{result.error_groups_added} error groups added, "
        f"{result.error_groups_removed} removed"
    )
