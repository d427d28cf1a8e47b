"""The reconciler and `bridge drift` against the real engine, with no webhooks reaching this module's mirror.

The engine is shared by the whole test session, so it holds every other module's instances too: each
test starts with a cold backfill of all of them (itself a test of "a cold start against an engine with
history backfills everything"), then works on cases of its own.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from datetime import timedelta

import pytest
from sqlalchemy import text

from bridge.flowable.client import EngineUnavailable, FlowableClient, RetryPolicy
from bridge.mirror.drift import find_drift
from bridge.mirror.engine_state import EngineReader
from bridge.mirror.reconcile import Reconciler, ReconcilerSettings
from tests.conftest import PROJECT_ROOT
from tests.tcp_proxy import TcpProxy

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("onecms_deployed")]

KEY = "OneCMS_Nextgen_WF"


async def drift(db, flowable) -> list[str]:
    async with db.connect() as conn:
        differences, _ = await find_drift(conn, EngineReader(flowable))
    return [str(d) for d in differences]


async def rows(db, sql: str, **params) -> list[dict]:
    async with db.connect() as conn:
        return [dict(r) for r in (await conn.execute(text(sql), params)).mappings()]


async def only_task(flowable, pid: str) -> dict:
    tasks = await flowable.tasks(processInstanceId=pid)
    assert len(tasks) == 1, tasks
    return tasks[0]


async def drive_case(flowable, n: int) -> tuple[str, str]:
    """One case taken a few steps, the way depends on n; returns (instance id, what was done)."""
    case_type = ("QUALITY", "FRAUD", "LEGAL_CLAIM")[n % 3]
    pid = (await flowable.start_process(KEY, business_key=str(70000 + n),
                                        variables={"caseId": 70000 + n, "caseType": case_type,
                                                   "severity": "LOW"}))["id"]
    way = n % 6
    register = await only_task(flowable, pid)
    if way == 0:
        return pid, "registered"
    await flowable.claim_task(register["id"], "alice")
    if way == 1:
        return pid, "register claimed"
    await flowable.complete_task(register["id"])
    triage = await only_task(flowable, pid)
    if way == 2:
        await flowable.claim_task(triage["id"], "bob")
        await flowable.claim_task(triage["id"], None)
        await flowable.claim_task(triage["id"], "carol")
        await flowable.update_task(triage["id"], priority=77)
        return pid, "triage reassigned"
    if way == 3:
        await flowable.complete_task(triage["id"], {"triageDecision": "REJECT"})
        return pid, "rejected"
    if way == 4:
        await flowable.cancel_process(pid, "duplicate of another case")
        return pid, "cancelled"
    await flowable.complete_task(triage["id"], {"triageDecision": "ACCEPT"})
    await flowable.request("PUT", f"runtime/process-instances/{pid}", json_body={"action": "suspend"})
    return pid, "department, suspended"


async def test_webhooks_off_fifty_cases_then_one_pass_and_drift_is_empty(db, db_url, flowable, engine):
    reconciler = Reconciler(db, flowable)
    first = await reconciler.run_once()
    assert first.kind == "BACKFILL"
    assert await drift(db, flowable) == []  # everything the engine already had, backfilled

    cases = dict([await drive_case(flowable, n) for n in range(50)])
    lagging = "\n".join(await drift(db, flowable))
    assert all(pid in lagging for pid in cases)  # the mirror heard of none of them

    report = await reconciler.run_once()
    assert report.kind == "INCREMENTAL"
    assert report.instances_checked >= 50 and report.repaired > 0
    assert await drift(db, flowable) == []

    # the same through the operator's command
    env = {**os.environ, "DATABASE_URL": db_url, "FLOWABLE_URL": engine.base_url,
           "FLOWABLE_USER": engine.user, "FLOWABLE_PASSWORD": engine.password}
    command = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "bridge.cli", "drift"], env=env,
                                      capture_output=True, text=True, timeout=120, cwd=PROJECT_ROOT)
    assert command.returncode == 0, command.stdout + command.stderr
    assert "no differences" in command.stderr

    # what the pass wrote is what the engine holds, case by case
    status = {r["process_instance_id"]: r for r in await rows(db, """
        SELECT p.process_instance_id, p.status, p.case_id, p.metadata ->> 'endCause' AS cause,
               p.current_activity
        FROM flowable.process_instances p WHERE p.process_instance_id = ANY(:ids)""", ids=list(cases))}
    expected = {"registered": "ACTIVE", "register claimed": "ACTIVE", "triage reassigned": "ACTIVE",
                "rejected": "COMPLETED", "cancelled": "TERMINATED", "department, suspended": "SUSPENDED"}
    assert {pid: status[pid]["status"] for pid in cases} == {pid: expected[way] for pid, way in cases.items()}
    assert all(status[pid]["case_id"] is not None for pid in cases)
    reassigned = next(pid for pid, way in cases.items() if way == "triage reassigned")
    triage = (await rows(db, "SELECT * FROM flowable.workflow_tasks WHERE process_instance_id = :p "
                             "AND task_definition_key = 'triageCase'", p=reassigned))[0]
    assert (triage["status"], triage["assignee_id"], triage["priority"], triage["queue_name"],
            triage["candidate_groups"]) == ("CLAIMED", "carol", 77, "INTAKE_TRIAGE", ["INTAKE_TRIAGE_OFFICER"])
    assert status[reassigned]["current_activity"] == "triageCase"
    cancelled = next(pid for pid, way in cases.items() if way == "cancelled")
    history = await rows(db, "SELECT h.action_type, h.old_status, h.new_status, h.comments, t.task_definition_key "
                             "FROM flowable.task_history h JOIN flowable.workflow_tasks t USING (task_id) "
                             "WHERE h.process_instance_id = :p ORDER BY h.history_id", p=cancelled)
    assert [(h["task_definition_key"], h["action_type"], h["new_status"]) for h in history] == [
        ("registerCase", "CREATE", "CLAIMED"), ("registerCase", "COMPLETE", "COMPLETED"),
        ("triageCase", "CREATE", "OPEN"), ("triageCase", "CANCEL", "CANCELLED")]
    assert history[-1]["comments"] == "duplicate of another case"

    # nothing new: the next pass reads the overlap again and finds nothing to do
    quiet = await reconciler.run_once()
    assert (quiet.kind, quiet.instances_checked, quiet.differences) == ("INCREMENTAL", 0, [])


async def test_a_sweep_repairs_what_no_log_entry_names_and_reports_what_it_cannot(db, flowable):
    # bridge and engine share this machine's clock; without the skew allowance the repairs of rows
    # written seconds ago are not postponed to a later pass. One instance per sweep chunk: the sweep's
    # repairs span chunks, and only the last chunk moves the cursor.
    reconciler = Reconciler(db, flowable, ReconcilerSettings(clock_skew=timedelta(0), sweep_chunk=1))
    await reconciler.run_once()
    (open_pid, _), (doomed_pid, _), (quiet_pid, _) = [await drive_case(flowable, n) for n in (0, 12, 6)]
    await reconciler.run_once()
    assert await drift(db, flowable) == []

    await flowable.request("PUT", f"runtime/process-instances/{quiet_pid}", json_body={"action": "suspend"})
    register = await only_task(flowable, open_pid)
    async with db.begin() as conn:  # the mirror goes wrong behind the bridge's back
        await conn.execute(text("UPDATE flowable.workflow_tasks SET assignee_id = 'mallory', status = 'CLAIMED' "
                                "WHERE task_id = :t"), {"t": register["id"]})
        await conn.execute(text("UPDATE flowable.workflow_tasks SET candidate_groups = '{}' WHERE task_id = :t"),
                           {"t": register["id"]})
        await conn.execute(text("DELETE FROM flowable.workflow_tasks WHERE process_instance_id = :p"),
                           {"p": doomed_pid})
        await conn.execute(text("UPDATE flowable.process_instances SET status = 'COMPLETED' "
                                "WHERE process_instance_id = :p"), {"p": doomed_pid})
    found = await drift(db, flowable)
    doomed_task = (await only_task(flowable, doomed_pid))["id"]
    assert sorted(found) == sorted([
        f"process {quiet_pid}: status: mirror=ACTIVE engine=SUSPENDED",
        f"task {register['id']}: assignee: mirror=mallory engine=null",
        f"task {register['id']}: candidate_groups: mirror=[] engine=['INTAKE_CLERK']",
        f"process {doomed_pid}: status: mirror=COMPLETED engine=ACTIVE  (not repairable by the reconciler)",
        f"task {doomed_task}: exists: mirror=no engine=yes",
    ])

    # The doomed case started within the process cursor's overlap, so an incremental pass looks at it
    # again; the suspension wrote task-log entries (the task's suspension state). The tampered task is in
    # no log entry and no start or end: only a sweep finds it.
    incremental = await reconciler.run_once()
    assert incremental.kind == "INCREMENTAL"
    assert {(d.entity_id, d.field) for d in incremental.differences} == {
        (doomed_pid, "status"), (doomed_task, "exists"), (quiet_pid, "status")}
    sweep = await reconciler.run_once(sweep=True)
    assert sweep.kind == "SWEEP" and len(sweep.differences) == 3 and sweep.repaired == 2
    assert await drift(db, flowable) == [
        f"process {doomed_pid}: status: mirror=COMPLETED engine=ACTIVE  (not repairable by the reconciler)"]

    repairs = await rows(db, "SELECT entity_id, field, repaired, pass_kind FROM flowable.mirror_repairs "
                             "ORDER BY repair_id")
    assert {(r["pass_kind"], r["entity_id"], r["field"], r["repaired"]) for r in repairs} >= {
        ("INCREMENTAL", doomed_pid, "status", False), ("INCREMENTAL", doomed_task, "exists", True),
        ("INCREMENTAL", quiet_pid, "status", True), ("SWEEP", register["id"], "assignee", True),
        ("SWEEP", register["id"], "candidate_groups", True), ("SWEEP", doomed_pid, "status", False)}
    unclaim = await rows(db, "SELECT action_type, old_assignee, new_assignee FROM flowable.task_history "
                             "WHERE task_id = :t ORDER BY history_id DESC LIMIT 1", t=register["id"])
    assert unclaim == [{"action_type": "UNCLAIM", "old_assignee": "mallory", "new_assignee": None}]


async def test_engine_unreachable_fails_the_pass_keeps_the_cursor_then_catches_up(db, flowable, engine):
    async with TcpProxy("127.0.0.1", engine.port) as proxy, \
            FlowableClient(f"http://127.0.0.1:{proxy.port}/process-api", engine.user, engine.password,
                           retry=RetryPolicy(attempts=3, max_wait_s=0.2)) as through_proxy:
        reconciler = Reconciler(db, through_proxy)
        await reconciler.run_once()
        state = "SELECT task_log_number, process_time, last_error FROM flowable.reconciler_state"
        before = await rows(db, state)
        cases = [(await drive_case(flowable, n))[0] for n in (1, 3, 5)]

        await proxy.cut()
        with pytest.raises(EngineUnavailable):
            await reconciler.run_once()
        assert await rows(db, state) == before  # nothing advanced past what was not written

        loop = asyncio.create_task(reconciler.run_forever(interval_s=0.1))
        try:
            for _ in range(100):
                await asyncio.sleep(0.1)
                if reconciler.last_error:
                    break
            assert "EngineUnavailable" in reconciler.last_error
            assert (await rows(db, state))[0]["last_error"].startswith("EngineUnavailable")
            await proxy.restore()
            for _ in range(150):  # the loop backs off, then catches up on its own
                await asyncio.sleep(0.2)
                if reconciler.last_error is None and reconciler.last_report and reconciler.last_report.seconds:
                    break
            assert reconciler.last_error is None
        finally:
            loop.cancel()
            await proxy.cut()
    assert (await rows(db, state))[0]["last_error"] is None
    assert await drift(db, flowable) == []
    mirrored = await rows(db, "SELECT process_instance_id FROM flowable.process_instances "
                              "WHERE process_instance_id = ANY(:ids)", ids=cases)
    assert len(mirrored) == 3


async def test_only_one_bridge_reconciles_at_a_time(db, flowable):
    reconciler = Reconciler(db, flowable, ReconcilerSettings(name="default"))
    async with db.connect() as other:  # another replica, mid-pass
        await other.execute(text("SELECT pg_advisory_lock(hashtext('bridge.reconciler'), hashtext('default'))"))
        assert (await reconciler.run_once()).kind == "SKIPPED"
        await other.execute(text("SELECT pg_advisory_unlock(hashtext('bridge.reconciler'), hashtext('default'))"))
        await other.commit()
    assert (await reconciler.run_once()).kind == "BACKFILL"
