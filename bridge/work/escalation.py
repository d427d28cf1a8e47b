"""SLA escalation: a level with consequences, never a state that takes a task out of its queue.

A live task (OPEN, CLAIMED or DELEGATED) past its due date climbs one level per SLA interval of its queue:
level 1 once overdue, level 2 one `sla_minutes` later, and so on up to the queue's `max_level` (default 3).
Each level is one escalation, by the background job (`escalate_once`, `bridge escalate`) or by a user
(`POST /api/tasks/{id}/escalate`), carried out in the engine where the engine has the field and recorded
as a BRIDGE_ESCALATE event through the mirror's apply path (bridge/mirror/bridge_events.py). The task keeps
its state and assignee: an escalated OPEN task is offered first by claim-next and auto-assignment.

escalation_config (workflow_queues, the queue's `escalation` setting: bridge/queue_settings.py; from the BPMN's
<onecms:escalation>, `PUT /api/queues/{name}` or `bridge queues set`), every key optional:
  raise_priority_by  whole number: the task's priority goes up by it (at most 100), in the engine;
  move_to_queue      a queue name: the task moves to that queue (queues are the bridge's; the queue's roles
                     may then take it through claim-next);
  notify_role        a role code: that role becomes a candidate group of the task in the engine, e.g. the
                     department's supervisors, who can then see and take it;
  max_level          the top level (default 3).
Other keys (only SQL by hand can write them) are logged and ignored. Only one bridge runs a round at a
time (advisory lock); each task is escalated in its own transaction, under the locks pushes take, so a
round never escalates a task twice for one level and a push never lands in the middle.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bridge.db.queries import queries
from bridge.flowable.client import EngineUnavailable, FlowableClient, FlowableError
from bridge.mirror import bridge_events
from bridge.mirror.apply import lock_entities

SQL = queries("work")
log = logging.getLogger(__name__)
KNOWN_KEYS = {"raise_priority_by", "move_to_queue", "notify_role", "max_level"}
DEFAULT_MAX_LEVEL = 3
SYSTEM = "SYSTEM"


@dataclass
class EscalationRound:
    skipped: bool = False  # another bridge was escalating
    escalated: list[dict] = field(default_factory=list)
    engine_failures: list[str] = field(default_factory=list)

    def summary(self) -> str:
        if self.skipped:
            return "escalate: skipped, another bridge is escalating"
        return (f"escalate: {len(self.escalated)} overdue task(s) escalated"
                + (f", {len(self.engine_failures)} not carried out in the engine" if self.engine_failures else ""))


async def escalate_task(conn: AsyncConnection, flowable: FlowableClient, row: dict, *, actor: str, reason: str,
                        client_info: dict[str, Any]) -> dict | None:
    """Escalate a locked live task one level and carry out its queue's escalation_config; None when it is at
    the top level. Engine refusals and outages propagate (nothing is recorded then)."""
    queue = (await conn.execute(SQL.queue_escalation, {"queue": row["queue_name"]})).one()
    config = queue.escalation_config or {}
    unknown = sorted(set(config) - KNOWN_KEYS)
    if unknown:
        log.warning("queue %s: escalation_config keys %s are not known, ignored", row["queue_name"], unknown)
    max_level = config.get("max_level") if isinstance(config.get("max_level"), int) else DEFAULT_MAX_LEVEL
    level = row["escalation_level"] + 1
    if level > max_level:
        return None
    times: list[str | None] = []
    priority = None
    raise_by = config.get("raise_priority_by")
    if isinstance(raise_by, int) and not isinstance(raise_by, bool) and raise_by > 0:
        priority = min(row["priority"] + raise_by, 100)
        times.append(await flowable.set_task_priority(row["task_id"], priority, acting_user=actor))
    role = (config.get("notify_role") if isinstance(config.get("notify_role"), str) and config.get("notify_role")
            else None)
    if role and role not in (row.get("candidate_groups") or ()):  # the engine would add the link twice
        try:
            times.append(await flowable.add_candidate_group(row["task_id"], role, acting_user=actor))
        except FlowableError as err:
            if err.status != 409:  # 409: a candidate already
                raise
    target = config.get("move_to_queue")
    if isinstance(target, str) and target and target != row["queue_name"]:
        if not (await conn.execute(SQL.queue_exists, {"queue": target})).scalar():
            log.warning("queue %s: move_to_queue %s is not a queue, not moved", row["queue_name"], target)
            target = None
    else:
        target = None
    at = next((t for t in times if t), None)  # the first engine call's start: before all it fired
    await bridge_events.record(conn, bridge_events.escalated(
        row["task_id"], row["process_instance_id"], level=level, reason=reason, actor=actor, at=at,
        priority=priority, queue=target, candidate_group=role, client_info=client_info))
    return {"escalationLevel": level, "priority": priority, "queue": target or row["queue_name"], "notified": role}


async def escalate_once(db: AsyncEngine, flowable: FlowableClient, *, limit: int = 500) -> EscalationRound:
    result = EscalationRound()
    async with db.connect() as lock:
        if not (await lock.execute(SQL.try_lock_escalation)).scalar():
            await lock.commit()
            return EscalationRound(skipped=True)
        await lock.commit()
        try:
            async with db.connect() as conn:
                due = [dict(r._mapping)
                       for r in await conn.execute(SQL.escalation_due, {"task_id": None, "limit": limit})]
            for task in due:
                try:
                    escalated = await _escalate_if_still_due(db, flowable, task)
                except EngineUnavailable as err:
                    result.engine_failures.append(task["task_id"])
                    log.warning("escalation round stopped, the engine is unavailable: %s", err)
                    break
                except FlowableError as err:
                    result.engine_failures.append(task["task_id"])
                    log.warning("escalation of %s refused by the engine: %s", task["task_id"], err)
                    continue
                if escalated is not None:
                    result.escalated.append(escalated)
        finally:
            await lock.execute(SQL.unlock_escalation)
            await lock.commit()
    if result.escalated or result.engine_failures:
        log.info(result.summary())
    return result


async def _escalate_if_still_due(db: AsyncEngine, flowable: FlowableClient, task: dict) -> dict | None:
    async with db.connect() as conn:
        async with conn.begin():
            await lock_entities(conn, [task["task_id"], task["process_instance_id"]])
            locked = (await conn.execute(SQL.lock_task, {"task_id": task["task_id"]})).first()
            still = (await conn.execute(SQL.escalation_due, {"task_id": task["task_id"], "limit": 1})).first()
            if locked is None or still is None:
                return None  # completed, claimed away from the SLA or escalated meanwhile
            row = dict(locked._mapping)
            done = await escalate_task(conn, flowable, row, actor=SYSTEM,
                                       reason=f"SLA breach: due {row['due_date'].isoformat()}",
                                       client_info={"job": "escalation"})
            if done is None:
                return None
            return {"task_id": row["task_id"], "process_instance_id": row["process_instance_id"],
                    "queue_name": row["queue_name"], "status": row["status"], "assignee_id": row["assignee_id"],
                    "escalation_level": done["escalationLevel"], "priority": done["priority"] or row["priority"],
                    "moved_to": done["queue"] if done["queue"] != row["queue_name"] else None,
                    "notified": done["notified"]}
