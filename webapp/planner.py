"""PostgreSQL settings for a few statements of a request: `local_settings`."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import text

from .extensions import db


@contextmanager
def local_settings(**values: int) -> Iterator[None]:
    """The statements inside run with these settings (SET LOCAL), the rest of the transaction
    without them (RESET afterwards). When a statement inside fails, the transaction's rollback
    undoes the SET LOCAL; no RESET is sent into the aborted transaction (it would hide the
    error)."""
    for name, value in values.items():
        db.session.execute(text(f"SET LOCAL {name} = {int(value)}"))
    yield
    for name in values:
        db.session.execute(text(f"RESET {name}"))
