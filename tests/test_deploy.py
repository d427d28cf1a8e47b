"""bridge deploy against the real engine and database: versions, dedupe, rejection, repair, dry run."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import text

from bridge.bpmn.model import BpmnError
from bridge.db.connections import open_database
from bridge.deploy import DeployError, OwnershipError, deploy_bpmn
from tests.helpers import workflow

pytestmark = pytest.mark.slow


@pytest.fixture
async def db(engine):
    db = open_database(engine.database_url, pool_size=2)
    yield db
    await db.dispose()


async def rows(db, sql: str, **params) -> list[tuple]:
    async with db.connect() as conn:
        return [tuple(r) for r in await conn.execute(text(sql), params)]


async def engine_deployments(flowable, key: str) -> int:
    return len(await flowable.process_definitions(key=key))


def new_key() -> str:
    return f"dep{uuid.uuid4().hex[:8]}"


async def test_first_deploy_is_version_1_and_syncs_departments_roles_queues(db, flowable):
    key = new_key()
    tag = key.upper()
    outcome = await deploy_bpmn(workflow(key), f"{key}.bpmn20.xml", db=db, flowable=flowable, deployed_by="ann")
    assert outcome.status == "deployed"
    assert [(p.process_key, p.version) for p in outcome.processes] == [(key, 1)]

    assert await rows(db, """SELECT process_version, is_active, deployed_by, business_app, deployment_id = :d,
                                    sla_config -> 'queues' ->> :q
                             FROM flowable.workflow_definitions WHERE process_key = :k""",
                      k=key, d=outcome.processes[0].deployment_id,
                      q=f"Q_{tag}") == [(1, True, "ann", "ONECMS", True, "120")]
    assert await rows(db, "SELECT department_name FROM entitlements.departments WHERE department_code = :c",
                      c=f"DESK_{tag}") == [(f"Desk {tag}",)]
    assert await rows(db, """SELECT q.queue_type, q.sla_minutes, q.max_capacity, d.department_code
                             FROM flowable.workflow_queues q JOIN entitlements.departments d USING (department_id)
                             WHERE queue_name = :q""", q=f"Q_{tag}") == [("PRIORITY", 120, 30, f"DESK_{tag}")]
    assert await rows(db, """SELECT r.role_type, r.queue_name, d.department_code
                             FROM entitlements.workflow_roles r JOIN entitlements.departments d USING (department_id)
                             WHERE role_code = :r""",
                      r=f"REVIEWER_{tag}") == [("DEPARTMENT", f"Q_{tag}", f"DESK_{tag}")]
    assert await rows(db, """SELECT q.queue_name FROM flowable.queue_assignments a
                             JOIN flowable.workflow_queues q USING (queue_id)
                             JOIN entitlements.workflow_roles r USING (role_id) WHERE r.role_code = :r""",
                      r=f"REVIEWER_{tag}") == [(f"Q_{tag}",)]


async def test_same_bytes_again_change_nothing_and_a_changed_file_makes_version_2(db, flowable):
    key = new_key()
    first = await deploy_bpmn(workflow(key), "a.bpmn20.xml", db=db, flowable=flowable, deployed_by="ann")
    again = await deploy_bpmn(workflow(key), "a.bpmn20.xml", db=db, flowable=flowable, deployed_by="bob")
    assert again.status == "unchanged"
    assert again.processes[0].deployment_id == first.processes[0].deployment_id
    assert await engine_deployments(flowable, key) == 1
    assert await rows(db, "SELECT deployed_by FROM flowable.workflow_definitions WHERE process_key = :k",
                      k=key) == [("ann",)]

    changed = await deploy_bpmn(workflow(key, task_name="Review again"), "a.bpmn20.xml", db=db, flowable=flowable,
                                deployed_by="bob")
    assert changed.status == "deployed" and changed.processes[0].version == 2
    assert await engine_deployments(flowable, key) == 2
    assert await rows(db, """SELECT process_version, is_active FROM flowable.workflow_definitions
                             WHERE process_key = :k ORDER BY process_version""", k=key) == [(1, False), (2, True)]


async def test_a_file_flowable_rejects_leaves_everything_untouched(db, flowable):
    key = new_key()
    # Passes our checks, but Flowable requires an implementation on a service task.
    broken = workflow(key).replace(b'<sequenceFlow id="f2" sourceRef="review" targetRef="end"/>',
                                   b'<sequenceFlow id="f2" sourceRef="review" targetRef="svc"/>'
                                   b'<serviceTask id="svc" name="Notify"/>'
                                   b'<sequenceFlow id="f3" sourceRef="svc" targetRef="end"/>')
    broken = broken.replace(b"<flowNodeRef>end</flowNodeRef>",
                            b"<flowNodeRef>end</flowNodeRef><flowNodeRef>svc</flowNodeRef>")
    before = await rows(db, "SELECT (SELECT count(*) FROM flowable.workflow_definitions), "
                            "(SELECT count(*) FROM flowable.workflow_queues), "
                            "(SELECT count(*) FROM entitlements.workflow_roles)")
    with pytest.raises(DeployError, match=r"(?s)Flowable rejected broken\.bpmn20\.xml: .*'class', 'delegateExpression'"
                                          r".* is mandatory on serviceTask.*line: \d+") as rejected:
        await deploy_bpmn(broken, "broken.bpmn20.xml", db=db, flowable=flowable, deployed_by="ann")
    assert rejected.value.__cause__.status == 400
    assert await rows(db, "SELECT (SELECT count(*) FROM flowable.workflow_definitions), "
                          "(SELECT count(*) FROM flowable.workflow_queues), "
                          "(SELECT count(*) FROM entitlements.workflow_roles)") == before
    assert await engine_deployments(flowable, key) == 0


async def test_a_file_with_errors_is_refused_before_the_engine_sees_it(db, flowable):
    key = new_key()
    unassigned = workflow(key).replace(f'flowable:candidateGroups="REVIEWER_{key.upper()}"'.encode(), b"")
    with pytest.raises(BpmnError, match=r"bad\.bpmn20\.xml:\d+ \[review\]: error: user task has no candidate"):
        await deploy_bpmn(unassigned, "bad.bpmn20.xml", db=db, flowable=flowable, deployed_by="ann")
    assert await engine_deployments(flowable, key) == 0


async def test_a_database_failure_after_flowable_accepted_is_repaired_by_the_next_deploy(db, flowable):
    key = new_key()
    async with db.begin() as conn:  # make the definition insert fail for this key only
        await conn.execute(text(f"ALTER TABLE flowable.workflow_definitions ADD CONSTRAINT block_{key} "
                                f"CHECK (process_key <> '{key}') NOT VALID"))
    try:
        with pytest.raises(Exception, match=f"block_{key}"):
            await deploy_bpmn(workflow(key), "r.bpmn20.xml", db=db, flowable=flowable, deployed_by="ann")
        assert await engine_deployments(flowable, key) == 1  # the engine has it ...
        assert await rows(db, "SELECT 1 FROM flowable.workflow_definitions WHERE process_key = :k", k=key) == []
    finally:
        async with db.begin() as conn:
            await conn.execute(text(f"ALTER TABLE flowable.workflow_definitions DROP CONSTRAINT block_{key}"))

    repaired = await deploy_bpmn(workflow(key), "r.bpmn20.xml", db=db, flowable=flowable, deployed_by="ann")
    assert repaired.status == "repaired"
    assert await engine_deployments(flowable, key) == 1  # ... and was not deployed twice
    [(deployment_id, active)] = await rows(db, "SELECT deployment_id, is_active FROM flowable.workflow_definitions "
                                               "WHERE process_key = :k", k=key)
    assert (deployment_id, active) == (repaired.processes[0].deployment_id, True)


async def test_dry_run_prints_the_changes_and_changes_nothing(db, flowable):
    key = new_key()
    tag = key.upper()
    planned = await deploy_bpmn(workflow(key), "d.bpmn20.xml", db=db, flowable=flowable, deployed_by="ann",
                                dry_run=True)
    assert planned.status == "would-deploy"
    assert f"+ department DESK_{tag}: name=Desk {tag}" in planned.changes
    assert f"+ queue Q_{tag}: type=PRIORITY, department=DESK_{tag}, sla_minutes=120, max_capacity=30" in planned.changes
    assert f"+ assignment REVIEWER_{tag} -> Q_{tag}" in planned.changes
    assert await engine_deployments(flowable, key) == 0
    assert await rows(db, "SELECT 1 FROM flowable.workflow_queues WHERE queue_name = :q", q=f"Q_{tag}") == []

    await deploy_bpmn(workflow(key), "d.bpmn20.xml", db=db, flowable=flowable, deployed_by="ann")
    resized = workflow(key).replace(b'maxCapacity="30"', b'maxCapacity="45"')
    planned = await deploy_bpmn(resized, "d.bpmn20.xml", db=db, flowable=flowable, deployed_by="ann", dry_run=True)
    assert planned.status == "would-deploy"
    assert planned.changes == [f"~ queue Q_{tag} settings: maxCapacity 30 -> 45"]
    same = await deploy_bpmn(workflow(key), "d.bpmn20.xml", db=db, flowable=flowable, deployed_by="ann",
                             dry_run=True)
    assert (same.status, same.changes) == ("would-skip", [])


async def test_a_files_queue_settings_apply_with_a_new_version_and_an_admins_change_survives_a_redeploy(
        db, flowable):
    from bridge.work.queues import change_queue, read_queue

    key = new_key()
    tag = key.upper()
    settings = (b'<onecms:queue name="Q_%s" type="PRIORITY" slaMinutes="120" maxCapacity="30" '
                b'overflowQueue="Q_%s_SPILL">'
                b'<onecms:escalation raisePriorityBy="15" notifyRole="REVIEWER_%s"/>'
                b'<onecms:assignment autoAssign="true" assignmentStrategy="LEAST_LOADED" maxTasksPerUser="4"/>'
                b'</onecms:queue>' % (tag.encode(), tag.encode(), tag.encode()))
    spill = (f'<userTask id="spill" flowable:candidateGroups="REVIEWER_{tag}"><extensionElements>'
             f'<onecms:queue name="Q_{tag}_SPILL" type="OVERFLOW"/></extensionElements></userTask>')
    data = workflow(key).replace(b'<onecms:queue name="Q_%s" type="PRIORITY" slaMinutes="120" maxCapacity="30"/>'
                                 % tag.encode(), settings).replace(b'<endEvent id="end"/>',
                                                                   b'<endEvent id="end"/>' + spill.encode())
    data = data.replace(b"<flowNodeRef>end</flowNodeRef>",
                        b"<flowNodeRef>end</flowNodeRef><flowNodeRef>spill</flowNodeRef>")
    planned = await deploy_bpmn(data, "s.bpmn20.xml", db=db, flowable=flowable, deployed_by="ann", dry_run=True)
    assert planned.status == "would-deploy", planned.summary()
    await deploy_bpmn(data, "s.bpmn20.xml", db=db, flowable=flowable, deployed_by="ann")
    async with db.connect() as conn:
        queue = await read_queue(conn, f"Q_{tag}")
    assert queue["settings"] == {
        "slaMinutes": 120, "maxCapacity": 30, "overflowQueue": f"Q_{tag}_SPILL",
        "escalation": {"raisePriorityBy": 15, "notifyRole": f"REVIEWER_{tag}"},
        "autoAssign": True, "assignmentStrategy": "LEAST_LOADED", "maxTasksPerUser": 4}
    [created] = queue["changes"]
    assert (created["by"], created["source"], created["after"]["escalation"]) == (
        "ann", "deploy s.bpmn20.xml", {"raisePriorityBy": 15, "notifyRole": f"REVIEWER_{tag}"})

    # what escalation and auto-assignment read: the stored forms
    [(config, overflow, auto, strategy, cap)] = await rows(db, """
        SELECT q.escalation_config, q.routing_rules ->> 'overflowQueue', a.auto_assign, a.assignment_strategy,
               a.max_tasks_per_user
        FROM flowable.workflow_queues q JOIN flowable.queue_assignments a USING (queue_id)
        WHERE q.queue_name = :q""", q=f"Q_{tag}")
    assert (config, overflow, auto, strategy, cap) == (
        {"raise_priority_by": 15, "notify_role": f"REVIEWER_{tag}"}, f"Q_{tag}_SPILL", True, "LEAST_LOADED", 4)

    async with db.begin() as conn:
        await change_queue(conn, f"Q_{tag}", {"maxTasksPerUser": 9, "slaMinutes": 90}, by="olga", source="api")
    again = await deploy_bpmn(data, "s.bpmn20.xml", db=db, flowable=flowable, deployed_by="ann")  # every `bridge up`
    assert again.status == "unchanged"
    async with db.connect() as conn:
        kept = await read_queue(conn, f"Q_{tag}")
    assert (kept["settings"]["maxTasksPerUser"], kept["settings"]["slaMinutes"]) == (9, 90)
    assert kept["changes"][0]["by"] == "olga"

    v2 = data.replace(b'raisePriorityBy="15"', b'raisePriorityBy="20"')
    planned = await deploy_bpmn(v2, "s.bpmn20.xml", db=db, flowable=flowable, deployed_by="ann", dry_run=True)
    assert planned.changes == [
        f'~ queue Q_{tag} settings: slaMinutes 90 -> 120, escalation '
        f'{{"notifyRole": "REVIEWER_{tag}", "raisePriorityBy": 15}} -> '
        f'{{"notifyRole": "REVIEWER_{tag}", "raisePriorityBy": 20}}, maxTasksPerUser 9 -> 4']
    await deploy_bpmn(v2, "s.bpmn20.xml", db=db, flowable=flowable, deployed_by="bob")
    async with db.connect() as conn:
        newest = await read_queue(conn, f"Q_{tag}")
    assert newest["settings"]["escalation"]["raisePriorityBy"] == 20 and newest["settings"]["maxTasksPerUser"] == 4
    assert (newest["changes"][0]["by"], newest["changes"][0]["before"]) == (
        "bob", {"slaMinutes": 90, "maxTasksPerUser": 9,
                "escalation": {"raisePriorityBy": 15, "notifyRole": f"REVIEWER_{tag}"}})


async def test_the_onecms_workflow_deploys_and_its_first_task_lands_in_the_queue_the_metadata_names(db, flowable):
    from tests.helpers import ONECMS_FILE

    outcome = await deploy_bpmn(ONECMS_FILE.read_bytes(), ONECMS_FILE.name, db=db, flowable=flowable,
                                deployed_by="ops")
    # Other tests of this session may have deployed the same bytes straight to the engine already.
    assert outcome.status in ("deployed", "repaired", "unchanged")
    [(version, queue_of_first_task)] = await rows(db, """
        SELECT process_version, sla_config -> 'tasks' -> 'registerCase' ->> 'queue'
        FROM flowable.workflow_definitions WHERE process_key = 'OneCMS_Nextgen_WF' AND is_active""")
    assert version == outcome.processes[0].version and queue_of_first_task == "INTAKE_REGISTRATION"

    instance = await flowable.start_process("OneCMS_Nextgen_WF", business_key="case-9001",
                                            variables={"caseId": 9001, "caseType": "FRAUD", "severity": "HIGH"})
    [task] = await flowable.tasks(processInstanceId=instance["id"])
    links = await flowable.request("GET", f"runtime/tasks/{task['id']}/identitylinks")
    groups = [link["group"] for link in links if link["type"] == "candidate" and link["group"]]
    assert (task["taskDefinitionKey"], groups) == ("registerCase", ["INTAKE_CLERK"])
    # The engine offers the task to INTAKE_CLERK; the synced entitlements route that role to the queue.
    assert await rows(db, """SELECT q.queue_name, q.sla_minutes, d.department_code
                             FROM flowable.queue_assignments a
                             JOIN flowable.workflow_queues q USING (queue_id)
                             JOIN entitlements.workflow_roles r USING (role_id)
                             JOIN entitlements.departments d ON d.department_id = q.department_id
                             WHERE r.role_code = :g""", g=groups[0]) == [("INTAKE_REGISTRATION", 60, "INTAKE")]
    await flowable.cancel_process(instance["id"], reason="test over")


async def test_two_deploys_of_the_same_new_file_at_once_deploy_it_once(db, flowable, engine):
    import asyncio

    from bridge.flowable.client import FlowableClient

    key = new_key()
    async with FlowableClient.of(engine) as other_client:
        outcomes = await asyncio.gather(
            deploy_bpmn(workflow(key), "race.bpmn20.xml", db=db, flowable=flowable, deployed_by="ann"),
            deploy_bpmn(workflow(key), "race.bpmn20.xml", db=db, flowable=other_client, deployed_by="bob"))
    assert sorted(o.status for o in outcomes) == ["deployed", "unchanged"]
    assert await engine_deployments(flowable, key) == 1
    assert await rows(db, "SELECT process_version, is_active FROM flowable.workflow_definitions WHERE process_key = :k",
                      k=key) == [(1, True)]


async def test_a_deploy_cannot_take_over_roles_queues_or_departments_another_workflow_owns(db, flowable):
    """Issue 14: an unrelated process whose task used candidateGroups="INTAKE_CLERK" rewrote the OneCMS role
    (type, department, home queue). Using another workflow's role is fine; changing it is refused, naming each
    row, unless it is adopted (an ENTITLEMENTS_ADMIN's decision)."""
    from tests.helpers import ONECMS_FILE

    await deploy_bpmn(ONECMS_FILE.read_bytes(), ONECMS_FILE.name, db=db, flowable=flowable, deployed_by="ops")
    role = "SELECT role_type, queue_name, owner_process_key FROM entitlements.workflow_roles WHERE role_code = :r"
    before = await rows(db, role, r="INTAKE_CLERK")
    assert before[0][2] == "OneCMS_Nextgen_WF"

    key = new_key()
    user = f"""<?xml version="1.0" encoding="UTF-8"?>
<definitions xmlns="http://www.omg.org/spec/BPMN/20100524/MODEL" xmlns:flowable="http://flowable.org/bpmn"
             xmlns:onecms="urn:onecms:bpmn:1.0" targetNamespace="tests">
  <process id="{key}" isExecutable="true">
    <startEvent id="start"/>
    <sequenceFlow id="f1" sourceRef="start" targetRef="t"/>
    <userTask id="t" flowable:candidateGroups="INTAKE_CLERK"/>
  </process>
</definitions>""".encode()
    used = await deploy_bpmn(user, "uses.bpmn20.xml", db=db, flowable=flowable, deployed_by="eve")
    assert used.status == "deployed"
    assert await rows(db, role, r="INTAKE_CLERK") == before  # used, not rewritten
    assert "= role INTAKE_CLERK: belongs to OneCMS_Nextgen_WF, used as it is" in used.changes

    takeover = user.replace(b"<startEvent", b'<extensionElements><onecms:role code="INTAKE_CLERK" type="CUSTOM" '
                                            b'name="Mine now"/></extensionElements>\n    <startEvent').replace(
        b'<userTask id="t" flowable:candidateGroups="INTAKE_CLERK"/>',
        b'<userTask id="t" flowable:candidateGroups="INTAKE_CLERK"><extensionElements>'
        b'<onecms:queue name="INTAKE_REGISTRATION" slaMinutes="5"/></extensionElements></userTask>')
    deployments_before = await engine_deployments(flowable, key)
    for dry_run in (True, False):
        with pytest.raises(OwnershipError) as refused:
            await deploy_bpmn(takeover, "takes.bpmn20.xml", db=db, flowable=flowable, deployed_by="eve",
                              dry_run=dry_run)
        queue_problem, role_problem = refused.value.problems
        assert queue_problem.startswith("queue INTAKE_REGISTRATION belongs to OneCMS_Nextgen_WF: this file would "
                                        "change ") and "sla_minutes 60 -> 5" in queue_problem
        assert role_problem.startswith("role INTAKE_CLERK belongs to OneCMS_Nextgen_WF: this file would change "
                                       "name 'Intake clerk' -> 'Mine now', type 'DEPARTMENT' -> 'CUSTOM'")
        assert role_problem.endswith("(deploy it from OneCMS_Nextgen_WF, or have an ENTITLEMENTS_ADMIN adopt it: "
                                     "role:INTAKE_CLERK)")
    assert await engine_deployments(flowable, key) == deployments_before  # refused before the engine
    assert await rows(db, role, r="INTAKE_CLERK") == before

    adopted = await deploy_bpmn(takeover, "takes.bpmn20.xml", db=db, flowable=flowable, deployed_by="root",
                                adopt=["role:INTAKE_CLERK", "queue:INTAKE_REGISTRATION"])
    assert adopted.status == "deployed"
    assert (await rows(db, role, r="INTAKE_CLERK"))[0][2] == key
    [(sla,)] = await rows(db, "SELECT sla_minutes FROM flowable.workflow_queues "
                              "WHERE queue_name = 'INTAKE_REGISTRATION'")
    assert sla == 5
    # this module's database is the engine's, shared by the session: OneCMS takes its role and queue back
    await deploy_bpmn(ONECMS_FILE.read_bytes() + b"\n<!-- v2 -->", ONECMS_FILE.name, db=db, flowable=flowable,
                      deployed_by="ops", adopt=["role:INTAKE_CLERK", "queue:INTAKE_REGISTRATION"])
    assert (await rows(db, role, r="INTAKE_CLERK"))[0][2] == "OneCMS_Nextgen_WF"


def _version_two(key: str) -> bytes:
    """workflow(key) with its task renamed, a second task (a new role and queue), the queue's SLA shortened and
    escalation added, and a required start variable."""
    tag = key.upper()
    approve = (f'<sequenceFlow id="f2" sourceRef="review" targetRef="approve"/>'
               f'<userTask id="approve" name="Approve" flowable:candidateGroups="APPROVER_{tag}"/>'
               f'<sequenceFlow id="f3" sourceRef="approve" targetRef="end"/>')
    return (workflow(key, task_name="Check", extra="<flowNodeRef>approve</flowNodeRef>")
            .replace(b'<sequenceFlow id="f2" sourceRef="review" targetRef="end"/>', approve.encode())
            .replace(f'<onecms:queue name="Q_{tag}" type="PRIORITY" slaMinutes="120" maxCapacity="30"/>'.encode(),
                     f'<onecms:queue name="Q_{tag}" type="PRIORITY" slaMinutes="90" maxCapacity="30">'
                     f'<onecms:escalation raisePriorityBy="10"/></onecms:queue>'.encode())
            .replace(b'<laneSet id="ls">', b'<extensionElements><onecms:workflow><onecms:entryCriteria '
                     b'variable="caseType" values="A,B" required="true"/></onecms:workflow></extensionElements>'
                     b'<laneSet id="ls">'))


async def test_a_dry_run_plans_each_process_against_the_deployed_version(db, flowable):
    key = new_key()
    tag = key.upper()
    await deploy_bpmn(workflow(key), "p.bpmn20.xml", db=db, flowable=flowable, deployed_by="ann")
    planned = await deploy_bpmn(_version_two(key), "p.bpmn20.xml", db=db, flowable=flowable, deployed_by="ann",
                                dry_run=True)
    [plan] = planned.plan
    assert (plan.process_key, plan.from_version, plan.to_version) == (key, 1, 2)
    changes = {group: {(c["change"], c["id"]): (c["from"], c["to"]) for c in found}
               for group, found in plan.changes.items()}
    assert changes["activities"] == {
        ("renamed", "review"): ({"kind": "userTask", "name": "Review"}, {"kind": "userTask", "name": "Check"}),
        ("added", "approve"): (None, {"kind": "userTask", "name": "Approve"})}
    assert changes["queues"][("changed", f"Q_{tag}")] == ({"slaMinutes": 120}, {"slaMinutes": 90})
    assert ("added", f"DESK_{tag}_APPROVER_{tag}") in changes["queues"]
    assert changes["escalation"] == {("added", f"Q_{tag}"): (None, {"raisePriorityBy": 10})}
    assert set(changes["roles"]) == {("added", f"APPROVER_{tag}")}
    assert changes["slas"][("changed", "task review")] == ({"queueSlaMinutes": 120}, {"queueSlaMinutes": 90})
    assert changes["startVariables"] == {("added", "caseType"): (None, {"values": ["A", "B"], "required": True})}
    text = planned.summary().splitlines()
    assert text[:2] == [f"p.bpmn20.xml: would-deploy ({key} v2)", f"  {key} v1 -> v2"]
    assert "    activities: ~ review: renamed 'Review' -> 'Check'" in text
    assert "    activities: + approve (userTask 'Approve')" in text
    assert f"    escalation: + Q_{tag} (raisePriorityBy 10)" in text
    assert await engine_deployments(flowable, key) == 1  # planned, not deployed

    same = await deploy_bpmn(workflow(key), "p.bpmn20.xml", db=db, flowable=flowable, deployed_by="ann",
                             dry_run=True)
    assert same.status == "would-skip" and [p.lines() for p in same.plan] == [[f"{key} v1: unchanged"]]
