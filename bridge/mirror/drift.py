"""Mirror vs engine: every difference, and the events that repair the ones the mirror can take back.

Pure comparison: bridge/mirror/engine_state.py reads the engine, `read_mirror` reads the mirror, and
`compare` lists what differs. A difference the state machines can express (a missing row, a task that
ended, an assignee or priority that changed) carries the synthetic engine events that repair it; the
reconciler feeds those through the same apply path as pushed events (bridge/mirror/apply.py), so
repairs obey the same rules (terminal states are never left, an older change never overwrites a newer
one) and leave the same task_history rows. A difference no event can express (the mirror says ended
and the engine says running, a row the engine does not have) is reported and left for an operator.

What is compared:
  * process: exists, status (ERROR counts as COMPLETED: history cannot tell them apart), business key,
    process definition (key and version: a running instance migrated in the engine without the mirror
    following is repaired as the bridge's own migration would have recorded it), and for a completed one the
    end event reached (a mirror that lacks it learns it; one that names another is reported);
  * task: exists, status (ended or not; and for a live task, OPEN exactly when the engine has no
    assignee: a CLAIMED or DELEGATED task has one, since escalation is a level and not a state, migration
    0019), activity (task definition key: a live task moved by a migration is repaired with it, an ended one
    reported), assignee, priority, name, due date (when the engine has one; otherwise the mirror keeps the
    queue's SLA date), candidate groups and users (when read). History does not say whether a live task
    is delegated, so CLAIMED and DELEGATED are not told apart.
  * variables: the process-scope ones (type and value); task-local ones are not compared.
Not compared: current_activity (history has no "current activity"), task_history, the case mapping.
"""

from __future__ import annotations

import uuid
from collections.abc import Set
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from bridge.db.queries import queries
from bridge.flowable.client import engine_time
from bridge.mirror.apply import variable_row
from bridge.mirror.engine_state import EngineReader, EngineState
from bridge.mirror.fold import TASK_ASSIGNABLE

SQL = queries("reconcile")


@dataclass(frozen=True)
class Difference:
    entity: str  # "process" | "task"
    entity_id: str
    field: str
    mirror: Any
    engine: Any
    repairable: bool

    def __str__(self) -> str:
        note = "" if self.repairable else "  (not repairable by the reconciler)"
        return (f"{self.entity} {self.entity_id}: {self.field}: "
                f"mirror={_show(self.mirror)} engine={_show(self.engine)}{note}")


@dataclass
class MirrorState:
    processes: dict[str, dict[str, Any]] = field(default_factory=dict)
    tasks: dict[str, dict[str, Any]] = field(default_factory=dict)
    # process id -> variable name -> (type, value as text): the process-scope variables
    variables: dict[str, dict[str, tuple[str, str | None]]] = field(default_factory=dict)
    # process id -> variable name -> when the mirror got the value it holds: the engine's time of the change,
    # or the mirror's write if later (a change made just before a read may commit, and be pushed, after it)
    variables_changed: dict[str, dict[str, datetime]] = field(default_factory=dict)
    # archived instances (bridge/archive.py) the engine may still report: archived, not missing
    archived: set[str] = field(default_factory=set)


@dataclass
class Comparison:
    differences: list[Difference] = field(default_factory=list)
    repair_events: list[dict[str, Any]] = field(default_factory=list)


async def read_mirror(conn: AsyncConnection, process_ids: list[str] | None = None) -> MirrorState:
    """The mirror's rows for the given instances (None: all), read for comparison."""
    state = MirrorState()
    params = {"ids": process_ids, "all": process_ids is None}
    for r in await conn.execute(SQL.mirror_processes, params):
        state.processes[r.process_instance_id] = dict(r._mapping)
    for r in await conn.execute(SQL.mirror_tasks, params):
        state.tasks[r.task_id] = dict(r._mapping)
    state.archived = {r.process_instance_id for r in await conn.execute(SQL.archived_processes, params)}
    for r in await conn.execute(SQL.mirror_variables, params):
        state.variables.setdefault(r.process_instance_id, {})[r.variable_name] = (r.variable_type, r.variable_value)
        if r.changed_at is not None:
            state.variables_changed.setdefault(r.process_instance_id, {})[r.variable_name] = r.changed_at
    return state


