"""The mirror's task state machine (bridge/mirror/fold.py), event by event."""

from __future__ import annotations

import itertools

from bridge.mirror.fold import TaskFold, TaskRow, created_row, fold_task

_ids = itertools.count()


def ev(kind: str, at: str, **task) -> dict:
    return {"eventId": f"e{next(_ids)}", "type": kind, "timestamp": at, "entityType": "task",
            "task": {"id": "t1", "processInstanceId": "p1", **task}}


def link(kind: str, at: str, **identity) -> dict:
    return {"eventId": f"e{next(_ids)}", "type": kind, "timestamp": at, "entityType": "identityLink",
            "identityLink": {"type": "candidate", "taskId": "t1", **identity}}


def new_fold() -> TaskFold:
    row, _ = created_row(ev("TASK_CREATED", "2026-01-01T10:00:00.000Z", taskDefinitionKey="review",
                            candidateGroups=["LEGAL"]), queue="Q", sla_due_date=None)
    return TaskFold(row)


def run(fold: TaskFold, *events: dict) -> TaskRow:
    for event in events:
        fold_task(fold, event)
    return fold.row


def test_claim_complete_and_the_history_of_each_step():
    fold = new_fold()
    row = run(fold, ev("TASK_ASSIGNED", "2026-01-01T10:01:00.000Z", assignee="ann"),
              ev("TASK_COMPLETED", "2026-01-01T10:02:00.000Z", assignee="ann"))
    assert (row.status, row.assignee_id, row.completed_by) == ("COMPLETED", "ann", "ann")
    assert [(h.action_type, h.old_status, h.new_status) for h in fold.history] == [
        ("CLAIM", "OPEN", "CLAIMED"), ("COMPLETE", "CLAIMED", "COMPLETED")]


def test_a_late_assignment_after_completion_changes_nothing():
    fold = new_fold()
    run(fold, ev("TASK_COMPLETED", "2026-01-01T10:02:00.000Z"))
    before = fold.row
    run(fold, ev("TASK_ASSIGNED", "2026-01-01T10:01:00.000Z", assignee="ann"),
        ev("ENTITY_DELETED", "2026-01-01T10:03:00.000Z", deleteReason="cancelled"))
    assert fold.row == before and [h.action_type for h in fold.history] == ["COMPLETE"]


def test_an_older_change_loses_to_a_newer_one():
    fold = new_fold()
    run(fold, ev("TASK_ASSIGNED", "2026-01-01T10:05:00.000Z", assignee="bob"),
        ev("TASK_ASSIGNED", "2026-01-01T10:04:00.000Z", assignee="ann"),
        ev("TASK_PRIORITY_CHANGED", "2026-01-01T10:03:00.000Z", priority=99))
    assert (fold.row.assignee_id, fold.row.priority) == ("bob", 50)


def test_unclaim_reassign_and_the_delete_after_completion():
    fold = new_fold()
    run(fold, ev("TASK_ASSIGNED", "2026-01-01T10:01:00.000Z", assignee="ann"),
        ev("TASK_ASSIGNED", "2026-01-01T10:02:00.000Z", assignee="bob"),
        ev("TASK_ASSIGNED", "2026-01-01T10:03:00.000Z", assignee=None),
        ev("TASK_COMPLETED", "2026-01-01T10:04:00.000Z"),
        ev("ENTITY_DELETED", "2026-01-01T10:04:00.000Z", deleteReason=None))
    assert [h.action_type for h in fold.history] == ["CLAIM", "REASSIGN", "UNCLAIM", "COMPLETE"]
    assert (fold.row.status, fold.row.completed_by) == ("COMPLETED", "engine")


def test_cancellation_keeps_the_reason_and_candidates_follow_identity_links():
    fold = new_fold()
    run(fold, link("ENTITY_CREATED", "2026-01-01T10:01:00.000Z", userId="cid"),
        link("ENTITY_DELETED", "2026-01-01T10:01:00.000Z", groupId="LEGAL"),
        link("ENTITY_CREATED", "2026-01-01T10:01:00.000Z", groupId="COMPLIANCE"))
    assert (fold.row.candidate_groups, fold.row.candidate_users) == (("COMPLIANCE",), ("cid",))
    run(fold, ev("ENTITY_DELETED", "2026-01-01T10:02:00.000Z", deleteReason="boundary event (sla)"))
    assert (fold.row.status, fold.row.outcome_reason) == ("CANCELLED", "boundary event (sla)")
