"""Flask-Admin views: groups (rule editor), users, audit log, quarantine, partitions."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, abort, current_app, flash, redirect, request, url_for
from flask_admin import Admin, AdminIndexView, BaseView, expose
from flask_admin.actions import action
from flask_admin.contrib.sqla import ModelView
from flask_admin.theme import Bootstrap4Theme
from flask_login import current_user
from flask_wtf import FlaskForm
from markupsafe import Markup, escape

from models import AuditLog, Group, QuarantinedReport, User

from ..auth.scope import current_scope
from ..errors import InvalidFilter
from ..extensions import db
from ..security import csp_nonce
from .fields import IdentifierRulesField, MessageTypesField
from .queries import known_message_types

logger = logging.getLogger(__name__)


def init_admin(app: Flask) -> Admin:
    """One Flask-Admin instance per app (tests build several apps)."""
    admin = Admin(
        app,
        name="PACER Dashboard admin",
        url="/admin",
        # The dashboard's header, stylesheet and theme around Flask-Admin's pages.
        theme=Bootstrap4Theme(base_template="admin/pacer_base.html"),
        index_view=SecureIndexView(url="/admin", template="admin/pacer_index.html"),
        csp_nonce_generator=csp_nonce,
    )
    admin.add_view(GroupView(Group, db.session, name="Groups", endpoint="groups"))
    admin.add_view(UserView(User, db.session, name="Users", endpoint="users"))
    admin.add_view(AuditLogView(AuditLog, db.session, name="Audit log", endpoint="audit"))
    admin.add_view(
        QuarantineView(QuarantinedReport, db.session, name="Quarantine", endpoint="quarantine")
    )
    admin.add_view(PartitionsView(name="Partitions", endpoint="partitions"))
    return admin


class AdminOnly:
    """Only members of ADMIN_GROUP (or everyone when auth is disabled) reach /admin."""

    @property
    def extra_js(self) -> list[str]:
        # What Flask-Admin's inline handlers did (the Content-Security-Policy blocks them):
        # confirmations, "With selected" actions (templates/admin/ carries the data attributes).
        return [url_for("static", filename="js/admin.js")]

    def is_accessible(self) -> bool:
        return current_scope().is_admin

    def inaccessible_callback(self, name: str, **kwargs: Any):
        settings = current_app.extensions["settings"]
        if not settings.DISABLED_AUTH and not current_user.is_authenticated:
            return redirect(url_for("auth.login", next=request.full_path))
        abort(403)


def _audit(action_name: str, target: str, outcome: str = "ok", **detail: Any) -> None:
    db.session.add(
        AuditLog(
            actor=current_scope().actor,
            action=action_name,
            target=target,
            outcome=outcome,
            detail=detail,
        )
    )


class SecureIndexView(AdminOnly, AdminIndexView):
    @expose("/")
    def index(self):
        return self.render(self._template)


#: Largest value of a PostgreSQL bigint: ids beyond it cannot exist (and would make the query fail).
_BIGINT_MAX = 2**63 - 1
_MAX_PAGE_SIZE = 500


class SafeArgs:
    """Query arguments of Flask-Admin's model views made safe for any input (never a 500)."""

    def get_one(self, id: Any):
        """The row of an integer id, or None ("record does not exist") for any other value."""
        text_id = str(id).strip()
        if not text_id.isdigit() or not 0 < int(text_id) <= _BIGINT_MAX:
            return None
        return super().get_one(text_id)

    def _get_list_extra_args(self):
        # Search and filter values go into SQL as given: PostgreSQL refuses a NUL character in
        # a string (a 500). Refuse them here, with the argument's name.
        for name, value in request.args.items(multi=True):
            if (name == "search" or name.startswith("flt")) and "\x00" in value:
                raise InvalidFilter(f"'{name}' contains a NUL character.", field=name)
        # Flask-Admin passes page and page size to OFFSET/LIMIT as given: a negative or huge value
        # is a database error (500). Clamp them to what a list can show.
        args = super()._get_list_extra_args()
        args.page = min(max(args.page or 0, 0), 10**6)
        args.page_size = min(max(args.page_size or 0, 0), _MAX_PAGE_SIZE)
        return args


class AdminForm(FlaskForm):
    """Flask-WTF's form (its csrf_token is the one CSRFProtect checks on every POST) that keeps
    the edited row as `_obj`, like Flask-Admin's own BaseForm: its Unique validator compares
    against it, so saving a row under its unchanged name is not "Already exists"."""

    def __init__(self, *args: Any, obj: Any = None, **kwargs: Any) -> None:
        self._obj = obj
        super().__init__(*args, obj=obj, **kwargs)


class SecureModelView(AdminOnly, SafeArgs, ModelView):
    form_base_class = AdminForm
    page_size = 50
    can_set_page_size = True

    def after_model_change(self, form, model, is_created):
        _audit(
            f"admin-{'create' if is_created else 'edit'}-{self.endpoint}",
            f"{self.endpoint} {model}",
            changes={
                name: _plain(field.data)
                for name, field in form._fields.items()
                if name != "csrf_token"
            },
        )
        db.session.commit()

    def after_model_delete(self, model):
        _audit(f"admin-delete-{self.endpoint}", f"{self.endpoint} {model}")
        db.session.commit()


