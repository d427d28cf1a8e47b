"""Auto-assignment: open tasks of queues whose assignments say auto_assign get an assignee, in the engine
and the mirror, by the queue's assignment_strategy:

  ROUND_ROBIN   the eligible users in user-id order, each round going on after the one served last in the
                queue (workflow_queues.metadata.lastAutoAssigned);
  LEAST_LOADED  the eligible user holding the fewest of the queue's tasks (ties: user id).

Eligible: holds a valid grant of a role whose assignment to the queue auto-assigns, and holds fewer of
the queue's tasks than max_tasks_per_user (the most generous of their roles'). A queue whose load is over
max_capacity assigns nothing; its new tasks go to routing_rules.overflowQueue when one is configured.
A task nobody may take yet stays OPEN for claim-next and the next round. One bridge assigns at a time.
Each assignment and overflow move is a bridge event through the mirror's apply path (actor SYSTEM); a task
a push is being applied to at that moment waits for the next round.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncEngine

from bridge.db.queries import queries
from bridge.flowable.client import EngineUnavailable, FlowableClient, FlowableError
from bridge.mirror import bridge_events
from bridge.mirror.apply import try_lock_entities
from bridge.mirror.reconcile import resync_instances

SQL = queries("work")
log = logging.getLogger(__name__)
SYSTEM = "SYSTEM"
JOB = {"job": "auto-assignment"}


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
                if not await try_lock_entities(conn, [task["task_id"], task["process_instance_id"]]):
                    continue  # a push for it is being applied (we hold its row: waiting could deadlock)
                if task["current_load"] > task["max_capacity"]:
                    overflow = task["overflow_queue"]
                    if (overflow and overflow != queue
                            and (await conn.execute(SQL.queue_exists, {"queue": overflow})).scalar()):
                        await bridge_events.record(conn, bridge_events.moved(
                            task["task_id"], task["process_instance_id"], queue=overflow, actor=SYSTEM, at=None,
                            reason=f"queue over capacity: moved to {overflow}", client_info=JOB))
                        result.overflowed[task["task_id"]] = overflow
                    continue
                users = [dict(r._mapping) for r in await conn.execute(SQL.assignable_users, {"queue": queue})]
                if not users:
                    result.waiting += 1
                    continue
                user = choose(task["strategy"], users, last[queue])
                try:
                    at = await flowable.claim_task(task["task_id"], user, acting_user=SYSTEM)
                except FlowableError as err:
                    if err.status in (404, 409):
                        stale.append(task["process_instance_id"])
                        continue
                    log.warning("auto-assignment of %s refused by the engine: %s", task["task_id"], err)
                    continue
                except EngineUnavailable as err:
                    log.warning("auto-assignment stopped, the engine is unavailable: %s", err)
                    break
                await bridge_events.record(conn, bridge_events.claimed(
                    task["task_id"], task["process_instance_id"], user=user, actor=SYSTEM, at=at, client_info=JOB,
                    comments=f"auto-assigned ({task['strategy']})"))
                await conn.execute(SQL.remember_auto_assigned, {"queue": queue, "user_id": user})
                last[queue] = user
                result.assigned[task["task_id"]] = user
    if stale:
        await resync_instances(db, flowable, sorted(set(stale)))
    if result.assigned or result.overflowed:
        log.info("auto-assigned %d task(s), %d moved to overflow queues", len(result.assigned), len(result.overflowed))
    return result
