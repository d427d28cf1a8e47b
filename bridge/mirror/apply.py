"""Engine events -> the mirror tables, inside the transaction that stored them (bridge/mirror/intake.py).

Set-based: whatever the batch's size, a fixed handful of statements. The rows the batch touches are
locked and read, the events are folded into new states and history rows by the pure state machines of
bridge/mirror/fold.py, and the results are written back from JSON arrays.

Covered: process instances (start with the definition's SLA, end with its cause and status,
suspend/activate, current activity, a migration to another version, a legacy import's dates), user tasks
(created in the queue the deployed metadata names, assign/unassign, complete, cancel with the engine's
reason, priority/due date/name, candidates, moved to another version's activity and queue), each task
action with its task_history row, variables (process- and task-scope, typed, newest change wins; the
process-scope ones also as process_instances.variables), and the case mapping (a row per case id, its
current department and phase, routing_history appended per department move, closed with the instance).
Queue load follows the tasks by trigger (migrations 0011, 0013: changes logged, folded every second).
Events that arrive before the row they change (a lost or late PROCESS_STARTED / TASK_CREATED) change
nothing: the reconciler's part.

Ordering, from what the real engine sends (README, "The Flowable engine"): PROCESS_STARTED rows are written
first (start variables come before it); everything else is folded in the engine's order, so task_history
reads as things happened. A task assigned by the BPMN fires TASK_ASSIGNED before its TASK_CREATED: there is
no row to assign yet, and the creation carries the assignee.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncConnection

from bridge.bpmn.reader import default_queue_name
from bridge.db.queries import queries
from bridge.mirror.fold import BRIDGE_KINDS, PROCESS_END_STATUS, PROCESS_OPEN, TaskFold, TaskRow, created_row, fold_task

SQL = queries("apply")
log = logging.getLogger(__name__)

DEFAULT_SLA_MINUTES = 480
_TASK_EVENTS = {"TASK_ASSIGNED", "TASK_COMPLETED", "TASK_PRIORITY_CHANGED", "TASK_DUEDATE_CHANGED",
                "TASK_NAME_CHANGED", *BRIDGE_KINDS}


# The entity types whose event carries that entity as an object under the same key.
_PAYLOAD_OF = {"task", "processInstance", "identityLink", "activity", "variable"}


def _usable(events: list[dict]) -> list[dict]:
    """Events with the fields their kind needs; the others stay in the inbox for the reconciler."""
    usable = []
    for event in events:
        try:
            entity = event.get("entityType")
            if entity in _PAYLOAD_OF and not isinstance(event.get(entity), dict):
                raise TypeError(f"a {entity} object")
            if entity == "task":
                task = event["task"]
                task["id"], task["processInstanceId"]  # noqa: B018 - presence check
            elif entity == "processInstance":
                event["processInstance"]["id"]  # noqa: B018
                if event["type"] == "BRIDGE_MIGRATE":  # the version it moved to
                    event["processInstance"]["processDefinitionKey"]  # noqa: B018
                    int(event["processInstance"]["processDefinitionVersion"])
            elif entity == "identityLink":
                event["identityLink"]["type"]  # noqa: B018
            elif entity == "activity":
                event["activity"]["processInstanceId"]  # noqa: B018
            if not isinstance(event.get("timestamp"), str):
                raise KeyError("timestamp")
            usable.append(event)
        except (KeyError, TypeError, ValueError) as err:
            log.warning("event %s (%s) not applied, its payload lacks %s", event.get("eventId"), event.get("type"), err)
    return usable


async def apply_events(conn: AsyncConnection, events: list[dict[str, Any]]) -> None:
    if not events:
        return
    keys = _entity_keys(events)
    await conn.execute(SQL.lock_entities, {"ids": keys})
    archived = {r.id for r in await conn.execute(SQL.archived_keys, {"ids": keys})}
    if archived:
        log.info("%d event(s) for archived work not applied", sum(bool(set(_entity_keys([e])) & archived)
                                                                   for e in events))
        events = [e for e in events if not set(_entity_keys([e])) & archived]
    usable = _usable(await _with_waiting_events(conn, events))
    started = await _start_processes(conn, [e for e in usable if e["type"] == "PROCESS_STARTED"
                                            and e.get("entityType") == "processInstance"])
    with_variables = await _apply_variables(conn, usable)
    if started or with_variables:
        await conn.execute(SQL.open_case_mappings, {"ids": sorted(started | with_variables)})
    ended = await _update_processes(conn, usable)
    new_tasks = await _apply_tasks(conn, usable)
    await _route_cases(conn, new_tasks)
    if ended:
        await conn.execute(SQL.close_case_mappings, {"ids": sorted(ended)})


async def lock_entities(conn: AsyncConnection, ids: list[str]) -> None:
    """Take the locks apply_events takes for these instances and tasks (for the rest of the transaction),
    before reading the rows an action checks: so a push for them applies before or after, never between."""
    await conn.execute(SQL.lock_entities, {"ids": sorted(ids)})


async def try_lock_entities(conn: AsyncConnection, ids: list[str]) -> bool:
    return bool((await conn.execute(SQL.try_lock_entities, {"ids": sorted(ids)})).scalar())


async def fold_pending_counts(conn: AsyncConnection) -> None:
    """Queue load and hourly task figures catch up with the task writes logged since the last fold."""
    await conn.execute(SQL.fold_pending_counts)


def _entity_keys(events: list[dict]) -> list[str]:
    """The instances and tasks a batch touches (ids of both kinds: an identity link may lack its instance)."""
    keys = set()
    for event in events:
        for part in ("processInstance", "task", "identityLink", "activity", "variable"):
            value = event.get(part)
            if isinstance(value, dict):
                for name in ("id", "taskId", "processInstanceId"):
                    if isinstance(value.get(name), str) and not (part in ("activity", "variable") and name == "id"):
                        keys.add(value[name])
        if isinstance(event.get("processInstanceId"), str):
            keys.add(event["processInstanceId"])
    return sorted(keys)


async def _with_waiting_events(conn: AsyncConnection, events: list[dict]) -> list[dict]:
    """The batch, merged in engine order with the stored events that waited for a row this batch creates."""
    process_ids = [e["processInstance"]["id"] for e in events if e["type"] == "PROCESS_STARTED"
                   and isinstance(e.get("processInstance"), dict) and e["processInstance"].get("id")]
    tasks = [{"task_id": e["task"]["id"], "process_instance_id": e["task"].get("processInstanceId")}
             for e in events if e["type"] == "TASK_CREATED" and isinstance(e.get("task"), dict)
             and e["task"].get("id")]
    if not process_ids and not tasks:
        return events
    waiting = [r.payload for r in await conn.execute(SQL.waiting_events, {
        "process_ids": process_ids, "tasks": _json(tasks), "batch_ids": [e["eventId"] for e in events]})]
    if not waiting:
        return events
    log.info("%d event(s) that arrived before their process or task are applied now", len(waiting))
    # stable: the batch keeps its own order; timestamps are the engine's, milliseconds, as text
    return sorted(waiting + events, key=lambda e: e.get("timestamp") or "")


# -- processes ---------------------------------------------------------------------------------------------

async def _start_processes(conn: AsyncConnection, starts: list[dict]) -> set[str]:
    rows = []
    for event in starts:
        process = event["processInstance"]
        if not process.get("processDefinitionKey") or process.get("processDefinitionVersion") is None:
            continue
        business_key = process.get("businessKey")
        rows.append({
            "id": process["id"], "process_key": process["processDefinitionKey"],
            "process_version": process["processDefinitionVersion"],
            "process_name": process.get("processDefinitionName") or process["processDefinitionKey"],
            "case_id": int(business_key) if business_key and business_key.isascii() and business_key.isdigit()
            and len(business_key) <= 18 else None,
            "business_key": business_key, "super_process_id": process.get("superProcessInstanceId"),
            "started_by": process.get("startUserId") or "engine",
            "started_at": process.get("startTime") or event["timestamp"],
            "process_definition_id": process.get("processDefinitionId"),
        })
    if rows:
        await conn.execute(SQL.register_definitions, {"rows": _json(rows)})
        await conn.execute(SQL.insert_process_instances, {"rows": _json(rows)})
    return {r["id"] for r in rows}


async def _update_processes(conn: AsyncConnection, events: list[dict]) -> set[str]:
    """Ends, suspensions and the current activity; returns the instances that ended."""
    relevant = [e for e in events if (e["type"] in PROCESS_END_STATUS and e.get("entityType") == "processInstance")
                or (e["type"] in ("ENTITY_SUSPENDED", "ENTITY_ACTIVATED", "BRIDGE_MIGRATE", "BRIDGE_IMPORT")
                    and e.get("entityType") == "processInstance")
                or (e["type"] == "ACTIVITY_STARTED" and e.get("entityType") == "activity")]
    if not relevant:
        return set()
    ids = sorted({e["activity"]["processInstanceId"] if e.get("entityType") == "activity"
                  else e["processInstance"]["id"] for e in relevant})
    current = {r.process_instance_id: dict(r._mapping) for r in await conn.execute(SQL.lock_processes, {"ids": ids})}
    changed: dict[str, dict] = {}
    migrating: list[dict] = []
    for event in relevant:
        if event.get("entityType") == "activity":
            activity = event["activity"]
            row = changed.get(activity["processInstanceId"]) or current.get(activity["processInstanceId"])
            if row and row["status"] in PROCESS_OPEN and activity.get("activityType") in (
                    "userTask", "subProcess", "callActivity", "serviceTask", "receiveTask"):
                changed[row["process_instance_id"]] = {**row, "current_activity": activity["activityId"]}
            continue
        process = event["processInstance"]
        row = changed.get(process["id"]) or current.get(process["id"])
        if row and row["status"] not in PROCESS_OPEN and event["type"] in PROCESS_END_STATUS \
                and row["end_activity_id"] is None and process.get("endActivityId"):
            # an end mirrored without its end event (before 0020, or by a copy that lacked it): learn it now
            changed[process["id"]] = {**row, "end_activity_id": process["endActivityId"]}
            continue
        if not row or row["status"] not in PROCESS_OPEN:
            continue
        if event["type"] == "BRIDGE_MIGRATE":
            migrating.append(process)
            row = {**row, "process_key": process["processDefinitionKey"],
                   "process_version": process["processDefinitionVersion"],
                   "process_definition_id": process.get("processDefinitionId"),
                   "current_activity": process.get("activityId") or row["current_activity"]}
        elif event["type"] == "BRIDGE_IMPORT":
            legacy = event.get("legacy") or {}
            row = {**row, "legacy_created_at": legacy.get("createdAt"), "legacy_due_date": legacy.get("dueDate"),
                   "legacy": legacy}
        elif event["type"] in PROCESS_END_STATUS:
            row = {**row, "status": PROCESS_END_STATUS[event["type"]], "current_activity": None,
                   "end_activity_id": process.get("endActivityId"),
                   "completed_at": process.get("endTime") or event["timestamp"], "end_cause": process.get("cause")}
        else:
            suspended = event["type"] == "ENTITY_SUSPENDED"
            row = {**row, "status": "SUSPENDED" if suspended else "ACTIVE",
                   "suspended_at": event["timestamp"] if suspended else None}
        changed[process["id"]] = row
    if migrating:  # to a version the bridge did not deploy: recorded, as a start from one would be
        await conn.execute(SQL.register_definitions, {"rows": _json([
            {"process_key": p["processDefinitionKey"], "process_version": p["processDefinitionVersion"],
             "process_name": p.get("processDefinitionName") or p["processDefinitionKey"]} for p in migrating])})
    if changed:
        await conn.execute(SQL.update_processes, {"rows": _json(list(changed.values()))})
    return {pid for pid, row in changed.items() if row["status"] not in PROCESS_OPEN}


# -- tasks ---------------------------------------------------------------------------------------------

async def _apply_tasks(conn: AsyncConnection, events: list[dict]) -> list[dict]:
    """Task lifecycle and history; returns the tasks created, in order (for case routing)."""
    task_events = [e for e in events if (e.get("entityType") == "task" and (
        e["type"] in _TASK_EVENTS or e["type"] in ("TASK_CREATED", "ENTITY_DELETED")))
        or (e.get("entityType") == "identityLink" and e["type"] in ("ENTITY_CREATED", "ENTITY_DELETED")
            and e["identityLink"].get("taskId"))]
    if not task_events:
        return []
    created = [e for e in task_events if e["type"] == "TASK_CREATED"]
    placement = await _place_new_tasks(conn, created)
    migrated_queues = await _queues_after_migration(conn, [e for e in task_events if e["type"] == "BRIDGE_MIGRATE"])
    moved: dict[str, dict] = {}
    ids = sorted({_task_id(e) for e in task_events})
    folds: dict[str, TaskFold] = {r.task_id: TaskFold(_task_row(r)) for r in
                                  await conn.execute(SQL.lock_tasks, {"ids": ids})}
    new_rows: dict[str, dict] = {}
    history = []
    outcomes = _completion_outcomes(events)
    for event in task_events:
        if event["eventId"] in outcomes:
            event = {**event, "outcome": outcomes[event["eventId"]]}
        task_id = _task_id(event)
        if event["type"] == "TASK_CREATED":
            if task_id in folds or task_id not in placement:
                continue
            queue, due = placement[task_id]
            row, created_history = created_row(event, queue=queue, sla_due_date=due)
            folds[task_id] = TaskFold(row)
            task = event["task"]
            new_rows[task_id] = {"task_key": task["taskDefinitionKey"], "queue_name": queue,
                                 "form_key": task.get("formKey"),
                                 "created_at": task.get("createTime") or event["timestamp"]}
            history.append(created_history)
        elif task_id in folds:
            if event["type"] == "BRIDGE_MIGRATE" and task_id in migrated_queues:
                event = {**event, "migration": {**(event.get("migration") or {}), "queue": migrated_queues[task_id]}}
            before = len(folds[task_id].history)
            fold_task(folds[task_id], event)
            history.extend(folds[task_id].history[before:])
            if event["type"] == "BRIDGE_MIGRATE" and len(folds[task_id].history) > before:
                row = folds[task_id].row
                moved[task_id] = {"task_key": row.task_definition_key, "queue_name": row.queue_name,
                                  "created_at": event["timestamp"]}
    inserts = [{**_row_json(folds[t].row), **extra} for t, extra in new_rows.items()]
    updates = [_row_json(f.row) for t, f in folds.items() if f.changed and t not in new_rows]
    if inserts:
        await conn.execute(SQL.insert_tasks, {"rows": _json(inserts)})
    if updates:
        await conn.execute(SQL.update_tasks, {"rows": _json(updates)})
    if history:
        await conn.execute(SQL.insert_history, {"rows": _json(
            [{"ord": i, **vars(h)} for i, h in enumerate(history)])})
    return [{"process_instance_id": folds[t].row.process_instance_id, "task_id": t, **extra}
            for t, extra in (new_rows | moved).items()]


def _completion_outcomes(events: list[dict]) -> dict[str, str]:
    """TASK_COMPLETED event id -> the decision its completion set: a variable named `outcome` or ending in
    `Decision` (triageDecision, approvalDecision), written in the same transaction just before it. The
    engine sets a completion's variables first, then completes."""
    decided: dict[str, str] = {}  # process instance -> latest decision so far in this batch
    outcomes = {}
    for event in events:
        if event.get("entityType") == "variable" and event["type"] in ("VARIABLE_CREATED", "VARIABLE_UPDATED"):
            variable = event.get("variable") or {}
            name = variable.get("name") or ""
            instance = variable.get("processInstanceId")
            if (name == "outcome" or name.endswith("Decision")) and variable.get("value") is not None and instance:
                decided[instance] = str(variable["value"])[:100]
        elif event["type"] == "TASK_COMPLETED" and event.get("entityType") == "task":
            decision = decided.pop(event["task"].get("processInstanceId"), None)
            if decision is not None:
                outcomes[event["eventId"]] = decision
    return outcomes