def _plain(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


def _rules_formatter(view, context, model, name):
    rules = getattr(model, name) or {}
    if not rules:
        return Markup("<em>any</em>")
    return Markup("<br>").join(
        escape(f"{key} ∈ {{{', '.join(map(str, values))}}}") for key, values in rules.items()
    )


def _types_formatter(view, context, model, name):
    values = getattr(model, name) or []
    return ", ".join(values) if values else Markup("<em>all</em>")


class GroupView(SecureModelView):
    column_list = (
        "name",
        "message_types",
        "identifier_rules",
        "can_acknowledge",
        "can_reingest",
        "reingest_message_types",
        "synced_from_sso",
    )
    column_labels = {
        "message_types": "Message types",
        "identifier_rules": "Identifier rules",
        "synced_from_sso": "Members from SSO claim",
        "reingest_message_types": "Re-ingest limited to",
    }
    column_formatters = {
        "identifier_rules": _rules_formatter,
        "message_types": _types_formatter,
        "reingest_message_types": _types_formatter,
    }
    column_searchable_list = ("name",)
    form_columns = (
        "name",
        "description",
        "message_types",
        "identifier_rules",
        "can_acknowledge",
        "can_reingest",
        "reingest_message_types",
        "synced_from_sso",
        "users",
    )
    form_overrides = {
        "message_types": MessageTypesField,
        "reingest_message_types": MessageTypesField,
        "identifier_rules": IdentifierRulesField,
    }
    form_args = {
        "message_types": {
            "label": "Message types (none selected = all types)",
        },
        "identifier_rules": {
            "label": "Identifier rules",
            "description": (
                "One rule per line, `identifier: value, value` — e.g. `instrument: BL06, BL13`. "
                "Every rule must match (case-insensitive); a message without that identifier "
                "does not match. Empty = no identifier restriction."
            ),
        },
        "reingest_message_types": {
            "label": "Re-ingest limited to (none = every type in the scope)",
        },
        "synced_from_sso": {
            "description": "Membership follows the SSO groups claim at each login.",
        },
    }

    def _with_type_choices(self, form, obj=None):
        known = set(known_message_types())
        for name in ("message_types", "reingest_message_types"):
            # Types the stored group already holds stay selectable (never what was just posted).
            stored = set(getattr(obj, name, None) or [])
            getattr(form, name).choices = [(t, t) for t in sorted(known | stored)]
        return form

    def create_form(self, obj=None):
        return self._with_type_choices(super().create_form(obj))

    def edit_form(self, obj=None):
        return self._with_type_choices(super().edit_form(obj), obj)


class UserView(SecureModelView):
    can_create = False
    column_list = ("email", "name", "sub", "groups", "active", "last_login_at", "created_at")
    column_searchable_list = ("email", "name", "sub")
    column_default_sort = ("last_login_at", True)
    form_columns = ("email", "name", "active", "groups")


class AuditLogView(AdminOnly, SafeArgs, ModelView):
    can_create = False
    can_edit = False
    can_delete = False
    can_view_details = True
    column_default_sort = ("at", True)
    column_list = ("at", "actor", "action", "target", "outcome", "message_ids", "detail")
    column_filters = ("actor", "action", "outcome", "at")
    column_searchable_list = ("actor", "action", "target")
    page_size = 50


def _body_preview(view, context, model, name):
    text = bytes(model.body or b"")[:200].decode("utf-8", errors="replace")
    return text + ("…" if len(model.body or b"") > 200 else "")


class QuarantineView(AdminOnly, SafeArgs, ModelView):
    form_base_class = AdminForm
    can_create = False
    can_edit = False
    can_delete = False
    can_view_details = True
    column_default_sort = ("received_at", True)
    column_list = ("id", "received_at", "reason", "routing_key", "body", "replayed_at")
    column_details_list = (
        "id",
        "received_at",
        "reason",
        "content_type",
        "routing_key",
        "headers",
        "body",
        "replayed_at",
        "replayed_message_id",
    )
    column_formatters = {"body": _body_preview}
    column_formatters_detail = {
        "body": lambda v, c, m, n: bytes(m.body or b"").decode("utf-8", errors="replace")
    }
    column_filters = ("reason", "received_at", "replayed_at")

    @action(
        "replay",
        "Replay",
        "Ingest the selected bodies again through the current parser?",
    )
    def action_replay(self, ids):
        from ..ingest.services import replay_quarantined

        wanted = [int(i) for i in ids if str(i).isdigit() and 0 < int(i) <= _BIGINT_MAX]
        result = replay_quarantined(current_app.extensions["settings"], wanted)
        outcome = "ok" if not result.still_invalid else ("partial" if result.ingested else "error")
        _audit(
            "quarantine-replay",
            f"quarantine ids {', '.join(map(str, wanted))}",
            outcome,
            ingested=result.ingested,
            duplicates=result.duplicates,
            still_invalid=result.still_invalid,
        )
        db.session.commit()
        flash(
            f"Replayed: {result.ingested} ingested, {result.duplicates} already stored, "
            f"{result.still_invalid} still invalid.",
            "success" if outcome == "ok" else "warning",
        )


class PartitionsView(AdminOnly, BaseView):
    @expose("/")
    def index(self):
        from ..partitions.services import list_partitions

        with db.engine.connect() as conn:
            parts = list_partitions(conn)
        return self.render("admin/partitions.html", partitions=parts)
