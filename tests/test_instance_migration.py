"""Moving running instances to a new version with the real engine (bridge/migration.py, issue 18): validated
first, unmappable ones refused and left alone, moved ones followed by the mirror (activity, name, queue,
candidate groups, a MIGRATED history row, the new workflow), completed by workers afterwards; drift sees a
migration the mirror did not follow and the reconciler repairs it; nothing moves twice."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid

import pytest
from sqlalchemy import text

from bridge import migration
from bridge.deploy import deploy_bpmn
from bridge.flowable.client import FlowableError
from bridge.mirror.reconcile import resync_instances
from tests.helpers import BPMN, app_client, drift_of, worker

pytestmark = pytest.mark.slow

Q = '<extensionElements><onecms:queue name="{queue}" slaMinutes="240" maxCapacity="50"/></extensionElements>'


def _task(task_id: str, name: str, group: str, queue: str) -> str:
    return (f'<userTask id="{task_id}" name="{name}" flowable:candidateGroups="{group}">'
            f'{Q.format(queue=queue)}</userTask>')


def _chain(key: str, steps: list[tuple[str, str, str, str]]) -> bytes:
    """start -> the user tasks (id, name, candidate group, queue) in order -> end."""
    ids = ["start", *(s[0] for s in steps), "end"]
    flows = "\n    ".join(f'<sequenceFlow id="f{n}" sourceRef="{a}" targetRef="{b}"/>'
                          for n, (a, b) in enumerate(zip(ids, ids[1:], strict=False), start=1))
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<definitions xmlns="{BPMN}" xmlns:flowable="http://flowable.org/bpmn" xmlns:onecms="urn:onecms:bpmn:1.0"
             targetNamespace="onecms-tests">
  <process id="{key}" name="Migrating {key}" isExecutable="true">
    <startEvent id="start"/>
    {"".join(_task(*step) for step in steps)}
    {flows}
    <endEvent id="end"/>
  </process>
</definitions>""".encode()


def version_1(key: str) -> bytes:
    """triage -> review -> hold -> end."""
    return _chain(key, [("triage", "Triage", "MIG_TRIAGE", "MIG_Q_TRIAGE"),
                        ("review", "Review", "MIG_REVIEW", "MIG_Q_REVIEW"),
                        ("hold", "Legal hold", "MIG_LEGAL", "MIG_Q_LEGAL")])


def version_2(key: str) -> bytes:
    """triage -> assess (review renamed, another group and queue) -> approve (new) -> end; no hold."""
    return _chain(key, [("triage", "Triage", "MIG_TRIAGE", "MIG_Q_TRIAGE"),
                        ("assess", "Assess", "MIG_ASSESS", "MIG_Q_ASSESS"),
                        ("approve", "Approve", "MIG_APPROVE", "MIG_Q_APPROVE")])


async def _deployed_versions(db, flowable, key: str) -> None:
    for xml in (version_1(key), version_2(key)):
        await deploy_bpmn(xml, f"{key}.bpmn20.xml", db=db, flowable=flowable, deployed_by="designer")


async def _start_at(flowable, key: str, steps: int, n: int) -> str:
    """An instance of version 1, moved `steps` tasks on."""
    definition = (await flowable.process_definitions(key=key, version=1))[0]["id"]
    pid = (await flowable.request("POST", "runtime/process-instances", json_body={
        "processDefinitionId": definition, "businessKey": f"{key}-{n}"}))["id"]
    for _ in range(steps):
        task = (await flowable.tasks(processInstanceId=pid))[0]
        await flowable.complete_task(task["id"])
    return pid


async def _rows(db, sql: str, **params) -> list:
    async with db.connect() as conn:
        return list(await conn.execute(text(sql), params))


def _request(key: str, **fields) -> migration.MigrationRequest:
    return migration.MigrationRequest(process_key=key, from_version=1, to_version=2, mappings={"review": "assess"},
                                      requested_by="designer", **fields)


