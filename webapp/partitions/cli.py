"""`flask partitions {create,list,drop-expired}`."""

from __future__ import annotations

import json

import click
from flask import current_app
from flask.cli import AppGroup

from ..extensions import db
from . import services as partitions

partitions_cli = AppGroup("partitions", help="Range partitions of the messages table.")


def _settings():
    return current_app.extensions["settings"]


@partitions_cli.command("create")
def partitions_create():
    """Create the current partition, MESSAGE_PARTITIONS_AHEAD ahead and the DEFAULT one."""
    s = _settings()
    with db.engine.begin() as conn:
        result = partitions.ensure_partitions(
            conn, months=s.MESSAGE_PARTITION_MONTHS, ahead=s.MESSAGE_PARTITIONS_AHEAD
        )
    if result.locked_out:
        raise click.ClickException("another partition maintenance run holds the lock; try again")
    for name in result.created:
        click.echo(f"created {name}")
    for name in result.skipped:
        click.echo(f"skipped {name} (overlaps an existing partition)")
    if result.moved_rows:
        click.echo(f"moved {result.moved_rows} rows out of the default partition")
    if not result.created:
        click.echo("partitions up to date")


@partitions_cli.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def partitions_list(as_json: bool):
    """Each partition with its bounds and estimated row count."""
    with db.engine.connect() as conn:
        parts = partitions.list_partitions(conn)
    if as_json:
        click.echo(
            json.dumps(
                [
                    {
                        "name": p.name,
                        "start": p.start.isoformat() if p.start else None,
                        "end": p.end.isoformat() if p.end else None,
                        "default": p.is_default,
                        "estimated_rows": p.estimated_rows,
                    }
                    for p in parts
                ]
            )
        )
        return
    click.echo(f"{'partition':<24} {'from':<12} {'to':<12} {'rows (est.)':>12}")
    for p in parts:
        start = "DEFAULT" if p.is_default else f"{p.start:%Y-%m-%d}"
        end = "" if p.is_default else f"{p.end:%Y-%m-%d}"
        click.echo(f"{p.name:<24} {start:<12} {end:<12} {p.estimated_rows:>12}")


@partitions_cli.command("drop-expired")
@click.option("--dry-run", is_flag=True, help="Only show what would be dropped.")
def partitions_drop_expired(dry_run: bool):
    """Drop partitions older than MESSAGE_RETENTION_MONTHS (unset = keep forever)."""
    s = _settings()
    if not s.MESSAGE_RETENTION_MONTHS:
        click.echo("MESSAGE_RETENTION_MONTHS is not set: nothing expires")
        return
    with db.engine.begin() as conn:
        expired = partitions.drop_expired_partitions(
            conn, retention_months=s.MESSAGE_RETENTION_MONTHS, dry_run=dry_run
        )
    verb = "would drop" if dry_run else "dropped"
    for p in expired:
        click.echo(
            f"{verb} {p.name} [{p.start:%Y-%m-%d}, {p.end:%Y-%m-%d}) ~{p.estimated_rows} rows"
        )
    if not expired:
        click.echo("no partition is past retention")
