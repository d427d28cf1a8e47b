"""Row-level security: as bridge_reader, a user sees their own and their queues' tasks only."""

from __future__ import annotations

import psycopg
import pytest

from tests import seed
from tests.seed import hours, now


@pytest.fixture
async def world(conn):
    """alice: LEGAL_REVIEWER (home queue LEGAL_REVIEW); bob: INTAKE_CLERK (assigned queue INTAKE);
    carol: no roles; dave: LEGAL_REVIEWER grant expired; erin: LEGAL_REVIEWER grant not started."""
    await seed.queue(conn, "LEGAL_REVIEW")
    intake = await seed.queue(conn, "INTAKE")
    await seed.queue(conn, "OTHER")
    legal_role = await seed.role(conn, "LEGAL_REVIEWER", queue_name="LEGAL_REVIEW")
    intake_role = await seed.role(conn, "INTAKE_CLERK")
    await seed.assign_queue(conn, intake, intake_role)
    for u in ("alice", "bob", "carol", "dave", "erin"):
        await seed.user(conn, u)
    await seed.grant(conn, "alice", legal_role)
    await seed.grant(conn, "bob", intake_role)
    await seed.grant(conn, "dave", legal_role, valid_from=now() - hours(48), valid_until=now() - hours(1))
    await seed.grant(conn, "erin", legal_role, valid_from=now() + hours(1))
    pi = await seed.instance(conn, await seed.definition(conn))
    tasks = {
        "legal": await seed.task(conn, pi, "LEGAL_REVIEW"),
        "intake": await seed.task(conn, pi, "INTAKE"),
        "carols": await seed.task(conn, pi, "OTHER", status="CLAIMED", assignee="carol"),
        "offered_to_alice": await seed.task(conn, pi, "OTHER", candidate_users=["alice"]),
        "offered_to_clerks": await seed.task(conn, pi, "OTHER", candidate_groups=["INTAKE_CLERK"]),
        "nobodys": await seed.task(conn, pi, "OTHER", candidate_groups=["SOMEONE_ELSE"]),
    }
    for task_id in tasks.values():
        await conn.execute("INSERT INTO flowable.task_history (task_id, process_instance_id, action_type, action_by) "
                           "VALUES (%s, %s, 'CREATE', 'engine')", [task_id, pi])
    return {v: k for k, v in tasks.items()}


async def _visible(db_url: str, user_id: str | None, table: str = "flowable.workflow_tasks") -> set[str]:
    async with await psycopg.AsyncConnection.connect(db_url) as c:
        await c.execute("SET LOCAL ROLE bridge_reader")
        if user_id is not None:
            await c.execute("SELECT set_config('app.current_user_id', %s, true)", [user_id])
        return {task_id for (task_id,) in await (await c.execute(f"SELECT task_id FROM {table}")).fetchall()}


@pytest.mark.parametrize("user_id, expected", [
    ("alice", {"legal", "offered_to_alice"}),
    ("bob", {"intake", "offered_to_clerks"}),
    ("carol", {"carols"}),
    ("dave", set()),
    ("erin", set()),
    ("mallory", set()),
    ("", set()),
    (None, set()),
])
async def test_each_user_sees_their_own_and_their_queues_tasks_only(world, db_url, user_id, expected):
    assert {world[t] for t in await _visible(db_url, user_id)} == expected
    assert {world[t] for t in await _visible(db_url, user_id, "flowable.task_history")} == expected


async def test_the_reading_role_cannot_write_and_the_owner_is_not_filtered(world, db_url, conn):
    async with await psycopg.AsyncConnection.connect(db_url) as c:
        await c.execute("SET LOCAL ROLE bridge_reader")
        await c.execute("SELECT set_config('app.current_user_id', 'alice', true)")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            await c.execute("UPDATE flowable.workflow_tasks SET priority = 1")
    owner_sees = await (await conn.execute("SELECT count(*) FROM flowable.workflow_tasks")).fetchone()
    assert owner_sees == (len(world),)


async def test_the_setting_is_scoped_to_its_transaction(world, db_url):
    async with await psycopg.AsyncConnection.connect(db_url) as c:
        await c.execute("SET LOCAL ROLE bridge_reader")
        await c.execute("SELECT set_config('app.current_user_id', 'alice', true)")
        assert len(await (await c.execute("SELECT task_id FROM flowable.workflow_tasks")).fetchall()) == 2
        await c.commit()
        await c.execute("SET LOCAL ROLE bridge_reader")
        assert (await (await c.execute("SELECT task_id FROM flowable.workflow_tasks")).fetchall()) == []