async def _place_new_tasks(conn: AsyncConnection, created: list[dict]) -> dict[str, tuple[str, str | None]]:
    """task id -> (queue, due date from the queue's SLA) for new tasks of instances the mirror knows."""
    if not created:
        return {}
    rows = [{"task_id": e["task"]["id"], "process_instance_id": e["task"]["processInstanceId"],
             "task_key": e["task"].get("taskDefinitionKey")} for e in created]
    found = {r.task_id: r for r in await conn.execute(SQL.queues_of_new_tasks, {"rows": _json(rows)})}
    placement: dict[str, tuple[str, str | None]] = {}
    defaults: set[str] = set()
    for event in created:
        task = event["task"]
        hit = found.get(task["id"])
        if hit is None or not hit.instance_known:
            continue
        if hit.queue_name:
            queue, sla = hit.queue_name, hit.sla_minutes
        else:  # not deployed through the bridge: the parser's documented default, created on first use
            process_key = (task.get("processDefinitionId") or "UNKNOWN").split(":")[0]
            queue = default_queue_name(process_key, task.get("candidateGroups") or ())
            sla = DEFAULT_SLA_MINUTES
            defaults.add(queue)
        created_at = datetime.fromisoformat((task.get("createTime") or event["timestamp"]).replace("Z", "+00:00"))
        placement[task["id"]] = (queue, (created_at + timedelta(minutes=sla)).isoformat())
    if defaults:
        await conn.execute(SQL.ensure_queues, {"names": sorted(defaults)})
    return placement


