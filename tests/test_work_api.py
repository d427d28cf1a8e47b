"""The queue work API on the real engine and PostgreSQL: claim-next, actions, reads under row-level security."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import text

from bridge import auth
from bridge.deploy import deploy_bpmn
from bridge.mirror.reconcile import resync_instances
from bridge.work.queues import change_queue
from tests.helpers import ONECMS_FILE, app_client, drift_of, worker
from tests.tcp_proxy import TcpProxy

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("onecms_deployed")]
KEY = "OneCMS_Nextgen_WF"


async def start_cases(flowable, db, count: int) -> list[str]:
    pids = []
    for n in range(count):
        pids.append((await flowable.start_process(KEY, business_key=f"w-{uuid.uuid4().hex[:8]}", variables={
            "caseId": 50000 + n, "caseType": "QUALITY", "severity": "LOW"}))["id"])
    await resync_instances(db, flowable, pids)  # webhooks do not reach this module's mirror: read them in
    return pids


async def test_eight_workers_drain_three_hundred_tasks_each_completed_exactly_once(
        db, db_url, flowable, engine, aiohttp_client):
    pids = await start_cases(flowable, db, 300)
    client = await app_client(aiohttp_client, db_url, engine)
    headers = [await worker(db, f"clerk{n}", "INTAKE_CLERK") for n in range(8)]
    done: list[str] = []

    async def drain(h: dict) -> None:
        while True:
            taken = await client.post("/api/work/next", json={"queues": ["INTAKE_REGISTRATION"]}, headers=h)
            if taken.status == 204:
                return
            assert taken.status == 200, await taken.text()
            task = await taken.json()
            completed = await client.post(f"/api/tasks/{task['task_id']}/complete", json={}, headers=h)
            assert completed.status == 200, await completed.text()
            done.append(task["task_id"])

    await asyncio.gather(*(drain(h) for h in headers))
    assert len(done) == len(set(done)) == 300

    historic = {}
    for pid in pids:  # the engine: every registration completed, once, by the worker that took it
        rows = await flowable.request("GET", "history/historic-task-instances",
                                      params={"processInstanceId": pid, "taskDefinitionKey": "registerCase"})
        historic.update({t["id"]: t for t in rows["data"]})
    assert set(historic) == set(done)
    assert all(t["endTime"] and t["deleteReason"] is None and t["assignee"].startswith("clerk")
               for t in historic.values())
    async with db.connect() as conn:
        completes = (await conn.execute(text(
            "SELECT task_id, count(*) FROM flowable.task_history WHERE action_type = 'COMPLETE' "
            "AND task_id = ANY(:t) GROUP BY task_id"), {"t": done})).all()
    assert len(completes) == 300 and all(n == 1 for _, n in completes)

    await resync_instances(db, flowable, pids)  # the triage tasks the completions created
    assert await drift_of(db, flowable, pids) == []


async def test_a_task_claimed_directly_in_the_engine_is_skipped_not_double_claimed(
        db, db_url, flowable, engine, aiohttp_client):
    first, second = await start_cases(flowable, db, 2)
    taken_elsewhere = (await flowable.tasks(processInstanceId=first))[0]
    await flowable.claim_task(taken_elsewhere["id"], "outsider")  # the mirror has not heard of it
    client = await app_client(aiohttp_client, db_url, engine)
    h = await worker(db, "eve", "INTAKE_CLERK")

    taken = await client.post("/api/work/next", json={"queues": ["INTAKE_REGISTRATION"]}, headers=h)
    assert taken.status == 200
    task = await taken.json()
    assert task["process_instance_id"] == second
    assert (await flowable.task(taken_elsewhere["id"]))["assignee"] == "outsider"
    async with db.connect() as conn:
        row = (await conn.execute(text("SELECT status, assignee_id FROM flowable.workflow_tasks WHERE task_id = :t"),
                                  {"t": taken_elsewhere["id"]})).one()
    assert tuple(row) == ("CLAIMED", "outsider")  # corrected from the engine, not claimed twice


async def test_users_see_and_act_only_on_their_queues_and_an_expired_grant_loses_access_at_once(
        db, db_url, flowable, engine, aiohttp_client):
    (pid,) = await start_cases(flowable, db, 1)
    task_id = (await flowable.tasks(processInstanceId=pid))[0]["id"]
    client = await app_client(aiohttp_client, db_url, engine)
    clerk = await worker(db, "cleo", "INTAKE_CLERK")
    analyst = await worker(db, "quinn", "QA_ANALYST")

    listed = await (await client.get("/api/tasks?queue=INTAKE_REGISTRATION", headers=clerk)).json()
    assert task_id in [t["task_id"] for t in listed["tasks"]]
    assert (await client.get(f"/api/tasks/{task_id}", headers=clerk)).status == 200

    assert [t["task_id"] for t in (await (await client.get("/api/tasks", headers=analyst)).json())["tasks"]] == []
    assert (await client.get(f"/api/tasks/{task_id}", headers=analyst)).status == 404
    for verb, body in (("claim", {}), ("complete", {}), ("comment", {"message": "hi"}), ("escalate", {"reason": "x"})):
        assert (await client.post(f"/api/tasks/{task_id}/{verb}", json=body, headers=analyst)).status == 404, verb
    assert (await client.post("/api/work/next", json={}, headers=analyst)).status == 204
    assert (await client.get("/api/tasks")).status == 401

    async with db.begin() as conn:
        await conn.execute(text("UPDATE entitlements.user_workflow_roles SET valid_from = now() - interval '2 hours', "
                                "valid_until = now() - interval '1 second' "
                                "WHERE user_id = 'cleo'"))
    assert (await client.get(f"/api/tasks/{task_id}", headers=clerk)).status == 404
    assert (await client.post(f"/api/tasks/{task_id}/claim", json={}, headers=clerk)).status == 404


async def test_claim_delegate_comment_and_history_with_the_acting_user(db, db_url, flowable, engine, aiohttp_client):
    (pid,) = await start_cases(flowable, db, 1)
    task_id = (await flowable.tasks(processInstanceId=pid))[0]["id"]
    client = await app_client(aiohttp_client, db_url, engine)
    h = await worker(db, "dana", "INTAKE_CLERK")

    assert (await client.post(f"/api/tasks/{task_id}/complete", json={}, headers=h)).status == 409  # not hers yet
    claimed = await client.post(f"/api/tasks/{task_id}/claim", json={}, headers={**h, "User-Agent": "case-ui/1"})
    assert claimed.status == 200 and (await claimed.json())["status"] == "CLAIMED"
    assert (await flowable.task(task_id))["assignee"] == "dana"
    assert (await client.post(f"/api/tasks/{task_id}/comment", json={"message": "checked the ID"},
                              headers=h)).status == 200
    delegated = await client.post(f"/api/tasks/{task_id}/delegate", json={"to": "sam"}, headers=h)
    assert delegated.status == 200
    engine_task = await flowable.task(task_id)
    assert (engine_task["assignee"], engine_task["delegationState"]) == ("sam", "pending")
    detail = await (await client.get(f"/api/tasks/{task_id}", headers=h)).json()
    assert detail["status"] == "DELEGATED" and detail["assignee_id"] == "sam"
    assert [(r["action_type"], r["action_by"]) for r in detail["history"]][-3:] == [
        ("CLAIM", "dana"), ("COMMENT", "dana"), ("DELEGATE", "dana")]
    async with db.connect() as conn:
        info = (await conn.execute(text("SELECT client_info FROM flowable.task_history WHERE task_id = :t "
                                        "AND action_type = 'CLAIM'"), {"t": task_id})).scalar()
    assert info["userAgent"] == "case-ui/1"
    bad = await client.post(f"/api/tasks/{task_id}/delegate", json={"to": ""}, headers=h)
    assert bad.status == 400


async def test_engine_down_during_complete_is_503_and_the_same_idempotency_key_completes_once(
        db, db_url, flowable, engine, aiohttp_client):
    (pid,) = await start_cases(flowable, db, 1)
    task_id = (await flowable.tasks(processInstanceId=pid))[0]["id"]
    proxy = await TcpProxy("127.0.0.1", engine.port).start()
    client = await app_client(aiohttp_client, db_url, engine, f"http://127.0.0.1:{proxy.port}/process-api")
    h = await worker(db, "finn", "INTAKE_CLERK")
    assert (await client.post(f"/api/tasks/{task_id}/claim", json={}, headers=h)).status == 200

    await proxy.cut()
    retry = {**h, "Idempotency-Key": "complete-1"}
    down = await client.post(f"/api/tasks/{task_id}/complete", json={"outcome": "REGISTERED"}, headers=retry)
    assert down.status == 503 and down.headers["Retry-After"] == "5"
    assert (await flowable.task(task_id))["assignee"] == "finn"  # still open and claimed in the engine
    detail = await (await client.get(f"/api/tasks/{task_id}", headers=h)).json()
    assert detail["status"] == "CLAIMED"

    await proxy.restore()
    done = await client.post(f"/api/tasks/{task_id}/complete", json={"outcome": "REGISTERED"}, headers=retry)
    assert done.status == 200, await done.text()
    again = await client.post(f"/api/tasks/{task_id}/complete", json={"outcome": "REGISTERED"}, headers=retry)
    assert again.status == 200 and again.headers.get("Idempotent-Replayed") == "true"
    assert await again.json() == await done.json()
    other = await client.post(f"/api/tasks/{task_id}/complete", json={"outcome": "OTHER"}, headers=retry)
    assert other.status == 422
    await proxy.cut()

    history = await flowable.request("GET", "history/historic-task-instances", params={"taskId": task_id})
    assert history["data"][0]["endTime"] is not None
    variables = {v["name"]: v["value"] for v in (await flowable.request(
        "GET", "history/historic-variable-instances", params={"processInstanceId": pid}))["data"]
        for v in [v["variable"]]}
    assert variables["outcome"] == "REGISTERED"
    async with db.connect() as conn:
        rows = (await conn.execute(text("SELECT status, outcome FROM flowable.workflow_tasks WHERE task_id = :t"),
                                   {"t": task_id})).one()
        completes = (await conn.execute(text("SELECT count(*) FROM flowable.task_history WHERE task_id = :t "
                                             "AND action_type = 'COMPLETE'"), {"t": task_id})).scalar()
    assert tuple(rows) == ("COMPLETED", "REGISTERED") and completes == 1


async def test_escalation_keeps_work_takeable_first_raises_priority_in_the_engine_and_climbs(
        db, db_url, flowable, engine, aiohttp_client):
    from bridge.work.escalation import escalate_once

    first, second, third = await start_cases(flowable, db, 3)
    late = (await flowable.tasks(processInstanceId=first))[0]["id"]
    claimed_late = (await flowable.tasks(processInstanceId=second))[0]["id"]
    on_time = (await flowable.tasks(processInstanceId=third))[0]["id"]
    client = await app_client(aiohttp_client, db_url, engine)
    h = await worker(db, "gus", "INTAKE_CLERK")
    assert (await client.post(f"/api/tasks/{claimed_late}/claim", json={}, headers=h)).status == 200
    async with db.begin() as conn:  # due dates in the past
        await conn.execute(text("UPDATE flowable.workflow_tasks SET due_date = now() - interval '20 seconds' "
                                "WHERE task_id = ANY(:t)"), {"t": [late, claimed_late]})
    admin = await worker(db, "quinn", "QUEUE_ADMIN")  # the queue's escalation rules, as an operator sets them
    changed = await client.put("/api/queues/INTAKE_REGISTRATION", headers=admin, json={
        "slaMinutes": 1, "escalation": {"raisePriorityBy": 15, "notifyRole": "CASE_SUPERVISOR"}})
    assert changed.status == 200, await changed.text()

    round_one = await escalate_once(db, flowable)
    assert {t["task_id"]: (t["status"], t["escalation_level"], t["priority"]) for t in round_one.escalated
            if t["task_id"] in (late, claimed_late, on_time)} == {late: ("OPEN", 1, 65),
                                                                  claimed_late: ("CLAIMED", 1, 65)}
    assert (await flowable.task(late))["priority"] == 65  # the engine too
    links = await flowable.task_identity_links(late)
    assert {link["group"] for link in links if link["type"] == "candidate"} == {"INTAKE_CLERK", "CASE_SUPERVISOR"}
    supervisor = await worker(db, "sue", "CASE_SUPERVISOR")
    assert (await client.get(f"/api/tasks/{late}", headers=supervisor)).status == 200  # now visible to them
    assert (await flowable.task(claimed_late))["assignee"] == "gus"  # escalation takes nothing away
    assert [t for t in (await escalate_once(db, flowable)).escalated if t["task_id"] in (late, claimed_late)] == []

    # still overdue one SLA interval (1 minute here) later: the next level
    async with db.begin() as conn:
        await conn.execute(text("UPDATE flowable.workflow_tasks SET due_date = now() - interval '90 seconds' "
                                "WHERE task_id = ANY(:t)"), {"t": [late, claimed_late]})
    climbed = {t["task_id"]: t["escalation_level"] for t in (await escalate_once(db, flowable)).escalated}
    assert (climbed.get(late), climbed.get(claimed_late)) == (2, 2)
    assert (await flowable.task(late))["priority"] == 80

    # the escalated open task stays takeable, and is offered before the on-time one
    other = await worker(db, "ivy", "INTAKE_CLERK")
    taken = await client.post("/api/work/next", json={"queues": ["INTAKE_REGISTRATION"]}, headers=other)
    assert taken.status == 200 and (await taken.json())["task_id"] == late
    assert (await flowable.task(late))["assignee"] == "ivy"
    detail = await (await client.get(f"/api/tasks/{claimed_late}", headers=h)).json()
    assert (detail["status"], detail["escalation_level"], detail["priority"]) == ("CLAIMED", 2, 80)
    assert [(r["action_type"], r["old_status"], r["new_status"]) for r in detail["history"]][-1] == (
        "ESCALATE", "CLAIMED", "CLAIMED")
    # the owner completes an escalated task as any other of theirs; a user escalates by hand a level more
    assert (await client.post(f"/api/tasks/{claimed_late}/complete", json={}, headers=h)).status == 200
    by_hand = await client.post(f"/api/tasks/{on_time}/escalate", json={"reason": "customer called"}, headers=other)
    assert by_hand.status == 200 and (await by_hand.json())["escalationLevel"] == 1, await by_hand.text()
    assert (await flowable.task(on_time))["priority"] == 65
    # mirror and engine agree on status, assignee, priority and candidates (the due dates were moved in the mirror
    # alone; the second case's next task was never pushed to this module's mirror)
    assert [d for d in await drift_of(db, flowable, [first, third]) if "due_date" not in d] == []


async def test_only_one_bridge_escalates_at_a_time(db, flowable):
    from bridge.work.escalation import escalate_once

    async with db.connect() as other:
        await other.execute(text("SELECT pg_advisory_lock(hashtext('bridge.escalation'))"))
        assert (await escalate_once(db, flowable)).skipped
        await other.execute(text("SELECT pg_advisory_unlock(hashtext('bridge.escalation'))"))
        await other.commit()
    assert not (await escalate_once(db, flowable)).skipped


async def test_a_case_starts_its_workflow_and_shows_where_it_stands(db, db_url, flowable, engine, aiohttp_client):
    client = await app_client(aiohttp_client, db_url, engine)
    h = await worker(db, "hana", "INTAKE_CLERK")
    started = await client.post("/api/cases/777001/workflows", headers=h, json={
        "process_key": KEY, "variables": {"caseType": "FRAUD", "severity": "LOW"}})
    assert started.status == 201, await started.text()
    workflow = await started.json()
    assert (workflow["caseId"], workflow["workflowType"], workflow["status"], workflow["currentDepartment"],
            workflow["currentPhase"], workflow["initiatedBy"]) == (
        777001, KEY, "ACTIVE", "INTAKE", "registerCase", "hana")
    engine_view = await flowable.process_instance(workflow["processInstanceId"])
    assert engine_view["businessKey"] == "777001"

    shown = await (await client.get("/api/cases/777001", headers=h)).json()
    assert [w["processInstanceId"] for w in shown["workflows"]] == [workflow["processInstanceId"]]
    assert shown["workflows"][0]["routingHistory"][0]["department"] == "INTAKE"

    assert (await client.get("/api/cases/777002", headers=h)).status == 404
    assert (await client.get("/api/cases/abc", headers=h)).status == 400
    unknown = await client.post("/api/cases/777001/workflows", headers=h, json={"process_key": "NoSuchFlow"})
    assert unknown.status == 404 and "deploy it first" in (await unknown.json())["error"]
    bad_vars = await client.post("/api/cases/777001/workflows", headers=h,
                                 json={"process_key": KEY, "variables": {"bad name": 1}})
    assert bad_vars.status == 400
    # The engine stored 0 for 2**127 and the long's limit for -2**63 - 1, without a word: refused here instead.
    # A big number inside an object (a json variable) the engine keeps as it is.
    for huge in (2**127, -2**63 - 1):
        refused = await client.post("/api/cases/777003/workflows", headers=h,
                                    json={"process_key": KEY, "variables": {"amount": huge}})
        assert refused.status == 400 and (await refused.json())["error"].startswith("variables.amount: a whole number")
    for constant in (b"NaN", b"Infinity"):  # Python's json reads them; JSON has no such numbers
        refused = await client.post("/api/cases/777003/workflows", data=b'{"process_key": "%s", "variables": '
                                    b'{"amount": %s}}' % (KEY.encode(), constant),
                                    headers={**h, "Content-Type": "application/json"})
        assert refused.status == 400 and "is not a JSON number" in (await refused.json())["error"]
    assert (await client.get("/api/cases/777003", headers=h)).status == 404  # nothing was started
    kept = await client.post("/api/cases/777004/workflows", headers=h, json={
        "process_key": KEY, "variables": {"caseType": "FRAUD", "severity": "LOW", "ledger": {"total": 2**127}}})
    assert kept.status == 201
    ledger = await flowable.request(
        "GET", f"runtime/process-instances/{(await kept.json())['processInstanceId']}/variables/ledger")
    assert (ledger["type"], ledger["value"]) == ("json", {"total": 2**127})


async def test_a_start_the_workflow_declares_invalid_is_refused_naming_each_problem(db, db_url, flowable, engine,
                                                                                    aiohttp_client):
    """OneCMS declares caseType and severity as required start variables with allowed values
    (<onecms:entryCriteria>): without severity the first task could never complete (its gateway reads it)."""
    client = await app_client(aiohttp_client, db_url, engine)
    h = await worker(db, "hana", "INTAKE_CLERK")
    for variables, problems in (
            ({"caseType": "FRAUD"}, ["severity: required"]),
            ({"caseType": "SPACE_ALIENS", "severity": "LOW"},
             ["caseType: 'SPACE_ALIENS' is not one of FRAUD, LEGAL_CLAIM, REGULATORY, QUALITY, GENERAL"]),
            ({"severity": "low", "caseType": None},
             ["caseType: required", "severity: 'low' is not one of LOW, MEDIUM, HIGH, CRITICAL"]),
            (None, ["caseType: required", "severity: required"])):
        refused = await client.post("/api/cases/777010/workflows", headers=h,
                                    json={"process_key": KEY, "variables": variables})
        assert refused.status == 422, await refused.text()
        answer = await refused.json()
        assert answer["problems"] == problems and all(p in answer["error"] for p in problems)
    assert await flowable.process_instances(businessKey="777010") == []  # nothing was started
    assert (await client.get("/api/cases/777010", headers=h)).status == 404


async def test_round_robin_auto_assignment_spreads_evenly_and_respects_max_tasks_per_user(db, flowable):
    from bridge.work.assignment import auto_assign_once

    for name in ("ada", "bea", "cy"):
        await worker(db, name, "INTAKE_CLERK")
    async with db.begin() as conn:
        await change_queue(conn, "INTAKE_REGISTRATION", {"autoAssign": True, "assignmentStrategy": "ROUND_ROBIN",
                                                         "maxTasksPerUser": 10}, by="test", source="test")
        with pytest.raises(Exception, match="chk_assignment_strategy"):
            async with conn.begin_nested():
                await conn.execute(text("UPDATE flowable.queue_assignments SET assignment_strategy = 'RANDOM'"))
    pids = await start_cases(flowable, db, 30)

    first = await auto_assign_once(db, flowable)
    ours = {t: u for t, u in first.assigned.items()}
    assert len(ours) == 30
    per_user = {u: sum(1 for v in ours.values() if v == u) for u in ("ada", "bea", "cy")}
    assert per_user == {"ada": 10, "bea": 10, "cy": 10}
    engine_assignees = {}
    for pid in pids:
        engine_assignees.update({t["id"]: t["assignee"] for t in await flowable.tasks(processInstanceId=pid)})
    assert engine_assignees == ours  # the engine agrees, task by task

    more = await start_cases(flowable, db, 3)
    second = await auto_assign_once(db, flowable)
    assert second.assigned == {} and second.waiting == 3  # everyone holds max_tasks_per_user
    for pid in more:
        assert [t["assignee"] for t in await flowable.tasks(processInstanceId=pid)] == [None]
    async with db.connect() as conn:
        history = (await conn.execute(text(
            "SELECT action_by, comments FROM flowable.task_history WHERE task_id = :t AND action_type = 'CLAIM'"),
            {"t": next(iter(ours))})).one()
    assert tuple(history) == ("SYSTEM", "auto-assigned (ROUND_ROBIN)")


async def test_entitlements_import_grants_and_revokes_access_at_once_and_is_all_or_nothing(
        db, db_url, flowable, engine, aiohttp_client, tmp_path):
    import subprocess
    import sys

    (pid,) = await start_cases(flowable, db, 1)
    task_id = (await flowable.tasks(processInstanceId=pid))[0]["id"]
    client = await app_client(aiohttp_client, db_url, engine)
    async with db.begin() as conn:  # migration 0017's built-in role (the conn fixture empties the role table)
        await conn.execute(text("INSERT INTO entitlements.workflow_roles (role_code, role_name, role_type) "
                                "VALUES ('ENTITLEMENTS_ADMIN', 'Entitlements administrator', 'SYSTEM')"))
    admin = await worker(db, "root", "ENTITLEMENTS_ADMIN")
    yaml_headers = {**admin, "Content-Type": "application/yaml"}
    grant = """
