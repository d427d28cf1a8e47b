"""The mirror's state machines, as pure functions: current row + a batch's events -> new row + history.

No I/O here: bridge/mirror/apply.py reads the rows a batch touches, folds, and writes the results back in
a few set-based statements. The rules:
  * terminal states (task COMPLETED/CANCELLED; process COMPLETED/TERMINATED/ERROR) are never left;
  * a task change older than the newest event already applied to the task changes nothing, and every
    task event carries the whole task, so the newest one alone decides (order of arrival does not matter);
  * one history row per task action, in the order the engine did them.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

TASK_TERMINAL = ("COMPLETED", "CANCELLED")
TASK_ASSIGNABLE = ("OPEN", "CLAIMED", "ESCALATED", "DELEGATED")
PROCESS_END_STATUS = {
    "PROCESS_COMPLETED": "COMPLETED",
    "PROCESS_COMPLETED_WITH_TERMINATE_END_EVENT": "COMPLETED",  # the OneCMS ends closed/rejected/withdrawn
    "PROCESS_COMPLETED_WITH_ESCALATION_END_EVENT": "COMPLETED",
    "PROCESS_COMPLETED_WITH_ERROR_END_EVENT": "ERROR",
    "PROCESS_CANCELLED": "TERMINATED",
}
PROCESS_OPEN = ("ACTIVE", "SUSPENDED")


@dataclass(frozen=True)
class TaskRow:
    task_id: str
    process_instance_id: str
    status: str
    assignee_id: str | None = None
    claimed_at: str | None = None
    claimed_by: str | None = None
    completed_at: str | None = None
    completed_by: str | None = None
    priority: int | None = None
    due_date: str | None = None
    task_name: str | None = None
    outcome_reason: str | None = None
    outcome: str | None = None
    candidate_groups: tuple[str, ...] = ()
    candidate_users: tuple[str, ...] = ()
    last_event_at: str | None = None  # ISO-8601 UTC with milliseconds: compares as text
    # Per candidate ("group:X" / "user:Y"): (present, time of the newest word on it). Candidates change by
    # whole-task copies and by single link events; keeping the newest word per candidate makes the set the
    # same whatever order the pushes arrive in (a last-writer-wins set).
    candidate_clock: tuple[tuple[str, bool, str], ...] = ()


@dataclass(frozen=True)
class History:
    task_id: str
    process_instance_id: str
    action_type: str
    action_by: str
    action_at: str
    old_status: str | None
    new_status: str | None
    old_assignee: str | None
    new_assignee: str | None
    comments: str | None
    event_id: str
    delegate_to: str | None = None


@dataclass
class TaskFold:
    row: TaskRow
    history: list[History] = field(default_factory=list)
    changed: bool = False


def _newer(row: TaskRow, at: str) -> bool:
    return row.last_event_at is None or row.last_event_at <= at


def _clock_of(row: TaskRow) -> dict[str, tuple[bool, str]]:
    if row.candidate_clock:
        return {key: (present, at) for key, present, at in row.candidate_clock}
    since = row.last_event_at or ""  # a row mirrored before the clock existed: its lists, as of its last event
    return {**{f"group:{g}": (True, since) for g in row.candidate_groups},
            **{f"user:{u}": (True, since) for u in row.candidate_users}}


def _with_clock(row: TaskRow, clock: dict[str, tuple[bool, str]]) -> TaskRow:
    return replace(row, candidate_clock=tuple(sorted((k, p, a) for k, (p, a) in clock.items())),
                   candidate_groups=tuple(sorted(k[6:] for k, (p, _) in clock.items() if p and k.startswith("group:"))),
                   candidate_users=tuple(sorted(k[5:] for k, (p, _) in clock.items() if p and k.startswith("user:"))))


def _merge_candidates(row: TaskRow, task: dict[str, Any], at: str) -> TaskRow:
    """A task copy's candidate lists, taken per candidate where the copy is the newest word on it."""
    if task.get("candidateGroups") is None and task.get("candidateUsers") is None:
        return row
    clock = _clock_of(row)
    named = {f"group:{g}" for g in task.get("candidateGroups") or ()} | {f"user:{u}" for u in task.get("candidateUsers") or ()}
    for key in named | set(clock):
        if key not in clock or clock[key][1] <= at:
            clock[key] = (key in named, at)
    return _with_clock(row, clock)


_CHANGE_KINDS = ("TASK_ASSIGNED", "TASK_OWNER_CHANGED", "TASK_PRIORITY_CHANGED", "TASK_DUEDATE_CHANGED",
                 "TASK_NAME_CHANGED")