async def _queues_after_migration(conn: AsyncConnection, migrating: list[dict]) -> dict[str, str]:
    """task id -> the queue its new activity has in the version its instance moved to (the instance's row is
    updated first, in the same batch), else the parser's default for its candidate groups."""
    if not migrating:
        return {}
    rows = [{"task_id": e["task"]["id"], "process_instance_id": e["task"]["processInstanceId"],
             "task_key": e["task"].get("taskDefinitionKey")} for e in migrating if e["task"].get("taskDefinitionKey")]
    found = {r.task_id: r.queue_name for r in await conn.execute(SQL.queues_of_new_tasks, {"rows": _json(rows)})}
    queues, defaults = {}, set()
    for event in migrating:
        task = event["task"]
        if found.get(task["id"]):
            queues[task["id"]] = found[task["id"]]
        elif task.get("taskDefinitionKey"):
            process_key = (task.get("processDefinitionId") or "UNKNOWN").split(":")[0]
            queues[task["id"]] = default_queue_name(process_key, task.get("candidateGroups") or ())
            defaults.add(queues[task["id"]])
    if defaults:
        await conn.execute(SQL.ensure_queues, {"names": sorted(defaults)})
    return queues


# -- variables ---------------------------------------------------------------------------------------

# Flowable's variable type names -> the seed's variable types. Numbers that are not integers keep their
# value as JSON numbers; binary and serialized Java objects are recorded without a value.
VARIABLE_TYPES = {
    "string": "STRING", "longstring": "STRING", "uuid": "STRING", "null": "STRING",
    "integer": "INTEGER", "long": "INTEGER", "short": "INTEGER",
    "boolean": "BOOLEAN",
    "date": "DATE", "instant": "DATE", "localdate": "DATE", "localdatetime": "DATE", "jodadate": "DATE",
    "json": "JSON", "longjson": "JSON", "double": "JSON", "bigdecimal": "JSON", "biginteger": "JSON",
    "bytes": "BINARY", "serializable": "BINARY",
}


