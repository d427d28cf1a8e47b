"""Reports and the dashboard from a read replica (DATABASE_READ_URL, issue 19): a real streaming replica of an
embedded PostgreSQL 18 (pg_basebackup), its lag shown in mirror health, writes still on the primary."""

from __future__ import annotations

import asyncio
from pathlib import Path

import psycopg
import pytest

from bridge import auth
from bridge.db.connections import open_database
from bridge.db.embedded import EmbeddedPostgres
from bridge.db.migrate import migrate
from tests import seed
from tests.conftest import MIGRATIONS, bridge_app

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def primary_and_replica(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("replication")
    with EmbeddedPostgres(Path(root) / "primary", server_options={"fsync": "off"}) as primary:
        url = primary.ensure_database("onecms")
        asyncio.run(migrate(url, MIGRATIONS))
        replica = primary.streaming_replica(Path(root) / "replica")
        try:
            yield url, replica.url("onecms"), replica
        finally:
            replica.stop()


async def _open_tasks(client, headers: dict, queue: str) -> int:
    response = await client.get(f"/api/reports/queues?queue={queue}", headers=headers)
    assert response.status == 200, await response.text()
    [row] = (await response.json())["queues"]
    return row["open_tasks"]


async def _wait_replayed(replica_url: str, primary_url: str) -> None:
    async with await psycopg.AsyncConnection.connect(primary_url, autocommit=True) as p:
        target = (await (await p.execute("SELECT pg_current_wal_lsn()")).fetchone())[0]
    async with await psycopg.AsyncConnection.connect(replica_url, autocommit=True) as r:
        for _ in range(200):
            if (await (await r.execute("SELECT pg_last_wal_replay_lsn() >= %s", [target])).fetchone())[0]:
                return
            await asyncio.sleep(0.05)
    pytest.fail("the replica did not catch up")


async def test_reports_read_the_replica_and_mirror_health_shows_its_lag(primary_and_replica, aiohttp_client):
    primary_url, replica_url, _ = primary_and_replica
    async with await psycopg.AsyncConnection.connect(primary_url, autocommit=True) as conn:
        await conn.execute("INSERT INTO entitlements.workflow_roles (role_code, role_name, role_type) "
                           "VALUES ('OPS_VIEWER', 'Ops viewer', 'SYSTEM') ON CONFLICT DO NOTHING")
        await seed.queue(conn, "REPLICATED")
        pid = await seed.instance(conn, await seed.definition(conn))
        for _ in range(3):
            await seed.task(conn, pid, "REPLICATED")
    db = open_database(primary_url, pool_size=1)
    async with db.begin() as c:
        await auth.add_user(c, "olga", roles=["OPS_VIEWER"], granted_by="test")
        headers = {"Authorization": f"Bearer {await auth.create_token(c, 'olga')}"}
    await db.dispose()
    await _wait_replayed(replica_url, primary_url)

    client = await aiohttp_client(bridge_app(primary_url, database_read_url=replica_url))
    assert await _open_tasks(client, headers, "REPLICATED") == 3
    health = await (await client.get("/api/reports/mirror", headers=headers)).json()
    assert health["read_replica"]["in_recovery"] is True

    # replay paused on the replica: the primary moves on, the reports (from the replica) do not, and the lag shows
    async with await psycopg.AsyncConnection.connect(replica_url, autocommit=True) as r:
        await r.execute("SELECT pg_wal_replay_pause()")
        try:
            async with await psycopg.AsyncConnection.connect(primary_url, autocommit=True) as conn:
                for _ in range(2):
                    await seed.task(conn, pid, "REPLICATED")
            assert await _open_tasks(client, headers, "REPLICATED") == 3
            behind = (await (await client.get("/api/reports/mirror", headers=headers)).json())["read_replica"]
            assert behind["bytes_behind"] > 0
            page = await client.get("/dashboard", headers=headers)
            assert page.status == 200 and "bytes of WAL behind" in await page.text()
        finally:
            await r.execute("SELECT pg_wal_replay_resume()")
    await _wait_replayed(replica_url, primary_url)
    assert await _open_tasks(client, headers, "REPLICATED") == 5
    for _ in range(100):  # the primary keeps writing a little (the lease on the background jobs): caught up soon
        caught_up = (await (await client.get("/api/reports/mirror", headers=headers)).json())["read_replica"]
        if caught_up["bytes_behind"] == 0:
            break
        await asyncio.sleep(0.1)
    assert caught_up["bytes_behind"] == 0


async def test_with_the_replica_down_reports_answer_503_and_the_rest_still_works(primary_and_replica,
                                                                                aiohttp_client):
    primary_url, replica_url, replica = primary_and_replica
    async with await psycopg.AsyncConnection.connect(primary_url, autocommit=True) as conn:
        await conn.execute("INSERT INTO entitlements.workflow_roles (role_code, role_name, role_type) "
                           "VALUES ('OPS_VIEWER', 'Ops viewer', 'SYSTEM') ON CONFLICT DO NOTHING")
    db = open_database(primary_url, pool_size=1)
    async with db.begin() as c:
        await auth.add_user(c, "pia", roles=["OPS_VIEWER"], granted_by="test")
        headers = {"Authorization": f"Bearer {await auth.create_token(c, 'pia')}"}
    await db.dispose()
    client = await aiohttp_client(bridge_app(primary_url, database_read_url=replica_url, db_pool_timeout_s=2))
    replica.stop()
    try:
        response = await client.get("/api/reports/queues", headers=headers)
        assert response.status == 503 and "Retry-After" in response.headers
        assert (await client.get("/api/tasks", headers=headers)).status == 200  # the primary serves the rest
    finally:
        replica.start()