def _snapshot(row: TaskRow, task: dict[str, Any], at: str) -> TaskRow:
    """The row as the event's copy of the task says it was at `at` (fields the event lacks are kept).

    Every task event carries the whole task as it stood when the event fired, so the newest event alone
    says what the task is: applying only events newer than the row makes the result independent of the
    order in which pushes arrive."""
    new = row
    if "assignee" in task and task["assignee"] != row.assignee_id:
        assignee = task["assignee"]
        new = replace(new, assignee_id=assignee, claimed_by=assignee,
                      claimed_at=(task.get("claimTime") or at) if assignee else None)
    if task.get("priority") is not None:
        new = replace(new, priority=task["priority"])
    if task.get("dueDate"):  # none from the engine: the queue's SLA date stays
        new = replace(new, due_date=task["dueDate"])
    if task.get("name"):
        new = replace(new, task_name=task["name"])
    if "delegationState" in task or new.assignee_id != row.assignee_id:
        delegated = task.get("delegationState") == "PENDING" and new.assignee_id is not None
        if delegated:
            status = "DELEGATED"
        elif new.assignee_id != row.assignee_id or row.status == "DELEGATED":
            status = "CLAIMED" if new.assignee_id else "OPEN"
        else:
            status = row.status  # ESCALATED (the bridge's own) stays until the assignee changes
        new = replace(new, status=status)
    return replace(new, last_event_at=at)


def fold_task(fold: TaskFold, event: dict[str, Any]) -> None:
    """Apply one task event (TASK_ASSIGNED/COMPLETED/..., ENTITY_DELETED, identity links) to a task's fold."""
    row, kind, at = fold.row, event["type"], event["timestamp"]
    task = event.get("task") or {}

    def record(action: str, by: str, old: TaskRow, new: TaskRow, comments: str | None = None) -> None:
        fold.history.append(History(row.task_id, row.process_instance_id, action, by, at, old.status, new.status,
                                    old.assignee_id, new.assignee_id, comments, event["eventId"],
                                    new.assignee_id if action == "DELEGATE" else None))

    if event.get("entityType") == "identityLink":
        link = event["identityLink"]
        if link.get("type") != "candidate" or row.status in TASK_TERMINAL:
            return
        key = f"group:{link['groupId']}" if link.get("groupId") else f"user:{link['userId']}" if link.get("userId") else None
        clock = _clock_of(row)
        if key is None or (key in clock and clock[key][1] > at):
            return  # a newer word on this candidate is already in
        clock[key] = (kind == "ENTITY_CREATED", at)
        fold.row, fold.changed = _with_clock(row, clock), True
        return

    if row.status not in TASK_TERMINAL and kind in (*_CHANGE_KINDS, "TASK_COMPLETED", "ENTITY_DELETED"):
        # candidates merge per candidate, even from a copy older than the row's other fields
        merged = _merge_candidates(row, task, at)
        if merged != row:
            row = fold.row = merged
            fold.changed = True

    if kind in ("TASK_COMPLETED", "ENTITY_DELETED"):
        reason = task.get("deleteReason") if kind == "ENTITY_DELETED" else None
        if kind == "ENTITY_DELETED" and reason is None:
            return  # the delete that follows every TASK_COMPLETED
        if row.status in TASK_TERMINAL:
            return  # terminal states are never left, whatever arrives later
        final = _snapshot(row, task, at) if _newer(row, at) else row
        status = "COMPLETED" if kind == "TASK_COMPLETED" else "CANCELLED"
        new = replace(final, status=status, completed_at=task.get("endTime") or at,
                      completed_by=(final.assignee_id or "engine") if status == "COMPLETED" else None,
                      outcome_reason=reason, outcome=event.get("outcome"),
                      last_event_at=max(at, row.last_event_at or at))
        record("COMPLETE" if status == "COMPLETED" else "CANCEL", final.assignee_id or "engine", row, new, reason)
    elif kind in _CHANGE_KINDS:
        if row.status in TASK_TERMINAL or not _newer(row, at):
            return
        new = _snapshot(row, task, at)
        if new.assignee_id != row.assignee_id:
            if new.status == "DELEGATED":
                action = "DELEGATE"
            else:
                action = "UNCLAIM" if new.assignee_id is None else ("REASSIGN" if row.assignee_id else "CLAIM")
            record(action, new.assignee_id or row.assignee_id or "engine", row, new)
        elif replace(new, last_event_at=row.last_event_at) != row:
            record("UPDATE", "engine", row, new, kind)
    else:
        return
    fold.row, fold.changed = new, True


def created_row(event: dict[str, Any], *, queue: str, sla_due_date: str | None) -> tuple[TaskRow, History]:
    """The row and CREATE history of a TASK_CREATED (the task carries its assignee if the BPMN set one)."""
    task = event["task"]
    assignee = task.get("assignee")
    created_at = task.get("createTime") or event["timestamp"]
    row = TaskRow(task_id=task["id"], process_instance_id=task["processInstanceId"],
                  status="CLAIMED" if assignee else "OPEN", assignee_id=assignee,
                  claimed_at=(task.get("claimTime") or created_at) if assignee else None, claimed_by=assignee,
                  priority=task.get("priority") if task.get("priority") is not None else 50,
                  due_date=task.get("dueDate") or sla_due_date, task_name=task.get("name") or task["taskDefinitionKey"],
                  last_event_at=event["timestamp"])
    row = _merge_candidates(row, {"candidateGroups": task.get("candidateGroups") or [],
                                  "candidateUsers": task.get("candidateUsers") or []}, event["timestamp"])
    history = History(row.task_id, row.process_instance_id, "CREATE", "engine", event["timestamp"], None, row.status,
                      None, assignee, None, event["eventId"])
    return row, history
