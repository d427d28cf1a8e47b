"""Two bridge replicas (`bridge serve`, separate process trees, two ports) on one PostgreSQL and the real engine
(issue 19): one is cut from PostgreSQL by a TCP proxy. It says it is not ready and stops running the background
jobs by its own deadline; the other stays ready and takes the jobs over."""

from __future__ import annotations

import asyncio
import signal
import time

import aiohttp
import pytest
from sqlalchemy.engine import make_url

from bridge.db.embedded import free_tcp_port
from tests.helpers import eventually, leads_background_jobs, start_bridge, wait_healthy
from tests.tcp_proxy import TcpProxy

pytestmark = pytest.mark.slow
TTL_S = 3


async def _get(session: aiohttp.ClientSession, port: int, path: str) -> tuple[int, str]:
    try:
        async with session.get(f"http://127.0.0.1:{port}{path}", timeout=aiohttp.ClientTimeout(total=10)) as r:
            return r.status, await r.text()
    except (aiohttp.ClientError, TimeoutError):
        return 0, ""


async def test_a_replica_cut_from_postgresql_is_not_ready_and_the_other_serves_and_runs_the_jobs(engine):
    url = make_url(engine.database_url)
    env = {"BRIDGE_WORKERS": "1", "BRIDGE_LEASE_TTL_S": str(TTL_S), "BRIDGE_ESCALATE_INTERVAL_S": "1",
           "BRIDGE_DB_POOL_TIMEOUT_S": "2"}
    ports = {"cut": free_tcp_port(), "whole": free_tcp_port()}
    async with TcpProxy(url.host, url.port) as proxy, aiohttp.ClientSession() as session:
        through_proxy = url.set(port=proxy.port).render_as_string(hide_password=False)
        cut = start_bridge(through_proxy, engine, ports["cut"], "replica-cut.log", **env)
        whole = None
        try:
            await wait_healthy(ports["cut"], cut)
            # the one to be cut runs the jobs first
            await eventually(lambda: _is_leader(session, ports["cut"]), 30, "the first replica took the lease")
            whole = start_bridge(engine.database_url, engine, ports["whole"], "replica-whole.log", **env)
            await wait_healthy(ports["whole"], whole)
            for port in ports.values():
                status, body = await _get(session, port, "/readyz")
                assert status == 200, body
            assert not await _is_leader(session, ports["whole"])

            await proxy.cut()
            cut_at = time.monotonic()
            status, body = await _get(session, ports["cut"], "/readyz")
            assert status == 503 and '"database": "error' in body, body
            assert (await _get(session, ports["whole"], "/readyz"))[0] == 200
            await eventually(lambda: _is_leader(session, ports["whole"]), TTL_S + TTL_S / 3 + 5,
                         "the replica still connected took over the background jobs")
            print(f"jobs moved {time.monotonic() - cut_at:.1f} s after the cut (lease {TTL_S} s)")
            assert not await _is_leader(session, ports["cut"])  # it stopped by its own deadline
            # it answers for itself all along: alive, not ready
            assert (await _get(session, ports["cut"], "/healthz"))[0] == 200

            await proxy.restore()
            await eventually(lambda: _ready(session, ports["cut"]), 30, "the cut replica ready again")
            assert not await _is_leader(session, ports["cut"])  # the lease stays where it went
        finally:
            for process in (cut, whole):  # waited for off the loop: the proxy in it carries the cut one's traffic
                if process is not None and process.poll() is None:
                    process.send_signal(signal.SIGTERM)
                    await asyncio.to_thread(process.wait, 30)


async def _is_leader(session: aiohttp.ClientSession, port: int) -> bool:
    status, body = await _get(session, port, "/metrics")
    return status == 200 and leads_background_jobs(body)


async def _ready(session: aiohttp.ClientSession, port: int) -> bool:
    return (await _get(session, port, "/readyz"))[0] == 200
