"""Entry point for gunicorn (`wsgi:app`), Celery (`-A wsgi.celery_app`) and `flask --app wsgi`."""

from webapp import create_app
from webapp.config import ConfigError

try:
    app = create_app()
except ConfigError as exc:
    # One clear line naming the variable, for gunicorn, celery and flask alike.
    raise SystemExit(f"pacer-dashboard: configuration error: {exc}") from None

celery_app = app.extensions["celery"]