def engine_process_status(process: dict[str, Any]) -> str:
    if process.get("endTime") is None:
        return "SUSPENDED" if process.get("suspended") else "ACTIVE"
    reason = process.get("deleteReason")
    # a terminate end event ends the instance with a delete reason, but it is a normal end of the process
    return "COMPLETED" if reason is None or reason.startswith("terminate end event") else "TERMINATED"


def engine_task_status(task: dict[str, Any]) -> str:
    if task.get("endTime") is None:
        return "OPEN"
    return "COMPLETED" if task.get("deleteReason") is None else "CANCELLED"


def compare(engine_state: EngineState, mirror: MirrorState, *, whole_mirror: bool = False) -> Comparison:
    """Differences over the instances `engine_state` covers (and, with whole_mirror, mirror rows the engine lacks).

    What the mirror holds from a change the engine made after the read began (pushed while the engine was
    being read: a task row's lastEventAt, a variable's changed_at, an instance's completed_at) is newer than
    the read, not a difference: comparing it would report the read's staleness as the mirror's, and under a
    steady stream of pushes fill mirror_repairs with changes that were never lost. A task event carries the
    whole task, so a row that newer lacks nothing older; the next pass reads it again."""
    result = Comparison()
    read_at = engine_time(engine_state.read_at)
    started = engine_state.started_at or engine_state.read_at
    started_text = engine_time(started)
    for process_id in sorted(engine_state.covers - mirror.archived):
        process = engine_state.processes[process_id]
        row = mirror.processes.get(process_id)
        if row is not None and row["completed_at"] is not None and row["completed_at"] > started:
            row = {**row, "status": engine_process_status(process)}  # ended after the read: newer, not drift
        _compare_process(result, process, row, read_at)
        if process_id in mirror.processes:
            changed = mirror.variables_changed.get(process_id, {})
            newer = {name for name, at in changed.items() if at > started}
            _compare_variables(result, process, mirror.variables.get(process_id, {}), read_at, newer)
        else:  # its "exists" difference says it all; the repair brings the variables along
            missing = Comparison()
            _compare_variables(missing, process, {}, read_at)
            result.repair_events.extend(missing.repair_events)
        tasks = sorted(engine_state.tasks_of(process_id), key=lambda t: (t.get("createTime") or "", t["id"]))
        for task in tasks:
            row = mirror.tasks.get(task["id"])
            if row is not None and _newer_than(row, started_text):
                continue  # changed in the engine after the read, and the mirror already has it
            _compare_task(result, task, row, read_at)
        open_tasks = [t for t in tasks if t.get("endTime") is None]
        if process_id not in mirror.processes and process.get("endTime") is None and open_tasks:
            # a backfilled instance waits where its newest open task is (webhooks say it as it happens)
            result.repair_events.append(_event("ACTIVITY_STARTED", "activity", read_at, activity={
                "activityId": open_tasks[-1]["taskDefinitionKey"], "activityType": "userTask",
                "processInstanceId": process_id}))
    engine_task_ids = set(engine_state.tasks)
    for task_id, row in sorted(mirror.tasks.items()):
        if task_id not in engine_task_ids and (whole_mirror or row["process_instance_id"] in engine_state.covers) \
                and not _newer_than(row, started_text):  # not a task created after the read
            result.differences.append(Difference("task", task_id, "exists", "yes", "no", False))
    if whole_mirror:
        for process_id in sorted(set(mirror.processes) - set(engine_state.processes)):
            result.differences.append(Difference("process", process_id, "exists", "yes", "no", False))
    return result


def _newer_than(task_row: dict, moment: str) -> bool:
    """The mirror's task row holds an engine change made after the moment (engine times compare as text)."""
    return (task_row.get("last_event_at") or "") > moment