def variable_row(variable: dict, at: str) -> dict:
    """One engine variable (webhook or REST shape) -> a workflow_variables row."""
    kind = VARIABLE_TYPES.get(str(variable.get("type") or "string").lower(), "STRING")
    value = variable.get("value")
    return {
        "process_instance_id": variable.get("processInstanceId"),
        "task_id": variable.get("taskId") if variable.get("scope") == "task" else None,
        "name": variable["name"], "type": kind, "at": at,
        "value": None if value is None or kind == "BINARY" else
        (json.dumps(value) if isinstance(value, (dict, list)) else
         ("true" if value is True else "false" if value is False else str(value))),
        "json": value if kind == "JSON" else None,
    }


async def _apply_variables(conn: AsyncConnection, events: list[dict]) -> set[str]:
    """Variable changes, the newest per variable; returns the instances whose variables changed."""
    # An instance that ends, or a task that ends, drops its runtime variables (VARIABLE_DELETED in the same
    # transaction): the mirror keeps them, as the engine's history does.
    ending = {e["processInstance"]["id"] for e in events
              if e.get("entityType") == "processInstance" and e["type"] in PROCESS_END_STATUS}
    ending |= {e["task"]["id"] for e in events
               if e.get("entityType") == "task" and e["type"] in ("TASK_COMPLETED", "ENTITY_DELETED")}
    latest: dict[tuple, tuple[str, dict]] = {}
    for event in events:
        if event.get("entityType") != "variable" or event["type"] not in (
                "VARIABLE_CREATED", "VARIABLE_UPDATED", "VARIABLE_DELETED"):
            continue
        variable = event.get("variable") or {}
        if not variable.get("name") or not variable.get("processInstanceId") or variable.get("scope") == "execution":
            continue  # execution-local variables (inside a sub-process) are not the case's
        if event["type"] == "VARIABLE_DELETED" and (
                variable["processInstanceId"] in ending or variable.get("taskId") in ending):
            continue
        row = variable_row(variable, event["timestamp"])
        latest[(row["process_instance_id"], row["task_id"], row["name"])] = (event["type"], row)
    if not latest:
        return set()
    upserts = [row for kind, row in latest.values() if kind != "VARIABLE_DELETED"]
    deletes = [row for kind, row in latest.values() if kind == "VARIABLE_DELETED"]
    if upserts:
        await conn.execute(SQL.upsert_variables, {"rows": _json(upserts)})
    if deletes:
        await conn.execute(SQL.delete_variables, {"rows": _json(deletes)})
    touched = sorted({key[0] for key in latest})
    await conn.execute(SQL.refresh_process_variables, {"ids": touched})
    return set(touched)


