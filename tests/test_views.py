"""The reporting views on a small data set whose numbers are worked out by hand."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests import seed
from tests.seed import hours, now


async def _rows(conn, query: str) -> list[dict]:
    cur = await conn.execute(query)
    names = [d.name for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in await cur.fetchall()]


async def test_active_tasks_by_queue(conn):
    legal = await seed.department(conn, "LEGAL", "Legal")
    await seed.queue(conn, "A", department_id=legal)
    await seed.queue(conn, "B", is_active=False)
    await seed.queue(conn, "C")
    pi = await seed.instance(conn, await seed.definition(conn))
    t0 = now()
    for status in ("OPEN", "OPEN", "CLAIMED", "CANCELLED"):
        await seed.task(conn, pi, "A", status=status)
    await seed.task(conn, pi, "A", status="CLAIMED", escalation_level=1)  # escalated: a level, not a status
    await seed.task(conn, pi, "A", status="COMPLETED", created_at=t0 - hours(6), completed_at=t0 - hours(4))
    await seed.task(conn, pi, "A", status="COMPLETED", created_at=t0 - hours(10), completed_at=t0 - hours(6))
    await seed.task(conn, pi, "B", status="OPEN")

    rows = await _rows(conn, "SELECT * FROM flowable.v_active_tasks_by_queue ORDER BY queue_name")
    assert [r["queue_name"] for r in rows] == ["A", "C"]
    a, c = rows
    assert (a["department_id"], a["department_name"]) == (legal, "Legal")
    assert (a["open_tasks"], a["claimed_tasks"], a["escalated_tasks"]) == (2, 2, 1)
    assert float(a["avg_completion_hours"]) == pytest.approx(3.0)
    assert (c["open_tasks"], c["claimed_tasks"], c["escalated_tasks"], c["avg_completion_hours"]) == (0, 0, 0, None)


async def test_user_workload_counts_current_grants_of_active_users_only(conn):
    t0 = now()
    legal = await seed.role(conn, "LEGAL_REVIEWER")
    intake = await seed.role(conn, "INTAKE_CLERK")
    await seed.user(conn, "alice", first="Alice", last="Smith")
    await seed.user(conn, "bob", is_active=False)
    await seed.user(conn, "carol")
    await seed.user(conn, "dave")
    await seed.user(conn, "erin", first="Erin")
    await seed.grant(conn, "alice", legal)
    await seed.grant(conn, "alice", intake)
    # The seed's `AND ... OR ...` let both of these in:
    await seed.grant(conn, "bob", legal, valid_until=t0 + timedelta(days=1))    # inactive user
    await seed.grant(conn, "dave", legal, valid_from=t0 + hours(1))              # not started yet
    await seed.grant(conn, "carol", legal, valid_from=t0 - hours(48), valid_until=t0 - hours(1))  # expired
    await seed.grant(conn, "erin", legal, valid_until=t0 + timedelta(days=1))

    await seed.queue(conn, "Q")
    pi = await seed.instance(conn, await seed.definition(conn))
    await seed.task(conn, pi, "Q", status="CLAIMED", assignee="alice")
    await seed.task(conn, pi, "Q", status="CLAIMED", assignee="alice")
    await seed.task(conn, pi, "Q", status="COMPLETED", assignee="alice",
                    claimed_at=t0 - hours(3), completed_at=t0 - hours(2))
    await seed.task(conn, pi, "Q", status="COMPLETED", assignee="alice",
                    claimed_at=t0 - timedelta(days=10, hours=3), completed_at=t0 - timedelta(days=10))
    await seed.task(conn, pi, "Q", status="CLAIMED", assignee="bob")

    rows = await _rows(conn, "SELECT * FROM flowable.v_user_workload ORDER BY user_id, role_code")
    got = [(r["user_id"], r["full_name"], r["role_code"], r["claimed_tasks"], r["completed_last_week"],
            None if r["avg_task_duration_hours"] is None else round(float(r["avg_task_duration_hours"]), 6))
           for r in rows]
    assert got == [
        ("alice", "Alice Smith", "INTAKE_CLERK", 2, 1, 2.0),
        ("alice", "Alice Smith", "LEGAL_REVIEWER", 2, 1, 2.0),
        ("erin", "Erin", "LEGAL_REVIEWER", 0, 0, None),
    ]


async def test_process_performance_counts_every_version_of_an_active_process(conn):
    t0 = now()
    v1 = await seed.definition(conn, "claims", version=1, is_active=False, name="Claims v1")
    v2 = await seed.definition(conn, "claims", version=2, is_active=True, name="Claims v2")
    await seed.definition(conn, "retired", version=1, is_active=False)
    await seed.definition(conn, "empty", version=1, is_active=True, name="Empty")

    async def completed(workflow_id: int, duration_h: float) -> None:
        await seed.instance(conn, workflow_id, status="COMPLETED", started_at=t0 - hours(24),
                            completed_at=t0 - hours(24) + hours(duration_h))

    await completed(v1, 1)
    for h in (2, 3, 4, 5):
        await completed(v2, h)
    await seed.instance(conn, v2, status="ACTIVE")
    await seed.instance(conn, v2, status="TERMINATED", started_at=t0 - hours(30), completed_at=t0)

    rows = {r["process_key"]: r for r in await _rows(conn, "SELECT * FROM flowable.v_process_performance")}
    assert set(rows) == {"claims", "empty"}
    claims = rows["claims"]
    assert claims["process_name"] == "Claims v2"
    assert (claims["total_instances"], claims["active_instances"], claims["completed_instances"]) == (7, 1, 5)
    assert float(claims["avg_completion_hours"]) == pytest.approx(3.0)
    # durations 1,2,3,4,5: position 0.95 * (5 - 1) = 3.8 -> 4 + 0.8 * (5 - 4) = 4.8
    assert claims["p95_completion_hours"] == pytest.approx(4.8)
    empty = rows["empty"]
    assert (empty["total_instances"], empty["active_instances"], empty["completed_instances"],
            empty["avg_completion_hours"], empty["p95_completion_hours"]) == (0, 0, 0, None, None)
