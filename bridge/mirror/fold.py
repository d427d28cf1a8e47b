"""The mirror's state machines, as pure functions: current row + a batch's events -> new row + history.

No I/O here: bridge/mirror/apply.py reads the rows a batch touches, folds, and writes the results back in
a few set-based statements. The rules:
  * terminal states (task COMPLETED/CANCELLED; process COMPLETED/TERMINATED/ERROR) are never left;
  * a task change older than the newest event already applied to the task changes nothing, and every
    task event carries the whole task, so the newest one alone decides (order of arrival does not matter);
  * one history row per task action, in the order the engine did them.

Two sources feed the same rules: the engine's pushed events, and the bridge's own actions
(bridge/mirror/bridge_events.py: BRIDGE_CLAIM, BRIDGE_COMPLETE, BRIDGE_ESCALATE, ...), which carry the
acting user, the client info and the engine's clock at the start of the request that did them. An
action's own engine event, pushed later, then says the same thing and changes nothing; escalation and
queue moves are the bridge's alone (a level only climbs; the newest queue move wins).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

TASK_TERMINAL = ("COMPLETED", "CANCELLED")
# Live task states. ESCALATED (a status before migration 0019) is no longer written: escalation is a level.
TASK_ASSIGNABLE = ("OPEN", "CLAIMED", "DELEGATED")

# The bridge's own actions: task events of the same shape as the engine's, with `actor` and `clientInfo`.
BRIDGE_ASSIGNING = {"BRIDGE_CLAIM": "CLAIM", "BRIDGE_UNCLAIM": "UNCLAIM", "BRIDGE_DELEGATE": "DELEGATE",
                    "BRIDGE_RESOLVE": "RESOLVE"}
BRIDGE_KINDS = frozenset({*BRIDGE_ASSIGNING, "BRIDGE_COMPLETE", "BRIDGE_COMMENT", "BRIDGE_ESCALATE",
                          "BRIDGE_QUEUE_MOVE", "BRIDGE_MIGRATE"})
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
    queue_name: str | None = None
    escalation_level: int = 0
    escalated_at: str | None = None
    queue_moved_at: str | None = None  # the newest queue move's time: an older one arriving later loses
    # Per candidate ("group:X" / "user:Y"): (present, time of the newest word on it). Candidates change by
    # whole-task copies and by single link events; keeping the newest word per candidate makes the set the
    # same whatever order the pushes arrive in (a last-writer-wins set).
    candidate_clock: tuple[tuple[str, bool, str], ...] = ()
    task_definition_key: str | None = None  # the activity; changes only when the instance moves to another version


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
    escalate_to: str | None = None
    client_info: dict[str, Any] | None = None
    data: dict[str, Any] | None = None  # action_data beside the event id (e.g. the escalation level)


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
    named = ({f"group:{g}" for g in task.get("candidateGroups") or ()}
             | {f"user:{u}" for u in task.get("candidateUsers") or ()})
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
            status = row.status
        new = replace(new, status=status)
    return replace(new, last_event_at=at)


def fold_task(fold: TaskFold, event: dict[str, Any]) -> None:
    """Apply one task event (TASK_ASSIGNED/COMPLETED/..., ENTITY_DELETED, identity links, the bridge's own
    BRIDGE_* actions) to a task's fold."""
    row, kind, at = fold.row, event["type"], event["timestamp"]
    task = event.get("task") or {}
    bridge = kind in BRIDGE_KINDS
    actor: str | None = (event.get("actor") or "SYSTEM") if bridge else None
    bridge_actor = actor or "SYSTEM"  # the branches for BRIDGE_* kinds below

    def record(action: str, by: str, old: TaskRow, new: TaskRow, comments: str | None = None, *,
               escalate_to: str | None = None, data: dict[str, Any] | None = None) -> None:
        fold.history.append(History(row.task_id, row.process_instance_id, action, by, at, old.status, new.status,
                                    old.assignee_id, new.assignee_id, comments, event["eventId"],
                                    new.assignee_id if action == "DELEGATE" else None, escalate_to,
                                    event.get("clientInfo") if bridge else None, data))

    if event.get("entityType") == "identityLink":
        link = event["identityLink"]
        if link.get("type") != "candidate" or row.status in TASK_TERMINAL:
            return
        key = (f"group:{link['groupId']}" if link.get("groupId")
               else f"user:{link['userId']}" if link.get("userId") else None)
        clock = _clock_of(row)
        if key is None or (key in clock and clock[key][1] > at):
            return  # a newer word on this candidate is already in
        clock[key] = (kind == "ENTITY_CREATED", at)
        fold.row, fold.changed = _with_clock(row, clock), True
        return

    if kind == "BRIDGE_COMMENT":
        record("COMMENT", bridge_actor, row, row, event.get("comments"))
        return
    if kind == "BRIDGE_MIGRATE":
        _fold_migration(fold, event, record)
        return
    if kind in ("BRIDGE_ESCALATE", "BRIDGE_QUEUE_MOVE"):
        # the bridge refuses these on a task the mirror shows ended, so one that meets an ended task here was
        # done while it was live and its push of the end overtook it: level and queue still count
        _fold_escalation(fold, event, record)
        return

    if row.status not in TASK_TERMINAL and kind in (*_CHANGE_KINDS, "TASK_COMPLETED", "ENTITY_DELETED"):
        # candidates merge per candidate, even from a copy older than the row's other fields
        merged = _merge_candidates(row, task, at)
        if merged != row:
            row = fold.row = merged
            fold.changed = True

    if kind in ("TASK_COMPLETED", "ENTITY_DELETED", "BRIDGE_COMPLETE"):
        reason = task.get("deleteReason") if kind == "ENTITY_DELETED" else None
        if kind == "ENTITY_DELETED" and reason is None:
            return  # the delete that follows every TASK_COMPLETED
        if row.status in TASK_TERMINAL:
            if kind == "TASK_COMPLETED" and row.status == "COMPLETED":
                _refine_completion(fold, event)
            return  # terminal states are never left, whatever arrives later
        final = _snapshot(row, task, at) if _newer(row, at) else row
        status = "CANCELLED" if kind == "ENTITY_DELETED" else "COMPLETED"
        by = actor or final.assignee_id or "engine"
        new = replace(final, status=status, completed_at=task.get("endTime") or at,
                      completed_by=by if status == "COMPLETED" else None,
                      outcome_reason=reason, outcome=event.get("outcome"),
                      last_event_at=max(at, row.last_event_at or at))
        record("COMPLETE" if status == "COMPLETED" else "CANCEL", by, row, new, reason)
    elif kind in _CHANGE_KINDS or kind in BRIDGE_ASSIGNING:
        if row.status in TASK_TERMINAL or not _newer(row, at):
            return
        new = _snapshot(row, task, at)
        if kind in BRIDGE_ASSIGNING:
            record(BRIDGE_ASSIGNING[kind], bridge_actor, row, new, event.get("comments"))
        elif new.assignee_id != row.assignee_id:
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


