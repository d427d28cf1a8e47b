"""Reads on behalf of a user: run as bridge_reader with app.current_user_id set for the transaction, so
row-level security (migration 0007) decides what they see, not Python filters."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bridge.db.queries import queries
from bridge.errors import BridgeError

SQL = queries("work")
MAX_PAGE = 200


class BadCursor(BridgeError, ValueError):
    pass


@asynccontextmanager
async def as_user(db: AsyncEngine, user_id: str) -> AsyncIterator[AsyncConnection]:
    """A read-only transaction in which the user's row-level security applies."""
    async with db.connect() as conn:
        try:
            await conn.execute(SQL.act_as_user, {"user_id": user_id})  # SET LOCAL: ends with the transaction
            yield conn
        finally:
            await conn.rollback()


@dataclass(frozen=True)
class TaskFilter:
    queue: str | None = None
    status: str | None = None
    assignee: str | None = None
    due_before: datetime | None = None


def encode_cursor(row: dict[str, Any]) -> str:
    raw = json.dumps([row["priority"], row["created_at"].isoformat(), row["task_id"]])
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[int, str, str]:
    try:
        priority, created_at, task_id = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        datetime.fromisoformat(created_at)
        return int(priority), created_at, str(task_id)
    except (ValueError, TypeError) as err:
        raise BadCursor(f"cursor: not one this API gave out ({err})") from None


async def list_tasks(db: AsyncEngine, user_id: str, where: TaskFilter, *, limit: int = 50,
                     cursor: str | None = None) -> tuple[list[dict], str | None]:
    after = decode_cursor(cursor) if cursor else (None, None, None)
    async with as_user(db, user_id) as conn:
        rows = [dict(r._mapping) for r in await conn.execute(SQL.list_tasks, {
            "queue": where.queue, "status": where.status, "assignee": where.assignee,
            "due_before": where.due_before, "after_priority": after[0], "after_created": after[1],
            "after_task": after[2], "limit": limit + 1})]
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (encode_cursor(rows[-1]) if more and rows else None)


async def task_detail(db: AsyncEngine, user_id: str, task_id: str) -> dict | None:
    async with as_user(db, user_id) as conn:
        row = (await conn.execute(SQL.visible_task, {"task_id": task_id})).first()
        if row is not None:
            history = [dict(r._mapping) for r in await conn.execute(SQL.task_history, {"task_id": task_id})]
            return {**dict(row._mapping), "history": history, "archived": False}
        # archived work still answers (bridge/archive.py), saying so
        row = (await conn.execute(SQL.archived_task, {"task_id": task_id})).first()
        if row is None:
            return None
        history = [dict(r._mapping) for r in await conn.execute(SQL.archived_task_history, {"task_id": task_id})]
    async with db.connect() as conn:
        archived_at = (await conn.execute(SQL.archived_at, {"process_instance_id": row.process_instance_id})).scalar()
    return {**dict(row._mapping), "history": history, "archived": True, "archivedAt": archived_at}
