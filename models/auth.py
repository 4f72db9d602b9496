"""Users, groups (with their permission scope) and the audit log."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask_login import UserMixin
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    Table,
    Text,
    delete,
    event,
    func,
    inspect,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship

from .base import Base

user_groups = Table(
    "user_groups",
    Base.metadata,
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("group_id", Integer, ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True),
)


class User(UserMixin, Base):
    """A person who logged in through OIDC (created at first login)."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, Identity(), primary_key=True)
    #: OIDC subject; unique per provider.
    sub: Mapped[str] = mapped_column(Text, unique=True)
    email: Mapped[str | None] = mapped_column(Text, index=True)
    name: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    last_login_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    active: Mapped[bool] = mapped_column(Boolean, server_default="true")

    groups: Mapped[list[Group]] = relationship(secondary=user_groups, back_populates="users")

    @property
    def is_active(self) -> bool:  # Flask-Login: a deactivated user is logged out
        return bool(self.active)

    def __str__(self) -> str:
        return self.email or self.sub


class UserSession(Base):
    """One logged-in browser session; the signed cookie holds a token whose SHA-256 is `id`.

    A session is valid while its row exists (and the user is active): logout deletes its row,
    deactivating a user deletes all of theirs (webapp/auth/sessions.py).
    """

    __tablename__ = "user_sessions"

    #: hex SHA-256 of the session token (the token itself is only in the user's cookie).
    id: Mapped[str] = mapped_column(Text, primary_key=True)
    user_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), index=True
    )


class ApiToken(Base):
    """A personal API token: `Authorization: Bearer <token>` on /api/v1/* acts as `user`.

    Only the SHA-256 of the token is stored (the token is shown once, at creation). A token
    works while it is not revoked and its user is active (webapp/auth/tokens.py).
    """

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, Identity(), primary_key=True)
    user_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(Text)
    #: hex SHA-256 of the token.
    token_hash: Mapped[str] = mapped_column(Text, unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Group(Base):
    """A permission group: a scope (types AND identifier rules) and the actions it grants."""

    __tablename__ = "groups"

    id: Mapped[int] = mapped_column(Integer, Identity(), primary_key=True)
    name: Mapped[str] = mapped_column(Text, unique=True)
    description: Mapped[str | None] = mapped_column(Text)
    #: Message types this group sees; empty = all types.
    message_types: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default="{}")
    #: Identifier rules {identifier: [allowed values]}, compared case-insensitively; all must match.
    identifier_rules: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default="{}")
    can_acknowledge: Mapped[bool] = mapped_column(Boolean, server_default="false")
    can_reingest: Mapped[bool] = mapped_column(Boolean, server_default="false")
    #: Types this group may re-ingest; empty = every type in its scope.
    reingest_message_types: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default="{}")
    #: True when membership is managed by the SSO groups claim.
    synced_from_sso: Mapped[bool] = mapped_column(Boolean, server_default="false")

    users: Mapped[list[User]] = relationship(secondary=user_groups, back_populates="groups")

    def __str__(self) -> str:
        return self.name


class AuditLog(Base):
    """Every operator action (acknowledge, re-ingest, admin change, replay) with its outcome."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_message_ids", "message_ids", postgresql_using="gin"),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), index=True
    )
    #: Who: user email or sub, `system`, or `anonymous (auth disabled)`.
    actor: Mapped[str] = mapped_column(Text)
    action: Mapped[str] = mapped_column(Text, index=True)
    message_ids: Mapped[list[int]] = mapped_column(ARRAY(BigInteger), server_default="{}")
    #: Exchange/routing key, group name, filter... what the action was aimed at.
    target: Mapped[str | None] = mapped_column(Text)
    #: ok | error | partial | pending
    outcome: Mapped[str] = mapped_column(Text)
    detail: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default="{}")


@event.listens_for(Session, "before_flush")
def _end_sessions_of_deactivated_users(session, flush_context, instances) -> None:
    """Deactivating a user ends all of their sessions and revokes their API tokens, whoever or
    whatever deactivates them: a later reactivation revives neither old cookies nor old tokens."""
    for obj in list(session.dirty):
        if not isinstance(obj, User) or obj.active or obj.id is None:
            continue
        if inspect(obj).attrs.active.history.has_changes():
            session.execute(delete(UserSession).where(UserSession.user_id == obj.id))
            session.execute(
                update(ApiToken)
                .where(ApiToken.user_id == obj.id, ApiToken.revoked_at.is_(None))
                .values(revoked_at=func.now())
            )
