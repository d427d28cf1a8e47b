"""Who is calling: opaque bearer tokens (stored as SHA-256) and role checks on current grants.

    token = await create_token(conn, "alice", label="laptop")    # shown once
    user_id = await user_of_token(conn, token)                     # None: unknown, revoked, expired, inactive
    await holds_role(conn, user_id, "WORKFLOW_DESIGNER")
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta, timezone

from sqlalchemy.ext.asyncio import AsyncConnection

from bridge.db.queries import queries

SQL = queries("auth")
TOKEN_PREFIX = "ocb_"  # recognisable in logs and secret scanners

DEPLOY_ROLE = "WORKFLOW_DESIGNER"
ENTITLEMENTS_ROLE = "ENTITLEMENTS_ADMIN"
QUEUE_ROLE = "QUEUE_ADMIN"  # changes queue settings through the API (migration 0021)
OPS_ROLE = "OPS_VIEWER"  # reports and the dashboard (migration 0018)


class UnknownUser(LookupError):
    """No such user in entitlements.users."""


class UnknownRole(LookupError):
    """No such role in entitlements.workflow_roles."""


def _hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


async def create_token(conn: AsyncConnection, user_id: str, *, label: str | None = None,
                       valid_for: timedelta | None = None) -> str:
    if not (await conn.execute(SQL.user_exists, {"user_id": user_id})).scalar():
        raise UnknownUser(f"no user {user_id!r}: add them first (bridge users add {user_id})")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    expires = datetime.now(timezone.utc) + valid_for if valid_for else None
    await conn.execute(SQL.insert_token, {"user_id": user_id, "token_hash": _hash(token), "label": label,
                                          "expires_at": expires})
    return token


async def user_of_token(conn: AsyncConnection, token: str) -> str | None:
    if not token.startswith(TOKEN_PREFIX):
        return None
    row = (await conn.execute(SQL.user_of_token, {"token_hash": _hash(token)})).first()
    return row.user_id if row else None


async def holds_role(conn: AsyncConnection, user_id: str, role_code: str) -> bool:
    return bool((await conn.execute(SQL.holds_role, {"user_id": user_id, "role_code": role_code})).scalar())


async def add_user(conn: AsyncConnection, user_id: str, *, roles: list[str], granted_by: str,
                   email: str | None = None, first_name: str | None = None, last_name: str | None = None) -> None:
    await conn.execute(SQL.upsert_user, {"user_id": user_id, "email": email, "first_name": first_name,
                                         "last_name": last_name})
    for role in roles:
        granted = (await conn.execute(SQL.grant_role, {"user_id": user_id, "role_code": role,
                                                       "assigned_by": granted_by})).first()
        if granted is None:
            raise UnknownRole(f"no role {role!r} (roles come from deployed BPMN, or are built in: {DEPLOY_ROLE})")
