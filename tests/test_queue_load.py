"""workflow_queues.current_load (migrations 0011, 0013): every task write logs its change, folding adds it."""

from __future__ import annotations

import asyncio

import psycopg

from tests import seed


async def loads(conn) -> dict[str, tuple[int, int]]:
    """queue -> (folded current_load, exact load from v_queue_load)."""
    rows = await (await conn.execute(
        "SELECT q.queue_name, q.current_load, v.current_load FROM flowable.workflow_queues q "
        "JOIN flowable.v_queue_load v USING (queue_name) ORDER BY 1")).fetchall()
    return {name: (folded, exact) for name, folded, exact in rows}


async def test_inserts_updates_and_deletes_of_any_writer_move_the_load(conn):
    await seed.queue(conn, "A")
    await seed.queue(conn, "B")
    pi = await seed.instance(conn, await seed.definition(conn))
    a1 = await seed.task(conn, pi, "A")
    await seed.task(conn, pi, "A", status="CLAIMED", assignee="ann")
    await seed.task(conn, pi, "A", status="COMPLETED")
    b1 = await seed.task(conn, pi, "B", status="DELEGATED", assignee="bob")
    assert await loads(conn) == {"A": (0, 2), "B": (0, 1)}  # logged, not yet folded; the view is exact

    await conn.execute("SELECT flowable.fold_queue_load()")
    assert await loads(conn) == {"A": (2, 2), "B": (1, 1)}

    async with conn.transaction():  # one transaction, statements on both queues in both orders
        await conn.execute("UPDATE flowable.workflow_tasks SET status = 'COMPLETED' WHERE task_id = %s", (a1,))
        await conn.execute("UPDATE flowable.workflow_tasks SET queue_name = 'A' WHERE task_id = %s", (b1,))
        await conn.execute("DELETE FROM flowable.workflow_tasks WHERE status = 'COMPLETED'")
    await conn.execute("SELECT flowable.fold_queue_load()")
    assert await loads(conn) == {"A": (2, 2), "B": (0, 0)}


async def test_concurrent_writers_on_two_queues_never_deadlock_and_the_count_is_exact(conn, db_url):
    await seed.queue(conn, "A")
    await seed.queue(conn, "B")
    pi = await seed.instance(conn, await seed.definition(conn))

    async def writer(first: str, second: str) -> None:
        async with await psycopg.AsyncConnection.connect(db_url) as c:
            for _ in range(30):
                async with c.transaction():
                    await seed.task(c, pi, first)
                    await seed.task(c, pi, second)

    await asyncio.gather(writer("A", "B"), writer("B", "A"), writer("A", "B"), writer("B", "A"))
    await conn.execute("SELECT flowable.fold_queue_load()")
    assert await loads(conn) == {"A": (120, 120), "B": (120, 120)}

    await conn.execute("UPDATE flowable.workflow_queues SET current_load = 7")  # drifted somehow
    assert (await (await conn.execute("SELECT flowable.recount_queue_load()")).fetchone())[0] == 2
    assert await loads(conn) == {"A": (120, 120), "B": (120, 120)}
