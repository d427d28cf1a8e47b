"""Two engine nodes (the same jar, two ports) on one PostgreSQL with a bridge replica beside them (issue 19):
Flowable's async executors share the job tables, so each timer fires once whichever node took it; a node
SIGKILLed under load loses the events in its emitter's memory, and the bridge's reconciler makes the mirror
whole from the engine's history: no case stuck, no drift. The node killed is the one the bridge itself talks
to first (FLOWABLE_URL lists both): its reconciler and its case workers' actions go on through the other."""

from __future__ import annotations

import asyncio
import os
import signal
import uuid

import aiohttp
import pytest
from sqlalchemy import text

from bridge import auth
from bridge.db.connections import open_database
from bridge.db.embedded import free_tcp_port
from bridge.db.migrate import migrate
from bridge.deploy import deploy_bpmn
from bridge.flowable.client import FlowableClient
from bridge.flowable.local_engine import LocalEngine, build_engine_jar, new_webhook_secret
from tests.conftest import ARTIFACTS, MIGRATIONS
from tests.helpers import drift_of, eventually, start_bridge, wait_healthy
from tests.tcp_proxy import TcpProxy

pytestmark = pytest.mark.slow
KEY = "clusterTimer"


def timer_process() -> bytes:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<definitions xmlns="http://www.omg.org/spec/BPMN/20100524/MODEL" xmlns:flowable="http://flowable.org/bpmn"
             xmlns:onecms="urn:onecms:bpmn:1.0" targetNamespace="tests">
  <process id="{KEY}" name="Cluster timer" isExecutable="true">
    <laneSet id="ls">
      <lane id="lane_a" name="Cluster desk">
        <extensionElements><onecms:department code="CLUSTER_DESK" name="Cluster desk"/></extensionElements>
        <flowNodeRef>start</flowNodeRef><flowNodeRef>wait</flowNodeRef><flowNodeRef>review</flowNodeRef>
        <flowNodeRef>approve</flowNodeRef><flowNodeRef>end</flowNodeRef>
      </lane>
    </laneSet>
    <startEvent id="start"/>
    <sequenceFlow id="f1" sourceRef="start" targetRef="wait"/>
    <intermediateCatchEvent id="wait"><timerEventDefinition><timeDuration>PT1S</timeDuration></timerEventDefinition>
    </intermediateCatchEvent>
    <sequenceFlow id="f2" sourceRef="wait" targetRef="review"/>
    <userTask id="review" name="Review" flowable:candidateGroups="CLUSTER_REVIEWER">
      <extensionElements><onecms:queue name="Q_CLUSTER" type="STANDARD" slaMinutes="60" maxCapacity="500"/>
      </extensionElements>
    </userTask>
    <sequenceFlow id="f3" sourceRef="review" targetRef="approve"/>
    <userTask id="approve" name="Approve" flowable:candidateGroups="CLUSTER_REVIEWER">
      <extensionElements><onecms:queue name="Q_CLUSTER" type="STANDARD" slaMinutes="60" maxCapacity="500"/>
      </extensionElements>
    </userTask>
    <sequenceFlow id="f4" sourceRef="approve" targetRef="end"/>
    <endEvent id="end"/>
  </process>
