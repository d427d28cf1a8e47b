"""Queue settings in the database: read a queue as it takes effect, change its settings, record each change.

A change names only the settings it changes (bridge/queue_settings.py declares them); `escalation` is
replaced whole. Everything is checked before anything is written: the values, that the queues and roles
named exist, and that a queue whose auto-assignment is set has roles to assign to. The change and its record
(flowable.queue_setting_changes: who, through what, only what changed, before and after) are one
transaction, under a lock on the queue's row, so two administrators changing one queue never interleave.

Changes come from `PUT /api/queues/{name}` (QUEUE_ADMIN), `bridge queues set`, and deploying a file that
declares the settings in <onecms:queue> (bridge/deploy.py).
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from bridge import queue_settings
from bridge.db.queries import queries
from bridge.errors import BridgeError

SQL = queries("queues")


class QueueSettingsError(BridgeError):
    """A change refused, nothing written: status 404 (no such queue) or 422 (the problems say why)."""

    def __init__(self, status: int, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.status, self.problems = status, problems


async def queue_names(conn: AsyncConnection) -> list[str]:
    return [r.queue_name for r in await conn.execute(SQL.queue_names)]


async def read_queue(conn: AsyncConnection, name: str, *, changes: int = 20) -> dict | None:
    """The queue, its settings as they take effect, its roles' assignments and its latest changes."""
    row = (await conn.execute(SQL.queue_settings, {"queue": name})).mappings().first()
    if row is None:
        return None
    recent = [{"at": c.changed_at.isoformat(), "by": c.changed_by, "source": c.source, "before": c.before,
               "after": c.after}
              for c in await conn.execute(SQL.recent_changes, {"queue": name, "limit": changes})]
    return {"name": row["queue_name"], "type": row["queue_type"], "department": row["department_code"],
            "active": row["is_active"], "settings": _settings(row), "roles": row["roles"], "changes": recent}


def _settings(row) -> dict[str, Any]:
    return {"slaMinutes": row["sla_minutes"], "maxCapacity": row["max_capacity"],
            "overflowQueue": row["overflow_queue"],
            "escalation": queue_settings.escalation_shown(row["escalation_config"]),
            "autoAssign": row["auto_assign"], "assignmentStrategy": row["assignment_strategy"],
            "maxTasksPerUser": row["max_tasks_per_user"]}


async def change_queue(conn: AsyncConnection, name: str, changes: Any, *, by: str, source: str) -> dict:
    """Apply `changes` to queue `name` and record them; the queue as it now is. Raises QueueSettingsError."""
    checked, problems = queue_settings.check(changes)
    if (await conn.execute(SQL.lock_queue, {"queue": name})).first() is None:
        raise QueueSettingsError(404, [f"no queue {name}"])
    row = (await conn.execute(SQL.queue_settings, {"queue": name})).mappings().one()
    before = _settings(row)
    problems += await _reference_problems(conn, name, checked, has_roles=bool(row["roles"]))
    if problems:
        raise QueueSettingsError(422, problems)
    after = {**before, **checked}
    if after == before:
        return await read_queue(conn, name)  # type: ignore[return-value]
    await conn.execute(SQL.set_queue_columns, {
        "queue": name, "sla_minutes": after["slaMinutes"], "max_capacity": after["maxCapacity"],
        "escalation": json.dumps(queue_settings.escalation_stored(after["escalation"])),
        "overflow_queue": after["overflowQueue"]})
    if any(before[k] != after[k] for k in queue_settings.ASSIGNMENT_SETTINGS):
        await conn.execute(SQL.set_queue_assignments, {
            "queue": name, "auto_assign": after["autoAssign"], "assignment_strategy": after["assignmentStrategy"],
            "max_tasks_per_user": after["maxTasksPerUser"]})
    changed = [k for k in after if after[k] != before[k]]
    await conn.execute(SQL.record_change, {
        "queue": name, "changed_by": by, "source": source,
        "before": json.dumps({k: before[k] for k in changed}), "after": json.dumps({k: after[k] for k in changed})})
    return await read_queue(conn, name)  # type: ignore[return-value]


async def _reference_problems(conn: AsyncConnection, name: str, checked: dict[str, Any], *,
                              has_roles: bool) -> list[str]:
    problems = []
    queues = [("overflowQueue", checked.get("overflowQueue")),
              ("escalation.moveToQueue", (checked.get("escalation") or {}).get("moveToQueue"))]
    for setting, other in queues:
        if other is None:
            continue
        if other == name:
            problems.append(f"{setting}: {other} is this queue")
        elif not (await conn.execute(SQL.queue_exists, {"queue": other})).scalar():
            problems.append(f"{setting}: no queue {other}")
    role = (checked.get("escalation") or {}).get("notifyRole")
    if role is not None and not (await conn.execute(SQL.role_exists, {"role": role})).scalar():
        problems.append(f"escalation.notifyRole: no active role {role}")
    if not has_roles and any(k in checked for k in queue_settings.ASSIGNMENT_SETTINGS):
        problems.append(f"{', '.join(k for k in queue_settings.ASSIGNMENT_SETTINGS if k in checked)}: queue {name} "
                        "has no roles assigned, so nobody to assign its tasks to (a role gets a queue through a "
                        "deployed task's candidate group)")
    return problems
