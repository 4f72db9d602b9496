"""The permission scope of the current user, applied in the query layer (DESIGN §7).

INTERFACE (used by every page, fragment, API, export, stat, action and WebSocket push):

    scope = current_scope()                  # for the current request / socket user
    stmt = scope.apply(select(...), Message)  # adds the WHERE clause of the user's scope
    scope.details                            # may see payload, identifiers, error text
    scope.see_all                            # admin or auth disabled: no row restriction
    scope.can_acknowledge / can_reingest(message_type)

This first version only knows DISABLED_AUTH (everyone sees everything) and "nobody logged in"
(metadata only); the authentication work fills in groups, rules and admins behind the same API.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from flask import current_app


@dataclass(frozen=True)
class Rule:
    """One group's scope: message types (empty = all) AND identifier rules {key: {values}}."""

    message_types: frozenset[str] = frozenset()
    identifiers: tuple[tuple[str, frozenset[str]], ...] = ()


@dataclass(frozen=True)
class Scope:
    see_all: bool = False
    details: bool = False
    rules: tuple[Rule, ...] = field(default_factory=tuple)
    acknowledge: bool = False
    reingest: bool = False
    is_admin: bool = False

    def apply(self, stmt, model):
        """`stmt` restricted to the rows this scope may see."""
        return stmt

    def can_acknowledge(self) -> bool:
        return self.acknowledge or self.see_all

    def can_reingest(self, message_type: str | None = None) -> bool:
        return self.reingest or self.see_all


def current_scope() -> Scope:
    settings = current_app.extensions["settings"]
    if settings.DISABLED_AUTH:
        return Scope(see_all=True, details=True, acknowledge=True, reingest=True, is_admin=True)
    return Scope()
