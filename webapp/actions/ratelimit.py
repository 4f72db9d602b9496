"""Per-user limit on single re-ingests (REINGEST_USER_PER_MINUTE), shared by every web process.

The audit log is the counter: a user's `reingest` rows of the last minute that got as far as an
attempt (outcome ok or error). A transaction-level advisory lock per actor makes the check and
the attempt's own audit row one step, so parallel requests of one user cannot all slip under the
limit; it is held until the request commits, so one user's re-ingests run one at a time.
"""

from __future__ import annotations

import math

from sqlalchemy import text

from ..errors import DomainError
from ..extensions import db

WINDOW_SECONDS = 60
#: First key of the two-key advisory locks taken here (the second is a hash of the actor).
LOCK_NAMESPACE = 0x5245_494E  # "REIN"
#: Outcomes that count: attempts that were let through (refusals never extend a lock-out).
COUNTED_OUTCOMES = ("ok", "error")


class RateLimited(DomainError):
    status = 429

    def __init__(self, message: str, retry_after: int):
        super().__init__(message)
        self.retry_after = retry_after


def retry_after(actor: str, limit: int) -> int | None:
    """Seconds until `actor` may re-ingest again, or None when under the limit now.

    Takes the actor's advisory lock for the rest of the transaction.
    """
    db.session.execute(
        text("SELECT pg_advisory_xact_lock(:ns, hashtext(:actor))"),
        {"ns": LOCK_NAMESPACE, "actor": actor},
    )
    row = db.session.execute(
        text(
            """
            SELECT count(*) AS n,
                   EXTRACT(EPOCH FROM (min(at) + make_interval(secs => :window)
                                       - clock_timestamp())) AS wait
            FROM (
                SELECT at FROM audit_log
                WHERE action = 'reingest' AND actor = :actor
                  AND outcome = ANY(:outcomes)
                  AND at > clock_timestamp() - make_interval(secs => :window)
                ORDER BY at DESC
                LIMIT :limit
            ) recent
            """
        ),
        {
            "actor": actor,
            "window": WINDOW_SECONDS,
            "outcomes": list(COUNTED_OUTCOMES),
            "limit": limit,
        },
    ).one()
    if row.n < limit:
        return None
    return max(1, math.ceil(float(row.wait or 1)))


def check(actor: str, limit: int) -> None:
    """Raise RateLimited (429, with the seconds to wait) when `actor` is at the limit."""
    wait = retry_after(actor, limit)
    if wait is not None:
        raise RateLimited(
            f"Too many re-ingests: at most {limit} per minute per user "
            f"(REINGEST_USER_PER_MINUTE). Try again in {wait} s.",
            wait,
        )
