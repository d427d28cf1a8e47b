"""The summaries behind the reports of ended work (migration 0028): completed tasks per user and activity
(flowable.task_work_stats), instances started and completed per process version (flowable.process_work_stats),
cancellations per queue (task_hourly_stats.cancelled); and live tasks per activity (flowable.activity_live_load,
0029). Each is checked against a recount of the rows after
random writes, folded at random moments, in both its grains; and filled on migration from the rows already
there, archived ones included."""

from __future__ import annotations

import asyncio
import random
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from bridge.db.migrate import migrate
from bridge.mirror import bridge_events
from tests import seed
from tests.conftest import MIGRATIONS
from tests.seed import hours, now

EPOCH = "timestamptz 'epoch'"

# What the summaries should hold, counted again from the rows (hot and archived): key -> figures.
TASK_RECOUNT = f"""
    SELECT date_bin('1 hour', t.completed_at, {EPOCH}), t.queue_name, p.workflow_id, t.task_definition_key,
           t.task_name, t.completed_by, count(*), count(*) FILTER (WHERE t.completed_at > t.due_date),
           sum(extract(epoch FROM t.completed_at - t.created_at)),
           sum(extract(epoch FROM t.completed_at - coalesce(t.claimed_at, t.created_at)))
    FROM archive.all_workflow_tasks t
    JOIN archive.all_process_instances p ON p.process_instance_id = t.process_instance_id
    WHERE t.status = 'COMPLETED' AND t.completed_at IS NOT NULL
    GROUP BY 1, 2, 3, 4, 5, 6"""
PROCESS_RECOUNT = f"""
    SELECT date_bin('1 hour', started_at, {EPOCH}), workflow_id, NULL::integer, count(*), 0, 0
    FROM archive.all_process_instances GROUP BY 1, 2
    UNION ALL
    SELECT date_bin('1 hour', completed_at, {EPOCH}), workflow_id,
           floor(100 * ln(greatest(extract(epoch FROM completed_at - started_at), 1)))::integer, 0, count(*),
           sum(extract(epoch FROM completed_at - started_at))
    FROM archive.all_process_instances WHERE status = 'COMPLETED' AND completed_at IS NOT NULL GROUP BY 1, 2, 3"""
CANCELLED_RECOUNT = f"""
    SELECT date_bin('1 hour', completed_at, {EPOCH}), queue_name, count(*) FROM archive.all_workflow_tasks
    WHERE status = 'CANCELLED' AND completed_at IS NOT NULL GROUP BY 1, 2"""

# The same from the summaries: the hour grain with what is not folded yet, or the day grain.
TASK_SUMMARY = """
    SELECT period, queue_name, workflow_id, activity_id, activity_name, user_id, sum(completed),
           sum(completed_late), sum(completion_seconds), sum(handling_seconds)
    FROM (SELECT period, queue_name, workflow_id, activity_id, activity_name, user_id, completed, completed_late,
                 completion_seconds, handling_seconds FROM flowable.task_work_stats WHERE grain = %(grain)s
          UNION ALL
          SELECT date_bin(%(width)s, hour, timestamptz 'epoch'), queue_name, workflow_id, activity_id, activity_name,
                 user_id, completed, completed_late, completion_seconds, handling_seconds
          FROM flowable.task_work_changes) s
    GROUP BY 1, 2, 3, 4, 5, 6"""
PROCESS_SUMMARY = """
    SELECT period, workflow_id, duration_bucket, sum(started), sum(completed), sum(completion_seconds)
    FROM (SELECT period, workflow_id, duration_bucket, started, completed, completion_seconds
          FROM flowable.process_work_stats WHERE grain = %(grain)s
          UNION ALL
          SELECT date_bin(%(width)s, hour, timestamptz 'epoch'), workflow_id, duration_bucket, started, completed,
                 completion_seconds
          FROM flowable.process_work_changes) s
    GROUP BY 1, 2, 3"""
CANCELLED_SUMMARY = "SELECT hour, queue_name, cancelled FROM flowable.v_task_hourly_stats"
LIVE_RECOUNT = "SELECT * FROM flowable.activity_live_recount()"
LIVE_SUMMARY = """
    SELECT workflow_id, activity_id, activity_name, status, escalated, due_hour, sum(tasks)
    FROM flowable.v_activity_live_load GROUP BY 1, 2, 3, 4, 5, 6"""


