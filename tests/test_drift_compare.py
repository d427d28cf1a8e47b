"""mirror.drift.compare on hand-made states: what the mirror holds from after the engine read began is newer
than the read, not drift; the same rows from before it are differences."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bridge.flowable.client import engine_time
from bridge.mirror.drift import MirrorState, compare
from bridge.mirror.engine_state import EngineState

STARTED = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
KEY = "OneCMS_Nextgen_WF:1:def"


def engine_read() -> EngineState:
    """The engine as read from STARTED on: one running instance with one open, unassigned task."""
    state = EngineState(read_at=STARTED - timedelta(seconds=5), started_at=STARTED)
    state.processes["p1"] = {"id": "p1", "processDefinitionId": KEY, "businessKey": "case-1", "endTime": None,
                             "startTime": engine_time(STARTED - timedelta(hours=1)), "variables": []}
    state.tasks["t1"] = {"id": "t1", "processInstanceId": "p1", "taskDefinitionKey": "registerCase",
                         "name": "Register case", "assignee": None, "priority": 50, "dueDate": None,
                         "createTime": engine_time(STARTED - timedelta(hours=1)), "endTime": None,
                         "deleteReason": None, "candidateGroups": ["INTAKE_CLERK"], "candidateUsers": None}
    state.covers = {"p1"}
    return state


def mirror_changed_at(moment: datetime) -> MirrorState:
    """The mirror after pushes stamped `moment`: the task claimed and completed, a second task created, a
    decision variable set, and the instance ended."""
    at = engine_time(moment)
    mirror = MirrorState()
    mirror.processes["p1"] = {"process_instance_id": "p1", "status": "COMPLETED", "business_key": "case-1",
                              "completed_at": moment}
    mirror.tasks["t1"] = {"task_id": "t1", "process_instance_id": "p1", "status": "COMPLETED", "assignee_id": "ann",
                          "priority": 50, "task_name": "Register case", "due_date": None, "completed_at": moment,
                          "candidate_groups": ["INTAKE_CLERK"], "candidate_users": None, "last_event_at": at}
    mirror.tasks["t2"] = {"task_id": "t2", "process_instance_id": "p1", "status": "OPEN", "assignee_id": None,
                          "priority": 50, "task_name": "Triage case", "due_date": None, "completed_at": None,
                          "candidate_groups": ["INTAKE_TRIAGE_OFFICER"], "candidate_users": None,
                          "last_event_at": at}
    mirror.variables["p1"] = {"triageDecision": ("STRING", "ACCEPT")}
    mirror.variables_changed["p1"] = {"triageDecision": moment}
    return mirror


def test_changes_pushed_after_the_read_began_are_not_differences():
    comparison = compare(engine_read(), mirror_changed_at(STARTED + timedelta(milliseconds=300)))
    assert comparison.differences == [] and comparison.repair_events == []


@pytest.mark.parametrize("before", [timedelta(seconds=1), timedelta(minutes=10)])
def test_the_same_rows_from_before_the_read_began_are_differences(before):
    found = {(d.entity_id, d.field) for d in compare(engine_read(), mirror_changed_at(STARTED - before)).differences}
    assert found == {("p1", "status"), ("t1", "status"), ("t2", "exists"), ("p1", "variable triageDecision")}
