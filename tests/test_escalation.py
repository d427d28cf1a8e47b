"""SLA escalation rounds (bridge/work/escalation.py) on a real PostgreSQL: a level that climbs one SLA
interval at a time, never a state that takes work out of its queue, recorded once per level through the
mirror's apply path. Queues here carry no engine-side consequences (priority, notify_role: those are tested
on the real engine in test_work_api.py), so no engine is called."""

from __future__ import annotations

import asyncio

from bridge.flowable.client import FlowableClient
from bridge.work.escalation import escalate_once
from tests import seed
from tests.conftest import NO_ENGINE
from tests.seed import hours, now


def _no_engine() -> FlowableClient:
    return FlowableClient.of(NO_ENGINE)


async def _setup(conn, config: str = "{}", sla_minutes: int = 60) -> str:
    await seed.queue(conn, "INTAKE", escalation_config=config, sla_minutes=sla_minutes)
    return await seed.instance(conn, await seed.definition(conn))


async def test_only_overdue_live_tasks_escalate_keep_their_state_and_history_says_so(conn, db):
    pi = await _setup(conn)
    past, future = now() - hours(0.5), now() + hours(1)
    open_late = await seed.task(conn, pi, "INTAKE", due_date=past)
    claimed_late = await seed.task(conn, pi, "INTAKE", due_date=past, status="CLAIMED", assignee="ann")
    delegated_late = await seed.task(conn, pi, "INTAKE", due_date=past, status="DELEGATED", assignee="bob")
    for status in ("COMPLETED", "CANCELLED"):
        await seed.task(conn, pi, "INTAKE", due_date=past, status=status)
    await seed.task(conn, pi, "INTAKE", due_date=future)
    await seed.task(conn, pi, "INTAKE", due_date=None)
    await seed.task(conn, pi, "INTAKE", due_date=now() - hours(10), escalation_level=3)

    async with _no_engine() as flowable:
        first = await escalate_once(db, flowable)
        again = await escalate_once(db, flowable)
    assert sorted(t["task_id"] for t in first.escalated) == sorted([open_late, claimed_late, delegated_late])
    assert again.escalated == []  # the next level waits one SLA interval (60 min) past the due date
    rows = await (await conn.execute("""
        SELECT task_id, status, assignee_id, escalation_level, escalated_at IS NOT NULL FROM flowable.workflow_tasks
        WHERE task_id = ANY(%s) ORDER BY task_id""", [[open_late, claimed_late, delegated_late]])).fetchall()
    assert sorted(rows) == sorted([(open_late, "OPEN", None, 1, True), (claimed_late, "CLAIMED", "ann", 1, True),
                                   (delegated_late, "DELEGATED", "bob", 1, True)])
    history = await (await conn.execute("""
        SELECT task_id, action_type, action_by, old_status, new_status, action_data ->> 'escalation_level',
               client_info ->> 'job'
        FROM flowable.task_history""")).fetchall()
    assert sorted(history) == sorted([
        (open_late, "ESCALATE", "SYSTEM", "OPEN", "OPEN", "1", "escalation"),
        (claimed_late, "ESCALATE", "SYSTEM", "CLAIMED", "CLAIMED", "1", "escalation"),
        (delegated_late, "ESCALATE", "SYSTEM", "DELEGATED", "DELEGATED", "1", "escalation")])


async def test_a_task_left_overdue_climbs_a_level_per_sla_interval_up_to_the_queues_top(conn, db):
    pi = await _setup(conn, '{"max_level": 2}', sla_minutes=60)
    far_gone = await seed.task(conn, pi, "INTAKE", due_date=now() - hours(5))  # five intervals late
    just_late = await seed.task(conn, pi, "INTAKE", due_date=now() - hours(1.5))  # 1.5 intervals late
    levels: dict[str, list[int]] = {far_gone: [], just_late: []}
    async with _no_engine() as flowable:
        for _ in range(4):
            for task in (await escalate_once(db, flowable)).escalated:
                levels[task["task_id"]].append(task["escalation_level"])
    assert levels == {far_gone: [1, 2], just_late: [1, 2]}  # one level a round, max_level 2
    assert await (await conn.execute(
        "SELECT count(*) FROM flowable.task_history WHERE action_type = 'ESCALATE'")).fetchone() == (4,)


async def test_move_to_queue_keeps_the_task_open_in_the_new_queue(conn, db):
    await seed.queue(conn, "SUPERVISION")
    pi = await _setup(conn, '{"move_to_queue": "SUPERVISION"}')
    task_id = await seed.task(conn, pi, "INTAKE", due_date=now() - hours(0.5))
    async with _no_engine() as flowable:
        [escalated] = (await escalate_once(db, flowable)).escalated
    assert escalated["moved_to"] == "SUPERVISION"
    assert await (await conn.execute(
        "SELECT status, queue_name, escalation_level FROM flowable.workflow_tasks WHERE task_id = %s",
        [task_id])).fetchone() == ("OPEN", "SUPERVISION", 1)
    assert await (await conn.execute(
        "SELECT escalate_to FROM flowable.task_history WHERE action_type = 'ESCALATE'")).fetchone() == ("SUPERVISION",)


async def test_concurrent_rounds_escalate_each_task_once_per_level(conn, db):
    pi = await _setup(conn)
    await conn.execute("""
        INSERT INTO flowable.workflow_tasks (task_id, process_instance_id, task_definition_key, task_name,
                                             queue_name, status, assignee_id, due_date)
        SELECT 'late-' || g, %s, 'review', 'Review', 'INTAKE',
               CASE WHEN g %% 2 = 0 THEN 'OPEN' ELSE 'CLAIMED' END, CASE WHEN g %% 2 = 0 THEN NULL ELSE 'ann' END,
               now() - interval '30 minutes'
        FROM generate_series(1, 300) g""", [pi])

    async def run_repeatedly() -> list[str]:
        seen = []
        async with _no_engine() as flowable:
            for _ in range(3):
                seen += [t["task_id"] for t in (await escalate_once(db, flowable)).escalated]
        return seen

    results = await asyncio.gather(*(run_repeatedly() for _ in range(4)))
    escalated = [t for r in results for t in r]
    assert sorted(escalated) == sorted(f"late-{g}" for g in range(1, 301))
    per_task = await (await conn.execute("""
        SELECT t.escalation_level, count(h.*), min(h.old_status) = min(t.status)
        FROM flowable.workflow_tasks t JOIN flowable.task_history h USING (task_id)
        GROUP BY t.task_id, t.escalation_level""")).fetchall()
    assert len(per_task) == 300 and set(per_task) == {(1, 1, True)}
