"""Flask CLI: every area's command group, registered on the app (each lives in its area's cli.py)."""

from __future__ import annotations

from flask import Flask


def register(app: Flask) -> None:
    from .alerts.cli import alerts_cli
    from .auth.cli import users_cli
    from .demo import demo_cli
    from .ingest.cli import quarantine_cli
    from .investigations.cli import investigations_cli
    from .partitions.cli import partitions_cli
    from .stats.cli import rollups_cli

    for group in (
        partitions_cli,
        quarantine_cli,
        demo_cli,
        users_cli,
        investigations_cli,
        rollups_cli,
        alerts_cli,
    ):
        app.cli.add_command(group)