async def test_twenty_instances_validated_migrated_followed_and_completed(db, db_url, flowable, engine,
                                                                         aiohttp_client):
    key = f"mig_{uuid.uuid4().hex[:8]}"
    await _deployed_versions(db, flowable, key)
    at = {"triage": [], "review": [], "hold": []}
    for n in range(20):
        steps = n % 3  # 7 at triage, 7 at review, 6 at hold
        at[("triage", "review", "hold")[steps]].append(await _start_at(flowable, key, steps, n))
    pids = [p for group in at.values() for p in group]
    await resync_instances(db, flowable, pids)
    assert await drift_of(db, flowable, pids) == []

    dry = await migration.run(db, flowable, _request(key, dry_run=True))
    outcome = {r.process_instance_id: r for r in dry.results}
    assert set(outcome) == set(pids)
    assert {p for p, r in outcome.items() if r.outcome == "MIGRATABLE"} == set(at["triage"] + at["review"])
    for pid in at["hold"]:  # the engine's own reason, per instance
        assert outcome[pid].outcome == "REFUSED" and "hold" in " ".join(outcome[pid].messages)
        assert outcome[pid].activities == ("hold",)
    on_v1 = {p["id"] for p in await flowable.process_instances(processDefinitionKey=key, processDefinitionVersion=1,
                                                                size=100)}
    assert on_v1 == set(pids)  # a dry run changes nothing

    done = await migration.run(db, flowable, _request(key))
    assert done.counts == {"MIGRATED": 14, "REFUSED": 6} and done.engine_error is None
    on_v2 = {p["id"] for p in await flowable.process_instances(processDefinitionKey=key, processDefinitionVersion=2,
                                                                size=100)}
    assert on_v2 == set(at["triage"] + at["review"])
    v2 = (await _rows(db, "SELECT workflow_id FROM flowable.workflow_definitions WHERE process_key = :k "
                          "AND process_version = 2", k=key))[0].workflow_id
    moved = await _rows(db, "SELECT t.task_id, t.task_definition_key, t.task_name, t.queue_name, t.candidate_groups, "
                            "p.workflow_id FROM flowable.workflow_tasks t JOIN flowable.process_instances p "
                            "USING (process_instance_id) WHERE p.process_instance_id = ANY(:ids) "
                            "AND t.status = 'OPEN'", ids=at["review"])
    assert len(moved) == 7
    assert {(r.task_definition_key, r.task_name, r.queue_name, tuple(r.candidate_groups), r.workflow_id)
            for r in moved} == {("assess", "Assess", "MIG_Q_ASSESS", ("MIG_ASSESS",), v2)}
    engine_groups = {link["group"] for r in moved for link in await flowable.task_identity_links(r.task_id)
                     if link["type"] == "candidate"}
    assert engine_groups == {"MIG_ASSESS"}  # re-mapped in the engine too, not only in the mirror
    history = await _rows(db, "SELECT task_id, action_by, action_data FROM flowable.task_history "
                              "WHERE action_type = 'MIGRATED' AND process_instance_id = ANY(:ids)", ids=pids)
    assert len(history) == 14 and {h.action_by for h in history} == {"designer"}
    assert {(h.action_data["fromActivity"], h.action_data["toActivity"]) for h in history} == {
        ("triage", "triage"), ("review", "assess")}
    untouched = await _rows(db, "SELECT DISTINCT d.process_version FROM flowable.process_instances p "
                                "JOIN flowable.workflow_definitions d USING (workflow_id) "
                                "WHERE p.process_instance_id = ANY(:ids)", ids=at["hold"])
    assert [r.process_version for r in untouched] == [1]
    assert await drift_of(db, flowable, pids) == []

    # a rerun finds only the refused ones still on v1, and refuses them again; nothing moves twice
    again = await migration.run(db, flowable, _request(key))
    assert again.counts == {"REFUSED": 6}
    assert len(await _rows(db, "SELECT 1 FROM flowable.task_history WHERE action_type = 'MIGRATED' "
                               "AND process_instance_id = ANY(:ids)", ids=pids)) == 14

    # workers finish the moved cases through the bridge: assess, then the new approve step
    client = await app_client(aiohttp_client, db_url, engine)
    headers = await worker(db, f"w_{key}", "MIG_TRIAGE", "MIG_ASSESS", "MIG_APPROVE")
    migrated = at["triage"] + at["review"]
    for _ in range(3):
        await resync_instances(db, flowable, migrated)  # the tasks each completion created (no webhooks here)
        for pid in migrated:
            for task in await flowable.tasks(processInstanceId=pid):
                for action in ("claim", "complete"):
                    answer = await client.post(f"/api/tasks/{task['id']}/{action}", json={}, headers=headers)
                    assert answer.status == 200, await answer.text()
    await resync_instances(db, flowable, migrated)
    ended = await _rows(db, "SELECT status, count(*) AS n FROM flowable.process_instances "
                            "WHERE process_instance_id = ANY(:ids) GROUP BY status", ids=migrated)
    assert [(r.status, r.n) for r in ended] == [("COMPLETED", 14)]
    approvals = await _rows(db, "SELECT count(*) AS n FROM flowable.workflow_tasks WHERE task_definition_key = "
                                "'approve' AND status = 'COMPLETED' AND process_instance_id = ANY(:ids)", ids=migrated)
    assert approvals[0].n == 14
    assert await drift_of(db, flowable, pids) == []