# -- cases ---------------------------------------------------------------------------------------------

async def _route_cases(conn: AsyncConnection, new_tasks: list[dict]) -> None:
    """A case is where its newest task is: department (the task's queue's) and phase (the task); each move
    to another department is appended to routing_history."""
    if not new_tasks:
        return
    ids = sorted({t["process_instance_id"] for t in new_tasks})
    routes = {r.process_instance_id: dict(r._mapping) for r in await conn.execute(SQL.lock_case_routes, {"ids": ids})}
    if not routes:
        return
    departments = {r.queue_name: r.department_code for r in await conn.execute(
        SQL.queue_departments, {"names": sorted({t["queue_name"] for t in new_tasks})})}
    changed = {}
    for task in new_tasks:
        route = routes.get(task["process_instance_id"])
        if route is None:
            continue
        department = departments.get(task["queue_name"])
        history = list(route["routing_history"] or [])
        if department and department != route["current_department"]:
            history.append({"department": department, "from": route["current_department"],
                            "task": task["task_key"], "at": _iso(task["created_at"])})
        route = {**route, "current_department": department or route["current_department"],
                 "current_phase": task["task_key"], "routing_history": history}
        routes[task["process_instance_id"]] = changed[route["mapping_id"]] = route
    await conn.execute(SQL.update_case_routes, {"rows": _json(
        [{k: r[k] for k in ("mapping_id", "current_department", "current_phase", "routing_history")}
         for r in changed.values()])})


