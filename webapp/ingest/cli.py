"""`flask quarantine {list,replay}`: bodies that were not valid reports."""

from __future__ import annotations

import click
from flask import current_app
from flask.cli import AppGroup

from ..extensions import db

quarantine_cli = AppGroup("quarantine", help="Bodies that were not valid reports.")


def _settings():
    return current_app.extensions["settings"]


@quarantine_cli.command("list")
@click.option("--all", "show_all", is_flag=True, help="Include replayed bodies.")
@click.option("--limit", default=50, show_default=True)
def quarantine_list(show_all: bool, limit: int):
    """Quarantined bodies with their reasons."""
    from sqlalchemy import select

    from models import QuarantinedReport as Q

    query = select(Q).order_by(Q.id.desc()).limit(limit)
    if not show_all:
        query = query.where(Q.replayed_at.is_(None))
    rows = db.session.scalars(query).all()
    for q in rows:
        state = f"replayed {q.replayed_at:%Y-%m-%d %H:%M}" if q.replayed_at else "waiting"
        click.echo(
            f"{q.id:>8} {q.received_at:%Y-%m-%d %H:%M:%S} {len(q.body):>9} B  {state}  {q.reason}"
        )
    if not rows:
        click.echo("quarantine is empty")


@quarantine_cli.command("replay")
@click.option("--id", "ids", multiple=True, type=int, help="Only these quarantine ids.")
def quarantine_replay(ids: tuple[int, ...]):
    """Ingest the quarantined bodies that are valid reports now; keep the rest."""
    from .services import replay_quarantined

    result = replay_quarantined(_settings(), list(ids) or None)
    click.echo(
        f"ingested {result.ingested}, already stored {result.duplicates}, "
        f"still invalid {result.still_invalid}"
    )
