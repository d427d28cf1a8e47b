"""PostgreSQL down or saturated: every route answers 503 with Retry-After, never 500 (bridge/web/errors.py)."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from bridge import auth
from bridge.db.connections import open_database
from tests.conftest import bridge_app
from tests.tcp_proxy import TcpProxy

pytestmark = pytest.mark.slow


@pytest.fixture
async def token(db_url):
    db = open_database(db_url, pool_size=1)
    async with db.begin() as conn:
        await conn.execute(text("INSERT INTO entitlements.workflow_roles (role_code, role_name, role_type) "
                                "VALUES ('OPS_VIEWER', 'Ops viewer', 'SYSTEM'), ('QUEUE_ADMIN', 'Queue admin', "
                                "'SYSTEM') ON CONFLICT DO NOTHING"))
        await auth.add_user(conn, "dora", roles=["OPS_VIEWER", "QUEUE_ADMIN"], granted_by="test")
        token = await auth.create_token(conn, "dora")
    await db.dispose()
    return {"Authorization": f"Bearer {token}"}


ROUTES = [("GET", "/api/tasks", None), ("POST", "/api/work/next", {}), ("GET", "/api/reports/queues", None),
          ("GET", "/api/queues", None), ("PUT", "/api/queues/Q", {"slaMinutes": 5}), ("GET", "/api/cases/7", None),
          ("POST", "/api/tasks/t-1/claim", {}), ("GET", "/api/tasks/t-1", None)]


async def test_with_postgresql_cut_off_every_route_answers_503_with_retry_after(db_url, token, aiohttp_client):
    url = make_url(db_url)
    async with TcpProxy(url.host, url.port) as proxy:
        client = await aiohttp_client(bridge_app(url.set(port=proxy.port).render_as_string(hide_password=False)))
        assert (await client.get("/api/tasks", headers=token)).status == 200  # connected, pooled
        await proxy.cut()
        try:
            for method, path, body in ROUTES:
                response = await client.request(method, path, json=body, headers=token)
                assert response.status == 503, (method, path, response.status, await response.text())
                assert response.headers["Retry-After"] == "5"
                assert "database is unavailable" in (await response.json())["error"]
            ready = await client.get("/readyz")
            assert ready.status == 503
        finally:
            await proxy.restore()
        assert (await client.get("/api/tasks", headers=token)).status == 200  # and it comes back by itself


async def test_with_every_connection_taken_a_request_answers_503_soon(db_url, token, aiohttp_client):
    client = await aiohttp_client(bridge_app(db_url, db_pool_size=1, db_pool_timeout_s=0.3))
    assert (await client.get("/api/tasks", headers=token)).status == 200
    from bridge.web.app import DB

    async with client.server.app[DB].connect():  # the only connection, held
        for method, path, body in ROUTES[:4]:
            response = await client.request(method, path, json=body, headers=token)
            assert response.status == 503, (method, path, response.status, await response.text())
            assert response.headers["Retry-After"] == "1"
            assert "saturated" in (await response.json())["error"]
    assert (await client.get("/api/tasks", headers=token)).status == 200


async def test_readyz_says_the_engine_gave_no_answer_in_time(db_url, aiohttp_client, monkeypatch):
    """An engine that takes the connection and never answers: /readyz names the wait, not "error: "."""
    import asyncio

    from bridge.flowable.client import FlowableEndpoint
    from bridge.web import app as app_module

    held: list[asyncio.StreamWriter] = []

    async def hold(reader, writer):  # accept, then never answer
        held.append(writer)

    silent = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = silent.sockets[0].getsockname()[1]
    monkeypatch.setattr(app_module, "READY_ENGINE_TIMEOUT_S", 0.5)
    try:
        client = await aiohttp_client(bridge_app(db_url, FlowableEndpoint(f"http://127.0.0.1:{port}/process-api",
                                                                         "x", "y")))
        ready = await client.get("/readyz")
        assert ready.status == 503
        assert (await ready.json())["checks"]["engine"] == "error: no answer within 0.5s"
    finally:
        silent.close()
        for writer in held:
            writer.close()
