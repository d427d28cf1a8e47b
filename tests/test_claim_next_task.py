"""flowable.claim_next_task picks and locks (it writes nothing, migration 0019); a claim is the pick plus a
BRIDGE_CLAIM event through the mirror's apply path in the same transaction, as the work API does it. Together:
one task per call, never twice, best first (escalated first), only for entitled users."""

from __future__ import annotations

import asyncio
import random

import psycopg
import pytest
from sqlalchemy import text

from bridge.db.connections import open_database
from bridge.mirror import bridge_events
from tests import seed
from tests.seed import hours, now

PICK = "SELECT task_id, task_name, priority, queue_name, process_instance_id FROM flowable.claim_next_task(%s, %s)"


class Claimer:
    """Pick + apply the claim event in one transaction: the work API's claim-next without the engine."""

    def __init__(self, db_url: str, pool_size: int = 2) -> None:
        self.db = open_database(db_url, pool_size=pool_size)

    async def __call__(self, user: str, queues: list[str] | None):
        async with self.db.begin() as c:
            row = (await c.execute(text("SELECT task_id, task_name, priority, queue_name, process_instance_id "
                                        "FROM flowable.claim_next_task(:u, CAST(:q AS text[]))"),
                                   {"u": user, "q": queues})).first()
            if row is not None:
                await bridge_events.record(c, bridge_events.claimed(row.task_id, row.process_instance_id, user=user,
                                                                    actor=user, at=None, client_info={"t": 1}))
            return row

    async def close(self) -> None:
        await self.db.dispose()


async def _queue_with_role(conn, queue_name: str, role_code: str) -> int:
    await seed.queue(conn, queue_name)
    return await seed.role(conn, role_code, queue_name=queue_name)


async def test_concurrent_claimers_take_every_task_exactly_once_in_priority_order(conn, db_url):
    role_a = await _queue_with_role(conn, "INTAKE", "INTAKE_CLERK")
    role_b = await _queue_with_role(conn, "LEGAL_REVIEW", "LEGAL_REVIEWER")
    workers = [f"worker{i}" for i in range(8)]
    for w in workers:
        await seed.user(conn, w)
        await seed.grant(conn, w, role_a)
        await seed.grant(conn, w, role_b)
    pi = await seed.instance(conn, await seed.definition(conn))
    rng = random.Random(7)
    total = 1200
    await conn.execute("""
        INSERT INTO flowable.workflow_tasks
            (task_id, process_instance_id, task_definition_key, task_name, queue_name, priority,
             candidate_groups, created_at)
        SELECT 'bulk-' || g, %s, 'review', 'Review', q, p, ARRAY[c], now() - g * interval '1 second'
        FROM unnest(%s::int[], %s::text[], %s::text[], %s::int[]) AS x(g, q, c, p)""",
        [pi, list(range(total)),
         ["INTAKE" if i % 2 else "LEGAL_REVIEW" for i in range(total)],
         ["INTAKE_CLERK" if i % 2 else "LEGAL_REVIEWER" for i in range(total)],
         [rng.randint(0, 100) for _ in range(total)]])
    order_key = {task_id: (-priority, created) for task_id, priority, created in await (await conn.execute(
        "SELECT task_id, priority, created_at FROM flowable.workflow_tasks")).fetchall()}

    claim = Claimer(db_url, pool_size=8)

    async def claim_until_empty(user_id: str) -> list[str]:
        claimed = []
        while row := await claim(user_id, None):
            claimed.append(row[0])
        return claimed

    per_worker = await asyncio.gather(*(claim_until_empty(w) for w in workers))
    await claim.close()

    everything = [t for claims in per_worker for t in claims]
    assert len(everything) == total and len(set(everything)) == total
    assert sum(1 for claims in per_worker if claims) >= 2, "claims did not run concurrently"
    for claims in per_worker:
        # Tasks never reopen, so each worker's successive picks can only get worse.
        keys = [order_key[t] for t in claims]
        assert keys == sorted(keys)

    rows = await (await conn.execute("""
        SELECT t.task_id, t.status, t.assignee_id, t.claimed_by, count(h.*) FILTER (WHERE h.action_type = 'CLAIM'),
               min(h.action_by), min(h.old_status), min(h.new_status)
        FROM flowable.workflow_tasks t LEFT JOIN flowable.task_history h ON h.task_id = t.task_id
        GROUP BY t.task_id""")).fetchall()
    owner = {t: w for w, claims in zip(workers, per_worker, strict=True) for t in claims}
    for task_id, status, assignee, claimed_by, claim_rows, action_by, old, new in rows:
        assert (status, assignee, claimed_by) == ("CLAIMED", owner[task_id], owner[task_id])
        assert (claim_rows, action_by, old, new) == (1, owner[task_id], "OPEN", "CLAIMED")