async def _keyed(conn, query: str, key_length: int, params=None) -> dict:
    rows = await (await conn.execute(query, params)).fetchall()
    return {tuple(r[:key_length]): tuple(r[key_length:]) for r in rows if any(r[key_length:])}


def _by_day(counted: dict) -> dict:
    """An hourly recount rolled up into UTC days, as the day grain should hold it."""
    days: dict = {}
    for (hour, *rest), figures in counted.items():
        day = hour.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        key = (day, *rest)
        old = days.get(key, (0,) * len(figures))
        days[key] = tuple(a + b for a, b in zip(old, figures, strict=True))
    return {k: v for k, v in days.items() if any(v)}


async def assert_summaries_equal_a_recount(conn) -> None:
    tasks = await _keyed(conn, TASK_RECOUNT, 6)
    processes = await _keyed(conn, PROCESS_RECOUNT, 3)
    hourly = {"grain": "hour", "width": "1 hour"}
    daily = {"grain": "day", "width": "1 day"}
    assert await _keyed(conn, TASK_SUMMARY, 6, hourly) == tasks
    assert await _keyed(conn, TASK_SUMMARY, 6, daily) == _by_day(tasks)
    assert await _keyed(conn, PROCESS_SUMMARY, 3, hourly) == processes
    assert await _keyed(conn, PROCESS_SUMMARY, 3, daily) == _by_day(processes)
    assert await _keyed(conn, CANCELLED_SUMMARY, 2) == await _keyed(conn, CANCELLED_RECOUNT, 2)
    assert await _keyed(conn, LIVE_SUMMARY, 6) == await _keyed(conn, LIVE_RECOUNT, 6)