def _compare_process(result: Comparison, process: dict, row: dict | None, read_at: str) -> None:
    status = engine_process_status(process)
    pid = process["id"]
    if row is None:
        events = [_event("PROCESS_STARTED", "processInstance", process["startTime"], processInstance=process)]
        events += _process_change_events(process, status, "ACTIVE", read_at)
        result.differences.append(Difference("process", pid, "exists", "no", "yes", True))
        result.repair_events.extend(events)
        return
    mirrored = "COMPLETED" if row["status"] == "ERROR" else row["status"]
    if mirrored != status:
        events = (_process_change_events(process, status, mirrored, read_at) if mirrored in ("ACTIVE", "SUSPENDED")
                  else [])
        result.differences.append(Difference("process", pid, "status", row["status"], status, bool(events)))
        result.repair_events.extend(events)
    elif (status == "COMPLETED" and process.get("endActivityId")
          and row.get("end_activity_id") != process["endActivityId"]):
        repairable = row.get("end_activity_id") is None
        result.differences.append(Difference("process", pid, "end_activity_id", row.get("end_activity_id"),
                                             process["endActivityId"], repairable))
        if repairable:
            result.repair_events.extend(_process_change_events(process, status, "ACTIVE", read_at))
    if row["business_key"] != process.get("businessKey"):
        result.differences.append(Difference("process", pid, "business_key", row["business_key"],
                                             process.get("businessKey"), False))
    engine_definition = (process.get("processDefinitionKey"), process.get("processDefinitionVersion"))
    if row.get("process_key") is not None and engine_definition[1] is not None \
            and (row["process_key"], row["process_version"]) != engine_definition:
        live = status in ("ACTIVE", "SUSPENDED") and row["status"] in ("ACTIVE", "SUSPENDED")
        result.differences.append(Difference("process", pid, "definition",
                                             f"{row['process_key']} v{row['process_version']}",
                                             f"{engine_definition[0]} v{engine_definition[1]}", live))
        if live:
            result.repair_events.append(_event("BRIDGE_MIGRATE", "processInstance", read_at, actor="reconciler",
                                               processInstance=process))


def _compare_variables(result: Comparison, process: dict, mirrored: dict[str, tuple[str, str | None]],
                       read_at: str, newer: Set[str] = frozenset()) -> None:
    """Process-scope variables: the engine's (from history, so they outlive the instance) vs the mirror's;
    `newer`: variables the mirror holds from a change after the read, left alone."""
    pid = process["id"]
    engine_rows = {}
    for variable in process.get("variables") or []:
        shaped = {**variable, "processInstanceId": pid, "scope": "process"}
        engine_rows[variable["name"]] = (shaped, variable_row(shaped, read_at))
    mirrored = {name: value for name, value in mirrored.items() if name not in newer}
    for name, (shaped, row) in sorted(engine_rows.items()):
        if name in newer:
            continue
        have = mirrored.get(name)
        if have != (row["type"], row["value"]):
            result.differences.append(Difference("process", pid, f"variable {name}",
                                                 _variable_text(have), _variable_text((row["type"], row["value"])),
                                                 True))
            result.repair_events.append(_event("VARIABLE_UPDATED", "variable", read_at, variable=shaped))
    for name in sorted(set(mirrored) - set(engine_rows)):
        result.differences.append(Difference("process", pid, f"variable {name}", _variable_text(mirrored[name]),
                                             None, True))
        result.repair_events.append(_event("VARIABLE_DELETED", "variable", read_at, variable={
            "name": name, "processInstanceId": pid, "scope": "process"}))


def _variable_text(value: tuple[str, str | None] | None) -> str | None:
    return None if value is None else f"{value[1]} ({value[0]})"


def _process_change_events(process: dict, status: str, mirrored: str, read_at: str) -> list[dict]:
    if status == mirrored:
        return []
    if status in ("COMPLETED", "TERMINATED"):
        kind = "PROCESS_COMPLETED" if status == "COMPLETED" else "PROCESS_CANCELLED"
        return [_event(kind, "processInstance", process["endTime"],
                       processInstance={"id": process["id"], "endTime": process["endTime"],
                                        "cause": process.get("deleteReason"),
                                        "endActivityId": process.get("endActivityId") if kind == "PROCESS_COMPLETED"
                                        else None})]
    kind = "ENTITY_SUSPENDED" if status == "SUSPENDED" else "ENTITY_ACTIVATED"
    return [_event(kind, "processInstance", read_at, processInstance={"id": process["id"]})]


