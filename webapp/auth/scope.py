"""The permission scope of a user, applied in the query layer (DESIGN §7).

INTERFACE (used by every page, fragment, API, export, stat, action and WebSocket push):

    scope = current_scope()                   # for the current request (computed once per request)
    stmt = scope.apply(select(...), Message)  # adds the WHERE clause of the user's scope
    scope.details                             # may see payload, identifiers, error text
    scope.can_see(field) / scope.visible(d)   # THE field rule of every page, API and socket
    scope.can_filter(argument)                # a filter argument usable by this scope
    scope.check_filters(filters)              # 403 for filters that would reveal hidden fields
    scope.see_all                             # admin or auth disabled: no row restriction
    scope.is_admin                            # reaches /admin
    scope.can_acknowledge() / can_reingest(message_type)
    scope.matches(row)                        # Python-side check of one message (or mapping)
    scope_for_user(user_id)                   # a fresh scope, e.g. for each WebSocket push

Rules:

- A group's scope is `message_types` (empty = all) AND every identifier rule `{key: [values]}`,
  compared case-insensitively; a message lacking the identifier does not match. A user's scope is
  the union of their groups' scopes.
- Anonymous and group-less users (auth enabled) see every row, but metadata only (`details` is
  False): METADATA_FIELDS and nothing else. Presenters (webapp/messages/presenters.py, given
  the Scope) pass what they show through `scope.visible()`; templates render what they get. A
  trace links messages only through fields the scope `can_see()` (the hash, never identifiers),
  and error groups without details are counts per message type and time.
- Every area that accepts filters calls `scope.check_filters(filters)`: a filter on a field the
  scope may not see (DETAIL_FILTERS: identifiers, error fingerprint, free text) is a 403, so a
  filter cannot be used to probe hidden values.
- Members of ADMIN_GROUP, and everyone when DISABLED_AUTH is true, see and may do everything.

The scope is computed from the database at each request (cached on that request object
only), so a permission change applies at the next request.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from flask import current_app, has_request_context, request
from sqlalchemy import and_, case, exists, false, func, or_, select, true
from werkzeug.exceptions import Forbidden

from models.identifiers import BY_NAME as _IDENTIFIERS
from models.identifiers import PROMOTED_IDENTIFIERS

#: Actor recorded in the audit log when nobody is logged in because auth is disabled.
AUTH_DISABLED_ACTOR = "anonymous (auth disabled)"


#: What a metadata-only user may see (DESIGN §7: type, status, times, routing, hash; never
#: payloads, identifiers or error texts). "Identifiers" are the object identifiers; a message's
#: own ids (id, report id) are how the list links to it. Error counts are metadata; anything read
#: from an error text is not: callback, exception class, normalised text, sample, fingerprint.
METADATA_FIELDS = frozenset(
    {
        # a message
        "id",
        "report_id",
        "received_at",
        "processing_start",
        "processing_end",
        "processing_ms",
        "message_type",
        "status",
        "errored",
        "acknowledged",
        "acknowledged_at",
        "exchange_name",
        "routing_key",
        "hash",
        "payload_format",
        "details",
        "links",
        # an error count (per message type and time)
        "message_types",
        "count",
        "total",
        "unacknowledged",
        "first_seen_at",
        "last_seen_at",
    }
)


#: Filter arguments that would reveal what only `details` shows (a metadata-only user could probe
#: identifier values or error texts with them): the promoted identifiers, the error fingerprint
#: and free text over identifiers and errors. Scope.check_filters refuses them.
DETAIL_FILTERS: tuple[str, ...] = (*PROMOTED_IDENTIFIERS, "fingerprint", "q")


def _lower_values(values: Iterable[Any]) -> frozenset[str]:
    return frozenset(str(v).strip().lower() for v in values if str(v).strip())


@dataclass(frozen=True)
class Rule:
    """One group's scope: message types (empty = all) AND identifier rules {key: {values}}.

    The group's action grants travel with its rule: an action is allowed on a message when a
    group that grants it also sees the message.
    """

    message_types: frozenset[str] = frozenset()
    identifiers: tuple[tuple[str, frozenset[str]], ...] = ()
    acknowledge: bool = False
    reingest: bool = False
    #: Types this group may re-ingest; empty = every type in its scope.
    reingest_types: frozenset[str] = frozenset()
    group: str = ""

    @classmethod
    def from_group(cls, group: Any) -> Rule:
        """The rule of a `models.Group` row."""
        identifiers = []
        for key, values in sorted((group.identifier_rules or {}).items()):
            if isinstance(values, str | int | float):
                values = [values]
            identifiers.append((str(key), _lower_values(values or [])))
        return cls(
            message_types=frozenset(group.message_types or ()),
            identifiers=tuple(identifiers),
            acknowledge=bool(group.can_acknowledge),
            reingest=bool(group.can_reingest),
            reingest_types=frozenset(group.reingest_message_types or ()),
            group=group.name,
        )

    # ---- SQL ------------------------------------------------------------------------------------
    def clause(self, model):
        """SQL condition selecting the rows of `model` this rule sees."""
        parts = []
        if self.message_types:
            if not hasattr(model, "message_type"):
                return false()
            parts.append(model.message_type.in_(sorted(self.message_types)))
        for key, values in self.identifiers:
            if not values:
                return false()
            parts.append(_identifier_clause(model, key, values))
        return and_(true(), *parts)

    # ---- Python ---------------------------------------------------------------------------------
    def matches(self, row: Any) -> bool:
        """True when this rule sees `row` (a Message, a Row or a mapping)."""
        if self.message_types and _get(row, "message_type") not in self.message_types:
            return False
        for key, values in self.identifiers:
            if not values or not (_identifier_values(row, key) & values):
                return False
        return True

    def allows_reingest_of(self, message_type: str | None) -> bool:
        return self.reingest and (not self.reingest_types or message_type in self.reingest_types)


def _identifier_clause(model, key: str, values: frozenset[str]):
    ordered = sorted(values)
    if key in _IDENTIFIERS and hasattr(model, key):
        column = getattr(model, key)
        if _IDENTIFIERS[key].lower_case:
            # Stored lower-cased (also in message_stats), so the plain index serves the filter.
            return column.in_(ordered)
        return func.lower(column).in_(ordered)
    if not hasattr(model, "object_identifiers"):
        # The table cannot tell (e.g. error groups have no identifiers): conservatively none.
        return false()
    value = model.object_identifiers[key]
    # An identifier may be a scalar or a list (user-sync `usernames`): match any element.
    elements = func.jsonb_array_elements_text(
        case(
            (func.jsonb_typeof(value) == "array", value),
            else_=func.jsonb_build_array(value),
        )
    ).table_valued("value")
    return exists(select(1).select_from(elements).where(func.lower(elements.c.value).in_(ordered)))


def _get(row: Any, key: str) -> Any:
    if isinstance(row, Mapping):
        return row.get(key)
    return getattr(row, key, None)


def _identifier_values(row: Any, key: str) -> frozenset[str]:
    found: list[Any] = []
    if key in PROMOTED_IDENTIFIERS:
        promoted = _get(row, key)
        if promoted is not None:
            found.append(promoted)
    identifiers = _get(row, "object_identifiers")
    if isinstance(identifiers, Mapping) and key in identifiers:
        raw = identifiers[key]
        found.extend(raw if isinstance(raw, list) else [raw])
    return _lower_values(v for v in found if v is not None and not isinstance(v, dict | list))


@dataclass(frozen=True)
class Scope:
    """What one user may see and do. Immutable; build it with `scope_for_user`."""

    see_all: bool = False
    details: bool = False
    rules: tuple[Rule, ...] = field(default_factory=tuple)
    acknowledge: bool = False
    reingest: bool = False
    is_admin: bool = False
    #: Logged-in user id (None = anonymous), and the name written to the audit log.
    user_id: int | None = None
    actor: str = "anonymous"
    #: Restricts rows (False for anonymous/group-less users: every row, metadata only).
    restricted: bool = False

    # ---- what of a row ----------------------------------------------------------------------------
    def can_see(self, field: str) -> bool:
        """The one field rule (DESIGN §7): metadata for everyone, the rest with details."""
        return self.details or field in METADATA_FIELDS

    def visible(self, fields: Mapping[str, Any]) -> dict[str, Any]:
        """`fields` (a row, a group, a stage as a dict) without what this scope may not see."""
        if self.details:
            return dict(fields)
        return {key: value for key, value in fields.items() if key in METADATA_FIELDS}

    def can_filter(self, argument: str) -> bool:
        """May use the filter `argument` (those of DETAIL_FILTERS only with details)."""
        return argument not in DETAIL_FILTERS or self.can_see(argument)

    def check_filters(self, filters: Any) -> None:
        """Forbidden (403) when `filters` (any area's filter: messages, stats, errors, stalled
        runs, bulk actions, sockets) uses an argument of DETAIL_FILTERS this scope may not see."""
        used = [
            name
            for name in DETAIL_FILTERS
            if getattr(filters, name, None) not in (None, "") and not self.can_filter(name)
        ]
        if used:
            raise Forbidden(
                f"Filtering by {', '.join(used)} needs a login with access to message details."
            )

    # ---- which rows -----------------------------------------------------------------------------
    def apply(self, stmt, model):
        """`stmt` restricted to the rows of `model` this scope may see."""
        if self.see_all or not self.restricted:
            return stmt
        return stmt.where(self.clause(model))

    def clause(self, model):
        """The WHERE condition of this scope for `model` (true() when unrestricted)."""
        if self.see_all or not self.restricted:
            return true()
        return or_(false(), *(rule.clause(model) for rule in self.rules))

    def matches(self, row: Any) -> bool:
        """True when this scope sees `row` (a Message, a Row or a mapping)."""
        if self.see_all or not self.restricted:
            return True
        return any(rule.matches(row) for rule in self.rules)

    # ---- actions --------------------------------------------------------------------------------
    def can_acknowledge(self, row: Any = None) -> bool:
        """May acknowledge at all (row None) or this message."""
        if self.see_all:
            return True
        rules = [r for r in self.rules if r.acknowledge]
        if row is None:
            return bool(rules)
        return any(r.matches(row) for r in rules)

    def can_reingest(self, message_type: str | None = None, row: Any = None) -> bool:
        """May re-ingest at all, messages of `message_type`, or this message (`row`)."""
        if self.see_all:
            return True
        if row is not None:
            message_type = _get(row, "message_type")
        rules = [r for r in self.rules if r.reingest]
        if message_type is not None:
            rules = [r for r in rules if r.allows_reingest_of(message_type)]
        if row is not None:
            rules = [r for r in rules if r.matches(row)]
        return bool(rules)

    def action_clause(self, model, action: str):
        """WHERE condition of the rows this scope may `acknowledge` or `reingest`."""
        if self.see_all:
            return true()
        conditions = []
        for rule in self.rules:
            if action == "acknowledge" and rule.acknowledge:
                conditions.append(rule.clause(model))
            elif action == "reingest" and rule.reingest:
                clause = rule.clause(model)
                if rule.reingest_types:
                    clause = and_(clause, model.message_type.in_(sorted(rule.reingest_types)))
                conditions.append(clause)
        return or_(false(), *conditions)


def admin_scope(actor: str = AUTH_DISABLED_ACTOR, user_id: int | None = None) -> Scope:
    return Scope(
        see_all=True,
        details=True,
        acknowledge=True,
        reingest=True,
        is_admin=True,
        user_id=user_id,
        actor=actor,
        restricted=True,
    )


ANONYMOUS = Scope()


def scope_for_user(user: Any, settings: Any = None) -> Scope:
    """A fresh scope for `user` (a `models.User`, a user id or None), read from the database."""
    settings = settings or current_app.extensions["settings"]
    if settings.DISABLED_AUTH:
        return admin_scope()
    if user is None:
        return ANONYMOUS
    if isinstance(user, int):
        from models import User

        from ..extensions import db

        user = db.session.get(User, user)
        if user is None:
            return ANONYMOUS
    if not user.active:
        return ANONYMOUS
    actor = user.email or user.sub
    groups = list(user.groups)
    if any(grp.name == settings.ADMIN_GROUP for grp in groups):
        return admin_scope(actor=actor, user_id=user.id)
    if not groups:
        # Logged in but in no group: like anonymous (metadata only), but known for the audit log.
        return Scope(user_id=user.id, actor=actor)
    rules = tuple(Rule.from_group(grp) for grp in groups)
    return Scope(
        details=True,
        rules=rules,
        acknowledge=any(r.acknowledge for r in rules),
        reingest=any(r.reingest for r in rules),
        user_id=user.id,
        actor=actor,
        restricted=True,
    )


def current_scope(fresh: bool = False) -> Scope:
    """Scope of the current request's user (computed once per request unless `fresh`).

    Long-lived requests (WebSocket) should pass `fresh=True` or call `scope_for_user` before each
    push so a permission change applies to an open socket as well.
    """
    settings = current_app.extensions["settings"]
    if settings.DISABLED_AUTH:
        return admin_scope()
    if not has_request_context():
        return ANONYMOUS
    # Cached on the request object, not on `g`: an app context can outlive one request (tests,
    # CLI), and a permission change must apply at the very next request.
    if not fresh:
        cached = getattr(request, "_pacer_scope", None)
        if cached is not None:
            return cached
    from flask_login import current_user

    user = current_user._get_current_object() if current_user.is_authenticated else None
    if fresh and user is not None:
        from ..extensions import db

        db.session.refresh(user)
    scope = scope_for_user(user, settings)
    request._pacer_scope = scope
    return scope
