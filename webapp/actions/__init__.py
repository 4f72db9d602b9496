"""actions area: acknowledge / un-acknowledge and re-ingest (DESIGN §8), single and bulk.

The message page includes `templates/actions/_message_actions.html` with `message` in context;
that partial gets its state from the `message_actions(message)` template global.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import Blueprint

bp = Blueprint("actions", __name__)


@dataclass(frozen=True)
class MessageActions:
    can_acknowledge: bool
    can_reingest: bool
    acknowledged: bool
    #: Why the user, who may re-ingest this message, cannot here (its exchange is refused).
    reingest_refused: str | None
    history: list[Any]
    #: Who acknowledged it, when the user may see that (presenters.acknowledged_by), else None.
    acknowledged_by: str | None = None


def message_actions(message: Any) -> MessageActions:
    """What the current user may do with `message`, and its action history (audit log)."""
    from flask import current_app

    from ..auth.scope import current_scope
    from ..messages.presenters import acknowledged_by
    from . import targets
    from .queries import message_history

    scope = current_scope()
    # Re-ingesting shows and publishes the payload: only for a scope that may see it.
    may_reingest = bool(scope.can_see("payload") and scope.can_reingest(row=message))
    settings = current_app.extensions["settings"]
    refused = None
    if may_reingest and (message.exchange_name or not targets.allowed(settings)):
        # A report without exchange (legacy) is offered the allow-list on the re-ingest page.
        refused = targets.refusal(message.exchange_name, settings)
    return MessageActions(
        can_acknowledge=scope.can_acknowledge(message),
        can_reingest=may_reingest and not refused,
        reingest_refused=refused,
        acknowledged=getattr(message, "acknowledged_at", None) is not None,
        history=message_history(message.id) if scope.can_see("history") else [],
        acknowledged_by=acknowledged_by(message, scope),
    )


@bp.record_once
def _setup(state) -> None:
    from .queries import MAX_SELECTED_IDS

    state.app.add_template_global(message_actions, "message_actions")
    # The list's row selection: at most this many rows go to one bulk preview.
    state.app.add_template_global(MAX_SELECTED_IDS, "bulk_max_selected")


from . import routes  # noqa: E402,F401
