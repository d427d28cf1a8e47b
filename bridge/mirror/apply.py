"""Engine events -> the mirror tables, inside the transaction that stored them (bridge/mirror/intake.py).

Covered so far: process instances (start, end with its cause, suspend/activate, current activity) and
user tasks (create with the queue the deployed metadata names, assign/unassign, complete, cancel, priority,
due date and name changes, candidate changes), each task action with its task_history row.
Not yet: variables, case mapping, queue load; and events that arrive before the row they change (a lost
or late PROCESS_STARTED / TASK_CREATED) are left for the reconciler.

Ordering rules, from what the real engine sends (README, "The Flowable engine"):
  * within a batch, PROCESS_STARTED is applied first (start variables come before it); the rest keep the
    engine's order, so task_history reads as things happened;
  * a task assigned by the BPMN fires TASK_ASSIGNED before its TASK_CREATED, in the same batch: that
    TASK_ASSIGNED is skipped, since TASK_CREATED carries the assignee;
  * terminal states (process COMPLETED/TERMINATED/ERROR, task COMPLETED/CANCELLED) are never left, and a
    task change older than the newest event applied to that task changes nothing (the SQL guards).
"""

from __future__ import annotations

import logging
import re
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from bridge.bpmn_meta import upper_snake
from bridge.db.queries import queries

SQL = queries("apply")
log = logging.getLogger(__name__)

PROCESS_END_STATUS = {
    "PROCESS_COMPLETED": "COMPLETED",
    "PROCESS_COMPLETED_WITH_TERMINATE_END_EVENT": "COMPLETED",  # OneCMS ends closed/rejected/withdrawn so
    "PROCESS_COMPLETED_WITH_ESCALATION_END_EVENT": "COMPLETED",
    "PROCESS_COMPLETED_WITH_ERROR_END_EVENT": "ERROR",
    "PROCESS_CANCELLED": "TERMINATED",
}
DEFAULT_SLA_MINUTES = 480


async def apply_events(conn: AsyncConnection, events: list[dict[str, Any]]) -> None:
    ordered = sorted(events, key=lambda e: e["type"] != "PROCESS_STARTED")  # stable: the rest keep their order
    not_created_yet = {_task_id(e) for e in events if e["type"] == "TASK_CREATED"}
    for event in ordered:
        if event["type"] == "TASK_CREATED":
            not_created_yet.discard(_task_id(event))
        elif event["type"] == "TASK_ASSIGNED" and _task_id(event) in not_created_yet:
            continue
        handler = _HANDLERS.get((event["type"], event.get("entityType")))
        if handler is None:
            continue  # stored in the inbox; nothing in the mirror follows from it (yet)
        try:
            await handler(conn, event)
        except (KeyError, TypeError, AttributeError, ValueError) as err:
            # A payload without the fields its type promises: kept in the inbox, left to the reconciler.
            log.warning("event %s (%s) not applied, its payload lacks %r", event["eventId"], event["type"], err)
    if events:
        await conn.execute(SQL.mark_applied, {"event_ids": [e["eventId"] for e in events]})


# -- processes -------------------------------------------------------------------------------------------

async def _process_started(conn: AsyncConnection, event: dict) -> None:
    process = event["processInstance"]
    key, version = process.get("processDefinitionKey"), process.get("processDefinitionVersion")
    if not key or version is None:
        return
    definition = (await conn.execute(SQL.workflow_of_definition,
                                     {"process_key": key, "process_version": version})).first()
    if definition is None:
        await conn.execute(SQL.register_definition, {"process_key": key, "process_version": version,
                                                     "process_name": process.get("processDefinitionName") or key})
        definition = (await conn.execute(SQL.workflow_of_definition,
                                         {"process_key": key, "process_version": version})).one()
    business_key = process.get("businessKey")
    sla = (definition.sla_config or {}).get("processSlaMinutes")
    await conn.execute(SQL.insert_process_instance, {
        "process_instance_id": process["id"], "workflow_id": definition.workflow_id,
        "case_id": int(business_key) if business_key and business_key.isdigit() else None,
        "business_key": business_key, "super_process_id": process.get("superProcessInstanceId"),
        "started_by": process.get("startUserId") or "engine",
        "started_at": process.get("startTime") or event["timestamp"],
        "sla_minutes": sla, "process_definition_id": process.get("processDefinitionId"),
    })


