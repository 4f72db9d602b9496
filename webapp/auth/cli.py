"""`flask users ...`: bootstrap and inspect dashboard users."""

from __future__ import annotations

import click
from flask import current_app
from flask.cli import AppGroup

from ..errors import DomainError
from ..extensions import db
from . import services

users_cli = AppGroup("users", help="Dashboard users and their groups.")


@users_cli.command("grant-admin")
@click.argument("identifier")
def grant_admin(identifier: str):
    """Make the user with this email or OIDC subject a member of ADMIN_GROUP."""
    admin_group = current_app.extensions["settings"].ADMIN_GROUP
    try:
        user, created = services.grant_admin(identifier, admin_group)
    except DomainError as exc:
        db.session.rollback()
        raise click.ClickException(exc.message) from None
    db.session.commit()
    if created:
        click.echo(
            f"provisioned {user.email}: administrator ({admin_group}) from their first login"
        )
    else:
        click.echo(f"{user.email or user.sub} is now a member of {admin_group}")