async def test_best_task_first_escalated_then_priority_then_age_then_id(conn, db_url):
    role_id = await _queue_with_role(conn, "INTAKE", "INTAKE_CLERK")
    await seed.user(conn, "ann")
    await seed.grant(conn, "ann", role_id)
    pi = await seed.instance(conn, await seed.definition(conn))
    t0 = now()
    await seed.task(conn, pi, "INTAKE", priority=50, created_at=t0 - hours(5), candidate_groups=["INTAKE_CLERK"],
                    task_id="old-normal")
    await seed.task(conn, pi, "INTAKE", priority=80, created_at=t0 - hours(1), candidate_groups=["INTAKE_CLERK"],
                    task_id="new-urgent")
    await seed.task(conn, pi, "INTAKE", priority=80, created_at=t0 - hours(2), candidate_groups=["INTAKE_CLERK"],
                    task_id="old-urgent")
    await seed.task(conn, pi, "INTAKE", priority=99, status="CLAIMED", assignee="zed",
                    candidate_groups=["INTAKE_CLERK"])
    await seed.task(conn, pi, "INTAKE", priority=10, created_at=t0, escalation_level=1,
                    candidate_groups=["INTAKE_CLERK"], task_id="escalated-low")

    claim = Claimer(db_url)
    order = []
    while row := await claim("ann", ["INTAKE"]):
        order.append(row[0])
        assert row[3:] == ("INTAKE", pi)
    await claim.close()
    assert order == ["escalated-low", "old-urgent", "new-urgent", "old-normal"]


async def test_only_the_named_queues_are_searched(conn, db_url):
    role_intake = await _queue_with_role(conn, "INTAKE", "INTAKE_CLERK")
    role_legal = await _queue_with_role(conn, "LEGAL_REVIEW", "LEGAL_REVIEWER")
    await seed.user(conn, "ann")
    await seed.grant(conn, "ann", role_intake)
    await seed.grant(conn, "ann", role_legal)
    pi = await seed.instance(conn, await seed.definition(conn))
    legal = await seed.task(conn, pi, "LEGAL_REVIEW", priority=90, candidate_groups=["LEGAL_REVIEWER"])
    intake = await seed.task(conn, pi, "INTAKE", priority=10, candidate_groups=["INTAKE_CLERK"])

    claim = Claimer(db_url)
    assert (await claim("ann", ["INTAKE"]))[0] == intake
    assert await claim("ann", ["INTAKE"]) is None
    assert (await claim("ann", None))[0] == legal
    await claim.close()


@pytest.mark.parametrize("case", ["expired", "not_started", "role_inactive", "user_inactive", "no_grant"])
async def test_a_user_without_a_current_grant_claims_nothing(conn, case):
    role_id = await seed.role(conn, "INTAKE_CLERK", is_active=(case != "role_inactive"))
    await seed.queue(conn, "INTAKE")
    await seed.user(conn, "ann", is_active=(case != "user_inactive"))
    t = now()
    if case == "expired":
        await seed.grant(conn, "ann", role_id, valid_from=t - hours(48), valid_until=t - hours(1))
    elif case == "not_started":
        await seed.grant(conn, "ann", role_id, valid_from=t + hours(1))
    elif case != "no_grant":
        await seed.grant(conn, "ann", role_id)
    pi = await seed.instance(conn, await seed.definition(conn))
    task_id = await seed.task(conn, pi, "INTAKE", candidate_groups=["INTAKE_CLERK"])

    assert await (await conn.execute(PICK, ["ann", None])).fetchone() is None
    status, = await (await conn.execute("SELECT status FROM flowable.workflow_tasks WHERE task_id = %s",
                                        [task_id])).fetchone()
    assert status == "OPEN"
    assert await (await conn.execute("SELECT count(*) FROM flowable.task_history")).fetchone() == (0,)


async def test_a_task_offered_to_a_user_directly_can_be_claimed_without_any_role(conn, db_url):
    await seed.queue(conn, "INTAKE")
    pi = await seed.instance(conn, await seed.definition(conn))
    mine = await seed.task(conn, pi, "INTAKE", candidate_users=["bea", "cid"])
    await seed.task(conn, pi, "INTAKE", candidate_users=["cid"], priority=99)

    claim = Claimer(db_url)
    row = await claim("bea", None)
    assert row[0] == mine
    assert await claim("bea", None) is None
    await claim.close()