async def _process_ended(conn: AsyncConnection, event: dict) -> None:
    process = event["processInstance"]
    await conn.execute(SQL.end_process_instance, {
        "process_instance_id": process["id"], "status": PROCESS_END_STATUS[event["type"]],
        "ended_at": process.get("endTime") or event["timestamp"], "cause": process.get("cause"),
    })


async def _process_suspension(conn: AsyncConnection, event: dict) -> None:
    await conn.execute(SQL.suspend_process_instance, {
        "process_instance_id": event["processInstance"]["id"], "suspended": event["type"] == "ENTITY_SUSPENDED",
        "at": event["timestamp"],
    })


async def _activity_started(conn: AsyncConnection, event: dict) -> None:
    activity = event["activity"]
    if activity.get("activityType") in ("userTask", "subProcess", "callActivity", "serviceTask", "receiveTask"):
        await conn.execute(SQL.current_activity, {"process_instance_id": activity["processInstanceId"],
                                                  "activity_id": activity["activityId"]})


# -- tasks -----------------------------------------------------------------------------------------------

async def _task_created(conn: AsyncConnection, event: dict) -> None:
    task = event["task"]
    groups = task.get("candidateGroups") or []
    placed = (await conn.execute(SQL.task_queue, {"process_instance_id": task["processInstanceId"],
                                                  "task_key": task["taskDefinitionKey"]})).first()
    if placed is not None:
        queue, sla_minutes = placed.queue_name, placed.sla_minutes
    else:  # not deployed through the bridge: the parser's documented default, created on first use
        literal = [g for g in groups if not re.search(r"[$#]\{", g)]
        queue = upper_snake(f"{_process_key(task)}_{literal[0] if literal else 'DIRECT'}")[:100]
        sla_minutes = DEFAULT_SLA_MINUTES
        await conn.execute(SQL.ensure_queue, {"queue_name": queue})
    created_at = task.get("createTime") or event["timestamp"]
    due_date = task.get("dueDate") or _plus_minutes(created_at, sla_minutes)
    inserted = (await conn.execute(SQL.insert_task, {
        "task_id": task["id"], "process_instance_id": task["processInstanceId"],
        "task_key": task["taskDefinitionKey"], "task_name": task.get("name") or task["taskDefinitionKey"],
        "queue_name": queue, "assignee": task.get("assignee"), "candidate_groups": groups,
        "candidate_users": task.get("candidateUsers") or [], "priority": task.get("priority") or 50,
        "form_key": task.get("formKey"), "created_at": created_at, "claimed_at": task.get("claimTime"),
        "due_date": due_date, "event_at": event["timestamp"],
    })).first()
    if inserted is not None:
        await _history(conn, event, task, "CREATE", "engine", None, inserted.status, None, task.get("assignee"))


async def _task_assigned(conn: AsyncConnection, event: dict) -> None:
    task = event["task"]
    changed = (await conn.execute(SQL.assign_task, {
        "task_id": task["id"], "assignee": task.get("assignee"), "claimed_at": task.get("claimTime"),
        "event_at": event["timestamp"],
    })).first()
    if changed is None:
        return
    action = "UNCLAIM" if task.get("assignee") is None else ("REASSIGN" if changed.old_assignee else "CLAIM")
    await _history(conn, event, task, action, task.get("assignee") or changed.old_assignee or "engine",
                   changed.old_status, changed.new_status, changed.old_assignee, task.get("assignee"))


async def _task_completed(conn: AsyncConnection, event: dict) -> None:
    await _finish(conn, event, "COMPLETED", "COMPLETE", reason=None)


