"""Retention policies: how long a completed instance stays in the mirror's hot tables, per process key.

    await retention.policies(conn, default_days=365)   # every key: days, where they come from, what is past
    await retention.set_policy(conn, "OneCMS_Nextgen_WF", 90, by="ops")   # None: back to the default

A key's days come from, in order: an operator's setting (`bridge retention set`), the BPMN's
<onecms:workflow retentionDays="..."> (applied when a version is recorded, bridge/deploy.py), or the
service's BRIDGE_RETENTION_DAYS. SQL in bridge/db/queries/retention.sql; the table is migration 0023's.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from bridge.bpmn.model import MAX_RETENTION_DAYS as MAX_DAYS
from bridge.db.queries import queries
from bridge.errors import BridgeError

SQL = queries("retention")


class RetentionError(BridgeError, ValueError):
    """A policy that cannot be set (unknown process key, days out of range)."""


async def policies(conn: AsyncConnection, *, default_days: int) -> list[dict[str, Any]]:
    rows = (await conn.execute(SQL.policies, {"default_days": default_days})).mappings()
    return [{"processKey": r["process_key"], "days": r["days"], "source": r["source"] or "default",
             "setBy": r["set_by"], "setAt": r["set_at"], "completed": r["completed"],
             "pastRetention": r["past_retention"]} for r in rows]


async def set_policy(conn: AsyncConnection, process_key: str, days: int | None, *, by: str,
                     source: str = "cli") -> None:
    """Set a key's retention (days), or with None return it to the default."""
    if not (await conn.execute(SQL.known_key, {"process_key": process_key})).scalar_one():
        raise RetentionError(f"no process {process_key!r} has been deployed")
    if days is None:
        await conn.execute(SQL.delete_policy, {"process_key": process_key})
        return
    if not 1 <= days <= MAX_DAYS:
        raise RetentionError(f"retention of {process_key}: 1 to {MAX_DAYS} days, not {days}")
    await conn.execute(SQL.upsert_policy, {"process_key": process_key, "retention_days": days, "source": source,
                                           "set_by": by})


async def record_from_bpmn(conn: AsyncConnection, process_key: str, days: int | None, *, by: str) -> None:
    """A new version of a process was recorded: its file's retentionDays applies, or its earlier declaration
    goes (an operator's setting then stands)."""
    if days is None:
        await conn.execute(SQL.delete_bpmn_policy, {"process_key": process_key})
    else:
        await conn.execute(SQL.upsert_policy, {"process_key": process_key, "retention_days": days,
                                               "source": "bpmn", "set_by": by})
