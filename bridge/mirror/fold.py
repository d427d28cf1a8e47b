"""The mirror's state machines, as pure functions: current row + a batch's events -> new row + history.

No I/O here: bridge/mirror/apply.py reads the rows a batch touches, folds, and writes the results back in
a few set-based statements. The rules:
  * terminal states (task COMPLETED/CANCELLED; process COMPLETED/TERMINATED/ERROR) are never left;
  * a task change older than the newest event already applied to the task changes nothing;
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
    candidate_groups: tuple[str, ...] = ()
    candidate_users: tuple[str, ...] = ()
    last_event_at: str | None = None  # ISO-8601 UTC with milliseconds: compares as text


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


@dataclass
class TaskFold:
    row: TaskRow
    history: list[History] = field(default_factory=list)
    changed: bool = False


def _newer(row: TaskRow, at: str) -> bool:
    return row.last_event_at is None or row.last_event_at <= at


def fold_task(fold: TaskFold, event: dict[str, Any]) -> None:
    """Apply one task event (TASK_ASSIGNED/COMPLETED/..., ENTITY_DELETED, identity links) to a task's fold."""
    row, kind, at = fold.row, event["type"], event["timestamp"]
    task = event.get("task") or {}
    if event.get("entityType") == "identityLink":
        link = event["identityLink"]
        if link.get("type") != "candidate" or row.status in TASK_TERMINAL:
            return
        added = kind == "ENTITY_CREATED"
        groups, users = list(row.candidate_groups), list(row.candidate_users)
        for values, value in ((groups, link.get("groupId")), (users, link.get("userId"))):
            if value:
                if value in values:
                    values.remove(value)
                if added:
                    values.append(value)
        fold.row, fold.changed = replace(row, candidate_groups=tuple(groups), candidate_users=tuple(users)), True
        return

    def record(action: str, by: str, old: TaskRow, new: TaskRow, comments: str | None = None) -> None:
        fold.history.append(History(row.task_id, row.process_instance_id, action, by, at, old.status, new.status,
                                    old.assignee_id, new.assignee_id, comments, event["eventId"]))

    if kind == "TASK_ASSIGNED":
        assignee = task.get("assignee")
        if row.status not in TASK_ASSIGNABLE or row.assignee_id == assignee or not _newer(row, at):
            return
        new = replace(row, assignee_id=assignee, status="CLAIMED" if assignee else "OPEN",
                      claimed_at=(task.get("claimTime") or at) if assignee else None, claimed_by=assignee,
                      last_event_at=at)
        action = "UNCLAIM" if assignee is None else ("REASSIGN" if row.assignee_id else "CLAIM")
        record(action, assignee or row.assignee_id or "engine", row, new)
    elif kind in ("TASK_COMPLETED", "ENTITY_DELETED"):
        reason = task.get("deleteReason") if kind == "ENTITY_DELETED" else None
        if kind == "ENTITY_DELETED" and reason is None:
            return  # the delete that follows every TASK_COMPLETED
        if row.status in TASK_TERMINAL:
            return
        status = "COMPLETED" if kind == "TASK_COMPLETED" else "CANCELLED"
        new = replace(row, status=status, completed_at=task.get("endTime") or at,
                      completed_by=(row.assignee_id or "engine") if status == "COMPLETED" else None,
                      outcome_reason=reason, last_event_at=at)
        record("COMPLETE" if status == "COMPLETED" else "CANCEL", row.assignee_id or "engine", row, new, reason)
    elif kind in ("TASK_PRIORITY_CHANGED", "TASK_DUEDATE_CHANGED", "TASK_NAME_CHANGED"):
        if row.status in TASK_TERMINAL or not _newer(row, at):
            return
        new = replace(row, last_event_at=at,
                      priority=task.get("priority") if kind == "TASK_PRIORITY_CHANGED" else row.priority,
                      due_date=task.get("dueDate") if kind == "TASK_DUEDATE_CHANGED" else row.due_date,
                      task_name=task.get("name") if kind == "TASK_NAME_CHANGED" else row.task_name)
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
                  candidate_groups=tuple(task.get("candidateGroups") or ()),
                  candidate_users=tuple(task.get("candidateUsers") or ()), last_event_at=event["timestamp"])
    history = History(row.task_id, row.process_instance_id, "CREATE", "engine", event["timestamp"], None, row.status,
                      None, assignee, None, event["eventId"])
    return row, history