departments:
  - {code: FRONT_DESK, name: Front desk, parent: INTAKE}
users:
  - id: ivy
    department: FRONT_DESK
    grants:
      - {role: INTAKE_CLERK, valid_from: "2020-01-01T00:00:00Z"}
"""
    imported = await client.post("/api/admin/entitlements", data=grant, headers=yaml_headers)
    assert imported.status == 200, await imported.text()
    assert await imported.json() == {"departments": 1, "users": 1, "grants": 1}
    async with db.begin() as conn:
        ivy = {"Authorization": f"Bearer {await auth.create_token(conn, 'ivy')}"}
    assert (await client.get(f"/api/tasks/{task_id}", headers=ivy)).status == 200

    expired = grant.replace('valid_from: "2020-01-01T00:00:00Z"',
                            'valid_from: "2020-01-01T00:00:00Z", valid_until: "2021-01-01T00:00:00Z"')
    assert (await client.post("/api/admin/entitlements", data=expired, headers=yaml_headers)).status == 200
    assert (await client.get(f"/api/tasks/{task_id}", headers=ivy)).status == 404  # at once

    broken = """
users:
  - id: zed
    grants:
      - {role: NO_SUCH_ROLE}
      - {role: INTAKE_CLERK, valid_from: "2026-05-01T00:00:00Z", valid_until: "2026-04-01T00:00:00Z"}
      - {role: INTAKE_CLERK, valid_until: "soon"}