async def test_drift_sees_a_migration_the_mirror_did_not_follow_and_the_reconciler_repairs_it(db, flowable):
    key = f"mig_{uuid.uuid4().hex[:8]}"
    await _deployed_versions(db, flowable, key)
    pid = await _start_at(flowable, key, 1, 0)  # at review
    await resync_instances(db, flowable, [pid])
    v1, v2 = [(await flowable.process_definitions(key=key, version=v))[0]["id"] for v in (1, 2)]
    # moved in the engine behind the bridge's back (as an engine-side migration would)
    await flowable.migrate_instance(pid, {"toProcessDefinitionId": v2, "activityMappings": [
        {"fromActivityId": "review", "toActivityId": "assess"}]}, acting_user="outsider")
    differences = await drift_of(db, flowable, [pid])
    assert any("definition" in d and f"{key} v1" in d and f"{key} v2" in d for d in differences), differences
    assert any("task_definition_key: mirror=review engine=assess" in d for d in differences), differences

    await resync_instances(db, flowable, [pid])  # the reconciler's repair for these instances
    assert await drift_of(db, flowable, [pid]) == []
    row = (await _rows(db, "SELECT t.task_definition_key, t.queue_name, d.process_version "
                           "FROM flowable.workflow_tasks t JOIN flowable.process_instances p USING "
                           "(process_instance_id) JOIN flowable.workflow_definitions d USING (workflow_id) "
                           "WHERE p.process_instance_id = :p AND t.status = 'OPEN'", p=pid))[0]
    assert (row.task_definition_key, row.queue_name, row.process_version) == ("assess", "MIG_Q_ASSESS", 2)
    history = await _rows(db, "SELECT action_by FROM flowable.task_history WHERE process_instance_id = :p "
                              "AND action_type = 'MIGRATED'", p=pid)
    assert [h.action_by for h in history] == ["reconciler"]
    assert v1 != v2


async def test_two_runs_at_once_move_each_instance_once(db, flowable):
    key = f"mig_{uuid.uuid4().hex[:8]}"
    await _deployed_versions(db, flowable, key)
    pids = [await _start_at(flowable, key, 1, n) for n in range(6)]
    await resync_instances(db, flowable, pids)
    first, second = await asyncio.gather(migration.run(db, flowable, _request(key)),
                                         migration.run(db, flowable, _request(key)))
    assert first.counts.get("MIGRATED", 0) + second.counts.get("MIGRATED", 0) == 6
    history = await _rows(db, "SELECT task_id, count(*) AS n FROM flowable.task_history WHERE action_type = "
                              "'MIGRATED' AND process_instance_id = ANY(:ids) GROUP BY task_id", ids=pids)
    assert len(history) == 6 and all(h.n == 1 for h in history)
    assert await drift_of(db, flowable, pids) == []


async def test_requests_that_cannot_run_say_why_and_change_nothing(db, flowable):
    key = f"mig_{uuid.uuid4().hex[:8]}"
    await _deployed_versions(db, flowable, key)
    with pytest.raises(migration.MigrationError, match="no version 7"):
        await migration.run(db, flowable, migration.MigrationRequest(
            process_key=key, from_version=1, to_version=7, requested_by="designer"))
    with pytest.raises(migration.MigrationError, match="nowhere: not an activity of version 2"):
        await migration.run(db, flowable, migration.MigrationRequest(
            process_key=key, from_version=1, to_version=2, mappings={"review": "nowhere"}, requested_by="designer"))
    with pytest.raises(migration.MigrationError, match="same"):
        migration.MigrationRequest(process_key=key, from_version=2, to_version=2, requested_by="designer")
    assert await _rows(db, "SELECT 1 FROM flowable.instance_migrations WHERE process_key = :k", k=key) == []


async def test_the_engine_runs_no_script_a_migration_document_carries(flowable):
    key = f"mig_{uuid.uuid4().hex[:8]}"
    await flowable.deploy(f"{key}.bpmn20.xml", version_1(key))
    await flowable.deploy(f"{key}.bpmn20.xml", version_2(key))
    pid = await _start_at(flowable, key, 0, 0)
    v2 = (await flowable.process_definitions(key=key, version=2))[0]["id"]
    script = {"toProcessDefinitionId": v2, "preUpgradeScript": {"language": "groovy", "script": "1"}}
    with pytest.raises(FlowableError) as refused:
        await flowable.migrate_instance(pid, script, acting_user="designer")
    assert refused.value.status == 400 and "preUpgradeScript" in refused.value.message
    with pytest.raises(FlowableError) as stock:  # Flowable's own resource would run it: closed
        await flowable.request("POST", f"runtime/process-instances/{pid}/migrate", json_body=script)
    assert stock.value.status == 403
    assert (await flowable.process_instance(pid))["processDefinitionId"].split(":")[1] == "1"


