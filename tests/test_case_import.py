"""Legacy cases imported where they stand (bridge/case_import.py, issue 18): the file is checked whole first
(every bad row listed with its line, nothing written), then each case starts at its activity in the real
engine with its variables, assignee, candidates and legacy dates; a rerun imports nothing twice; workers then
complete them through the bridge."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from bridge import case_import
from bridge.mirror.reconcile import resync_instances
from tests.helpers import app_client, drift_of, worker

KEY = "OneCMS_Nextgen_WF"
# Where the cases stand, with a case type that leads on from there (the department after triage follows it).
ACTIVITIES = [("triageCase", "QUALITY"), ("gatherEvidence", "FRAUD"), ("legalReview", "LEGAL_CLAIM"),
              ("complianceAssessment", "REGULATORY"), ("qualityReview", "QUALITY"), ("supervisorApproval", "QUALITY")]
ROLES = ["INTAKE_CLERK", "INTAKE_TRIAGE_OFFICER", "INVESTIGATOR", "INVESTIGATIONS_LEAD", "LEGAL_REVIEWER",
         "LEGAL_COUNSEL_LEAD", "COMPLIANCE_OFFICER", "QA_ANALYST", "CASE_SUPERVISOR", "CASE_MANAGER", "CASE_ADMIN"]


# -- the file alone ----------------------------------------------------------------------------------

def test_a_csv_file_reads_typed_variables_and_candidate_lists():
    cases = case_import.parse(
        "legacy_id,activity,assignee,candidate_groups,created_at,due_date,var.caseType,var.amount:integer,"
        "var.urgent:boolean,var.score:number\n"
        "L-1,legalReview,ann,LEGAL_REVIEWER; LEGAL_COUNSEL_LEAD,2025-03-01,2026-12-31T17:00:00+01:00,LEGAL_CLAIM,"
        "1200,true,0.5\n"
        "L-2,triageCase,,,,,QUALITY,,,\n", "csv")
    first, second = cases
    assert (first.legacy_id, first.activity, first.process_key, first.business_key) == (
        "L-1", "legalReview", KEY, "L-1")
    assert first.candidate_groups == ("LEGAL_REVIEWER", "LEGAL_COUNSEL_LEAD") and first.assignee == "ann"
    assert first.created_at == datetime(2025, 3, 1, tzinfo=UTC)
    assert first.due_date == datetime(2026, 12, 31, 16, 0, tzinfo=UTC)
    assert first.variables == {"caseType": "LEGAL_CLAIM", "amount": 1200, "urgent": True, "score": 0.5}
    assert second.variables == {"caseType": "QUALITY"} and second.candidate_groups is None
    assert first.instance_id == case_import.parse("legacy_id,activity\nL-1,x\n", "csv")[0].instance_id
    assert first.instance_id != second.instance_id and len(first.instance_id) <= 64


def test_every_bad_row_is_listed_with_its_line_and_nothing_is_returned():
    with pytest.raises(case_import.CaseImportError) as refused:
        case_import.parse(
            "legacy_id,activity,created_at,var.amount:integer,var.bad name\n"
            "A,triageCase,2025-01-01,12,\n"         # line 2: fine
            ",triageCase,,,\n"                        # line 3: no legacy id
            "B,triageCase,yesterday,,\n"              # line 4: a date that is not one
            "A,legalReview,,,\n"                      # line 5: A again
            "C,triageCase,,twelve,\n"                 # line 6: not a whole number
            "D,triageCase,,,x\n"                      # line 7: not a variable name
            "E,triageCase,2999-01-01,,\n", "csv")    # line 8: created in the future
    problems = refused.value.problems
    assert [p.split(":")[0] for p in problems] == ["line 3", "line 4", "line 5", "line 6", "line 7", "line 8"]
    assert "legacy_id is required" in problems[0] and "created_at" in problems[1]
    assert "first at line 2" in problems[2] and "whole number" in problems[3]
    assert "variable name" in problems[4] and "future" in problems[5]


def test_a_yaml_file_says_the_line_each_case_starts_on():
    cases = case_import.parse(
        "cases:\n"
        "  - legacy_id: 1001\n"
        "    activity: triageCase\n"
        "    variables: {caseType: QUALITY, severity: LOW, amount: 5}\n"
        "  - legacy_id: 1002\n"
        "    activity: legalReview\n"
        "    candidate_groups: [LEGAL_REVIEWER]\n"
        "    created_at: 2025-02-03T04:05:06Z\n", "yaml")
    assert [(c.line, c.legacy_id, c.variables) for c in cases] == [
        (2, "1001", {"caseType": "QUALITY", "severity": "LOW", "amount": 5}), (5, "1002", {})]
    with pytest.raises(case_import.CaseImportError) as refused:
        case_import.parse("- legacy_id: 1\n  activity: a\n- legacy_id: 2\n  variables: {v: [1, 2]}\n"
                          "- just text\n", "yaml")
    assert refused.value.problems == [
        "line 3: activity is required",
        "line 3: variables.v: text (up to 4000 characters), a number or true/false",
        "line 5: a case is a mapping of field: value"]
    for broken in ("{", "a: 1\n", ""):
        with pytest.raises(case_import.CaseImportError):
            case_import.parse(broken, "yaml")


# -- with the engine ---------------------------------------------------------------------------------

def _csv(rows: list[dict]) -> str:
    header = ["legacy_id", "activity", "assignee", "candidate_groups", "created_at", "due_date", "var.caseId",
              "var.caseType", "var.severity"]
    lines = [",".join(header)]
    for row in rows:
        lines.append(",".join(str(row.get(h, "")) for h in header))
    return "\n".join(lines) + "\n"


@pytest.mark.slow
@pytest.mark.usefixtures("onecms_deployed")
async def test_fifty_legacy_cases_start_where_they_stand_once_and_workers_finish_them(
        db, db_url, flowable, engine, aiohttp_client, tmp_path):
    run = uuid.uuid4().hex[:6]
    who = f"legacy_{run}"
    headers = await worker(db, who, *ROLES)
    created = datetime(2025, 6, 1, 9, 0, tzinfo=UTC)
    due = datetime.now(UTC).replace(microsecond=0) + timedelta(days=3)
    rows = []
    for n in range(50):
        activity, case_type = ACTIVITIES[n % len(ACTIVITIES)]
        rows.append({"legacy_id": f"OLD-{run}-{n}", "activity": activity,
                     "assignee": who if n % 5 == 0 else "", "candidate_groups": "CASE_ADMIN" if n % 7 == 0 else "",
                     "created_at": (created + timedelta(days=n)).isoformat(), "due_date": due.isoformat(),
                     "var.caseId": f"C{n}", "var.caseType": case_type, "var.severity": "LOW"})
    file = tmp_path / "legacy.csv"
    file.write_text(_csv(rows))
    cases = case_import.read_file(file)

    # a file with one bad row (an activity OneCMS does not have) imports nothing
    broken = case_import.parse(_csv([*rows[:3], {**rows[3], "legacy_id": f"X-{run}", "activity": "noSuchStep"}]),
                               "csv")
    with pytest.raises(case_import.CaseImportError) as refused:
        await case_import.run(db, flowable, broken, source="broken.csv", by=who)
    [problem] = refused.value.problems
    assert problem.startswith("line 5: 'noSuchStep' is not a user task of OneCMS_Nextgen_WF"), problem
    assert await _count(db, "SELECT count(*) FROM flowable.legacy_case_imports") == 0

    # an import killed after the engine started one case, before the mirror recorded it
    first = cases[0]
    definition = (await flowable.process_definitions(key=KEY, version=(await _active_version(db))))[0]["id"]
    await flowable.import_case({"processInstanceId": first.instance_id, "processDefinitionId": definition,
                                "businessKey": first.business_key, "activityId": first.activity,
                                "variables": first.variables, "assignee": first.assignee}, acting_user=who)

    report = await case_import.run(db, flowable, cases, source=file.name, by=who)
    assert report.counts == {"IMPORTED": 50} and report.stopped is None
    pids = [c.instance_id for c in cases]
    for case in cases:  # the engine: one instance per case, at its activity
        instances = await flowable.process_instances(businessKey=case.business_key)
        assert [i["id"] for i in instances] == [case.instance_id]
        tasks = await flowable.tasks(processInstanceId=case.instance_id)
        assert [t["taskDefinitionKey"] for t in tasks] == [case.activity]
        assert tasks[0]["assignee"] == case.assignee
        assert datetime.fromisoformat(tasks[0]["dueDate"].replace("Z", "+00:00")) == due
    async with db.connect() as conn:
        mirrored = {r.process_instance_id: r for r in await conn.execute(text(
            "SELECT p.process_instance_id, p.started_at, p.sla_due_date, p.metadata -> 'legacy' ->> 'legacyId' AS lid, "
            "t.task_definition_key, t.due_date, t.assignee_id, t.candidate_groups FROM flowable.process_instances p "
            "JOIN flowable.workflow_tasks t USING (process_instance_id) WHERE t.status IN ('OPEN', 'CLAIMED') "
            "AND p.process_instance_id = ANY(:ids)"), {"ids": pids})}
    assert len(mirrored) == 50
    for n, case in enumerate(cases):
        row = mirrored[case.instance_id]
        assert (row.lid, row.task_definition_key, row.assignee_id) == (case.legacy_id, case.activity, case.assignee)
        assert row.started_at == created + timedelta(days=n) and row.sla_due_date == due and row.due_date == due
        if n % 7 == 0:
            assert list(row.candidate_groups) == ["CASE_ADMIN"]
    assert len({ACTIVITIES[n % 6][0] for n in range(50)}) == 6
    assert await drift_of(db, flowable, pids) == []

    again = await case_import.run(db, flowable, case_import.read_file(file), source=file.name, by=who)
    assert again.counts == {"ALREADY_IMPORTED": 50}
    assert await _count(db, "SELECT count(*) FROM flowable.legacy_case_imports") == 50

    client = await app_client(aiohttp_client, db_url, engine)
    decisions = {"triageDecision": "ACCEPT", "approvalDecision": "APPROVE"}
    for _ in range(12):  # each pass finishes the open step of every case; the longest path has eight
        await resync_instances(db, flowable, pids)  # the tasks each completion created (no webhooks here)
        open_tasks = [t for pid in pids for t in await flowable.tasks(processInstanceId=pid)]
        if not open_tasks:
            break
        for task in open_tasks:
            if task["assignee"] is None:
                claimed = await client.post(f"/api/tasks/{task['id']}/claim", json={}, headers=headers)
                assert claimed.status == 200, await claimed.text()
            done = await client.post(f"/api/tasks/{task['id']}/complete", json={"variables": decisions},
                                     headers=headers)
            assert done.status == 200, await done.text()
    await resync_instances(db, flowable, pids)
    assert await _count(db, "SELECT count(*) FROM flowable.process_instances WHERE status = 'COMPLETED' "
                            "AND process_instance_id = ANY(:ids)", ids=pids) == 50
    assert await drift_of(db, flowable, pids) == []


async def _count(db, sql: str, **params) -> int:
    async with db.connect() as conn:
        return (await conn.execute(text(sql), params)).scalar()


async def _active_version(db) -> int:
    return await _count(db, "SELECT process_version FROM flowable.workflow_definitions WHERE process_key = :k "
                            "AND is_active", k=KEY)
