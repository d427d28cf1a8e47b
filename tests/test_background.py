"""The service's periodic jobs: they run, survive a failing round, stop with the app, and 0 turns them off."""

from __future__ import annotations

import asyncio

from aiohttp import web

from bridge.background import periodic


async def test_a_job_runs_again_after_a_failing_round_and_stops_with_the_app(aiohttp_client):
    calls = []

    async def job() -> None:
        calls.append(len(calls))
        if len(calls) == 2:
            raise RuntimeError("a bad round")

    app = web.Application()
    app.cleanup_ctx.append(periodic("test job", lambda a: 0.01, lambda a: job))
    client = await aiohttp_client(app)
    for _ in range(200):
        if len(calls) >= 5:
            break
        await asyncio.sleep(0.01)
    assert len(calls) >= 5  # the failing second round did not end the job
    await client.close()
    stopped_at = len(calls)
    await asyncio.sleep(0.05)
    assert len(calls) == stopped_at


async def test_an_interval_of_zero_runs_nothing(aiohttp_client):
    calls = []

    async def job() -> None:
        calls.append(1)

    app = web.Application()
    app.cleanup_ctx.append(periodic("off", lambda a: 0, lambda a: job))
    await aiohttp_client(app)
    await asyncio.sleep(0.05)
    assert calls == []


async def test_a_round_runs_only_while_its_gate_is_open(aiohttp_client):
    """The gate is the replica's lease on the background jobs (bridge/leadership.py)."""
    calls, gate = [], {"open": False}

    async def job() -> None:
        calls.append(1)

    app = web.Application()
    app.cleanup_ctx.append(periodic("gated", lambda a: 0.01, lambda a: job, lambda a: lambda: gate["open"]))
    client = await aiohttp_client(app)
    await asyncio.sleep(0.1)
    assert calls == []
    gate["open"] = True
    for _ in range(200):
        if calls:
            break
        await asyncio.sleep(0.01)
    assert calls
    await client.close()