async def test_a_task_in_a_queue_of_the_users_role_is_takeable_without_naming_the_role(conn, db_url):
    """An escalation that moves a task to a supervisors' queue leaves its candidates as they were: the
    queue's roles (queue_assignments) may still take it."""
    await seed.queue(conn, "INTAKE")
    supervisors = await _queue_with_role(conn, "SUPERVISION", "SUPERVISOR")
    await conn.execute("INSERT INTO flowable.queue_assignments (queue_id, role_id) SELECT queue_id, %s "
                       "FROM flowable.workflow_queues WHERE queue_name = 'SUPERVISION'", [supervisors])
    await seed.user(conn, "sue")
    await seed.grant(conn, "sue", supervisors)
    pi = await seed.instance(conn, await seed.definition(conn))
    moved = await seed.task(conn, pi, "SUPERVISION", candidate_groups=["INTAKE_CLERK"], escalation_level=1)
    await seed.task(conn, pi, "INTAKE", candidate_groups=["INTAKE_CLERK"])

    claim = Claimer(db_url)
    assert (await claim("sue", None))[0] == moved
    assert await claim("sue", None) is None
    await claim.close()


async def test_a_pick_is_held_until_commit_and_others_skip_it(conn, db_url):
    role_id = await _queue_with_role(conn, "INTAKE", "INTAKE_CLERK")
    for u in ("ann", "bob"):
        await seed.user(conn, u)
        await seed.grant(conn, u, role_id)
    pi = await seed.instance(conn, await seed.definition(conn))
    first = await seed.task(conn, pi, "INTAKE", priority=90, candidate_groups=["INTAKE_CLERK"])
    second = await seed.task(conn, pi, "INTAKE", priority=10, candidate_groups=["INTAKE_CLERK"])

    async with await psycopg.AsyncConnection.connect(db_url) as ann, \
            await psycopg.AsyncConnection.connect(db_url, autocommit=True) as bob:
        assert (await (await ann.execute(PICK, ["ann", None])).fetchone())[0] == first  # not committed yet
        assert (await (await bob.execute(PICK, ["bob", None])).fetchone())[0] == second  # skipped, no wait
        await ann.rollback()  # ann's claim never happened
        assert (await (await bob.execute(PICK, ["bob", None])).fetchone())[0] == first


async def test_the_users_side_is_worked_out_once_per_claim_whatever_the_plan(conn):
    """Migration 0032: bench/scale.py met a plan (statistics taken before a burst of 1,500 cases, one OPEN task
    expected) that put the user's side (roles, queues, the queues where the user holds max_tasks_per_user)
    inside the loop over the tasks, re-running it per task: claims read the backlog's square and took seconds.
    That plan's shape is pinned down here (the tasks outermost, no Materialize, no indexes); the tasks one
    claim reads must still grow with the backlog, not its square. Counted by PostgreSQL
    (pg_stat_xact_user_tables)."""
    queue_id = await seed.queue(conn, "BURST")
    clerk = await seed.role(conn, "BURST_CLERK", queue_name="BURST")
    await seed.assign_queue(conn, queue_id, clerk)
    await seed.user(conn, "bea")
    await seed.grant(conn, "bea", clerk)
    pi = await seed.instance(conn, await seed.definition(conn))
    backlog = 2000
    await conn.execute("""
        INSERT INTO flowable.workflow_tasks (task_id, process_instance_id, task_definition_key, task_name,
                                             queue_name, candidate_groups, priority, created_at)
        SELECT 'burst-' || g, %s, 'register', 'Register', 'BURST', ARRAY['NOT_BEAS_ROLE'], 50,
               now() - g * interval '1 second'
        FROM generate_series(1, %s) g""", [pi, backlog])
    reads = ("SELECT coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0) FROM pg_stat_xact_user_tables "
             "WHERE relid = 'flowable.workflow_tasks'::regclass")
    async with conn.transaction():
        for setting in ("join_collapse_limit = 1", "from_collapse_limit = 1", "enable_material = off",
                        "enable_hashjoin = off", "enable_mergejoin = off", "enable_indexscan = off",
                        "enable_indexonlyscan = off", "enable_bitmapscan = off"):
            await conn.execute(f"SET LOCAL {setting}")
        before = (await (await conn.execute(reads)).fetchone())[0]
        picked = await (await conn.execute(PICK, ["bea", ["BURST"]])).fetchone()
        after = (await (await conn.execute(reads)).fetchone())[0]
    assert picked is not None and picked[0] == f"burst-{backlog}"  # as the queue's role's, oldest first
    assert after - before < 10 * backlog, f"{after - before:,} task rows read for one claim"