async def test_the_api_dry_runs_then_migrates_in_the_background_for_designers_only(db, db_url, flowable, engine,
                                                                                  aiohttp_client):
    key = f"mig_{uuid.uuid4().hex[:8]}"
    await _deployed_versions(db, flowable, key)
    pids = [await _start_at(flowable, key, steps, n) for n, steps in enumerate((0, 1, 2))]
    await resync_instances(db, flowable, pids)
    client = await app_client(aiohttp_client, db_url, engine)
    designer = await worker(db, f"d_{key}", "WORKFLOW_DESIGNER")
    clerk = await worker(db, f"c_{key}", "MIG_TRIAGE")
    body = {"processKey": key, "fromVersion": 1, "toVersion": 2, "mappings": {"review": "assess"}}

    assert (await client.post("/api/migrations", json=body, headers=clerk)).status == 403
    for bad, status in (({**body, "toVersion": 1}, 400), ({**body, "fromVersion": "one"}, 400),
                        ({**body, "preUpgradeScript": "x"}, 400), ({**body, "toVersion": 9}, 404),
                        ({**body, "mappings": {"review": "nowhere"}}, 400)):
        answer = await client.post("/api/migrations", json=bad, headers=designer)
        assert answer.status == status, (bad, await answer.text())
        assert (await answer.json())["error"]

    dry = await client.post("/api/migrations", json={**body, "dryRun": True}, headers=designer)
    assert dry.status == 200, await dry.text()
    report = await dry.json()
    assert report["counts"] == {"MIGRATABLE": 2, "REFUSED": 1} and report["dryRun"] is True

    started = await client.post("/api/migrations", json=body, headers=designer)
    assert started.status == 202, await started.text()
    location = started.headers["Location"]
    for _ in range(100):
        run = await (await client.get(location, headers=designer)).json()
        if run["finishedAt"]:
            break
        await asyncio.sleep(0.1)
    assert run["counts"] == {"MIGRATED": 2, "REFUSED": 1} and run["requestedBy"] == f"d_{key}"
    assert {i["outcome"] for i in run["instances"]} == {"MIGRATED", "REFUSED"}
    listed = await (await client.get("/api/migrations", headers=designer)).json()
    assert listed["migrations"][0]["migrationId"] == run["migrationId"]
    resumed = await client.post(f"{location}/resume", headers=designer)
    assert resumed.status == 202  # carries on: nothing left but the refused one
    assert (await client.get("/api/migrations/999999999", headers=designer)).status == 404
    assert await drift_of(db, flowable, pids) == []


async def test_a_sigkill_between_engine_and_mirror_is_resumed_and_repaired(db, db_url, flowable, engine):
    key = f"mig_{uuid.uuid4().hex[:8]}"
    await _deployed_versions(db, flowable, key)
    pids = [await _start_at(flowable, key, 1, n) for n in range(4)]
    await resync_instances(db, flowable, pids)
    env = {**os.environ, "BRIDGE_FAILPOINTS": "migration.after_engine"}
    killed = await asyncio.to_thread(subprocess.run, [sys.executable, "-c", (
        "import asyncio, sys\n"
        "from bridge import migration\n"
        "from bridge.db.connections import open_database\n"
        "from bridge.flowable.client import FlowableClient, FlowableEndpoint\n"
        "async def main():\n"
        "    db = open_database(sys.argv[1], pool_size=2)\n"
        "    async with FlowableClient.of(FlowableEndpoint(*sys.argv[2:5])) as flowable:\n"
        "        await migration.run(db, flowable, migration.MigrationRequest(process_key=sys.argv[5],\n"
        "            from_version=1, to_version=2, mappings={'review': 'assess'}, requested_by='designer'),\n"
        "            concurrency=1)\n"
        "asyncio.run(main())\n"), db_url, engine.base_url, engine.user, engine.password, key],
        env=env, capture_output=True, text=True, timeout=120)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    [run] = await _rows(db, "SELECT migration_id, finished_at FROM flowable.instance_migrations WHERE process_key = :k",
                        k=key)
    assert run.finished_at is None
    on_v2 = [p["id"] for p in await flowable.process_instances(processDefinitionKey=key, processDefinitionVersion=2)]
    assert len(on_v2) == 1  # the engine moved one; the mirror did not follow
    assert any("definition" in d for d in await drift_of(db, flowable, on_v2))

    resumed = await migration.run(db, flowable, await migration.stored_request(db, run.migration_id,
                                                                            requested_by="designer"),
                                  resume=run.migration_id)
    assert resumed.counts == {"MIGRATED": 3}  # the rest, once; the killed one is no longer on version 1
    await resync_instances(db, flowable, on_v2)  # the reconciler's repair of the one the kill left behind
    assert await drift_of(db, flowable, pids) == []
    history = await _rows(db, "SELECT task_id, count(*) AS n FROM flowable.task_history WHERE action_type = "
                              "'MIGRATED' AND process_instance_id = ANY(:ids) GROUP BY task_id", ids=pids)
    assert len(history) == 4 and all(h.n == 1 for h in history)
