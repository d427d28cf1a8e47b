"""SLA escalation: overdue tasks escalate one level (escalate_overdue_tasks, migration 0006), then each
queue's escalation_config is carried out, in the engine too where the engine has the field.

escalation_config (workflow_queues), every key optional:
  raise_priority_by  whole number: the task's priority goes up by it (at most 100), in the engine and mirror;
  move_to_queue      a queue name: the task moves to that queue in the mirror (queues are the bridge's);
  notify_role        a role code: that role becomes a candidate group of the task in the engine (and so in
                     the mirror), e.g. the department's supervisors, who can then see and take it.
Other keys are reported in the history row and otherwise ignored. Only one bridge runs a round at a time
(advisory lock); a round that cannot reach the engine leaves the escalation recorded and says so.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncEngine

from bridge.db.queries import queries
from bridge.flowable.client import EngineUnavailable, FlowableClient, FlowableError
from bridge.work.actions import event_time_now

SQL = queries("work")
log = logging.getLogger(__name__)
KNOWN_KEYS = {"raise_priority_by", "move_to_queue", "notify_role"}


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


async def escalate_once(db: AsyncEngine, flowable: FlowableClient) -> EscalationRound:
    result = EscalationRound()
    async with db.connect() as lock:
        if not (await lock.execute(SQL.try_lock_escalation)).scalar():
            await lock.commit()
            return EscalationRound(skipped=True)
        await lock.commit()
        try:
            async with db.begin() as conn:
                result.escalated = [dict(r._mapping) for r in await conn.execute(SQL.escalate_overdue)]
            for task in result.escalated:
                await _carry_out(db, flowable, task, result)
        finally:
            await lock.execute(SQL.unlock_escalation)
            await lock.commit()
    if result.escalated:
        log.info(result.summary())
    return result


async def _carry_out(db: AsyncEngine, flowable: FlowableClient, task: dict, result: EscalationRound) -> None:
    config = task["escalation_config"] or {}
    unknown = sorted(set(config) - KNOWN_KEYS)
    if unknown:
        log.warning("queue %s: escalation_config keys %s are not known, ignored", task["queue_name"], unknown)
    raise_by = config.get("raise_priority_by")
    if isinstance(raise_by, int) and raise_by > 0:
        priority = min(task["priority"] + raise_by, 100)
        try:
            await flowable.update_task(task["task_id"], priority=priority)
        except (EngineUnavailable, FlowableError) as err:
            result.engine_failures.append(task["task_id"])
            log.warning("escalation of %s: priority not raised in the engine: %s", task["task_id"], err)
        else:
            async with db.begin() as conn:
                await conn.execute(SQL.set_priority, {"task_id": task["task_id"], "priority": priority,
                                                      "event_at": event_time_now()})
            task["priority"] = priority
    role = config.get("notify_role")
    if isinstance(role, str) and role:
        try:
            await flowable.request("POST", f"runtime/tasks/{task['task_id']}/identitylinks",
                                   json_body={"group": role, "type": "candidate"})
        except (EngineUnavailable, FlowableError) as err:
            if not (isinstance(err, FlowableError) and err.status == 409):  # 409: already a candidate
                result.engine_failures.append(task["task_id"])
                log.warning("escalation of %s: %s not made a candidate: %s", task["task_id"], role, err)
        else:
            async with db.begin() as conn:
                await conn.execute(SQL.add_candidate_group, {"task_id": task["task_id"], "group": role,
                                                              "event_at": event_time_now()})
    target = config.get("move_to_queue")
    if isinstance(target, str) and target:
        async with db.begin() as conn:
            await conn.execute(SQL.move_to_queue, {"task_id": task["task_id"], "queue": target})
