"""The bridge killed (SIGKILL) while the engine's batches pour in, then restarted: nothing lost, nothing doubled.

Real parts throughout: the engine's own signed batches (captured by the session's receiver while cases
run on the real engine), a `bridge serve` process on a real PostgreSQL, killed mid-stream. Afterwards
every batch is sent again, as the engine does for every batch it got no answer for (and, here, also for
those it did: an answer can be lost too).
"""

from __future__ import annotations

import asyncio
import signal

import aiohttp
import pytest
from sqlalchemy import text

from bridge.db.connections import open_database
from bridge.db.embedded import free_tcp_port
from bridge.deploy import deploy_bpmn
from bridge.flowable.client import FlowableError
from bridge.mirror.drift import compare, read_mirror
from bridge.mirror.engine_state import EngineReader
from bridge.mirror.reconcile import resync_instances
from tests.helpers import ONECMS_FILE, start_bridge, wait_healthy

pytestmark = pytest.mark.slow


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
    db = open_database(db_url, pool_size=2)
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
    a_third_answered = asyncio.Event()

    async def send(session: aiohttp.ClientSession, delivery) -> None:
        try:
            async with session.post(f"http://127.0.0.1:{port}/webhooks/flowable", data=delivery.body,
                                    headers=delivery.headers) as response:
                if response.status == 200:
                    answered.add(delivery.headers["webhook-id"])
                    if len(answered) >= len(batches) // 3:
                        a_third_answered.set()
        except (TimeoutError, aiohttp.ClientError):
            pass  # the bridge died under this request: the engine would send it again

    async with aiohttp.ClientSession() as session:
        async def stream() -> None:
            queue = list(batches)
            while queue:
                await asyncio.gather(*(send(session, d) for d in queue[:6]))
                queue = queue[6:]

        sender = asyncio.create_task(stream())
        await a_third_answered.wait()
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


async def test_killed_between_an_action_and_its_answer_the_retry_with_the_same_key_gets_the_first_answer(
        db_url, flowable, engine, webhook_receiver):
    """Issue 13: a SIGKILL after the engine completed the task and before the bridge committed (nothing of
    the action in the mirror, no answer stored), and one after the commit and before the answer was sent. In
    both, the client's retry with the same Idempotency-Key gets the answer the first attempt would have had,
    not 409 "the task is COMPLETED"; once whether the engine's push reached the mirror before the retry or not."""
    from bridge import auth
    from bridge.work.queues import change_queue

    db = open_database(db_url, pool_size=2)
    await deploy_bpmn(ONECMS_FILE.read_bytes(), ONECMS_FILE.name, db=db, flowable=flowable, deployed_by="test")
    async with db.begin() as conn:
        await auth.add_user(conn, "kit", roles=["INTAKE_CLERK"], granted_by="test")
        token = await auth.create_token(conn, "kit")
        await change_queue(conn, "INTAKE_REGISTRATION", {"autoAssign": False}, by="test", source="test")
    headers = {"Authorization": f"Bearer {token}"}
    pids = []
    for n in range(3):
        pids.append((await flowable.start_process("OneCMS_Nextgen_WF", business_key=str(93000 + n), variables={
            "caseId": 93000 + n, "caseType": "QUALITY", "severity": "LOW"}))["id"])
    tasks = [(await flowable.tasks(processInstanceId=pid))[0]["id"] for pid in pids]
    port = free_tcp_port()

    async def post(session, path: str, key: str) -> tuple[int, dict, dict]:
        async with session.post(f"http://127.0.0.1:{port}{path}", json={}, headers={**headers, "Idempotency-Key": key},
                                timeout=aiohttp.ClientTimeout(total=60)) as response:
            return response.status, await response.json(), dict(response.headers)

    async def killed_during(session, bridge, path: str, key: str) -> None:
        with pytest.raises((aiohttp.ClientError, asyncio.TimeoutError)):
            await post(session, path, key)
        assert bridge.wait(timeout=30) == -signal.SIGKILL

    async def forward_pushes(session, pid: str) -> None:
        await webhook_receiver.wait_for(lambda: any(e["type"] == "TASK_COMPLETED" and e.get("processInstanceId") == pid
                                                    for d in webhook_receiver.deliveries for e in d.events))
        for delivery in [d for d in webhook_receiver.deliveries if any(e.get("processInstanceId") == pid
                                                                       for e in d.events)]:
            async with session.post(f"http://127.0.0.1:{port}/webhooks/flowable", data=delivery.body,
                                    headers=delivery.headers) as response:
                assert response.status == 200, await response.text()

    # one serving process (a SIGKILL takes the service), connections never reused (aiohttp sends a request
    # again on a kept-alive connection the server closed: that would be a retry this test does not make)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as session:
        await resync_instances(db, flowable, pids)  # the mirror knows the tasks; kit claims them
        bridge = start_bridge(db_url, engine, port, "sigkill-claims.log", BRIDGE_WORKERS="1")
        try:
            await wait_healthy(port, bridge)
            for task in tasks:
                status, body, _ = await post(session, f"/api/tasks/{task}/claim", f"claim-{task}")
                assert status == 200, body
        finally:
            bridge.send_signal(signal.SIGTERM)
            bridge.wait(timeout=30)

        expected = [{"taskId": task, "action": "complete", "status": "COMPLETED", "assignee": "kit"} for task in tasks]
        for n, (task, pid) in enumerate(zip(tasks, pids, strict=True)):
            failpoint = "action.after_commit" if n == 2 else "action.after_engine"
            bridge = start_bridge(db_url, engine, port, f"sigkill-{n}-a.log", BRIDGE_WORKERS="1",
                                  BRIDGE_FAILPOINTS=failpoint)
            await wait_healthy(port, bridge)
            await killed_during(session, bridge, f"/api/tasks/{task}/complete", f"done-{task}")
            with pytest.raises(FlowableError):
                await flowable.task(task)  # the engine did complete it
            bridge = start_bridge(db_url, engine, port, f"sigkill-{n}-b.log", BRIDGE_WORKERS="1")
            try:
                await wait_healthy(port, bridge)
                if n == 1:  # the engine's push reached the mirror before the client retried
                    await forward_pushes(session, pid)
                status, body, answer_headers = await post(session, f"/api/tasks/{task}/complete", f"done-{task}")
                assert (status, body) == (200, expected[n]), (failpoint, n)
                assert answer_headers.get("Idempotent-Replayed") == ("true" if n == 2 else None)
                status, body, answer_headers = await post(session, f"/api/tasks/{task}/complete", f"done-{task}")
                assert (status, body, answer_headers.get("Idempotent-Replayed")) == (200, expected[n], "true")
                # without the key the same request is what it is now: a completed task cannot be completed
                async with session.post(f"http://127.0.0.1:{port}/api/tasks/{task}/complete", json={},
                                        headers=headers) as response:
                    assert response.status in (404, 409)
            finally:
                bridge.send_signal(signal.SIGTERM)
                bridge.wait(timeout=30)
    async with db.connect() as conn:
        completes = (await conn.execute(text("SELECT task_id, count(*) FROM flowable.task_history "
                                             "WHERE task_id = ANY(:t) AND action_type = 'COMPLETE' GROUP BY 1"),
                                        {"t": tasks})).all()
    await db.dispose()
    assert sorted(completes) == sorted((task, 1) for task in tasks)  # each recorded once