"""
    refused = await client.post("/api/admin/entitlements", data=broken, headers=yaml_headers)
    assert refused.status == 422
    problems = (await refused.json())["problems"]
    assert problems == ["users[0].grants[0]: no role 'NO_SUCH_ROLE' (roles come from deployed BPMN)",  # one answer
                        "users[0].grants[1]: valid_until must be after valid_from",
                        "users[0].grants[2]: INTAKE_CLERK granted to zed again (first at users[0].grants[1])",
                        "users[0].grants[2].valid_until: not an ISO-8601 date-time: 'soon'"]
    unknown = await client.post("/api/admin/entitlements", headers=yaml_headers,
                                data="users:\n  - id: zed\n    grants: [{role: NO_SUCH_ROLE}]\n")
    assert (await unknown.json())["problems"] == [
        "users[0].grants[0]: no role 'NO_SUCH_ROLE' (roles come from deployed BPMN)"]
    async with db.connect() as conn:
        assert (await conn.execute(text("SELECT count(*) FROM entitlements.users WHERE user_id = 'zed'"))).scalar() == 0
    clerk = await worker(db, "jo", "INTAKE_CLERK")
    assert (await client.post("/api/admin/entitlements", data=grant,
                              headers={**clerk, "Content-Type": "application/yaml"})).status == 403

    # CSV over HTTP: CRLF line ends are CSV too; what the csv module cannot read is a 422 naming the line
    # (schemathesis found a lone CR answered with a 500).
    csv_headers = {**admin, "Content-Type": "text/csv"}
    crlf = await client.post("/api/admin/entitlements", headers=csv_headers,
                             data="user_id,role\r\nivy,INTAKE_CLERK\r\n")
    assert crlf.status == 200 and (await crlf.json())["grants"] == 1
    for body, problem in (("\u00d0Hpu\rx", "line 1: the header must name user_id"),
                          ("user_id,role\nzed,\"" + "x" * 200_000 + "\"\n", "line 2: not CSV: field larger than")):
        refused = await client.post("/api/admin/entitlements", headers=csv_headers, data=body.encode())
        assert refused.status == 422, await refused.text()
        assert (await refused.json())["problems"][0].startswith(problem)

    # YAML of the wrong shapes or types: each a 422 naming the place, not a 500 (a date-time without a zone
    # beside one with a zone made the window check raise TypeError; lists that were numbers, likewise).
    odd = """