def _refine_completion(fold: TaskFold, event: dict[str, Any]) -> None:
    """The engine's own TASK_COMPLETED for a completion already recorded (by the bridge's BRIDGE_COMPLETE,
    whose copy holds only what the action set): the engine's copy is the task's final word on its other
    fields, so they are taken from it; the status, who completed it and its history stay."""
    row, task, at = fold.row, event.get("task") or {}, event["timestamp"]
    final = _snapshot(_merge_candidates(row, task, at), task, at)
    final = replace(final, status=row.status, completed_by=row.completed_by,
                    completed_at=task.get("endTime") or row.completed_at, outcome=event.get("outcome") or row.outcome,
                    last_event_at=max(at, row.last_event_at or at))
    if final != row:
        fold.row, fold.changed = final, True


def _fold_escalation(fold: TaskFold, event: dict[str, Any], record) -> None:
    """BRIDGE_ESCALATE (a level and its consequences) and BRIDGE_QUEUE_MOVE (overflow): the bridge's own
    fields. A level only climbs; a queue move older than the newest one applied loses; a priority the
    engine accepted follows the task-copy rule; a notified role becomes a candidate from `at`."""
    row, at = fold.row, event["timestamp"]
    detail = event.get("escalation") or {}
    new = row
    level = detail.get("level")
    if isinstance(level, int) and level > row.escalation_level:
        new = replace(new, escalation_level=level, escalated_at=at)
    queue = detail.get("queue")
    if queue and queue != row.queue_name and (row.queue_moved_at is None or row.queue_moved_at <= at):
        new = replace(new, queue_name=queue, queue_moved_at=at)
    live = row.status not in TASK_TERMINAL
    priority = (event.get("task") or {}).get("priority")
    if live and priority is not None and _newer(row, at):
        new = replace(new, priority=priority, last_event_at=at)
    group = detail.get("candidateGroup")
    if live and group:
        clock = _clock_of(new)
        key = f"group:{group}"
        if key not in clock or clock[key][1] <= at:
            clock[key] = (True, at)
            new = _with_clock(new, clock)
    if event["type"] == "BRIDGE_ESCALATE":
        record("ESCALATE", event.get("actor") or "SYSTEM", row, new, detail.get("reason"),
               escalate_to=queue or group, data={"escalation_level": level})
    else:
        record("UPDATE", event.get("actor") or "SYSTEM", row, new, detail.get("reason"), data={"queue": queue})
    if new != row:
        fold.row, fold.changed = new, True


def _fold_migration(fold: TaskFold, event: dict[str, Any], record) -> None:
    """BRIDGE_MIGRATE: the instance moved to another version and this live task with it (Flowable keeps the task
    and changes its activity, name and definition in place). The new activity's queue (`migration.queue`, from the
    new version's metadata) and candidate groups come with it; the queue move is dated like any other, so an
    older overflow move arriving later loses. A task that ended before the move stays as it ended."""
    row, at = fold.row, event["timestamp"]
    if row.status in TASK_TERMINAL:
        return
    task = event.get("task") or {}
    detail = event.get("migration") or {}
    key = task.get("taskDefinitionKey") or row.task_definition_key
    new = _merge_candidates(row, task, at)
    if _newer(row, at):  # the task as the engine left it after the move (assignee and all)
        new = _snapshot(new, task, at)
    new = replace(new, task_definition_key=key, task_name=task.get("name") or new.task_name)
    queue = detail.get("queue")
    if queue and queue != row.queue_name:
        new = replace(new, queue_name=queue, queue_moved_at=at)
    record("MIGRATED", event.get("actor") or "SYSTEM", row, new, detail.get("reason"), data={
        "fromActivity": row.task_definition_key, "toActivity": key, "fromVersion": detail.get("fromVersion"),
        "toVersion": detail.get("toVersion"), "queue": new.queue_name})
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
                  last_event_at=event["timestamp"], queue_name=queue,
                  task_definition_key=task.get("taskDefinitionKey"))
    row = _merge_candidates(row, {"candidateGroups": task.get("candidateGroups") or [],
                                  "candidateUsers": task.get("candidateUsers") or []}, event["timestamp"])
    history = History(row.task_id, row.process_instance_id, "CREATE", "engine", event["timestamp"], None, row.status,
                      None, assignee, None, event["eventId"])
    return row, history
