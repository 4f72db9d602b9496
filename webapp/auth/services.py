"""Writes of the auth area: users from OIDC claims, SSO group sync, admin bootstrap.

Functions flush, never commit: the caller (view, CLI) commits once.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select

from models import AuditLog, Group, User

from ..errors import DomainError
from ..extensions import db

logger = logging.getLogger(__name__)

#: Placeholder subject of a user provisioned by email before their first login.
PENDING_SUB_PREFIX = "pending:"


def claim_value(claims: Mapping[str, Any], path: str) -> Any:
    """Value of a claim; a dotted path reaches nested claims (Keycloak: `realm_access.roles`)."""
    if path in claims:
        return claims[path]
    value: Any = claims
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def group_names_from_claim(value: Any) -> set[str]:
    """Group names from a claim value: a list, or a comma/space separated string."""
    if value is None:
        return set()
    if isinstance(value, str):
        items = value.replace(",", " ").split()
    elif isinstance(value, list | tuple | set):
        items = [str(v) for v in value if isinstance(v, str | int)]
    else:
        return set()
    # Path-style groups ("/facility/BL06") keep their name, the leading slash is noise.
    return {item.strip().lstrip("/") for item in items if item.strip().lstrip("/")}


def user_from_claims(claims: Mapping[str, Any], groups_claim: str = "") -> User:
    """Create (first login) or update the user of these OIDC claims; sync SSO groups if set."""
    sub = str(claims.get("sub") or "").strip()
    if not sub:
        raise DomainError("The login provider did not return a subject (sub) claim.", 502)
    email = claims.get("email")
    email = str(email).strip() if email else None
    name = claims.get("name") or claims.get("preferred_username")

    user = db.session.scalar(select(User).where(User.sub == sub))
    if user is None and email and claims.get("email_verified") is not False:
        # Provisioned by `flask users grant-admin <email>` before the first login.
        user = db.session.scalar(
            select(User).where(
                User.sub == PENDING_SUB_PREFIX + email.lower(),
            )
        )
        if user is not None:
            user.sub = sub
    if user is None:
        user = User(sub=sub)
        db.session.add(user)
        logger.info("first login of %s: user created", sub)
    user.email = email or user.email
    user.name = str(name) if name else user.name
    user.last_login_at = datetime.now(UTC)
    db.session.flush()
    if groups_claim:
        sync_sso_groups(user, group_names_from_claim(claim_value(claims, groups_claim)))
    return user


def sync_sso_groups(user: User, names: set[str]) -> None:
    """Membership of SSO-managed groups (`synced_from_sso`) follows the claim exactly.

    Groups are never created from a claim: a new group with no rules would see everything, so an
    administrator creates the group (with its scope) and marks it as synced first. Groups not
    marked as synced are managed by hand and left alone.
    """
    wanted = {name.lower() for name in names}
    synced = db.session.scalars(select(Group).where(Group.synced_from_sso.is_(True))).all()
    for group in synced:
        member = user in group.users
        if group.name.lower() in wanted and not member:
            group.users.append(user)
        elif group.name.lower() not in wanted and member:
            group.users.remove(user)
    unknown = wanted - {g.name.lower() for g in synced}
    if unknown:
        logger.info(
            "SSO groups of %s without a synced dashboard group: %s",
            user.sub,
            ", ".join(sorted(unknown)),
        )
    db.session.flush()


def find_user(identifier: str) -> User | None:
    """The user with this subject or (case-insensitively) this email."""
    identifier = identifier.strip()
    user = db.session.scalar(select(User).where(User.sub == identifier))
    if user is None:
        user = db.session.scalar(
            select(User)
            .where(func.lower(User.email) == identifier.lower())
            .order_by(User.id)
            .limit(1)
        )
    return user


def grant_admin(identifier: str, admin_group: str, actor: str = "cli") -> tuple[User, bool]:
    """Put the user (by sub or email) in the admin group; returns (user, created_user).

    An email that never logged in is provisioned: the first login with that (verified) email
    takes the account over.
    """
    created = False
    user = find_user(identifier)
    if user is None:
        if "@" not in identifier:
            raise DomainError(
                f"no user with subject or email {identifier!r}: the person must log in once, "
                "or pass their email address"
            )
        user = User(sub=PENDING_SUB_PREFIX + identifier.strip().lower(), email=identifier.strip())
        db.session.add(user)
        created = True
    group = db.session.scalar(select(Group).where(Group.name == admin_group))
    if group is None:
        group = Group(name=admin_group, description="Sees and does everything; reaches /admin")
        db.session.add(group)
    if user not in group.users:
        group.users.append(user)
    db.session.flush()
    db.session.add(
        AuditLog(
            actor=actor,
            action="grant-admin",
            target=f"user {user.email or user.sub} -> group {admin_group}",
            outcome="ok",
            detail={"user_id": user.id, "provisioned": created},
        )
    )
    db.session.flush()
    return user, created