departments: [{code: ANNEX, parent: [INTAKE]}]
users:
  - {id: una, email: 5, active: maybe, grants: 7}
  - id: uli
    grants: [{role: INTAKE_CLERK, valid_from: "2027-01-01T00:00:00Z", valid_until: "2026-06-01T00:00:00"}]
"""
    refused = await client.post("/api/admin/entitlements", data=odd, headers=yaml_headers)
    assert refused.status == 422, await refused.text()
    assert (await refused.json())["problems"] == [
        "departments[0].parent: text of up to 50 characters, not ['INTAKE']", "users[0].grants: a list, not int",
        "users[0].active: true or false, not 'maybe'", "users[0].email: text of up to 255 characters, not 5",
        "users[1].grants[0]: valid_until must be after valid_from"]
    dated = "users:\n  - {id: uli, grants: [{role: INTAKE_CLERK, valid_from: 2020-01-01}]}\n"  # a YAML date: UTC
    assert (await client.post("/api/admin/entitlements", data=dated, headers=yaml_headers)).status == 200
    async with db.connect() as conn:
        since = (await conn.execute(text("SELECT valid_from FROM entitlements.user_workflow_roles "
                                         "WHERE user_id = 'uli'"))).scalar()
    assert since == datetime(2020, 1, 1, tzinfo=UTC)

    csv_file = tmp_path / "grants.csv"
    csv_file.write_text("user_id,role,valid_from,valid_until,email\nkim,INTAKE_CLERK,,,kim@example.org\n"
                        "kim,QA_ANALYST,2020-01-01T00:00:00Z,,\n")
    env = {**__import__("os").environ, "DATABASE_URL": db_url}
    ran = await asyncio.to_thread(subprocess.run,
                                  [sys.executable, "-m", "bridge.cli", "users", "import", str(csv_file)],
                                  env=env, capture_output=True, text=True, timeout=120)
    assert ran.returncode == 0, ran.stderr
    assert "1 user(s), 2 grant(s) imported" in ran.stdout
    bad_csv = tmp_path / "bad.csv"
    bad_csv.write_text("user_id,role\nlou,NOPE\n")
    ran = await asyncio.to_thread(subprocess.run,
                                  [sys.executable, "-m", "bridge.cli", "users", "import", str(bad_csv)],
                                  env=env, capture_output=True, text=True, timeout=120)
    assert ran.returncode == 1 and "line 2: no role 'NOPE'" in ran.stderr


async def test_queue_settings_are_shown_changed_by_an_admin_all_or_nothing_recorded_and_take_effect(
        db, db_url, flowable, engine, aiohttp_client, tmp_path):
    client = await app_client(aiohttp_client, db_url, engine)
    clerk = await worker(db, "cal", "INTAKE_CLERK")
    admin = await worker(db, "ada.admin", "QUEUE_ADMIN")
    # what the OneCMS file declares, applied when it was deployed
    shipped = await (await client.get("/api/queues/LEGAL_REVIEW", headers=clerk)).json()
    assert shipped["settings"] == {
        "slaMinutes": 480, "maxCapacity": 200, "overflowQueue": "LEGAL_ESCALATION",
        "escalation": {"raisePriorityBy": 10, "notifyRole": "LEGAL_COUNSEL_LEAD"},
        "autoAssign": True, "assignmentStrategy": "LEAST_LOADED", "maxTasksPerUser": 8}
    assert shipped["changes"][-1]["source"] == f"deploy {ONECMS_FILE.name}"
    listed = await (await client.get("/api/queues", headers=clerk)).json()
    assert {"LEGAL_REVIEW", "INTAKE_REGISTRATION", "CASE_CLOSURE"} <= {q["name"] for q in listed["queues"]}

    queue = "COMPLIANCE_SIGNOFF"
    before = await (await client.get(f"/api/queues/{queue}", headers=clerk)).json()
    assert (await client.put(f"/api/queues/{queue}", headers=clerk, json={"maxTasksPerUser": 1})).status == 403
    refused = await client.put(f"/api/queues/{queue}", headers=admin, json={
        "autoAssign": "yes", "maxTasksPerUser": 0, "overflowQueue": "NOWHERE", "colour": "red",
        "escalation": {"notifyRole": "NOBODY", "speed": 2}})
    assert refused.status == 422
    assert sorted((await refused.json())["problems"]) == sorted([
        "autoAssign: true or false", "maxTasksPerUser: a whole number from 1 to 10000",
        "colour: not a queue setting (the settings are slaMinutes, maxCapacity, overflowQueue, escalation, "
        "autoAssign, assignmentStrategy, maxTasksPerUser)",
        "escalation: speed not known; it takes raisePriorityBy, moveToQueue, notifyRole, maxLevel",
        "overflowQueue: no queue NOWHERE"])
    assert await (await client.get(f"/api/queues/{queue}", headers=clerk)).json() == before  # nothing changed
    assert (await client.put("/api/queues/NO_SUCH_QUEUE", headers=admin, json={"slaMinutes": 5})).status == 404
    assert (await client.get("/api/queues/NO_SUCH_QUEUE", headers=clerk)).status == 404

    # a cap of one task per person: the second claim-next in the queue finds nothing for the same person
    changed = await client.put(f"/api/queues/{queue}", headers=admin, json={
        "maxTasksPerUser": 1, "escalation": {"raisePriorityBy": 30, "moveToQueue": "SUPERVISOR_ESCALATION"}})
    assert changed.status == 200, await changed.text()
    shown = await changed.json()
    assert (shown["settings"]["maxTasksPerUser"], shown["settings"]["escalation"]) == (
        1, {"raisePriorityBy": 30, "moveToQueue": "SUPERVISOR_ESCALATION"})
    latest = shown["changes"][0]
    assert (latest["by"], latest["source"], latest["before"]["maxTasksPerUser"], latest["after"]) == (
        "ada.admin", "api", before["settings"]["maxTasksPerUser"],
        {"escalation": {"raisePriorityBy": 30, "moveToQueue": "SUPERVISOR_ESCALATION"}, "maxTasksPerUser": 1})
    pids = await start_cases(flowable, db, 2)
    async with db.begin() as conn:  # two open tasks in the queue, without walking two cases to their sign-offs
        await conn.execute(text("UPDATE flowable.workflow_tasks SET queue_name = :q "
                                "WHERE process_instance_id = ANY(:p)"), {"q": queue, "p": pids})
    officer = await worker(db, "cora", "COMPLIANCE_OFFICER")
    taken = await client.post("/api/work/next", json={"queues": [queue]}, headers=officer)
    assert taken.status == 200, await taken.text()
    assert (await client.post("/api/work/next", json={"queues": [queue]}, headers=officer)).status == 204

    # the same from the command line, recorded as the operator
    env = {**os.environ, "DATABASE_URL": db_url}
    ran = await asyncio.to_thread(subprocess.run,
                                  [sys.executable, "-m", "bridge.cli", "queues", "set", queue, "maxTasksPerUser=3",
                                   "escalation={}", "--by", "ops.olga"],
                                  env=env, capture_output=True, text=True, timeout=120)
    assert ran.returncode == 0, ran.stderr
    assert "maxTasksPerUser: 3" in ran.stdout and "escalation: {}" in ran.stdout
    ran = await asyncio.to_thread(subprocess.run,
                                  [sys.executable, "-m", "bridge.cli", "queues", "set", queue,
                                   "assignmentStrategy=FASTEST"],
                                  env=env, capture_output=True, text=True, timeout=120)
    assert ran.returncode == 1 and "assignmentStrategy: one of ROUND_ROBIN, LEAST_LOADED" in ran.stderr
    ran = await asyncio.to_thread(subprocess.run,
                                  [sys.executable, "-m", "bridge.cli", "queues", "show", queue, "--json"],
                                  env=env, capture_output=True, text=True, timeout=120)
    assert ran.returncode == 0, ran.stderr
    assert [(c["by"], c["source"]) for c in json.loads(ran.stdout)["changes"][:2]] == [
        ("ops.olga", "cli"), ("ada.admin", "api")]
    assert (await client.post("/api/work/next", json={"queues": [queue]}, headers=officer)).status == 200


async def test_least_loaded_auto_assignment_and_overflow_when_over_capacity(db, flowable):
    from bridge.work.assignment import auto_assign_once

    for name in ("lee", "max"):
        await worker(db, name, "INTAKE_CLERK")
    async with db.begin() as conn:
        await change_queue(conn, "INTAKE_REGISTRATION", {"autoAssign": True, "assignmentStrategy": "LEAST_LOADED"},
                           by="test", source="test")
    await start_cases(flowable, db, 1)
    assert set((await auto_assign_once(db, flowable)).assigned.values()) == {"lee"}  # ties: user id
    await start_cases(flowable, db, 3)
    assigned = (await auto_assign_once(db, flowable)).assigned
    # max held none, lee one: max gets the next, then they are level again and lee (by id), then max
    assert sorted(assigned.values()) == ["lee", "max", "max"]

    async with db.begin() as conn:  # the queue is full: new work overflows instead of being assigned
        await change_queue(conn, "INTAKE_REGISTRATION", {"maxCapacity": 2, "overflowQueue": "INTAKE_TRIAGE"},
                           by="test", source="test")
    (late,) = await start_cases(flowable, db, 1)
    late_task = (await flowable.tasks(processInstanceId=late))[0]["id"]
    overflow = await auto_assign_once(db, flowable)
    assert overflow.assigned == {} and overflow.overflowed == {late_task: "INTAKE_TRIAGE"}
    async with db.connect() as conn:
        row = (await conn.execute(text("SELECT queue_name, status FROM flowable.workflow_tasks WHERE task_id = :t"),
                                  {"t": late_task})).one()
    assert tuple(row) == ("INTAKE_TRIAGE", "OPEN")


async def test_digits_that_are_not_ascii_are_a_bad_case_id_not_a_crash(db, db_url, engine, aiohttp_client):
    client = await app_client(aiohttp_client, db_url, engine)
    h = await worker(db, "uma", "INTAKE_CLERK")
    assert (await client.get("/api/cases/%C2%B9", headers=h)).status == 400  # "¹" passes str.isdigit()


async def test_metrics_show_routes_engine_calls_and_queue_depth_and_breaches(db, db_url, flowable, engine,
                                                                              aiohttp_client):
    import re

    pids = await start_cases(flowable, db, 2)
    late = (await flowable.tasks(processInstanceId=pids[0]))[0]["id"]
    async with db.begin() as conn:
        await conn.execute(text("UPDATE flowable.workflow_tasks SET due_date = now() - interval '1 hour' "
                                "WHERE task_id = :t"), {"t": late})
    client = await app_client(aiohttp_client, db_url, engine)
    h = await worker(db, "vic", "INTAKE_CLERK")
    assert (await client.post(f"/api/tasks/{late}/claim", json={}, headers=h)).status == 200
    exposition = await (await client.get("/metrics")).text()

    def value(pattern: str) -> float:
        found = re.search(pattern + r" ([0-9.e+]+)", exposition)
        assert found, pattern
        return float(found.group(1))

    assert value(r'bridge_http_requests_total\{method="POST",route="/api/tasks/\{task_id\}/claim",status="200"\}') >= 1
    assert value(r'bridge_engine_requests_total\{method="POST",outcome="200"\}') >= 1
    assert value(r'bridge_queue_open_tasks\{queue="INTAKE_REGISTRATION"\}') == 2
    assert value(r'bridge_queue_overdue_tasks\{queue="INTAKE_REGISTRATION"\}') == 1


async def test_status_shows_engine_database_lag_and_queues_and_fails_when_the_engine_is_gone(
        db, db_url, flowable, engine):
    import os
    import subprocess
    import sys

    from bridge.db.embedded import free_tcp_port

    await start_cases(flowable, db, 2)
    env = {**os.environ, "DATABASE_URL": db_url, "FLOWABLE_URL": engine.base_url,
           "FLOWABLE_USER": engine.user, "FLOWABLE_PASSWORD": engine.password}

    def status(**extra) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "bridge.cli", "status"], env={**env, **extra},
                              capture_output=True, text=True, timeout=120)

    ok = await asyncio.to_thread(status)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "database    ok, migrations current" in ok.stdout and "engine      ok," in ok.stdout
    pushes = next(line for line in ok.stdout.splitlines() if line.startswith("pushes"))
    assert " event(s) sent in " in pushes and " dropped, " in pushes  # the engine emitter's own counters
    queue_line = next(line for line in ok.stdout.splitlines() if line.startswith("INTAKE_REGISTRATION"))
    assert queue_line.split()[1:3] == ["2", "0"]
    gone = await asyncio.to_thread(status, FLOWABLE_URL=f"http://127.0.0.1:{free_tcp_port()}/process-api")
    assert gone.returncode == 1 and "engine      UNREACHABLE" in gone.stdout


async def test_an_admin_lists_grants_and_revokes_one_with_effect_at_once(db, db_url, flowable, engine, aiohttp_client):
    (pid,) = await start_cases(flowable, db, 1)
    task_id = (await flowable.tasks(processInstanceId=pid))[0]["id"]
    client = await app_client(aiohttp_client, db_url, engine)
    async with db.begin() as conn:
        await conn.execute(text("INSERT INTO entitlements.workflow_roles (role_code, role_name, role_type) "
                                "VALUES ('ENTITLEMENTS_ADMIN', 'Entitlements administrator', 'SYSTEM')"))
    admin = await worker(db, "root", "ENTITLEMENTS_ADMIN")
    kim = await worker(db, "kim", "INTAKE_CLERK")
    async with db.begin() as conn:  # and a grant that starts next week
        await conn.execute(text(
            "INSERT INTO entitlements.user_workflow_roles (user_id, role_id, assigned_by, valid_from) "
            "SELECT 'kim', role_id, 'test', now() + interval '7 days' FROM entitlements.workflow_roles "
            "WHERE role_code = 'CASE_SUPERVISOR'"))
    assert (await client.get(f"/api/tasks/{task_id}", headers=kim)).status == 200

    listed = await (await client.get("/api/admin/users/kim", headers=admin)).json()
    assert {g["role_code"]: g["current"] for g in listed["grants"]} == {"INTAKE_CLERK": True, "CASE_SUPERVISOR": False}

    revoked = await client.delete("/api/admin/users/kim/grants/INTAKE_CLERK", headers=admin)
    assert revoked.status == 200 and (await revoked.json())["revokedBy"] == "root"
    assert (await client.get(f"/api/tasks/{task_id}", headers=kim)).status == 404  # row-level security, at once
    assert (await client.post("/api/work/next", headers=kim)).status == 204  # and claim_next_task
    kept = {g["role_code"]: g
            for g in (await (await client.get("/api/admin/users/kim", headers=admin)).json())["grants"]}
    assert kept["INTAKE_CLERK"]["current"] is False and kept["INTAKE_CLERK"]["valid_until"] is not None  # history
    assert (await client.delete("/api/admin/users/kim/grants/INTAKE_CLERK", headers=admin)).status == 404

    assert (await client.delete("/api/admin/users/kim/grants/CASE_SUPERVISOR", headers=admin)).status == 200
    left = (await (await client.get("/api/admin/users/kim", headers=admin)).json())["grants"]
    assert [g["role_code"] for g in left] == ["INTAKE_CLERK"]  # the future grant is gone, not ended

    assert (await client.delete("/api/admin/users/root/grants/ENTITLEMENTS_ADMIN", headers=kim)).status == 403
    assert (await client.get("/api/admin/users/nobody", headers=admin)).status == 404


SIGN_OFFS = b"""<?xml version="1.0" encoding="UTF-8"?>
<definitions xmlns="http://www.omg.org/spec/BPMN/20100524/MODEL" xmlns:flowable="http://flowable.org/bpmn"
             targetNamespace="onecms-tests">
  <process id="ParallelSignOffs" name="Parallel sign-offs" isExecutable="true">
    <startEvent id="start"/>
    <sequenceFlow id="f0" sourceRef="start" targetRef="fork"/>
    <parallelGateway id="fork"/>
    <sequenceFlow id="fa" sourceRef="fork" targetRef="legalSignOff"/>
    <sequenceFlow id="fb" sourceRef="fork" targetRef="financeSignOff"/>
    <userTask id="legalSignOff" name="Legal sign-off" flowable:candidateGroups="LEGAL_SIGNER"/>
    <userTask id="financeSignOff" name="Finance sign-off" flowable:candidateGroups="FINANCE_SIGNER"/>
    <sequenceFlow id="fa2" sourceRef="legalSignOff" targetRef="join"/>
    <sequenceFlow id="fb2" sourceRef="financeSignOff" targetRef="join"/>
    <parallelGateway id="join"/>
    <sequenceFlow id="f9" sourceRef="join" targetRef="end"/>
    <endEvent id="end"/>
  </process>