async def test_summaries_equal_a_recount_after_random_writes(conn):
    """Tasks created, completed, cancelled, reopened, re-queued, renamed and deleted; instances started,
    completed, reopened, deleted and moved to another version (as BRIDGE_MIGRATE does) with their completed
    tasks; single rows and many at once, folded at random moments: both grains always equal a recount."""
    rng = random.Random(28)
    for name in ("intake", "review"):
        await seed.queue(conn, name)
    versions = [await seed.definition(conn, "claims", version=v, is_active=v == 2) for v in (1, 2)]
    t0 = now().replace(minute=0, second=0, microsecond=0) - hours(72)
    instances: list[str] = []
    tasks: list[str] = []

    def moment() -> datetime:
        return t0 + timedelta(minutes=rng.randrange(72 * 60))

    async def execute(sql: str, params: list) -> None:
        await conn.execute(sql, params)

    for step in range(200):
        choice = rng.random()
        if choice < 0.12 or not instances:
            instances.append(await seed.instance(conn, rng.choice(versions), started_at=moment()))
        elif choice < 0.4:
            created = moment()
            tasks.append(await seed.task(
                conn, rng.choice(instances), rng.choice(["intake", "review"]), created_at=created,
                claimed_at=created + hours(1) if rng.random() < 0.5 else None,
                due_date=created + hours(rng.choice([1, 6])), completed_by=rng.choice(["ann", "bob", None])))
        elif choice < 0.55 and tasks:
            await execute("UPDATE flowable.workflow_tasks SET status = %s, completed_at = created_at + %s, "
                          "completed_by = %s WHERE task_id = %s",
                          [rng.choice(["COMPLETED", "COMPLETED", "CANCELLED"]),
                           timedelta(minutes=rng.randrange(1, 900)), rng.choice(["ann", "bob", None]),
                           rng.choice(tasks)])
        elif choice < 0.6 and tasks:
            await execute("UPDATE flowable.workflow_tasks SET status = %s, completed_at = NULL, "
                          "escalation_level = %s, due_date = due_date + %s WHERE task_id = %s",
                          [rng.choice(["OPEN", "CLAIMED", "DELEGATED"]), rng.choice([0, 0, 1, 2]),
                           timedelta(minutes=rng.choice([0, 30, -90])), rng.choice(tasks)])
        elif choice < 0.65 and tasks:
            await execute("UPDATE flowable.workflow_tasks SET queue_name = %s, task_name = %s WHERE task_id = %s",
                          [rng.choice(["intake", "review"]), rng.choice(["Review", "Second look"]),
                           rng.choice(tasks)])
        elif choice < 0.7:  # many rows in one statement
            await execute("UPDATE flowable.workflow_tasks SET status = 'COMPLETED', completed_at = now(), "
                          "completed_by = 'ann' WHERE status = 'OPEN' AND created_at < %s", [moment()])
        elif choice < 0.8:
            await execute("UPDATE flowable.process_instances SET status = 'COMPLETED', completed_at = started_at + %s "
                          "WHERE process_instance_id = %s",
                          [timedelta(minutes=rng.randrange(1, 3000)), rng.choice(instances)])
        elif choice < 0.84:
            await execute("UPDATE flowable.process_instances SET status = 'ACTIVE', completed_at = NULL "
                          "WHERE process_instance_id = %s", [rng.choice(instances)])
        elif choice < 0.92:  # migrated, several at once sometimes
            chosen = rng.sample(instances, k=min(len(instances), rng.choice([1, 3])))
            await execute("UPDATE flowable.process_instances SET workflow_id = %s "
                          "WHERE process_instance_id = ANY(%s)", [rng.choice(versions), chosen])
        elif choice < 0.96 and tasks:
            victim = tasks.pop(rng.randrange(len(tasks)))
            await execute("DELETE FROM flowable.workflow_tasks WHERE task_id = %s", [victim])
        else:
            bare = await (await conn.execute(
                "SELECT p.process_instance_id FROM flowable.process_instances p WHERE NOT EXISTS "
                "(SELECT 1 FROM flowable.workflow_tasks t WHERE t.process_instance_id = p.process_instance_id)"
            )).fetchall()
            if bare:
                victim = rng.choice(bare)[0]
                instances.remove(victim)
                await execute("DELETE FROM flowable.process_instances WHERE process_instance_id = %s", [victim])
        if rng.random() < 0.2:
            await conn.execute("SELECT flowable.fold_work_stats(), flowable.fold_task_stats(), "
                               "flowable.fold_activity_live_load()")
        if step % 40 == 39:
            await assert_summaries_equal_a_recount(conn)
    await conn.execute("SELECT flowable.fold_work_stats(), flowable.fold_task_stats(), "
                       "flowable.fold_activity_live_load()")
    await assert_summaries_equal_a_recount(conn)
    assert (await (await conn.execute("SELECT flowable.recount_activity_live_load()")).fetchone())[0] == 0
    assert (await (await conn.execute("SELECT count(*) FROM flowable.activity_live_load WHERE tasks = 0"
                                      )).fetchone())[0] == 0  # rows that reach zero go
    for log in ("task_work_changes", "process_work_changes", "task_stat_changes", "activity_live_changes"):
        assert (await (await conn.execute(f"SELECT count(*) FROM flowable.{log}")).fetchone())[0] == 0
    # the comparisons compared something: completions in both versions, starts, cancellations, live tasks
    [(versions_completed, starts, cancelled, live)] = await (await conn.execute("""
        SELECT (SELECT count(DISTINCT workflow_id) FROM flowable.task_work_stats WHERE completed > 0),
               (SELECT sum(started) FROM flowable.process_work_stats WHERE grain = 'hour'),
               (SELECT sum(cancelled) FROM flowable.task_hourly_stats),
               (SELECT sum(tasks) FROM flowable.activity_live_load)""")).fetchall()
    assert versions_completed == 2 and starts > 10 and cancelled > 0 and live > 0


async def test_summary_span_covers_the_range_widened_to_hours_once(conn):
    """Random ranges: the periods are whole UTC days in the middle and hours at the ends, adjacent, and
    together exactly the hours that start in [since, until)."""
    rng = random.Random(5)
    base = now().replace(minute=0, second=0, microsecond=0) - hours(24 * 40)
    for _ in range(300):
        since = base + timedelta(minutes=rng.randrange(60 * 24 * 20))
        until = since + timedelta(minutes=rng.randrange(1, 60 * 24 * rng.choice([1, 3, 15])))
        [(hour_from, day_from, day_to, hour_to)] = await (await conn.execute(
            "SELECT * FROM flowable.summary_span(%s, %s)", [since, until])).fetchall()
        periods = [p for p in [("hour", hour_from, day_from), ("day", day_from, day_to), ("hour", day_to, hour_to)]
                   if p[1] < p[2]]
        first_hour = since.replace(minute=0, second=0, microsecond=0)
        last_hour = (until - timedelta(microseconds=1)).replace(minute=0, second=0, microsecond=0)
        assert periods[0][1] == first_hour and periods[-1][2] == last_hour + hours(1)
        for (_, _, end), (_, start, _) in zip(periods, periods[1:], strict=False):
            assert end == start
        first_midnight = (first_hour - timedelta(microseconds=1)).astimezone(UTC).replace(
            hour=0, minute=0, second=0, microsecond=0) + hours(24)
        spans_a_day = first_midnight + hours(24) <= last_hour + hours(1)
        assert [g for g, _, _ in periods].count("day") == (1 if spans_a_day else 0)
        for grain, start, end in periods:
            if grain == "day":
                assert start.astimezone(UTC).hour == 0 and end.astimezone(UTC).hour == 0 and end > start
            elif spans_a_day:
                assert end - start < hours(24)


