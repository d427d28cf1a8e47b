"""Archiving with the real engine: instances completed past a short retention (declared in their BPMN) leave
the mirror with nothing lost, the reconciler and `bridge drift` see them as archived rather than missing,
then the engine's own history of them is deleted and drift is still empty."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from bridge import archive
from bridge.config import Settings
from bridge.deploy import deploy_bpmn
from bridge.mirror.drift import find_drift
from bridge.mirror.engine_state import EngineReader
from bridge.mirror.reconcile import Reconciler, ReconcilerSettings, resync_instances
from tests.helpers import one_task_process

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("onecms_deployed")]

KEY = "archived_flow"
KEPT_DAYS = 1


async def _drift(db, flowable) -> list[str]:
    async with db.connect() as conn:
        differences, _ = await find_drift(conn, EngineReader(flowable))
    return [str(d) for d in differences]


async def _scalar(db, sql: str, **params):
    async with db.connect() as conn:
        return (await conn.execute(text(sql), params)).scalar()


async def _engine_has(flowable, pid: str) -> bool:
    return bool(await flowable.historic_process_instances(processInstanceId=pid))


async def test_archived_instances_leave_mirror_then_engine_and_drift_stays_empty(db, flowable):
    xml = one_task_process(KEY).replace(
        b'<startEvent id="start"/>',
        f'<extensionElements><onecms:workflow xmlns:onecms="urn:onecms:bpmn:1.0" retentionDays="{KEPT_DAYS}"/>'
        f'</extensionElements><startEvent id="start"/>'.encode())
    await deploy_bpmn(xml, f"{KEY}.bpmn20.xml", db=db, flowable=flowable, deployed_by="designer")
    assert await _scalar(db, "SELECT retention_days || ':' || source FROM flowable.retention_policies "
                             "WHERE process_key = :key", key=KEY) == f"{KEPT_DAYS}:bpmn"

    pids = [(await flowable.start_process(KEY, business_key=f"arch-{n}"))["id"] for n in range(5)]
    done, running = pids[:4], pids[4]
    for pid in done:
        task = (await flowable.tasks(processInstanceId=pid))[0]
        await flowable.claim_task(task["id"], "alice")
        await flowable.complete_task(task["id"])
    await resync_instances(db, flowable, pids)
    counts = {pid: await _scalar(db, "SELECT count(*) FROM flowable.task_history WHERE process_instance_id = :p",
                                 p=pid) for pid in done}
    assert all(n >= 2 for n in counts.values())  # created, claimed, completed: something to keep
    reconciler = Reconciler(db, flowable, ReconcilerSettings.of(Settings()))
    await reconciler.run_once()  # backfill: the mirror holds every engine instance, so drift compares all
    assert await _drift(db, flowable) == []

    later = datetime.now(UTC) + timedelta(days=KEPT_DAYS + 1)
    mirror_only = await archive.run(db, None, retention_days=365, as_of=later)
    assert mirror_only.instances == len(done)
    assert mirror_only.engine_histories_pending == len(done)
    for pid in done:
        assert await _scalar(db, "SELECT count(*) FROM flowable.process_instances WHERE process_instance_id = :p",
                             p=pid) == 0
        assert await _scalar(db, "SELECT (row_counts ->> 'task_history')::int FROM archive.archived_instances "
                                 "WHERE process_instance_id = :p", p=pid) == counts[pid]
        assert await _engine_has(flowable, pid)  # the engine still has it: archived, not missing
    assert await _drift(db, flowable) == []
    report = await reconciler.run_once(sweep=True)
    assert not [d for d in report.differences if d.entity_id in done]
    assert await _scalar(db, "SELECT count(*) FROM flowable.process_instances "
                             "WHERE process_instance_id = ANY(:ids)", ids=done) == 0  # not brought back

    engine_too = await archive.run(db, flowable, retention_days=365, as_of=later)
    assert engine_too.engine_histories_deleted == len(done) and engine_too.engine_error is None
    assert engine_too.engine_histories_pending == 0
    for pid in done:
        assert not await _engine_has(flowable, pid)
        assert [t async for t in flowable.historic_task_pages(processInstanceId=pid)] == []
    assert await _drift(db, flowable) == []
    assert await _engine_has(flowable, running)  # the running one is nobody's to archive
    assert await _scalar(db, "SELECT status FROM flowable.process_instances WHERE process_instance_id = :p",
                         p=running) == "ACTIVE"

    # a run with nothing new to do changes nothing, in the mirror or the engine
    idle = await archive.run(db, flowable, retention_days=365, as_of=later)
    assert (idle.instances, idle.engine_histories_deleted) == (0, 0)
    assert await _scalar(db, "SELECT count(*) FROM archive.archived_instances WHERE process_instance_id = ANY(:ids)",
                         ids=done) == len(done)