</definitions>"""


async def test_both_sign_offs_of_each_case_completed_at_the_same_instant_all_answer_2xx_and_every_case_ends(
        db, db_url, flowable, engine, aiohttp_client):
    await deploy_bpmn(SIGN_OFFS, "sign-offs.bpmn20.xml", db=db, flowable=flowable, deployed_by="test")
    pids = [(await flowable.start_process("ParallelSignOffs", business_key=f"s-{uuid.uuid4().hex[:8]}"))["id"]
            for _ in range(12)]
    await resync_instances(db, flowable, pids)
    client = await app_client(aiohttp_client, db_url, engine)
    legal, finance = await worker(db, "lee", "LEGAL_SIGNER"), await worker(db, "fin", "FINANCE_SIGNER")
    pairs = []
    for pid in pids:
        tasks = {t["taskDefinitionKey"]: t["id"] for t in await flowable.tasks(processInstanceId=pid)}
        for key, h in (("legalSignOff", legal), ("financeSignOff", finance)):
            assert (await client.post(f"/api/tasks/{tasks[key]}/claim", json={}, headers=h)).status == 200
        pairs.append([(tasks["legalSignOff"], legal), (tasks["financeSignOff"], finance)])

    start = asyncio.Event()

    async def complete(task_id: str, h: dict) -> int:
        await start.wait()  # every completion released together
        answer = await client.post(f"/api/tasks/{task_id}/complete", json={"outcome": "signed"}, headers=h)
        return answer.status

    racing = [asyncio.create_task(complete(t, h)) for pair in pairs for t, h in pair]
    await asyncio.sleep(0.05)
    start.set()
    statuses = await asyncio.gather(*racing)
    assert statuses == [200] * len(racing)
    ended = {p["id"]: p["endTime"] for p in await flowable.historic_processes_by_ids(pids)}
    assert all(ended[p] for p in pids), "a case was left waiting at the join"
    async with db.connect() as conn:
        states = {r.status for r in await conn.execute(text(
            "SELECT status FROM flowable.workflow_tasks WHERE process_instance_id = ANY(:p)"), {"p": pids})}
    assert states == {"COMPLETED"}


async def test_a_delegate_resolves_the_task_returns_to_its_owner_who_completes_it(
        db, db_url, flowable, engine, aiohttp_client):
    [pid] = await start_cases(flowable, db, 1)
    task_id = (await flowable.tasks(processInstanceId=pid))[0]["id"]
    client = await app_client(aiohttp_client, db_url, engine)
    owner, delegate = await worker(db, "olga", "INTAKE_CLERK"), await worker(db, "dan", "INTAKE_CLERK")
    assert (await client.post(f"/api/tasks/{task_id}/claim", json={}, headers=owner)).status == 200
    assert (await client.post(f"/api/tasks/{task_id}/delegate", json={"to": "dan"}, headers=owner)).status == 200

    refused = await client.post(f"/api/tasks/{task_id}/complete", json={}, headers=delegate)
    assert refused.status == 409 and "resolve" in (await refused.json())["error"]
    resolved = await client.post(f"/api/tasks/{task_id}/resolve", json={}, headers=delegate)
    assert resolved.status == 200, await resolved.text()
    assert (await resolved.json())["assignee"] == "olga"
    assert (await flowable.task(task_id))["assignee"] == "olga"
    assert (await client.post(f"/api/tasks/{task_id}/resolve", json={}, headers=delegate)).status == 409
    assert (await client.post(f"/api/tasks/{task_id}/complete", json={}, headers=owner)).status == 200

    detail = await (await client.get(f"/api/tasks/{task_id}", headers=owner)).json()
    assert [(r["action_type"], r["action_by"]) for r in detail["history"]][-4:] == [
        ("CLAIM", "olga"), ("DELEGATE", "olga"), ("RESOLVE", "dan"), ("COMPLETE", "olga")]
    [done] = (await flowable.request("GET", "history/historic-task-instances", params={"taskId": task_id}))["data"]
    assert done["endTime"] is not None and done["assignee"] == "olga"


async def test_an_action_postgresql_rolls_back_for_a_deadlock_is_done_again(db, db_url, flowable, engine,
                                                                            aiohttp_client, caplog):
    """A real deadlock: another transaction holds the task's row and then asks for the advisory lock the
    action holds (as a push for the task would take them, in the other order). PostgreSQL rolls the action
    back (it waited longest); the bridge does it again instead of answering 503."""
    import logging

    import psycopg

    from bridge.db.connections import libpq_url

    (pid,) = await start_cases(flowable, db, 1)
    task_id = (await flowable.tasks(processInstanceId=pid))[0]["id"]
    client = await app_client(aiohttp_client, db_url, engine)
    h = await worker(db, "dex", "INTAKE_CLERK")
    caplog.set_level(logging.INFO, logger="bridge.work.actions")
    async with await psycopg.AsyncConnection.connect(libpq_url(db_url)) as other:
        await other.execute("SET deadlock_timeout = '20s'")
        await other.execute("SELECT 1 FROM flowable.workflow_tasks WHERE task_id = %s FOR UPDATE", [task_id])
        claim = asyncio.ensure_future(client.post(f"/api/tasks/{task_id}/claim", json={}, headers=h))
        for _ in range(100):  # the action holds the task's advisory lock and waits for its row
            if (await (await other.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'transactionid' "
                                           "AND NOT granted")).fetchone())[0]:
                break
            await asyncio.sleep(0.05)
        await other.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", [task_id])
        await other.rollback()
        answer = await claim
    assert answer.status == 200, await answer.text()
    assert (await answer.json())["assignee"] == "dex"
    assert "rolled back for a conflict in PostgreSQL, attempt 2" in caplog.text
    assert (await flowable.task(task_id))["assignee"] == "dex"
