"""The bridge's own task actions as mirror events: the one way they reach workflow_tasks and task_history.

Every action the bridge does (claim, unclaim, complete, delegate, resolve, escalate, comment, auto-assign,
queue move, migration to another version) is, once the engine has accepted it, an event of the engine's
shape: `entityType` task (or processInstance, for a migration), a copy holding the fields the action set,
and `actor` / `clientInfo` for the history row. It is applied by bridge/mirror/apply.py in the caller's
transaction, under the same state machines (bridge/mirror/fold.py) as the engine's pushes, so the two
sources cannot drift apart.

`at` is the engine's clock at the start of the request that did the action (the engine's `X-Engine-Time`
header): earlier than every event that request fires, later than every event committed before it. The
action's own engine events, pushed later, are then newer and say the same, so ordering never depends on
the bridge's clock. Against an engine that does not send the header the bridge's clock stands in.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from bridge.flowable.client import engine_time
from bridge.mirror.apply import apply_events


def now_in_engine_form() -> str:
    return engine_time(datetime.now(UTC))


def task_event(kind: str, *, task_id: str, process_instance_id: str, actor: str, at: str | None,
               client_info: dict[str, Any] | None = None, task: dict[str, Any] | None = None,
               **fields: Any) -> dict[str, Any]:
    """One bridge action on a task, shaped like an engine task event (kind: a fold.BRIDGE_KINDS name)."""
    return {"eventId": f"bridge-{uuid.uuid4()}", "type": kind, "entityType": "task", "source": "bridge",
            "timestamp": at or now_in_engine_form(), "processInstanceId": process_instance_id,
            "task": {"id": task_id, "processInstanceId": process_instance_id, **(task or {})},
            "actor": actor, "clientInfo": client_info or {}, **fields}


def claimed(task_id: str, pid: str, *, user: str, actor: str, at: str | None, client_info=None,
            comments: str | None = None) -> dict[str, Any]:
    return task_event("BRIDGE_CLAIM", task_id=task_id, process_instance_id=pid, actor=actor, at=at,
                      client_info=client_info, task={"assignee": user, "delegationState": None}, comments=comments)


def unclaimed(task_id: str, pid: str, *, actor: str, at: str | None, client_info=None) -> dict[str, Any]:
    return task_event("BRIDGE_UNCLAIM", task_id=task_id, process_instance_id=pid, actor=actor, at=at,
                      client_info=client_info, task={"assignee": None, "delegationState": None})


def delegated(task_id: str, pid: str, *, to: str, actor: str, at: str | None, client_info=None) -> dict[str, Any]:
    return task_event("BRIDGE_DELEGATE", task_id=task_id, process_instance_id=pid, actor=actor, at=at,
                      client_info=client_info, task={"assignee": to, "owner": actor, "delegationState": "PENDING"})


def resolved(task_id: str, pid: str, *, owner: str | None, actor: str, at: str | None,
             client_info=None) -> dict[str, Any]:
    return task_event("BRIDGE_RESOLVE", task_id=task_id, process_instance_id=pid, actor=actor, at=at,
                      client_info=client_info, task={"assignee": owner, "delegationState": "RESOLVED"})


def completed(task_id: str, pid: str, *, actor: str, at: str | None, outcome: str | None,
              client_info=None) -> dict[str, Any]:
    return task_event("BRIDGE_COMPLETE", task_id=task_id, process_instance_id=pid, actor=actor, at=at,
                      client_info=client_info, outcome=outcome)


def commented(task_id: str, pid: str, *, message: str, actor: str, at: str | None, client_info=None) -> dict[str, Any]:
    return task_event("BRIDGE_COMMENT", task_id=task_id, process_instance_id=pid, actor=actor, at=at,
                      client_info=client_info, comments=message)


def escalated(task_id: str, pid: str, *, level: int, reason: str, actor: str, at: str | None,
              priority: int | None = None, queue: str | None = None, candidate_group: str | None = None,
              client_info=None) -> dict[str, Any]:
    """A level and the consequences the engine accepted (priority, candidate group) or the bridge owns (queue)."""
    return task_event("BRIDGE_ESCALATE", task_id=task_id, process_instance_id=pid, actor=actor, at=at,
                      client_info=client_info, task={} if priority is None else {"priority": priority},
                      escalation={"level": level, "reason": reason, "queue": queue, "candidateGroup": candidate_group})


def moved(task_id: str, pid: str, *, queue: str, reason: str, actor: str, at: str | None,
          client_info=None) -> dict[str, Any]:
    return task_event("BRIDGE_QUEUE_MOVE", task_id=task_id, process_instance_id=pid, actor=actor, at=at,
                      client_info=client_info, escalation={"queue": queue, "reason": reason})


def migrated_process(process: dict[str, Any], *, actor: str, at: str | None, client_info=None) -> dict[str, Any]:
    """An instance moved to another version (process: id, processDefinitionId, -Key, -Version, and the activity
    it now waits in as activityId); applied before its tasks' BRIDGE_MIGRATE, whose queues follow it."""
    return {"eventId": f"bridge-{uuid.uuid4()}", "type": "BRIDGE_MIGRATE", "entityType": "processInstance",
            "source": "bridge", "timestamp": at or now_in_engine_form(), "processInstance": process,
            "actor": actor, "clientInfo": client_info or {}}


def migrated_task(task: dict[str, Any], *, from_version: int, to_version: int, actor: str, at: str | None,
                  client_info=None) -> dict[str, Any]:
    """A live task moved with its instance: the engine's copy after the move (its new activity, name,
    assignee and candidate groups)."""
    return task_event("BRIDGE_MIGRATE", task_id=task["id"], process_instance_id=task["processInstanceId"],
                      actor=actor, at=at, client_info=client_info, task=task,
                      migration={"fromVersion": from_version, "toVersion": to_version})


def imported_process(process_instance_id: str, legacy: dict[str, Any], *, actor: str, at: str | None,
                     client_info=None) -> dict[str, Any]:
    """A case imported from a legacy system (legacy: legacyId, source, createdAt, dueDate): the instance keeps
    the legacy dates as its start and SLA due date."""
    return {"eventId": f"bridge-{uuid.uuid4()}", "type": "BRIDGE_IMPORT", "entityType": "processInstance",
            "source": "bridge", "timestamp": at or now_in_engine_form(),
            "processInstance": {"id": process_instance_id}, "legacy": legacy, "actor": actor,
            "clientInfo": client_info or {}}


async def record(conn: AsyncConnection, *events: dict[str, Any]) -> None:
    """Apply bridge actions to the mirror in the caller's transaction (the same path as engine pushes)."""
    await apply_events(conn, list(events))
