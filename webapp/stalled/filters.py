"""The stalled-runs filter: parsed once from request args (InvalidFilter, 400, naming the field).

==============  ============================================================================
`days`          how many days of reports to look at (1-30; default STALLED_WINDOW_DAYS)
`stage`         a message type: only runs stopped at the stage holding that type
`state`         `failed` (the stage's latest attempt failed) or `waiting` (no later report)
`instrument`    exact, case-insensitive (needs access to message details)
`investigation` exact (needs access to message details)
`limit`         runs listed per stage (1-500, default 25); counts are always complete
==============  ============================================================================
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import InvalidFilter

STATES = ("failed", "waiting")
MAX_DAYS = 30
DEFAULT_LIMIT = 25
MAX_LIMIT = 500
MAX_VALUE_LENGTH = 500
#: Every argument the filter reads (the OpenAPI document is checked against it).
ARGUMENTS = ("days", "stage", "state", "instrument", "investigation", "limit")


@dataclass(frozen=True)
class StalledFilter:
    """Which stalled runs to list; the default instance lists all of the default window."""

    days: int | None = None  # None = STALLED_WINDOW_DAYS
    stage: str | None = None
    state: str | None = None
    instrument: str | None = None
    investigation: str | None = None
    limit: int = DEFAULT_LIMIT

    @classmethod
    def from_args(cls, args: Any) -> StalledFilter:
        """The filter of these query arguments; InvalidFilter (with the field) otherwise."""

        def text(name: str) -> str | None:
            value = (args.get(name) or "").strip()
            if len(value) > MAX_VALUE_LENGTH:
                raise InvalidFilter(
                    f"'{name}' is longer than {MAX_VALUE_LENGTH} characters.", field=name
                )
            if "\x00" in value:
                raise InvalidFilter(f"'{name}' contains a NUL character.", field=name)
            return value or None

        def number(name: str, low: int, high: int) -> int | None:
            raw = text(name)
            if raw is None:
                return None
            if not (raw.isascii() and raw.isdigit()) or not low <= int(raw) <= high:
                raise InvalidFilter(f"'{name}' must be a number from {low} to {high}.", field=name)
            return int(raw)

        state = text("state")
        if state is not None and state not in STATES:
            raise InvalidFilter(f"'state' must be one of {', '.join(STATES)}.", field="state")
        instrument = text("instrument")
        return cls(
            days=number("days", 1, MAX_DAYS),
            stage=text("stage"),
            state=state,
            instrument=instrument.lower() if instrument else None,
            investigation=text("investigation"),
            limit=number("limit", 1, MAX_LIMIT) or DEFAULT_LIMIT,
        )

    def url_args(self, **changes: Any) -> dict[str, Any]:
        """Query arguments giving this filter back (with `changes`), for links."""
        values = {
            "days": self.days,
            "stage": self.stage,
            "state": self.state,
            "instrument": self.instrument,
            "investigation": self.investigation,
            "limit": self.limit if self.limit != DEFAULT_LIMIT else None,
        }
        values.update(changes)
        return {k: v for k, v in values.items() if v is not None}
