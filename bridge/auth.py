"""Who is calling: opaque bearer tokens (stored as SHA-256) and role checks on current grants.

    token = await create_token(conn, "alice", label="laptop")    # shown once; expires in 90 days
    user_id = await user_of_token(conn, token)                     # None: unknown, revoked, expired, inactive
    await holds_role(conn, user_id, "WORKFLOW_DESIGNER")
    await list_tokens(conn, "alice")                               # what is known of each token, never the secret
    await revoke_token(conn, token_id=7)                           # refused by the API from the next request

A token lives DEFAULT_TOKEN_LIFETIME (90 days) unless told otherwise; valid_for=None is a token that never
expires, which the command line gives only for an explicit --no-expiry.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncConnection

from bridge.db.queries import queries
from bridge.errors import BridgeError

SQL = queries("auth")
TOKEN_PREFIX = "ocb_"  # recognisable in logs and secret scanners

DEPLOY_ROLE = "WORKFLOW_DESIGNER"
ENTITLEMENTS_ROLE = "ENTITLEMENTS_ADMIN"
QUEUE_ROLE = "QUEUE_ADMIN"  # changes queue settings through the API (migration 0021)
OPS_ROLE = "OPS_VIEWER"  # reports and the dashboard (migration 0018)

DEFAULT_TOKEN_DAYS = 90  # a token's lifetime unless its creator chooses another (or none, explicitly)
DEFAULT_TOKEN_LIFETIME = timedelta(days=DEFAULT_TOKEN_DAYS)
MAX_TOKEN_DAYS = 3650  # ten years; beyond that, say --no-expiry


class UnknownUser(BridgeError, LookupError):
    """No such user in entitlements.users."""


class UnknownRole(BridgeError, LookupError):
    """No such role in entitlements.workflow_roles."""


class UnknownToken(BridgeError, LookupError):
    """No token with that id (or label, of that user)."""


class AmbiguousToken(BridgeError, LookupError):
    """A label that more than one live token carries: name the token by its id."""


@dataclass(frozen=True)
class IssuedToken:
    token: str  # the secret: shown once, only its SHA-256 is stored
    token_id: int
    expires_at: datetime | None  # None: never expires


@dataclass(frozen=True)
class RevokedToken:
    token_id: int
    user_id: str
    label: str | None
    revoked_at: datetime
    already: bool  # it had been revoked before; nothing changed


def _hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


async def create_token(conn: AsyncConnection, user_id: str, *, label: str | None = None,
                       valid_for: timedelta | None = DEFAULT_TOKEN_LIFETIME) -> str:
    """A new token for user_id, valid for valid_for from now (None: it never expires; a zero or negative
    valid_for makes one already expired, which tests use)."""
    return (await issue_token(conn, user_id, label=label, valid_for=valid_for)).token


async def issue_token(conn: AsyncConnection, user_id: str, *, label: str | None = None,
                      valid_for: timedelta | None = DEFAULT_TOKEN_LIFETIME) -> IssuedToken:
    """create_token, also telling the new token's id and expiry."""
    if not (await conn.execute(SQL.user_exists, {"user_id": user_id})).scalar():
        raise UnknownUser(f"no user {user_id!r}: add them first (bridge users add {user_id})")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    # `is not None`, not truthiness: timedelta(0) is falsy, and once made a token that never expired
    expires = datetime.now(UTC) + valid_for if valid_for is not None else None
    token_id = (await conn.execute(SQL.insert_token, {"user_id": user_id, "token_hash": _hash(token),
                                                      "label": label, "expires_at": expires})).scalar_one()
    return IssuedToken(token, token_id, expires)


async def user_of_token(conn: AsyncConnection, token: str) -> str | None:
    if not token.startswith(TOKEN_PREFIX):
        return None
    row = (await conn.execute(SQL.user_of_token, {"token_hash": _hash(token)})).first()
    return row.user_id if row else None


async def list_tokens(conn: AsyncConnection, user_id: str | None = None) -> list[dict]:
    """Every token (of user_id, or of everyone), oldest first per user: token_id, user_id, label, created_at,
    expires_at, last_used_at (recorded at most once a minute), revoked_at and state (active, expired,
    revoked, user inactive). Never the secret, nor its hash."""
    if user_id is not None and not (await conn.execute(SQL.user_exists, {"user_id": user_id})).scalar():
        raise UnknownUser(f"no user {user_id!r}")
    return [dict(row._mapping) for row in await conn.execute(SQL.list_tokens, {"user_id": user_id})]


async def revoke_token(conn: AsyncConnection, *, token_id: int | None = None, label: str | None = None,
                       user_id: str | None = None) -> RevokedToken:
    """Revoke one token, named by its id or by its label (of user_id, when given). The API refuses it from
    the next request on (user_of_token reads revoked_at every time). Revoking a revoked token changes
    nothing and says so (already=True). UnknownToken when nothing matches; AmbiguousToken when a label
    names more than one live token."""
    if (token_id is None) == (label is None):
        raise ValueError("name the token by its id or by its label, not both or neither")
    found = (await conn.execute(SQL.tokens_to_revoke, {"token_id": token_id, "label": label,
                                                       "user_id": user_id})).all()
    if token_id is not None:
        named = f"token {token_id}" + (f" of {user_id!r}" if user_id is not None else "")
    else:
        named = f"token labelled {label!r}" + (f" of {user_id!r}" if user_id is not None else "")
    if not found:
        raise UnknownToken(f"no {named} (bridge token list shows them)")
    live = [row for row in found if row.revoked_at is None]
    if len(live) > 1:
        raise AmbiguousToken(f"{len(live)} live tokens are labelled {label!r}: "
                             + ", ".join(f"{row.token_id} ({row.user_id})" for row in live)
                             + "; revoke one by its id")
    if not live:  # every match was revoked before
        row = found[-1]
        return RevokedToken(row.token_id, row.user_id, row.label, row.revoked_at, already=True)
    row = live[0]
    revoked_at = (await conn.execute(SQL.revoke_token, {"token_id": row.token_id})).scalar_one()
    return RevokedToken(row.token_id, row.user_id, row.label, revoked_at, already=False)


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
