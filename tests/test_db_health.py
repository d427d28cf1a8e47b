"""Database health (bridge/db_health.py): a transaction held open is reported by status and metrics, and
`bridge maintenance` vacuums what piled up. Real PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys

import psycopg
import pytest

from bridge import db_health
from bridge.db.connections import open_database
from tests.conftest import NO_ENGINE, PROJECT_ROOT, bridge_app


async def test_a_transaction_held_open_is_reported_by_status_and_metrics(db_url, aiohttp_client):
    async with await psycopg.AsyncConnection.connect(db_url, application_name="held-by-test") as held:
        await held.execute("SELECT txid_current()")  # a transaction with an id, left open
        await asyncio.sleep(1.2)
        db = open_database(db_url, pool_size=1)
        try:
            async with db.connect() as conn:
                health = await db_health.read(conn)
        finally:
            await db.dispose()
        oldest = health.oldest_transactions[0]
        assert (oldest["pid"], oldest["application_name"], oldest["state"]) == (
            held.info.backend_pid, "held-by-test", "idle in transaction")
        assert oldest["open_seconds"] >= 1.0 and health.xmin_horizon_age >= 1
        assert {t["table_name"] for t in health.tables} == set(db_health.HOT_TABLES)

        status = await asyncio.to_thread(
            subprocess.run, [sys.executable, "-m", "bridge.cli", "status"], cwd=PROJECT_ROOT, capture_output=True,
            text=True, timeout=60, env={**os.environ, "DATABASE_URL": db_url, "FLOWABLE_URL": NO_ENGINE.base_url})
        line = next(x for x in status.stdout.splitlines() if x.startswith("transaction"))
        assert re.fullmatch(rf"transaction oldest open \d+ s \(pid {held.info.backend_pid}, held-by-test, "
                            r"idle in transaction\); xmin horizon held \d+ xids back", line), line

        client = await aiohttp_client(bridge_app(db_url))
        scraped = await (await client.get("/metrics")).text()
        seconds = float(re.search(r"^bridge_db_oldest_transaction_seconds (\S+)$", scraped, re.M).group(1))
        assert seconds >= 1.0
        assert re.search(r'^bridge_db_dead_tuples\{table="flowable.workflow_tasks"\} ', scraped, re.M)
        await held.rollback()

    db = open_database(db_url, pool_size=1)
    try:
        async with db.connect() as conn:
            after = await db_health.read(conn)
    finally:
        await db.dispose()
    assert all(t["application_name"] != "held-by-test" for t in after.oldest_transactions)


async def test_maintenance_vacuums_the_dead_tuples_of_the_hot_tables(db_url):
    async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as conn:
        await conn.execute("""INSERT INTO flowable.api_idempotency
                                (user_id, idempotency_key, request_hash, response_status, response_body)
                              SELECT 'u', 'k' || n, repeat('0', 64), 200, '{}' FROM generate_series(1, 500) n""")
        await conn.execute("DELETE FROM flowable.api_idempotency")
    done = await db_health.maintain(db_url)
    line = next(x for x in done if x.startswith("vacuum analyze flowable.api_idempotency"))
    before, after = map(int, re.search(r": (\d+) -> (\d+) dead tuples", line).groups())
    assert before >= 500 and after == 0, line
    assert done[-1].startswith("analyze: statistics of the other tables")

    cli = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "bridge.cli", "maintenance"], cwd=PROJECT_ROOT, capture_output=True,
        text=True, timeout=120, env={**os.environ, "DATABASE_URL": db_url})
    assert cli.returncode == 0, cli.stderr
    printed = cli.stdout.splitlines()
    assert len([x for x in printed if x.startswith("vacuum analyze ")]) == len(db_health.HOT_TABLES)
    assert any(x.startswith("transaction ") for x in printed) and any(x.startswith("indexes ") for x in printed)


async def test_pg_stat_statements_created_without_its_library_loaded_reads_as_not_installed(db_url):
    """CREATE EXTENSION works without shared_preload_libraries, but reading the view then raises: the health
    (status, /metrics, the dashboard) must not fail on it."""
    async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as conn:
        available = await (await conn.execute(
            "SELECT 1 FROM pg_available_extensions WHERE name = 'pg_stat_statements'")).fetchone()
        if available is None:
            pytest.skip("this server does not ship pg_stat_statements")
        loaded = (await (await conn.execute(
            "SELECT current_setting('pg_stat_statements.max', true) IS NOT NULL")).fetchone())[0]
        await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        try:
            db = open_database(db_url, pool_size=1)
            try:
                async with db.connect() as c:
                    health = await db_health.read(c)
            finally:
                await db.dispose()
            assert (health.slow_statements is not None) == loaded
            assert any(x.endswith("; pg_stat_statements not installed") for x in db_health.lines(health)) != loaded
        finally:
            await conn.execute("DROP EXTENSION pg_stat_statements")
