"""flowable.escalate_overdue_tasks: overdue open work goes up one level, once, with honest history."""

from __future__ import annotations

import asyncio

import psycopg

from tests import seed
from tests.seed import hours, now

ESCALATE = "SELECT task_id, old_status, escalation_level, escalation_config FROM flowable.escalate_overdue_tasks()"


async def _setup(conn) -> str:
    await seed.queue(conn, "INTAKE", escalation_config='{"raise_priority_by": 10}')
    return await seed.instance(conn, await seed.definition(conn))


async def test_only_overdue_open_or_claimed_tasks_escalate_and_history_keeps_the_real_old_status(conn):
    pi = await _setup(conn)
    past, future = now() - hours(1), now() + hours(1)
    open_late = await seed.task(conn, pi, "INTAKE", due_date=past)
    claimed_late = await seed.task(conn, pi, "INTAKE", due_date=past, status="CLAIMED", assignee="ann")
    for status in ("COMPLETED", "CANCELLED", "ESCALATED", "DELEGATED"):
        await seed.task(conn, pi, "INTAKE", due_date=past, status=status)
    await seed.task(conn, pi, "INTAKE", due_date=future)
    await seed.task(conn, pi, "INTAKE", due_date=None)
    await seed.task(conn, pi, "INTAKE", due_date=past, escalation_level=3)

    escalated = {row[0]: row[1:] for row in await (await conn.execute(ESCALATE)).fetchall()}
    assert escalated == {open_late: ("OPEN", 1, {"raise_priority_by": 10}),
                         claimed_late: ("CLAIMED", 1, {"raise_priority_by": 10})}

    history = await (await conn.execute("""
        SELECT task_id, action_type, action_by, old_status, new_status, old_assignee, action_data
        FROM flowable.task_history ORDER BY task_id""")).fetchall()
    assert sorted(history) == sorted([
        (open_late, "ESCALATE", "SYSTEM", "OPEN", "ESCALATED", None, {"escalation_level": 1}),
        (claimed_late, "ESCALATE", "SYSTEM", "CLAIMED", "ESCALATED", "ann", {"escalation_level": 1}),
    ])
    rows = await (await conn.execute("""
        SELECT status, escalation_level, escalated_at IS NOT NULL FROM flowable.workflow_tasks
        WHERE task_id IN (%s, %s)""", [open_late, claimed_late])).fetchall()
    assert rows == [("ESCALATED", 1, True)] * 2
    assert await (await conn.execute(ESCALATE)).fetchall() == []  # nothing left to do


async def test_levels_stop_at_three(conn):
    pi = await _setup(conn)
    task_id = await seed.task(conn, pi, "INTAKE", due_date=now() - hours(1))
    levels = []
    for _ in range(5):
        levels += [row[2] for row in await (await conn.execute(ESCALATE)).fetchall()]
        # Someone picks the escalated task up again; it is still overdue.
        await conn.execute("UPDATE flowable.workflow_tasks SET status = 'CLAIMED' WHERE task_id = %s", [task_id])
    assert levels == [1, 2, 3]
    assert await (await conn.execute(
        "SELECT count(*) FROM flowable.task_history WHERE action_type = 'ESCALATE'")).fetchone() == (3,)


async def test_a_run_skips_tasks_another_run_holds_and_never_escalates_twice(conn, db_url):
    pi = await _setup(conn)
    task_id = await seed.task(conn, pi, "INTAKE", due_date=now() - hours(1))
    async with await psycopg.AsyncConnection.connect(db_url) as first, \
            await psycopg.AsyncConnection.connect(db_url, autocommit=True) as second:
        assert len(await (await first.execute(ESCALATE)).fetchall()) == 1  # holds the row, uncommitted
        assert await (await second.execute(ESCALATE)).fetchall() == []     # skipped, did not wait
        await first.commit()
        assert await (await second.execute(ESCALATE)).fetchall() == []     # already escalated
    assert await (await conn.execute(
        "SELECT escalation_level FROM flowable.workflow_tasks WHERE task_id = %s", [task_id])).fetchone() == (1,)


async def test_concurrent_runs_escalate_each_task_once_per_level(conn, db_url):
    pi = await _setup(conn)
    await conn.execute("""
        INSERT INTO flowable.workflow_tasks (task_id, process_instance_id, task_definition_key, task_name,
                                             queue_name, status, due_date)
        SELECT 'late-' || g, %s, 'review', 'Review', 'INTAKE',
               CASE WHEN g %% 2 = 0 THEN 'OPEN' ELSE 'CLAIMED' END, now() - interval '1 hour'
        FROM generate_series(1, 600) g""", [pi])

    async def run_repeatedly() -> list[str]:
        seen = []
        async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as c:
            for _ in range(3):
                seen += [row[0] for row in await (await c.execute(ESCALATE)).fetchall()]
        return seen

    results = await asyncio.gather(*(run_repeatedly() for _ in range(4)))
    escalated = [t for r in results for t in r]
    assert sorted(escalated) == sorted(f"late-{g}" for g in range(1, 601))
    per_task = await (await conn.execute("""
        SELECT t.escalation_level, count(h.*), min(h.old_status) = max(h.old_status)
        FROM flowable.workflow_tasks t JOIN flowable.task_history h USING (task_id)
        GROUP BY t.task_id, t.escalation_level""")).fetchall()
    assert len(per_task) == 600 and set(per_task) == {(1, 1, True)}