def _compare_task(result: Comparison, task: dict, row: dict | None, read_at: str) -> None:
    status = engine_task_status(task)
    tid = task["id"]
    if row is None:
        result.differences.append(Difference("task", tid, "exists", "no", "yes", True))
        result.repair_events.append(_event("TASK_CREATED", "task", task["createTime"], task=_created_view(task)))
        result.repair_events.extend(_task_end_events(task, status, task.get("assignee"), task["endTime"]))
        return
    mirrored = "OPEN" if row["status"] in TASK_ASSIGNABLE else row["status"]

    def differ(name: str, mirror_value: Any, engine_value: Any, events: list[dict], repairable: bool = True) -> None:
        result.differences.append(Difference("task", tid, name, mirror_value, engine_value, repairable))
        result.repair_events.extend(events)

    key = task.get("taskDefinitionKey")
    if key and row.get("task_definition_key") and row["task_definition_key"] != key:
        live = mirrored == "OPEN" and status == "OPEN"
        differ("task_definition_key", row["task_definition_key"], key,
               [_event("BRIDGE_MIGRATE", "task", read_at, task=task, actor="reconciler",
                       processInstanceId=task["processInstanceId"])] if live else [], repairable=live)
    if mirrored != status:
        if mirrored == "OPEN":
            events = []
            if task.get("assignee") and task["assignee"] != row["assignee_id"]:
                events.append(_event("TASK_ASSIGNED", "task", task["endTime"], task=task))
            events += _task_end_events(task, status, row["assignee_id"], task["endTime"])
            differ("status", row["status"], status, events)
        else:
            differ("status", row["status"], status, [], repairable=False)
        return
    if status != "OPEN":
        return  # both ended the same way; what an ended task held is history
    live = "CLAIMED" if task.get("assignee") else "OPEN"
    if (row["status"] == "OPEN") != (live == "OPEN") and row["assignee_id"] == task.get("assignee"):
        # a state its own assignee does not explain (the ESCALATED of old was one); a differing assignee is
        # reported, and repaired, as such below
        differ("status", row["status"], live, [], repairable=False)
    if row["assignee_id"] != task.get("assignee"):
        differ("assignee", row["assignee_id"], task.get("assignee"),
               [_event("TASK_ASSIGNED", "task", read_at, task=task)])
    if task.get("priority") is not None and row["priority"] != task["priority"]:
        differ("priority", row["priority"], task["priority"],
               [_event("TASK_PRIORITY_CHANGED", "task", read_at, task=task)])
    if task.get("name") and row["task_name"] != task["name"]:
        differ("task_name", row["task_name"], task["name"], [_event("TASK_NAME_CHANGED", "task", read_at, task=task)])
    if task.get("dueDate") and _instant(row["due_date"]) != _instant(task["dueDate"]):
        differ("due_date", engine_time(row["due_date"]) if row["due_date"] else None, task["dueDate"],
               [_event("TASK_DUEDATE_CHANGED", "task", read_at, task=task)])
    for kind, link_key, column in (("candidateGroups", "groupId", "candidate_groups"),
                                   ("candidateUsers", "userId", "candidate_users")):
        wanted = task.get(kind)
        have = sorted(row[column] or ())
        if wanted is None or sorted(wanted) == have:
            continue
        events = [_link_event("ENTITY_DELETED", task, link_key, v, read_at) for v in sorted(set(have) - set(wanted))]
        events += [_link_event("ENTITY_CREATED", task, link_key, v, read_at) for v in sorted(set(wanted) - set(have))]
        differ(column, have, sorted(wanted), events)


def _created_view(task: dict) -> dict:
    """The task as its TASK_CREATED would have carried it (candidates: as read, or none)."""
    view = dict(task)
    view["candidateGroups"] = task.get("candidateGroups") or []
    view["candidateUsers"] = task.get("candidateUsers") or []
    return view


def _task_end_events(task: dict, status: str, assignee: str | None, at: str | None) -> list[dict]:
    if status == "COMPLETED":
        return [_event("TASK_COMPLETED", "task", at, task=task)]
    if status == "CANCELLED":
        return [_event("ENTITY_DELETED", "task", at, task=task)]
    return []


def _link_event(kind: str, task: dict, link_key: str, value: str, at: str) -> dict:
    return _event(kind, "identityLink", at, identityLink={"type": "candidate", link_key: value, "taskId": task["id"]},
                  processInstanceId=task["processInstanceId"])


def _event(kind: str, entity_type: str, at: str | None, **payload: Any) -> dict:
    return {"eventId": f"reconciler:{uuid.uuid4()}", "type": kind, "entityType": entity_type,
            "timestamp": at, **payload}


def _instant(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


def _show(value: Any) -> str:
    return "null" if value is None else str(value)


async def find_drift(conn: AsyncConnection, reader: EngineReader) -> tuple[list[Difference], EngineState]:
    """Every difference between the whole mirror and the whole engine (`bridge drift`)."""
    engine_state = await reader.read_everything()
    mirror = await read_mirror(conn, None)
    return compare(engine_state, mirror, whole_mirror=True).differences, engine_state
