"""Celery bound to the Flask app: tasks run inside an app context; the report consumer step."""

from __future__ import annotations

import click
from celery import Celery, Task
from flask import Flask


def celery_init_app(app: Flask) -> Celery:
    """Create the Celery app for `app`, configure it from celeryconfig and the settings."""
    import celeryconfig

    class FlaskTask(Task):
        def __call__(self, *args, **kwargs):
            with app.app_context():
                return self.run(*args, **kwargs)

    settings = app.extensions["settings"]
    celery_app = Celery(app.import_name, task_cls=FlaskTask)
    celery_app.conf.update(celeryconfig.build(settings))
    celery_app.set_default()
    celery_app.flask_app = app

    from tasks.ingest import ReportConsumerStep

    celery_app.steps["consumer"].add(ReportConsumerStep)
    celery_app.user_options["worker"].add(
        click.Option(
            ["--without-reports"],
            is_flag=True,
            default=False,
            help="Do not consume the report queue (run Celery tasks only).",
        )
    )
    app.extensions["celery"] = celery_app
    return celery_app
