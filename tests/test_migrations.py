"""bridge migrate: ordered, once, recorded with a checksum, serialized across bridges."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import psycopg
import pytest

from bridge.db.migrate import HISTORY_TABLE, MIGRATION_LOCK_KEY, MigrationError, discover, migrate
from tests.conftest import MIGRATIONS, PostgresCluster


@pytest.fixture
def fresh_db(pg_cluster: PostgresCluster):
    url = pg_cluster.create_database("t_migrate")
    yield url
    pg_cluster.drop_database(url)


async def _fetchall(url: str, query: str, params=None) -> list[tuple]:
    async with await psycopg.AsyncConnection.connect(url) as conn:
        cur = await conn.execute(query, params)
        return await cur.fetchall()


async def test_applies_every_file_in_order_on_an_empty_database_then_is_a_no_op(fresh_db: str):
    files = [m.version for m in discover(MIGRATIONS)]
    assert files == sorted(files) and len(files) >= 7

    assert await migrate(fresh_db, MIGRATIONS) == files
    history = await _fetchall(fresh_db, f"SELECT version, checksum FROM {HISTORY_TABLE} ORDER BY applied_at, version")
    assert [v for v, _ in history] == files
    assert all(len(checksum) == 64 for _, checksum in history)

    tables = await _fetchall(fresh_db, """
        SELECT table_schema || '.' || table_name FROM information_schema.tables
        WHERE table_schema IN ('entitlements', 'flowable', 'onecms', 'archive') AND table_type = 'BASE TABLE'
          AND table_name !~ '^task_history_p[0-9]{4}_[0-9]{2}$'""")
    assert {t for (t,) in tables} == {
        "entitlements.departments", "entitlements.users", "entitlements.workflow_roles",
        "entitlements.user_workflow_roles", "flowable.workflow_definitions", "flowable.process_instances",
        "flowable.workflow_tasks", "flowable.workflow_queues", "flowable.queue_assignments",
        "flowable.task_history", "flowable.workflow_variables", "onecms.case_workflow_mapping",
        "entitlements.api_tokens", "flowable.webhook_batches", "flowable.engine_events",
        "flowable.reconciler_state", "flowable.mirror_repairs", "flowable.queue_load_changes",
        "flowable.api_idempotency", "flowable.task_hourly_stats", "flowable.task_stat_changes",
        "flowable.queue_setting_changes", "flowable.retention_policies", "flowable.task_history_default",
        "archive.archived_instances", "archive.process_instances", "archive.workflow_tasks", "archive.task_history",
        "archive.task_history_default", "archive.workflow_variables", "archive.case_workflow_mapping",
        "flowable.instance_migrations", "flowable.instance_migration_results", "flowable.legacy_case_imports",
        "flowable.task_work_stats", "flowable.task_work_changes", "flowable.process_work_stats",
        "flowable.process_work_changes", "flowable.activity_live_load", "flowable.activity_live_changes",
        "flowable.service_leases"}
    months = await _fetchall(fresh_db, """
        SELECT count(*) FROM pg_inherits WHERE inhparent = 'flowable.task_history'::regclass""")
    assert months[0][0] == 1 + 4  # DEFAULT, this month and three ahead (an empty database has no older months)

    assert await migrate(fresh_db, MIGRATIONS) == []
    assert len(await _fetchall(fresh_db, f"SELECT 1 FROM {HISTORY_TABLE}")) == len(files)


async def test_refuses_an_applied_file_that_was_edited_and_names_it(fresh_db: str, tmp_path: Path):
    folder = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS, folder)
    await migrate(fresh_db, folder)

    edited = folder / "0003_workflow.sql"
    edited.write_text(edited.read_text() + "\n-- a later edit\n")
    (folder / "0999_new.sql").write_text("CREATE TABLE public.must_not_exist (id int);")

    with pytest.raises(MigrationError, match=r"0003_workflow\.sql was edited after it was applied"):
        await migrate(fresh_db, folder)
    # Nothing after the refusal ran.
    assert await _fetchall(fresh_db, "SELECT to_regclass('public.must_not_exist')") == [(None,)]


async def test_refuses_a_database_migrated_by_a_newer_bridge(fresh_db: str, tmp_path: Path):
    folder = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS, folder)
    await migrate(fresh_db, folder)
    (folder / "0007_row_level_security.sql").unlink()
    with pytest.raises(MigrationError, match=r"0007_row_level_security\.sql applied, but .* has no such file"):
        await migrate(fresh_db, folder)


async def test_a_failing_file_is_rolled_back_whole_and_not_recorded(fresh_db: str, tmp_path: Path):
    folder = tmp_path / "migrations"
    folder.mkdir()
    (folder / "0001_good.sql").write_text("CREATE TABLE public.good (id int);")
    (folder / "0002_broken.sql").write_text("CREATE TABLE public.half (id int);\nSELECT no_such_function();")
    with pytest.raises(MigrationError, match=r"0002_broken\.sql failed and was rolled back"):
        await migrate(fresh_db, folder)
    assert await _fetchall(fresh_db, f"SELECT version FROM {HISTORY_TABLE}") == [("0001_good",)]
    assert await _fetchall(fresh_db, "SELECT to_regclass('public.half')") == [(None,)]


def test_file_names_must_order_unambiguously(tmp_path: Path):
    (tmp_path / "0001_a.sql").write_text("")
    (tmp_path / "0001_b.sql").write_text("")
    with pytest.raises(MigrationError, match="share the number 0001"):
        discover(tmp_path)
    (tmp_path / "0001_b.sql").unlink()
    (tmp_path / "2_Bad Name.sql").write_text("")
    with pytest.raises(MigrationError, match="NNNN_lower_case_name"):
        discover(tmp_path)


async def _advisory_lock_holders(url: str) -> tuple[int, int]:
    """(sessions holding, sessions waiting for) the migration lock."""
    rows = await _fetchall(url, """
        SELECT granted FROM pg_locks
        WHERE locktype = 'advisory' AND ((classid::bigint << 32) | objid::bigint) = %s""",
        [MIGRATION_LOCK_KEY])
    return sum(1 for (g,) in rows if g), sum(1 for (g,) in rows if not g)


async def test_two_migrators_at_once_one_waits_and_nothing_is_applied_twice(fresh_db: str, tmp_path: Path):
    folder = tmp_path / "migrations"
    folder.mkdir()
    # Plain CREATE TABLE fails if run twice, so a double apply cannot go unnoticed.
    (folder / "0001_slow.sql").write_text("CREATE TABLE public.once (id int);\nSELECT pg_sleep(1.5);")
    (folder / "0002_next.sql").write_text("CREATE TABLE public.twice_would_fail (id int);")

    first = asyncio.create_task(migrate(fresh_db, folder))
    for _ in range(100):
        if (await _advisory_lock_holders(fresh_db))[0] == 1:
            break
        await asyncio.sleep(0.02)
    second = asyncio.create_task(migrate(fresh_db, folder))
    saw_waiter = False
    for _ in range(100):
        if await _advisory_lock_holders(fresh_db) == (1, 1):
            saw_waiter = True
            break
        await asyncio.sleep(0.02)

    applied_first, applied_second = await asyncio.gather(first, second)
    assert saw_waiter, "the second migrator never waited on the lock"
    assert applied_first == ["0001_slow", "0002_next"]
    assert applied_second == []
    assert await _advisory_lock_holders(fresh_db) == (0, 0)


async def test_the_real_migrations_from_many_bridges_at_once(fresh_db: str):
    results = await asyncio.gather(*(migrate(fresh_db, MIGRATIONS) for _ in range(4)))
    applied = [version for result in results for version in result]
    assert sorted(applied) == [m.version for m in discover(MIGRATIONS)]