</definitions>""".encode()


async def _open_tasks(flowable: FlowableClient, pid: str) -> list[dict]:
    return await flowable.tasks(processInstanceId=pid)


async def test_two_nodes_fire_each_timer_once_and_a_killed_node_loses_nothing_the_reconciler_cannot_bring(
        pg_cluster):
    jar = await asyncio.to_thread(build_engine_jar)
    url = pg_cluster.create_database("t_engine_cluster")
    await migrate(url, MIGRATIONS)
    secret, bridge_port = new_webhook_secret(), free_tcp_port()
    bridge_url = f"http://127.0.0.1:{bridge_port}/webhooks/flowable"
    db = open_database(url, pool_size=4)
    nodes: list[LocalEngine] = []
    bridge = None
    async with TcpProxy("127.0.0.1", bridge_port) as b_path:
        try:
            # node b pushes through a proxy the test cuts before killing it: its events then wait in its memory
            for name, webhook_url in (("a", bridge_url), ("b", f"http://127.0.0.1:{b_path.port}/webhooks/flowable")):
                node = LocalEngine(jar, database_url=url, webhook_url=webhook_url, webhook_secret=secret,
                                   log_file=ARTIFACTS / f"engine-cluster-{name}.log",
                                   extra_env={"ENGINE_NAME": f"node-{name}", "ENGINE_JOB_LOCK_TIME": "PT10S",
                                              "ENGINE_RESET_EXPIRED_JOBS_INTERVAL": "PT2S"})
                (ARTIFACTS / f"engine-cluster-{name}.log").unlink(missing_ok=True)
                await asyncio.to_thread(node.start)  # one after the other: the first creates Flowable's schema
                nodes.append(node)
            a, b = nodes
            # the bridge talks to node b first: killing b kills the node the bridge's own actions go to
            bridge = start_bridge(url, a, bridge_port, "bridge-cluster.log", BRIDGE_WORKERS="1",
                                  FLOWABLE_URL=f"{b.base_url},{a.base_url}",
                                  BRIDGE_RECONCILE_INTERVAL_S="1", BRIDGE_RECONCILE_SWEEP_MINUTES="1",
                                  BRIDGE_LEASE_TTL_S="3")
            await wait_healthy(bridge_port, bridge)
            async with FlowableClient.of(a) as via_a, FlowableClient.of(b) as via_b:
                await deploy_bpmn(timer_process(), f"{KEY}.bpmn20.xml", db=db, flowable=via_a, deployed_by="test")

                # 1. load through both nodes: each instance waits on a 1 s timer that either node's executor fires
                started = await asyncio.gather(*(
                    (via_a if n % 2 else via_b).start_process(KEY, business_key=f"cl-{n}") for n in range(30)))
                pids = [s["id"] for s in started]

                async def all_at_review() -> bool:
                    tasks = await asyncio.gather(*(_open_tasks(via_a, pid) for pid in pids))
                    return all(len(t) == 1 for t in tasks)
                await eventually(all_at_review, 90, "every timer fired")
                async with db.connect() as conn:
                    fired = dict((await conn.execute(text(
                        "SELECT proc_inst_id_, count(*) FROM flowable.act_hi_actinst WHERE act_id_ = 'wait' "
                        "AND end_time_ IS NOT NULL GROUP BY 1"))).all())
                    dead = (await conn.execute(text("SELECT count(*) FROM flowable.act_ru_deadletter_job"))).scalar()
                assert fired == {pid: 1 for pid in pids} and dead == 0

                # 2. work through node b while its pushes cannot get out, then SIGKILL it
                await b_path.cut()
                reviews = [t for pid in pids[:15] for t in await _open_tasks(via_b, pid)]
                await asyncio.gather(*(via_b.complete_task(t["id"]) for t in reviews))
                late = [(await via_b.start_process(KEY, business_key=f"late-{uuid.uuid4().hex[:6]}"))["id"]
                        for _ in range(5)]
                os.kill(b.pid, signal.SIGKILL)
                await asyncio.to_thread(b.stop)  # reaps it
                pids += late

                # 3. the reconciler brings what node b never pushed; no case is stuck: all finish through node a
                async def no_drift() -> bool:
                    return await drift_of(db, via_a, pids) == []
                await eventually(no_drift, 120, "the reconciler repaired what the killed node never pushed")
                async with db.connect() as conn:
                    repaired = (await conn.execute(text(
                        "SELECT count(DISTINCT entity_id) FROM flowable.mirror_repairs"))).scalar()
                assert repaired >= 15  # at least the reviews completed through node b: their pushes died with it

                # the late ones' timers: node b may have locked them before it died; node a takes them once the
                # lock runs out (ENGINE_JOB_LOCK_TIME)
                await eventually(lambda: _no_timer_waits(db), 60, "the killed node's timers fired on node a")
                # case workers finish every case through the bridge, whose first engine node is dead: its
                # actions go to node a
                async with db.begin() as conn:
                    await auth.add_user(conn, "clerk", roles=["CLUSTER_REVIEWER"], granted_by="test")
                    token = await auth.create_token(conn, "clerk")
                finished = await _work_through_the_bridge(bridge_port, token, 2 * len(pids) - 15)
                assert finished == 2 * len(pids) - 15  # the reviews not done before the kill, and every approval

                async def all_completed_in_the_mirror() -> bool:
                    async with db.connect() as conn:
                        statuses = dict((await conn.execute(text(
                            "SELECT status, count(*) FROM flowable.process_instances GROUP BY 1"))).all())
                    return statuses == {"COMPLETED": len(pids)}
                await eventually(all_completed_in_the_mirror, 60, "every case completed, in the mirror too")
                assert await drift_of(db, via_a, pids) == []
        finally:
            if bridge is not None and bridge.poll() is None:
                bridge.send_signal(signal.SIGTERM)
                await asyncio.to_thread(bridge.wait, 30)
            for node in nodes:
                await asyncio.to_thread(node.stop)
            await db.dispose()
            pg_cluster.drop_database(url)


async def _work_through_the_bridge(port: int, token: str, expected: int) -> int:
    """Claims and completes through the bridge's API until the queue stays empty; the tasks completed."""
    base, headers, done, idle = f"http://127.0.0.1:{port}", {"Authorization": f"Bearer {token}"}, 0, 0
    async with aiohttp.ClientSession() as session:
        while done < expected and idle < 300:
            async with session.post(f"{base}/api/work/next", json={"queues": ["Q_CLUSTER"]},
                                    headers=headers) as taken:
                if taken.status == 204:  # the next task's creation is not mirrored yet
                    idle += 1
                    await asyncio.sleep(0.1)
                    continue
                assert taken.status == 200, await taken.text()
                task = await taken.json()
            async with session.post(f"{base}/api/tasks/{task['task_id']}/complete", json={},
                                    headers=headers) as completed:
                assert completed.status == 200, await completed.text()
            done += 1
    return done


async def _no_timer_waits(db) -> bool:
    async with db.connect() as conn:
        return (await conn.execute(text(
            "SELECT (SELECT count(*) FROM flowable.act_ru_timer_job) + (SELECT count(*) FROM flowable.act_ru_job)"
        ))).scalar() == 0
