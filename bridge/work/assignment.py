"""Auto-assignment: open tasks of queues whose assignments say auto_assign get an assignee, in the engine
and the mirror, by the queue's assignment_strategy:

  ROUND_ROBIN   the eligible users in user-id order, each round going on after the one served last in the
                queue (workflow_queues.metadata.lastAutoAssigned);
  LEAST_LOADED  the eligible user holding the fewest of the queue's tasks (ties: user id).

Eligible: holds a valid grant of a role whose assignment to the queue auto-assigns, and holds fewer of
the queue's tasks than max_tasks_per_user (the most generous of their roles'). A queue whose load is over
max_capacity assigns nothing; its new tasks go to routing_rules.overflowQueue when one is configured.
A task nobody may take yet stays OPEN for claim-next and the next round. One bridge assigns at a time.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncEngine

from bridge.db.queries import queries
from bridge.flowable.client import EngineUnavailable, FlowableClient, FlowableError
from bridge.mirror.reconcile import resync_instances
from bridge.work.actions import event_time_now

SQL = queries("work")
log = logging.getLogger(__name__)
SYSTEM = "SYSTEM"


@dataclass
class AssignmentRound:
    skipped: bool = False
    assigned: dict[str, str] = field(default_factory=dict)  # task id -> user
    overflowed: dict[str, str] = field(default_factory=dict)  # task id -> overflow queue
    waiting: int = 0  # tasks nobody eligible could take now


def choose(strategy: str, users: list[dict], last: str | None) -> str:
    if strategy == "LEAST_LOADED":
        return min(users, key=lambda u: (u["held"], u["user_id"]))["user_id"]
    after = [u["user_id"] for u in users if last is None or u["user_id"] > last]
    return after[0] if after else users[0]["user_id"]


async def auto_assign_once(db: AsyncEngine, flowable: FlowableClient, *, limit: int = 100) -> AssignmentRound:
    result = AssignmentRound()
    stale: list[str] = []
    async with db.connect() as conn:
        async with conn.begin():
            if not (await conn.execute(SQL.try_lock_assignment)).scalar():
                return AssignmentRound(skipped=True)
            tasks = [dict(r._mapping) for r in await conn.execute(SQL.tasks_to_auto_assign, {"limit": limit})]
            last: dict[str, str | None] = {}
            for task in tasks:
                queue = task["queue_name"]
                last.setdefault(queue, task["last_assigned"])
                if task["current_load"] > task["max_capacity"]:
                    if task["overflow_queue"] and task["overflow_queue"] != queue:
                        await conn.execute(SQL.move_to_queue, {"task_id": task["task_id"],
                                                               "queue": task["overflow_queue"]})
                        await _history(conn, task, "UPDATE", None, f"queue over capacity: moved to {task['overflow_queue']}")
                        result.overflowed[task["task_id"]] = task["overflow_queue"]
                    continue
                users = [dict(r._mapping) for r in await conn.execute(SQL.assignable_users, {"queue": queue})]
                if not users:
                    result.waiting += 1
                    continue
                user = choose(task["strategy"], users, last[queue])
                try:
                    await flowable.claim_task(task["task_id"], user)
                except FlowableError as err:
                    if err.status in (404, 409):
                        stale.append(task["process_instance_id"])
                        continue
                    log.warning("auto-assignment of %s refused by the engine: %s", task["task_id"], err)
                    continue
                except EngineUnavailable as err:
                    log.warning("auto-assignment stopped, the engine is unavailable: %s", err)
                    break
                await conn.execute(SQL.set_task, {"task_id": task["task_id"], "status": "CLAIMED", "assignee": user,
                                                  "claimed": True, "user_id": SYSTEM, "outcome": None,
                                                  "event_at": event_time_now()})
                await _history(conn, task, "CLAIM", user, f"auto-assigned ({task['strategy']})")
                await conn.execute(SQL.remember_auto_assigned, {"queue": queue, "user_id": user})
                last[queue] = user
                result.assigned[task["task_id"]] = user
    if stale:
        await resync_instances(db, flowable, sorted(set(stale)))
    if result.assigned or result.overflowed:
        log.info("auto-assigned %d task(s), %d moved to overflow queues", len(result.assigned), len(result.overflowed))
    return result


async def _history(conn, task: dict, action: str, assignee: str | None, comments: str) -> None:
    await conn.execute(SQL.add_history, {
        "task_id": task["task_id"], "process_instance_id": task["process_instance_id"], "action": action,
        "user_id": SYSTEM, "old_status": "OPEN", "new_status": "CLAIMED" if assignee else "OPEN",
        "old_assignee": None, "new_assignee": assignee, "delegate_to": None, "comments": comments,
        "client_info": json.dumps({"job": "auto-assignment"})})