async def _task_deleted(conn: AsyncConnection, event: dict) -> None:
    reason = event["task"].get("deleteReason")
    if reason is not None:  # without a reason this is the delete that follows every TASK_COMPLETED
        await _finish(conn, event, "CANCELLED", "CANCEL", reason=reason)


async def _finish(conn: AsyncConnection, event: dict, status: str, action: str, *, reason: str | None) -> None:
    task = event["task"]
    finished = (await conn.execute(SQL.finish_task, {
        "task_id": task["id"], "status": status, "ended_at": task.get("endTime") or event["timestamp"],
        "reason": reason, "event_at": event["timestamp"],
    })).first()
    if finished is not None:
        await _history(conn, event, task, action, finished.old_assignee or "engine", finished.old_status, status,
                       finished.old_assignee, finished.old_assignee, comments=reason)


async def _task_fields(conn: AsyncConnection, event: dict) -> None:
    task = event["task"]
    kind = event["type"]
    changed = (await conn.execute(SQL.update_task_fields, {
        "task_id": task["id"], "event_at": event["timestamp"],
        "priority": task.get("priority") if kind == "TASK_PRIORITY_CHANGED" else None,
        "change_due_date": kind == "TASK_DUEDATE_CHANGED", "due_date": task.get("dueDate"),
        "task_name": task.get("name") if kind == "TASK_NAME_CHANGED" else None,
    })).first()
    if changed is not None:
        await _history(conn, event, task, "UPDATE", "engine", changed.old_status, changed.old_status,
                       task.get("assignee"), task.get("assignee"), comments=kind)


async def _candidates(conn: AsyncConnection, event: dict) -> None:
    link = event["identityLink"]
    if link.get("type") != "candidate" or not link.get("taskId"):
        return
    await conn.execute(SQL.candidates_changed, {"task_id": link["taskId"], "added": event["type"] == "ENTITY_CREATED",
                                                "group_id": link.get("groupId"), "user_id": link.get("userId")})


async def _history(conn: AsyncConnection, event: dict, task: dict, action: str, by: str, old_status: str | None,
                   new_status: str | None, old_assignee: str | None, new_assignee: str | None, *,
                   comments: str | None = None) -> None:
    await conn.execute(SQL.history, {
        "task_id": task["id"], "process_instance_id": task["processInstanceId"], "action_type": action,
        "action_by": by, "action_at": event["timestamp"], "old_status": old_status, "new_status": new_status,
        "old_assignee": old_assignee, "new_assignee": new_assignee, "comments": comments,
        "event_id": event["eventId"],
    })


def _task_id(event: dict) -> str | None:
    task = event.get("task")
    return task.get("id") if isinstance(task, dict) else None


def _process_key(task: dict) -> str:
    return (task.get("processDefinitionId") or "UNKNOWN").split(":")[0]


def _plus_minutes(iso: str, minutes: int) -> str:
    return (datetime.fromisoformat(iso.replace("Z", "+00:00")) + timedelta(minutes=minutes)).isoformat()


_HANDLERS = {
    ("PROCESS_STARTED", "processInstance"): _process_started,
    **{(kind, "processInstance"): _process_ended for kind in PROCESS_END_STATUS},
    ("ENTITY_SUSPENDED", "processInstance"): _process_suspension,
    ("ENTITY_ACTIVATED", "processInstance"): _process_suspension,
    ("ACTIVITY_STARTED", "activity"): _activity_started,
    ("TASK_CREATED", "task"): _task_created,
    ("TASK_ASSIGNED", "task"): _task_assigned,
    ("TASK_COMPLETED", "task"): _task_completed,
    ("ENTITY_DELETED", "task"): _task_deleted,
    ("TASK_PRIORITY_CHANGED", "task"): _task_fields,
    ("TASK_DUEDATE_CHANGED", "task"): _task_fields,
    ("TASK_NAME_CHANGED", "task"): _task_fields,
    ("ENTITY_CREATED", "identityLink"): _candidates,
    ("ENTITY_DELETED", "identityLink"): _candidates,
}