async def test_migration_fills_the_summaries_from_hot_and_archived_rows(pg_cluster, tmp_path: Path):
    """A database at migration 0027 with work in the hot tables and the archive: 0028 fills every summary
    with what a recount says, and the reports read it."""
    folder = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS, folder)
    later = sorted(p for p in folder.glob("*.sql") if p.name >= "0028")
    held = tmp_path / "held"
    held.mkdir()
    for path in later:
        path.rename(held / path.name)
    url = pg_cluster.create_database("t_work_summaries_fill")
    try:
        await migrate(url, folder)
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
            await seed.queue(conn, "intake")
            workflow = await seed.definition(conn, "claims")
            t = now()
            for n in range(6):
                pid = await seed.instance(conn, workflow, status="COMPLETED", started_at=t - hours(30 + n),
                                          completed_at=t - hours(20 - n))
                await seed.task(conn, pid, "intake", status="COMPLETED", created_at=t - hours(29 + n),
                                claimed_at=t - hours(28 + n), completed_at=t - hours(21 - n),
                                due_date=t - hours(25), completed_by=["ann", "bob", None][n % 3])
                await seed.task(conn, pid, "intake", status="CANCELLED", created_at=t - hours(29),
                                completed_at=t - hours(22 - n))
            # half of them archived as archiving moves them (0024)
            async with conn.transaction():
                await conn.execute("SELECT set_config('bridge.archiving', 'on', true)")
                moved = "SELECT process_instance_id FROM flowable.process_instances ORDER BY started_at LIMIT 3"
                await conn.execute(f"INSERT INTO archive.workflow_tasks SELECT * FROM flowable.workflow_tasks "
                                   f"WHERE process_instance_id IN ({moved})")
                await conn.execute(f"INSERT INTO archive.process_instances SELECT * FROM flowable.process_instances "
                                   f"WHERE process_instance_id IN ({moved})")
                await conn.execute("DELETE FROM flowable.workflow_tasks WHERE process_instance_id IN "
                                   "(SELECT process_instance_id FROM archive.process_instances)")
                await conn.execute("DELETE FROM flowable.process_instances WHERE process_instance_id IN "
                                   "(SELECT process_instance_id FROM archive.process_instances)")
        for path in later:
            (held / path.name).rename(folder / path.name)
        assert [v for v in await migrate(url, folder)] == [p.stem for p in later]
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
            assert (await (await conn.execute("SELECT count(*) FROM archive.workflow_tasks")).fetchone())[0] == 6
            await assert_summaries_equal_a_recount(conn)
            [(completed, users)] = await (await conn.execute(
                "SELECT sum(completed), count(DISTINCT user_id) FROM flowable.task_work_between(%s, %s)",
                [t - hours(48), t])).fetchall()
            assert (completed, users) == (6, 2)
    finally:
        pg_cluster.drop_database(url)


@pytest.mark.parametrize("grain", ["hour", "day"])
async def test_a_fold_adds_to_what_is_there_with_nobody_as_a_user(conn, grain):
    """ON CONFLICT finds the row of a task completed by nobody (user_id NULL, NULLS NOT DISTINCT)."""
    await seed.queue(conn, "intake")
    pid = await seed.instance(conn, await seed.definition(conn))
    at = now() - hours(2)
    for _ in range(2):
        await seed.task(conn, pid, "intake", status="COMPLETED", created_at=at - hours(1), completed_at=at)
        await conn.execute("SELECT flowable.fold_work_stats()")
    rows = await (await conn.execute("SELECT user_id, completed FROM flowable.task_work_stats WHERE grain = %s",
                                     [grain])).fetchall()
    assert rows == [(None, 2)]


