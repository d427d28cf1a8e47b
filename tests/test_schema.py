"""The schema as a whole: metadata matches the migrations, updated_at triggers work."""

from __future__ import annotations

import asyncio

import psycopg
import pytest
from sqlalchemy import create_engine

from bridge.db.connections import sqlalchemy_url
from bridge.db.metadata import metadata
from bridge.db.schema_check import metadata_differences
from tests import seed


def _differences(url: str) -> list[str]:
    engine = create_engine(sqlalchemy_url(url))
    try:
        with engine.connect() as c:
            return metadata_differences(metadata, c)
    finally:
        engine.dispose()


async def test_sqlalchemy_metadata_matches_the_migrated_database(db_url):
    assert len(metadata.tables) == 24
    assert await asyncio.to_thread(_differences, db_url) == []


async def test_the_drift_check_notices_a_changed_column(pg_cluster):
    from bridge.db.migrate import migrate
    from tests.conftest import MIGRATIONS

    url = pg_cluster.create_database("t_drift")
    try:
        await migrate(url, MIGRATIONS)
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as c:
            await c.execute("ALTER TABLE flowable.workflow_tasks ALTER COLUMN outcome TYPE text")
            await c.execute("ALTER TABLE flowable.workflow_tasks ADD COLUMN surprise int")
            await c.execute("ALTER TABLE entitlements.users ALTER COLUMN email SET NOT NULL")
            await c.execute("ALTER TABLE flowable.workflow_tasks DROP CONSTRAINT workflow_tasks_queue_name_fkey")
        found = "\n".join(await asyncio.to_thread(_differences, url))
    finally:
        pg_cluster.drop_database(url)
    assert "flowable.workflow_tasks.outcome: type TEXT in the database, VARCHAR(100) in metadata" in found
    assert "flowable.workflow_tasks.surprise: in the database, not in metadata" in found
    assert "entitlements.users.email: nullable=False in the database, True in metadata" in found
    assert "foreign key (('queue_name',), 'flowable.workflow_queues', ('queue_name',)) in metadata" in found


UPDATED_AT_TABLES = {
    "entitlements.departments": ("department_name", "'Renamed'"),
    "entitlements.users": ("email", "'x@example.org'"),
    "entitlements.workflow_roles": ("role_name", "'Renamed'"),
    "flowable.workflow_definitions": ("process_name", "'Renamed'"),
    "flowable.workflow_queues": ("description", "'Renamed'"),
    "flowable.workflow_variables": ("variable_value", "'42'"),
}


async def test_every_table_with_updated_at_has_the_trigger(conn):
    rows = await (await conn.execute("""
        SELECT c.table_schema || '.' || c.table_name,
               EXISTS (SELECT 1 FROM information_schema.triggers tr
                       WHERE tr.event_object_schema = c.table_schema AND tr.event_object_table = c.table_name
                         AND tr.event_manipulation = 'UPDATE' AND tr.action_statement LIKE '%%touch_updated_at%%')
        FROM information_schema.columns c JOIN information_schema.tables t USING (table_schema, table_name)
        WHERE c.column_name = 'updated_at' AND t.table_type = 'BASE TABLE'
          AND c.table_schema IN ('entitlements', 'flowable', 'onecms')""")).fetchall()
    assert {table for table, _ in rows} == set(UPDATED_AT_TABLES)
    assert all(has_trigger for _, has_trigger in rows)


@pytest.mark.parametrize("table", sorted(UPDATED_AT_TABLES))
async def test_updated_at_moves_on_a_real_update_only(conn, table):
    await seed.department(conn, "D")
    await seed.user(conn, "u1")
    await seed.role(conn, "R1")
    workflow_id = await seed.definition(conn)
    await seed.queue(conn, "Q1")
    pi = await seed.instance(conn, workflow_id)
    await conn.execute("INSERT INTO flowable.workflow_variables (process_instance_id, variable_name, variable_type, "
                       "variable_value) VALUES (%s, 'amount', 'INTEGER', '1')", [pi])

    column, value = UPDATED_AT_TABLES[table]
    # Pretend every row was last touched an hour ago, then change one column.
    await conn.execute(f"ALTER TABLE {table} DISABLE TRIGGER USER")
    await conn.execute(f"UPDATE {table} SET updated_at = now() - interval '1 hour'")
    await conn.execute(f"ALTER TABLE {table} ENABLE TRIGGER USER")

    await conn.execute(f"UPDATE {table} SET {column} = {column}")  # no real change
    unchanged, = await (await conn.execute(
        f"SELECT bool_and(updated_at < now() - interval '59 minutes') FROM {table}")).fetchone()
    assert unchanged

    await conn.execute(f"UPDATE {table} SET {column} = {value}")
    moved, = await (await conn.execute(
        f"SELECT bool_and(updated_at > now() - interval '1 minute') FROM {table}")).fetchone()
    assert moved


async def test_schema_sql_is_what_the_migrations_make(pg_cluster):
    """schema.sql (bridge/db/schema_dump.py) is the schema in one readable file: regenerated, never edited."""
    from bridge.db.migrate import migrate
    from bridge.db.schema_dump import SCHEMA_FILE, dump
    from tests.conftest import MIGRATIONS

    url = pg_cluster.create_database("t_schema_sql")
    try:
        await migrate(url, MIGRATIONS)
        made = await asyncio.to_thread(dump, url)
    finally:
        pg_cluster.drop_database(url)
    assert made == SCHEMA_FILE.read_text(), "schema.sql is not what the migrations make: run `make schema`"
    assert "CREATE FUNCTION flowable.claim_next_task(" in made  # the current body, in one place
