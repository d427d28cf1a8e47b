"""Archiving against a real PostgreSQL: what moves, what stays, counts kept, summaries untouched, whole months
moved as tables, a SIGKILL mid-run, and archived work still answering (bridge/archive.py, migration 0024).
The engine's part (its history deleted, drift 0) is tests/test_archive_engine.py."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from bridge import archive, retention
from bridge.mirror.apply import apply_events
from tests import seed

NOW = datetime.now(UTC)
_ids = itertools.count(1)


async def _case(conn, workflow_id: int, *, ended_days_ago: float | None, history_at: datetime | None = None,
                tasks: int = 2, case_id: int | None = None) -> dict:
    """An instance with its tasks, history, variables (process and task scope) and case routing; what it holds."""
    ended = NOW - timedelta(days=ended_days_ago) if ended_days_ago is not None else None
    started = (ended or NOW) - timedelta(days=3)
    pid = await seed.instance(conn, workflow_id, status="COMPLETED" if ended else "ACTIVE", started_at=started,
                              completed_at=ended)
    case_id = case_id or next(_ids) + 10_000
    await conn.execute("UPDATE flowable.process_instances SET case_id = %s WHERE process_instance_id = %s",
                       [case_id, pid])
    task_ids = []
    for n in range(tasks):
        done = ended is not None or n < tasks - 1
        task_ids.append(await seed.task(conn, pid, "Q_ARCHIVE", status="COMPLETED" if done else "OPEN",
                                        created_at=started + timedelta(hours=n),
                                        completed_at=(started + timedelta(hours=n + 1)) if done else None,
                                        candidate_groups=["ARCHIVIST"]))
    at = history_at or started
    for task_id in task_ids:
        for action in ("CREATE", "COMPLETE"):
            await conn.execute(
                "INSERT INTO flowable.task_history (task_id, process_instance_id, action_type, action_by, action_at) "
                "VALUES (%s, %s, %s, 'w1', %s)", [task_id, pid, action, at])
    await conn.execute("INSERT INTO flowable.workflow_variables (process_instance_id, variable_name, variable_type, "
                       "variable_value) VALUES (%s, 'caseType', 'STRING', 'A')", [pid])
    await conn.execute("INSERT INTO flowable.workflow_variables (task_id, variable_name, variable_type, "
                       "variable_value) VALUES (%s, 'note', 'STRING', 'x')", [task_ids[0]])
    await conn.execute("INSERT INTO onecms.case_workflow_mapping (case_id, process_instance_id, workflow_type, "
                       "initiated_by) VALUES (%s, %s, 'onecms', 'test')", [case_id, pid])
    return {"id": pid, "case_id": case_id, "tasks": task_ids,
            "counts": {"process_instances": 1, "workflow_tasks": tasks, "task_history": 2 * tasks,
                       "workflow_variables": 2, "case_workflow_mapping": 1}}


async def _scalar(conn, query: str, params=None):
    return (await (await conn.execute(query, params)).fetchone())[0]


async def _hot(conn, pid: str) -> int:
    return await _scalar(conn, "SELECT count(*) FROM flowable.process_instances WHERE process_instance_id = %s", [pid])


async def _summaries(conn) -> list[tuple]:
    await conn.execute("SELECT flowable.fold_queue_load()")
    return await (await conn.execute(
        "SELECT queue_name, hour, completed, created FROM flowable.v_task_hourly_stats ORDER BY 1, 2")).fetchall()


@pytest.fixture
async def world(conn):
    await seed.queue(conn, "Q_ARCHIVE")
    role_id = await seed.role(conn, "ARCHIVIST", queue_name="Q_ARCHIVE")
    await seed.user(conn, "w1")
    await seed.grant(conn, "w1", role_id)
    long_kept = await seed.definition(conn, "onecms")
    short_kept = await seed.definition(conn, "short")
    return {"onecms": long_kept, "short": short_kept}


async def test_due_instances_move_with_everything_they_hold_and_the_rest_stays(conn, db, world):
    async with db.begin() as c:
        await retention.set_policy(c, "short", 5, by="ops")
    old = await _case(conn, world["onecms"], ended_days_ago=400)
    recent = await _case(conn, world["onecms"], ended_days_ago=10)
    running = await _case(conn, world["onecms"], ended_days_ago=None)
    short = await _case(conn, world["short"], ended_days_ago=6)
    summaries = await _summaries(conn)
    load = await _scalar(conn, "SELECT current_load FROM flowable.v_queue_load WHERE queue_name = 'Q_ARCHIVE'")

    dry = await archive.run(db, None, retention_days=365, dry_run=True)
    assert {d["processKey"]: d["instances"] for d in dry.due} == {"onecms": 1, "short": 1}
    assert await _hot(conn, old["id"]) == 1  # a dry run changes nothing

    report = await archive.run(db, None, retention_days=365, batch=1, by="tester")

    assert report.instances == 2 and report.batches == 2
    assert report.rows == {t: old["counts"][t] + short["counts"][t] for t in archive.COUNTED}
    for moved in (old, short):
        assert await _hot(conn, moved["id"]) == 0
        assert await _scalar(conn, "SELECT count(*) FROM flowable.workflow_tasks WHERE process_instance_id = %s",
                             [moved["id"]]) == 0
        ledger = await (await conn.execute(
            "SELECT row_counts, archived_by, case_id FROM archive.archived_instances WHERE process_instance_id = %s",
            [moved["id"]])).fetchone()
        assert ledger == (moved["counts"], "tester", moved["case_id"])
        archived = {t: await _scalar(conn, f"SELECT count(*) FROM archive.{t} WHERE process_instance_id = %s"
                                     if t != "workflow_variables" else
                                     "SELECT count(*) FROM archive.workflow_variables WHERE process_instance_id = %s "
                                     "OR task_id IN (SELECT task_id FROM archive.workflow_tasks "
                                     "WHERE process_instance_id = %s)",
                                     [moved["id"]] * (2 if t == "workflow_variables" else 1))
                    for t in archive.COUNTED}
        assert archived == moved["counts"]
    for kept in (recent, running):
        assert await _hot(conn, kept["id"]) == 1
        assert await _scalar(conn, "SELECT count(*) FROM flowable.task_history WHERE process_instance_id = %s",
                             [kept["id"]]) == kept["counts"]["task_history"]
    # the hourly summaries behind the reports and the queue's load do not lose the archived tasks
    assert await _summaries(conn) == summaries
    assert await _scalar(conn, "SELECT current_load FROM flowable.v_queue_load WHERE queue_name = 'Q_ARCHIVE'") == load

    again = await archive.run(db, None, retention_days=365)
    assert again.instances == 0  # nothing archived twice


async def test_a_month_of_history_whose_instances_are_all_due_moves_as_a_table(conn, db, world):
    due_month = datetime(NOW.year - 2, 3, 15, tzinfo=UTC)
    blocked_month = datetime(NOW.year - 2, 5, 15, tzinfo=UTC)
    first = await _case(conn, world["onecms"], ended_days_ago=500, history_at=due_month)
    second = await _case(conn, world["onecms"], ended_days_ago=450, history_at=due_month)
    running = await _case(conn, world["onecms"], ended_days_ago=None, history_at=blocked_month)
    due_name, blocked_name = (f"task_history_p{m:%Y_%m}" for m in (due_month, blocked_month))
    for month in (due_month, blocked_month):
        # the rows sit in the DEFAULT partition until their month is made: making it moves them
        assert await _scalar(conn, "SELECT flowable.ensure_history_partition('flowable.task_history', %s)",
                             [month.date()]) is True
    assert await _scalar(conn, f"SELECT count(*) FROM flowable.{due_name}") == 8
    assert await _scalar(conn, "SELECT count(*) FROM flowable.task_history_default") == 0

    report = await archive.run(db, None, retention_days=365)

    assert due_name in report.months_moved and blocked_name not in report.months_moved
    assert await _scalar(conn, "SELECT to_regclass(%s) IS NOT NULL", [f"archive.{due_name}"])
    assert await _scalar(conn, "SELECT to_regclass(%s) IS NULL", [f"flowable.{due_name}"])
    # the month went whole, so the instances' own moves found no history hot: counts still whole and checked
    assert report.rows["task_history"] == 0 and report.instances == 2
    for moved in (first, second):
        counts = await _scalar(conn, "SELECT row_counts FROM archive.archived_instances "
                                     "WHERE process_instance_id = %s", [moved["id"]])
        assert counts == moved["counts"]
    assert await _scalar(conn, f"SELECT count(*) FROM flowable.{blocked_name}") == running["counts"]["task_history"]


async def test_a_sigkill_mid_run_loses_and_doubles_nothing(conn, db_url, db, world, tmp_path):
    cases = [await _case(conn, world["onecms"], ended_days_ago=400 + n, tasks=1) for n in range(5)]
    env = {**os.environ, "DATABASE_URL": db_url, "BRIDGE_FAILPOINTS": "archive.mid_run",
           "BRIDGE_DATA_DIR": str(tmp_path)}
    command = [sys.executable, "-m", "bridge.cli", "archive", "--dry-run"]
    dry = await asyncio.to_thread(subprocess.run, command, env=env, capture_output=True, text=True, timeout=120)
    assert dry.returncode == 0, dry.stderr
    assert "onecms" in dry.stdout and "5 instance(s)" in dry.stdout, dry.stdout
    killed = await asyncio.to_thread(subprocess.run, [sys.executable, "-c", (
        "import asyncio, sys\n"
        "from bridge import archive\n"
        "from bridge.db.connections import open_database\n"
        "async def main():\n"
        "    db = open_database(sys.argv[1], pool_size=2)\n"
        "    await archive.run(db, None, retention_days=365, batch=2)\n"
        "asyncio.run(main())\n"), db_url], env=env, capture_output=True, text=True, timeout=120)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    archived = await _scalar(conn, "SELECT count(*) FROM archive.archived_instances")
    assert archived == 2  # the first batch stands; the second died uncommitted
    hot = await _scalar(conn, "SELECT count(*) FROM flowable.process_instances")
    assert hot == 3

    report = await archive.run(db, None, retention_days=365, batch=2)

    assert report.instances == 3
    for case in cases:
        assert await _hot(conn, case["id"]) == 0
        row = await (await conn.execute("SELECT row_counts FROM archive.archived_instances "
                                        "WHERE process_instance_id = %s", [case["id"]])).fetchone()
        assert row == (case["counts"],)
    assert await _scalar(conn, "SELECT count(*) FROM archive.workflow_tasks") == 5
    assert await _scalar(conn, "SELECT count(*) FROM archive.task_history") == 10


async def test_one_archiver_at_a_time(conn, db, world):
    await _case(conn, world["onecms"], ended_days_ago=400)
    async with db.connect() as holder:
        await holder.exec_driver_sql("SELECT pg_advisory_lock(hashtext('bridge.archiver'))")
        with pytest.raises(archive.ArchiverBusy):
            await archive.run(db, None, retention_days=365)
        await holder.exec_driver_sql("SELECT pg_advisory_unlock(hashtext('bridge.archiver'))")
        await holder.commit()
    assert (await archive.run(db, None, retention_days=365)).instances == 1


async def test_a_late_event_for_archived_work_is_not_applied(conn, db, world):
    old = await _case(conn, world["onecms"], ended_days_ago=400)
    await archive.run(db, None, retention_days=365)
    late = {"eventId": "late-1", "type": "TASK_ASSIGNED", "entityType": "task", "timestamp": NOW.isoformat(),
            "task": {"id": old["tasks"][0], "processInstanceId": old["id"], "assignee": "w1", "name": "Review",
                     "taskDefinitionKey": "review"}}
    async with db.begin() as c:
        await apply_events(c, [late])
    assert await _scalar(conn, "SELECT count(*) FROM flowable.workflow_tasks") == 0
    assert await _hot(conn, old["id"]) == 0


async def test_the_inbox_keeps_what_waits_and_prunes_what_was_applied(conn, db, world):
    old = NOW - timedelta(days=60)
    for webhook_id, applied in (("b-applied", True), ("b-parked", False), ("b-new", True)):
        received = old if webhook_id != "b-new" else NOW
        await conn.execute("INSERT INTO flowable.webhook_batches (webhook_id, event_count, received_at) "
                           "VALUES (%s, 1, %s)", [webhook_id, received])
        await conn.execute("INSERT INTO flowable.engine_events (event_id, webhook_id, seq, event_type, payload, "
                           "received_at, applied_at) VALUES (%s, %s, 0, 'X', '{}', %s, %s)",
                           [f"{webhook_id}-e", webhook_id, received, received if applied else None])
    report = await archive.run(db, None, retention_days=365, inbox_days=30)
    assert (report.inbox_batches_pruned, report.inbox_events_pruned) == (1, 1)
    left = await (await conn.execute("SELECT webhook_id FROM flowable.webhook_batches ORDER BY 1")).fetchall()
    assert left == [("b-new",), ("b-parked",)]


async def test_archive_tables_have_the_hot_tables_columns_in_order(conn):
    for schema, table in (("flowable", "process_instances"), ("flowable", "workflow_tasks"),
                          ("flowable", "task_history"), ("flowable", "workflow_variables"),
                          ("onecms", "case_workflow_mapping")):
        columns = """SELECT array_agg(column_name || ':' || data_type ORDER BY ordinal_position)
                     FROM information_schema.columns WHERE table_schema = %s AND table_name = %s"""
        hot = await _scalar(conn, columns, [schema, table])
        assert hot and await _scalar(conn, columns, ["archive", table]) == hot, table


async def test_a_new_month_is_made_ahead_and_takes_its_rows_out_of_the_default(conn):
    far = datetime(NOW.year + 5, 7, 1, 12, tzinfo=UTC)
    await conn.execute("INSERT INTO flowable.task_history (task_id, process_instance_id, action_type, action_by, "
                       "action_at) VALUES ('t', 'p', 'CREATE', 'w1', %s)", [far])
    assert await _scalar(conn, "SELECT count(*) FROM flowable.task_history_default") == 1
    assert await _scalar(conn, "SELECT flowable.ensure_history_partition('flowable.task_history', %s)",
                         [far.date()]) is True
    assert await _scalar(conn, "SELECT flowable.ensure_history_partition('flowable.task_history', %s)",
                         [far.date()]) is False
    assert await _scalar(conn, "SELECT count(*) FROM flowable.task_history_default") == 0
    assert await _scalar(conn, f"SELECT count(*) FROM flowable.task_history_p{far:%Y_%m}") == 1
    with pytest.raises(psycopg.errors.CheckViolation):
        await conn.execute(f"INSERT INTO flowable.task_history_p{far:%Y_%m} (task_id, process_instance_id, "
                           "action_type, action_by, action_at) VALUES ('t', 'p', 'CREATE', 'w1', now())")


async def test_archived_work_still_answers_for_who_may_see_it(conn, db, db_url, world, aiohttp_client):
    from bridge import auth
    from tests.conftest import bridge_app

    old = await _case(conn, world["onecms"], ended_days_ago=400)
    await seed.user(conn, "stranger")
    async with db.begin() as c:
        worker, stranger = await auth.create_token(c, "w1"), await auth.create_token(c, "stranger")
    await archive.run(db, None, retention_days=365)
    client = await aiohttp_client(bridge_app(db_url))

    answer = await client.get(f"/api/tasks/{old['tasks'][0]}", headers={"Authorization": f"Bearer {worker}"})
    assert answer.status == 200
    task = await answer.json()
    assert task["archived"] is True and task["archivedAt"] and task["status"] == "COMPLETED"
    assert [h["action_type"] for h in task["history"]] == ["CREATE", "COMPLETE"]
    hidden = await client.get(f"/api/tasks/{old['tasks'][0]}", headers={"Authorization": f"Bearer {stranger}"})
    assert hidden.status == 404  # row-level security holds in the archive too

    case = await client.get(f"/api/cases/{old['case_id']}", headers={"Authorization": f"Bearer {worker}"})
    assert case.status == 200
    workflows = (await case.json())["workflows"]
    assert [(w["processInstanceId"], w["archived"], w["status"]) for w in workflows] == \
        [(old["id"], True, "COMPLETED")]