async def test_a_sweep_recount_repairs_a_live_summary_that_drifted(conn):
    await seed.queue(conn, "intake")
    pid = await seed.instance(conn, await seed.definition(conn))
    for _ in range(3):
        await seed.task(conn, pid, "intake", due_date=now() + hours(2))
    await conn.execute("SELECT flowable.fold_activity_live_load()")
    await conn.execute("UPDATE flowable.activity_live_load SET tasks = 7")  # drift, as if a change were lost
    assert (await (await conn.execute("SELECT flowable.recount_activity_live_load()")).fetchone())[0] == 2
    assert await _keyed(conn, LIVE_SUMMARY, 6) == await _keyed(conn, LIVE_RECOUNT, 6)
    assert (await (await conn.execute("SELECT sum(tasks) FROM flowable.activity_live_load")).fetchone())[0] == 3


ROW_COUNTED_LIVE = """
    SELECT t.task_definition_key, count(*), count(*) FILTER (WHERE t.status = 'OPEN'),
           count(*) FILTER (WHERE t.status = 'CLAIMED'), count(*) FILTER (WHERE t.escalation_level > 0),
           count(*) FILTER (WHERE t.due_date < now()),
           count(*) FILTER (WHERE t.due_date >= now() AND t.due_date < now() + make_interval(mins => %(risk)s)),
           min(t.created_at)
    FROM flowable.workflow_tasks t JOIN flowable.process_instances p USING (process_instance_id)
    WHERE p.workflow_id = %(workflow)s AND t.status IN ('OPEN', 'CLAIMED', 'DELEGATED', 'ESCALATED')
    GROUP BY 1"""


@pytest.mark.parametrize("at_risk_minutes", [0, 15, 60, 150, 60 * 24])
async def test_activities_live_figures_equal_the_rows_around_now(conn, db, at_risk_minutes):
    """Live tasks due at random moments from two days ago to two days ahead (many in the hour now is in and the
    hour the at-risk window ends in), in two versions, some folded, some not: the activities report's live
    figures per activity are what counting the rows says, breached and at risk to the minute."""
    from bridge import reports
    from bridge.reports import ReportFilter

    rng = random.Random(at_risk_minutes)
    await seed.queue(conn, "intake")
    v1 = await seed.definition(conn, "claims", version=1, is_active=False)
    v2 = await seed.definition(conn, "claims", version=2)
    instances = {v: [await seed.instance(conn, v) for _ in range(3)] for v in (v1, v2)}
    t = now()
    for n in range(120):
        version = rng.choice([v1, v2])
        due = rng.choice([t + timedelta(minutes=rng.randrange(-2880, 2880)),
                          t + timedelta(minutes=rng.randrange(-60, 60)),
                          t + timedelta(minutes=at_risk_minutes + rng.randrange(-60, 60)), None])
        task_id = await seed.task(conn, rng.choice(instances[version]), "intake", due_date=due,
                                  created_at=t - timedelta(minutes=rng.randrange(1, 5000)),
                                  status=rng.choice(["OPEN", "CLAIMED"]), escalation_level=rng.choice([0, 1]))
        await conn.execute("UPDATE flowable.workflow_tasks SET task_definition_key = %s WHERE task_id = %s",
                           [rng.choice(["triage", "review"]), task_id])
        if n == 60:
            await conn.execute("SELECT flowable.fold_activity_live_load()")
    async with db.connect() as c:
        body = await reports.REPORTS["activities"](c, ReportFilter.last(process="claims", version=2,
                                                                        at_risk_minutes=at_risk_minutes))
    counted = await _keyed(conn, ROW_COUNTED_LIVE, 1, {"workflow": v2, "risk": at_risk_minutes})
    shown = {a["activity_id"]: a for a in body["activities"] if a["live_tasks"]}
    assert set(shown) == {k for (k,) in counted} == {"triage", "review"}
    for (activity,), (live, open_, claimed, escalated, breached, at_risk, oldest) in counted.items():
        a = shown[activity]
        assert (a["live_tasks"], a["open_tasks"], a["claimed_tasks"], a["escalated_tasks"], a["breached_tasks"],
                a["at_risk_tasks"]) == (live, open_, claimed, escalated, breached, at_risk), activity
        assert a["oldest_created_at"] == oldest.isoformat() or a["oldest_created_at"] == oldest, activity