def _task_id(event: dict) -> str:
    return event["identityLink"]["taskId"] if event.get("entityType") == "identityLink" else event["task"]["id"]


def _task_row(r) -> TaskRow:
    return TaskRow(task_id=r.task_id, process_instance_id=r.process_instance_id, status=r.status,
                   assignee_id=r.assignee_id, claimed_at=_iso(r.claimed_at), claimed_by=r.claimed_by,
                   completed_at=_iso(r.completed_at), completed_by=r.completed_by, priority=r.priority,
                   due_date=_iso(r.due_date), task_name=r.task_name, outcome_reason=r.outcome_reason,
                   candidate_groups=tuple(r.candidate_groups or ()), candidate_users=tuple(r.candidate_users or ()),
                   last_event_at=r.last_event_at, outcome=r.outcome, queue_name=r.queue_name,
                   escalation_level=r.escalation_level, escalated_at=_iso(r.escalated_at),
                   queue_moved_at=r.queue_moved_at, task_definition_key=r.task_definition_key,
                   candidate_clock=tuple((k, v[0], v[1]) for k, v in sorted((r.candidate_clock or {}).items())))


def _row_json(row: TaskRow) -> dict:
    data = dict(vars(row))  # shallow: dataclasses.asdict deep-copies, a fifth of a batch's time
    data["candidate_groups"], data["candidate_users"] = list(row.candidate_groups), list(row.candidate_users)
    data["candidate_clock"] = {key: [present, at] for key, present, at in row.candidate_clock}
    return data


def _json(value) -> str:
    """Rows for jsonb_to_recordset: orjson, compact (datetimes as RFC 3339, which PostgreSQL reads)."""
    try:
        return orjson.dumps(value, default=_iso).decode()
    except TypeError:  # an integer beyond 64 bits in a json variable: orjson cannot write it, jsonb keeps it
        return json.dumps(value, default=_iso, separators=(",", ":"))


def _iso(value):
    return value.isoformat() if isinstance(value, datetime) else value
