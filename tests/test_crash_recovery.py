"""The bridge killed (SIGKILL) while the engine's batches pour in, then restarted: nothing lost, nothing doubled.

Real parts throughout: the engine's own signed batches (captured by the session's receiver while cases
run on the real engine), a `bridge serve` process on a real PostgreSQL, killed mid-stream. Afterwards
every batch is sent again, as the engine does for every batch it got no answer for (and, here, also for
those it did: an answer can be lost too).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys

import aiohttp
import pytest
from sqlalchemy import text

from bridge.db.embedded import free_tcp_port
from bridge.db.engine import create_engine
from bridge.deploy import deploy_bpmn
from bridge.mirror.drift import compare, read_mirror
from bridge.mirror.engine_state import EngineReader
from tests.conftest import ARTIFACTS, PROJECT_ROOT
from tests.test_bpmn_meta import ONECMS_FILE

pytestmark = pytest.mark.slow


def start_bridge(db_url: str, engine, port: int, log_name: str) -> subprocess.Popen:
    env = {**os.environ, "DATABASE_URL": db_url, "FLOWABLE_URL": engine.base_url, "FLOWABLE_USER": engine.user,
           "FLOWABLE_PASSWORD": engine.password, "WEBHOOK_SECRET": engine.webhook_secret,
           "BRIDGE_PORT": str(port), "BRIDGE_RECONCILE_INTERVAL_S": "0"}
    ARTIFACTS.mkdir(exist_ok=True)
    return subprocess.Popen([sys.executable, "-m", "bridge.cli", "serve"], cwd=PROJECT_ROOT, env=env,
                            stdout=(ARTIFACTS / log_name).open("wb"), stderr=subprocess.STDOUT)


async def wait_healthy(port: int, process: subprocess.Popen) -> None:
    async with aiohttp.ClientSession() as session:
        for _ in range(300):
            assert process.poll() is None, "bridge serve exited"
            try:
                async with session.get(f"http://127.0.0.1:{port}/healthz") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    pytest.fail("bridge serve did not come up")


async def run_cases(flowable, count: int) -> list[str]:
    pids = []
    for n in range(count):
        pid = (await flowable.start_process("OneCMS_Nextgen_WF", business_key=str(91000 + n), variables={
            "caseId": 91000 + n, "caseType": "QUALITY", "severity": "LOW"}))["id"]
        register = (await flowable.tasks(processInstanceId=pid))[0]
        await flowable.claim_task(register["id"], "clerk")
        await flowable.complete_task(register["id"])
        if n % 2:
            triage = (await flowable.tasks(processInstanceId=pid))[0]
            await flowable.complete_task(triage["id"], {"triageDecision": "REJECT"})
        pids.append(pid)
    return pids


async def test_killed_mid_stream_and_restarted_loses_nothing_and_doubles_nothing(
        db_url, flowable, engine, webhook_receiver):
    db = create_engine(db_url, pool_size=2)
    await deploy_bpmn(ONECMS_FILE.read_bytes(), ONECMS_FILE.name, db=db, flowable=flowable, deployed_by="test")
    pids = await run_cases(flowable, 30)
    wanted = set(pids)

    def ours(delivery) -> bool:
        return any((e.get("processInstanceId") or (e.get("processInstance") or {}).get("id")) in wanted
                   for e in delivery.events)

    await webhook_receiver.wait_for(lambda: sum(
        1 for d in webhook_receiver.deliveries for e in d.events
        if e["type"].startswith("PROCESS_COMPLETED") and e.get("processInstanceId") in wanted) >= 15)
    batches = [d for d in webhook_receiver.deliveries if ours(d)]
    event_ids = {e["eventId"] for d in batches for e in d.events}
    # Enough deliveries to kill the bridge a third of the way in. How many there are varies: the emitter
    # puts back-to-back transactions into one POST (about 90 here for some 105 transactions, 705 events).
    assert len(batches) >= 30

    port = free_tcp_port()
    bridge = start_bridge(db_url, engine, port, "crash-1.log")
    await wait_healthy(port, bridge)
    answered: set[str] = set()

    async def send(session: aiohttp.ClientSession, delivery) -> None:
        try:
            async with session.post(f"http://127.0.0.1:{port}/webhooks/flowable", data=delivery.body,
                                    headers=delivery.headers) as response:
                if response.status == 200:
                    answered.add(delivery.headers["webhook-id"])
        except (aiohttp.ClientError, asyncio.TimeoutError):
            pass  # the bridge died under this request: the engine would send it again

    async with aiohttp.ClientSession() as session:
        async def stream() -> None:
            queue = list(batches)
            while queue:
                await asyncio.gather(*(send(session, d) for d in queue[:6]))
                queue = queue[6:]

        sender = asyncio.create_task(stream())
        while len(answered) < len(batches) // 3:
            await asyncio.sleep(0.005)
        bridge.send_signal(signal.SIGKILL)  # no shutdown, no cleanup: mid-batch, mid-transaction
        bridge.wait(timeout=10)
        await sender
    assert 0 < len(answered) < len(batches)

    async with db.connect() as conn:
        stored_after_crash = (await conn.execute(text("SELECT count(*) FROM flowable.engine_events"))).scalar()
    assert stored_after_crash < len(event_ids)  # the crash cut the stream short

    bridge = start_bridge(db_url, engine, port, "crash-2.log")
    try:
        await wait_healthy(port, bridge)
        answered.clear()
        async with aiohttp.ClientSession() as session:
            for delivery in batches:  # everything again, in the engine's order
                await send(session, delivery)
        assert len(answered) == len(batches)
    finally:
        bridge.send_signal(signal.SIGTERM)
        bridge.wait(timeout=30)

    async with db.connect() as conn:
        stored = (await conn.execute(text("SELECT count(*), count(DISTINCT event_id), count(applied_at) "
                                          "FROM flowable.engine_events"))).one()
        doubled = (await conn.execute(text("""
            SELECT action_data ->> 'eventId', count(*) FROM flowable.task_history
            WHERE process_instance_id = ANY(:p) GROUP BY 1 HAVING count(*) > 1"""), {"p": pids})).all()
        unapplied = (await conn.execute(text("SELECT event_type, apply_error FROM flowable.engine_events "
                                             "WHERE applied_at IS NULL"))).all()
        engine = await EngineReader(flowable).read_instances(pids)
        differences = compare(engine, await read_mirror(conn, pids)).differences
    await db.dispose()
    assert stored == (len(event_ids), len(event_ids), len(event_ids)), unapplied  # each once, all applied
    assert doubled == []
    assert [str(d) for d in differences] == []  # the mirror is whole without the reconciler