async def test_an_update_runs_only_the_triggers_of_the_summaries_it_changes(conn):
    """Migration 0031: a claim (OPEN -> CLAIMED in the same queue) moves a task between live states and
    nothing else, so of the four summaries' update triggers only the live one runs; an update of what no
    summary reads runs none; a completion runs all four. Counted by PostgreSQL (track_functions)."""
    await seed.queue(conn, "intake")
    instance = await seed.instance(conn, await seed.definition(conn, "claims"))
    task = await seed.task(conn, instance, "intake")
    await conn.execute("SET track_functions = 'pl'")
    row_functions = ("track_queue_load_row", "track_task_stats_row", "track_task_work_row",
                     "track_activity_live_load_row")

    async def triggers_run(update: str) -> set[str]:
        # the backend's counts not yet flushed, before and after: they span earlier transactions too
        calls = ("SELECT funcname, calls FROM pg_stat_xact_user_functions WHERE schemaname = 'flowable' "
                 "AND funcname = ANY(%s)")
        async with conn.transaction():
            before = dict(await (await conn.execute(calls, [list(row_functions)])).fetchall())
            await conn.execute(update, [task])
            after = dict(await (await conn.execute(calls, [list(row_functions)])).fetchall())
        return {name for name, n in after.items() if n > before.get(name, 0)}

    assert await triggers_run("UPDATE flowable.workflow_tasks SET status = 'CLAIMED', assignee_id = 'ann', "
                              "claimed_at = now(), claimed_by = 'ann' WHERE task_id = %s") == {
        "track_activity_live_load_row"}
    assert await triggers_run("UPDATE flowable.workflow_tasks SET metadata = metadata || '{\"lastEventAt\": 1}', "
                              "priority = 70 WHERE task_id = %s") == set()
    assert await triggers_run("UPDATE flowable.workflow_tasks SET status = 'COMPLETED', completed_at = now(), "
                              "completed_by = 'ann' WHERE task_id = %s") == set(row_functions)
    await assert_summaries_equal_a_recount(conn)
    assert (await (await conn.execute("SELECT flowable.recount_queue_load()")).fetchone())[0] == 0


async def test_migrations_racing_on_one_instance_with_its_task_completions_keep_the_summaries_exact(conn, db):
    """Two migrations of the same instance (to v2 and to v3) and the completion of one of its live tasks, in
    three concurrent transactions through the apply path, each holding its transaction open a random while:
    the summaries' move triggers and the completion's trigger read the instance's version in whatever order the
    transactions commit, and the summaries still equal a recount (the apply path serializes an instance's
    batches; this is the test that it is enough)."""
    rng = random.Random(31)
    await seed.queue(conn, "intake")
    v1, _, _ = [await seed.definition(conn, "claims", version=v, is_active=v == 3) for v in (1, 2, 3)]

    async def in_transaction(event: dict, hold_s: float) -> None:
        await asyncio.sleep(rng.random() * 0.02)
        async with db.begin() as c:
            await bridge_events.record(c, event)
            await asyncio.sleep(hold_s)

    for _ in range(12):
        pid = await seed.instance(conn, v1, started_at=now() - hours(3))
        await seed.task(conn, pid, "intake", status="COMPLETED", created_at=now() - hours(3),
                        completed_at=now() - hours(2), completed_by="ann")
        live = await seed.task(conn, pid, "intake", created_at=now() - hours(1), claimed_at=now() - hours(1),
                               status="CLAIMED", assignee="bob", due_date=now() + hours(4))
        await seed.task(conn, pid, "intake", created_at=now() - hours(1))
        events = [
            bridge_events.migrated_process({"id": pid, "processDefinitionKey": "claims",
                                            "processDefinitionVersion": version}, actor="ops", at=None)
            for version in (2, 3)
        ] + [bridge_events.completed(live, pid, actor="bob", at=None, outcome=None)]
        rng.shuffle(events)
        await asyncio.gather(*(in_transaction(e, rng.choice([0, 0.01, 0.05])) for e in events))
        if rng.random() < 0.5:
            await conn.execute("SELECT flowable.fold_work_stats(), flowable.fold_activity_live_load()")
    await assert_summaries_equal_a_recount(conn)
    await conn.execute("SELECT flowable.fold_work_stats(), flowable.fold_task_stats(), "
                       "flowable.fold_activity_live_load()")
    await assert_summaries_equal_a_recount(conn)
    moved = dict(await (await conn.execute(
        "SELECT d.process_version, count(*) FROM flowable.process_instances p "
        "JOIN flowable.workflow_definitions d USING (workflow_id) GROUP BY 1")).fetchall())
    assert set(moved) <= {2, 3} and sum(moved.values()) == 12  # every instance moved, last writer's version
    assert (await (await conn.execute("SELECT count(*) FROM flowable.workflow_tasks WHERE status = 'COMPLETED'"
                                      )).fetchone())[0] == 24
