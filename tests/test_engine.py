"""The real Flowable engine under engine/ and its signed webhook emitter."""

from __future__ import annotations

import uuid

import aiohttp
import pytest

from bridge.flowable.client import FlowableError
from bridge.mirror.signature import SignatureError, decode_secret, verify
from tests.helpers import BPMN, deploy, eventually, one_task_process

pytestmark = pytest.mark.slow


def types(batch: list[dict]) -> list[str]:
    return [e["type"] + ("/" + e["entityType"] if e["type"].startswith("ENTITY_") else "") for e in batch]


async def emitter_stats(engine) -> dict:
    async with aiohttp.ClientSession() as s:
        async with s.get(f"{engine.root_url}/bridge-emitter/stats", headers=engine.auth_header) as r:
            assert r.status == 200
            return await r.json()


async def emitter_settled_on(engine, url: str) -> dict:
    """The emitter's stats once it prefers `url`. A receiver records a batch before it answers, so the
    emitter may not yet have read the 2xx and moved its preference when the test sees the batch arrive."""
    async def settled():
        stats = await emitter_stats(engine)
        return stats if stats["url"] == url else None
    return await eventually(settled, 10, f"the emitter never settled on {url}")


async def test_deploy_start_claim_complete_through_the_rest_api(flowable, engine):
    key = f"p{uuid.uuid4().hex[:8]}"
    await deploy(flowable, key, one_task_process(key))
    [definition] = await flowable.process_definitions(key=key, latest=True)
    assert definition["version"] == 1

    instance = await flowable.start_process(key, business_key="case-17", variables={"caseType": "FRAUD", "amount": 5})
    [task] = await flowable.tasks(processInstanceId=instance["id"])
    assert (task["name"], task["priority"], task["formKey"]) == ("Review", 70, "intake-form")
    assert task["dueDate"] is not None

    await flowable.claim_task(task["id"], "alice")
    with pytest.raises(FlowableError) as conflict:
        await flowable.claim_task(task["id"], "bob")
    assert conflict.value.status == 409
    await flowable.complete_task(task["id"], {"outcome": "approved"})

    [done] = await flowable.historic_process_instances(processInstanceId=instance["id"])
    assert done["endTime"] is not None and done["businessKey"] == "case-17"
    with pytest.raises(FlowableError) as gone:
        await flowable.process_instance(instance["id"])
    assert gone.value.status == 404


async def test_the_flow_arrives_signed_whole_transactions_in_commit_order(flowable, engine, webhook_receiver):
    key = f"p{uuid.uuid4().hex[:8]}"
    await deploy(flowable, key, one_task_process(key))
    instance = await flowable.start_process(key, business_key="case-18", variables={"caseType": "FRAUD"})
    pid = instance["id"]
    [task] = await flowable.tasks(processInstanceId=pid)
    await flowable.claim_task(task["id"], "alice")
    await flowable.complete_task(task["id"], {"outcome": "approved"})

    await webhook_receiver.wait_for(lambda: any(
        e["type"] == "PROCESS_COMPLETED" for b in webhook_receiver.events_for(pid) for e in b))
    # One POST per transaction, or, when the sender has a backlog, several whole transactions in one POST
    # (WEBHOOK_COALESCE_MAX_EVENTS): the three transactions are found in order either way.
    batches = webhook_receiver.events_for(pid)
    stream = [e for b in batches for e in b]
    assigned = types(stream).index("TASK_ASSIGNED")
    start, claim, complete = stream[:assigned], stream[assigned:assigned + 1], stream[assigned + 1:]

    assert types(start) == ["VARIABLE_CREATED", "PROCESS_STARTED", "ACTIVITY_STARTED", "ACTIVITY_COMPLETED",
                            "ACTIVITY_STARTED", "ENTITY_CREATED/identityLink", "TASK_CREATED"]
    created = start[-1]["task"]
    assert (created["id"], created["candidateGroups"], created["priority"], created["formKey"]) == (
        task["id"], ["INTAKE_CLERK"], 70, "intake-form")
    assert start[1]["processInstance"]["businessKey"] == "case-18"
    assert start[0]["variable"] == {**start[0]["variable"], "name": "caseType", "type": "string", "value": "FRAUD"}

    assert types(claim) == ["TASK_ASSIGNED"] and claim[0]["task"]["assignee"] == "alice"

    assert types(complete)[:2] == ["VARIABLE_CREATED", "TASK_COMPLETED"]
    assert types(complete)[-1] == "PROCESS_COMPLETED"
    assert "ENTITY_DELETED/task" in types(complete)

    assert len({e["eventId"] for e in stream}) == len(stream)
    key_bytes = decode_secret(engine.webhook_secret)
    deliveries = [d for d in webhook_receiver.deliveries if any(e.get("processInstanceId") == pid for e in d.events)]
    for delivery in deliveries:  # seq: each event's place in its delivery
        assert [e["seq"] for e in delivery.events] == list(range(1, len(delivery.events) + 1))
    for delivery in deliveries:
        assert verify([key_bytes], delivery.headers, delivery.body) == delivery.batch["batchId"]
    tampered = deliveries[0].body.replace(b"case-18", b"case-19")
    with pytest.raises(SignatureError):
        verify([key_bytes], deliveries[0].headers, tampered)


async def test_a_failed_transaction_sends_none_of_its_events(flowable, engine, webhook_receiver):
    key = f"p{uuid.uuid4().hex[:8]}"
    broken = '<serviceTask id="boom" flowable:class="com.example.DoesNotExist"/>' \
             '<sequenceFlow id="f0" sourceRef="boom" targetRef="review"/>'
    await deploy(flowable, key, one_task_process(key, extra=broken, after_start="boom"))
    rolled_back_before = (await emitter_stats(engine))["rolledBackBatches"]

    with pytest.raises(FlowableError) as failed:
        await flowable.start_process(key, business_key="doomed")
    assert failed.value.status >= 400

    # The emitter sends in commit order from one thread: once a later transaction's batch is in,
    # the failed one would have arrived before it if it had been sent at all.
    marker_key = f"p{uuid.uuid4().hex[:8]}"
    await deploy(flowable, marker_key, one_task_process(marker_key))
    marker = await flowable.start_process(marker_key, business_key="marker")
    await webhook_receiver.wait_for(lambda: webhook_receiver.events_for(marker["id"]))
    mentioned = [e for d in webhook_receiver.deliveries for e in d.events
                 if (e.get("processInstance") or {}).get("businessKey") == "doomed"
                 or e.get("processDefinitionId", "").startswith(f"{key}:")]
    assert mentioned == []
    assert (await emitter_stats(engine))["rolledBackBatches"] > rolled_back_before


async def test_cancelling_an_instance_sends_process_cancelled_and_a_delete_for_each_open_task(
        flowable, engine, webhook_receiver):
    key = f"p{uuid.uuid4().hex[:8]}"
    parallel = f"""<?xml version="1.0" encoding="UTF-8"?>
<definitions xmlns="{BPMN}" xmlns:flowable="http://flowable.org/bpmn" targetNamespace="onecms-tests">
  <process id="{key}" isExecutable="true">
    <startEvent id="start"/>
    <sequenceFlow id="f1" sourceRef="start" targetRef="fork"/>
    <parallelGateway id="fork"/>
    <sequenceFlow id="f2" sourceRef="fork" targetRef="legal"/>
    <sequenceFlow id="f3" sourceRef="fork" targetRef="compliance"/>
    <userTask id="legal" name="Legal review" flowable:candidateGroups="LEGAL_REVIEWER"/>
    <userTask id="compliance" name="Compliance review" flowable:candidateGroups="COMPLIANCE_OFFICER"/>
    <sequenceFlow id="f4" sourceRef="legal" targetRef="join"/>
    <sequenceFlow id="f5" sourceRef="compliance" targetRef="join"/>
    <parallelGateway id="join"/>
    <sequenceFlow id="f6" sourceRef="join" targetRef="end"/>
    <endEvent id="end"/>
  </process>
</definitions>""".encode()
    await deploy(flowable, key, parallel)
    instance = await flowable.start_process(key, business_key="case-20")
    open_tasks = {t["id"] for t in await flowable.tasks(processInstanceId=instance["id"])}
    assert len(open_tasks) == 2

    await flowable.cancel_process(instance["id"], reason="withdrawn")
    await webhook_receiver.wait_for(lambda: any(
        e["type"] == "PROCESS_CANCELLED" for b in webhook_receiver.events_for(instance["id"]) for e in b))
    cancel_batch = webhook_receiver.events_for(instance["id"])[-1]
    deleted = {e["task"]["id"]: e["task"]["deleteReason"] for e in cancel_batch
               if e["type"] == "ENTITY_DELETED" and e["entityType"] == "task"}
    assert deleted == {task_id: "withdrawn" for task_id in open_tasks}
    assert types(cancel_batch)[-1] == "PROCESS_CANCELLED"
    assert cancel_batch[-1]["processInstance"]["deleteReason"] == "withdrawn"


async def test_with_the_receiver_down_the_engine_keeps_working_and_counts_the_drops(
        flowable, engine, webhook_receiver):
    key = f"p{uuid.uuid4().hex[:8]}"
    await deploy(flowable, key, one_task_process(key))
    dropped_before = (await emitter_stats(engine))["droppedBatches"]
    await webhook_receiver.go_down()
    try:
        instance = await flowable.start_process(key, business_key="case-21")
        [task] = await flowable.tasks(processInstanceId=instance["id"])
        await flowable.complete_task(task["id"])
        [done] = await flowable.historic_process_instances(processInstanceId=instance["id"])
        assert done["endTime"] is not None
        async def dropped_both():
            stats = await emitter_stats(engine)
            return stats if stats["droppedBatches"] >= dropped_before + 2 else None
        # the emitter's retries back off before it drops: seconds, more on a busy machine
        stats = await eventually(dropped_both, 30, "the emitter did not drop both batches")
        assert stats["droppedRetriesExhausted"] >= 2
    finally:
        await webhook_receiver.start()
    assert webhook_receiver.events_for(instance["id"]) == []
    assert "dropped" in engine.log_tail(400).lower()


async def test_with_two_bridges_listed_the_emitter_fails_over_and_back(
        flowable, engine, webhook_receiver, standby_receiver):
    """WEBHOOK_URL lists two bridges. The first goes down: batches go to the second at once, nothing dropped.
    It comes back and the second refuses (503, as a replica cut from its database): batches go to the first."""
    key = f"p{uuid.uuid4().hex[:8]}"
    await deploy(flowable, key, one_task_process(key))
    before = await emitter_stats(engine)
    assert before["urls"] == [webhook_receiver.url, standby_receiver.url]
    standby_receiver.status = 204
    await webhook_receiver.go_down()
    try:
        moved = await flowable.start_process(key, business_key="while-first-down")
        await standby_receiver.wait_for(lambda: standby_receiver.events_for(moved["id"]))
        during = await emitter_settled_on(engine, standby_receiver.url)
        assert during["failovers"] >= before["failovers"] + 1
    finally:
        standby_receiver.status = 503
        await webhook_receiver.start()
    back = await flowable.start_process(key, business_key="after-first-back")
    await webhook_receiver.wait_for(lambda: webhook_receiver.events_for(back["id"]))
    after = await emitter_settled_on(engine, webhook_receiver.url)
    assert after["failovers"] >= during["failovers"] + 1
    assert after["droppedBatches"] == before["droppedBatches"]
    assert webhook_receiver.events_for(moved["id"]) == [] and standby_receiver.events_for(back["id"]) == []


async def test_a_paused_emitter_captures_nothing_until_resumed(flowable, engine, webhook_receiver):
    key = f"p{uuid.uuid4().hex[:8]}"
    await deploy(flowable, key, one_task_process(key))
    paused = await flowable.request("POST", "../bridge-emitter/pause")
    assert paused["paused"] is True
    try:
        quiet = await flowable.start_process(key, business_key="while-paused")
    finally:
        resumed = await flowable.request("POST", "../bridge-emitter/resume")
    assert resumed["paused"] is False
    heard = await flowable.start_process(key, business_key="after-resume")
    await webhook_receiver.wait_for(lambda: webhook_receiver.events_for(heard["id"]))
    assert webhook_receiver.events_for(quiet["id"]) == []


async def test_a_client_given_several_engine_nodes_passes_over_one_that_is_down(flowable, engine):
    """FLOWABLE_URL may list the nodes of one engine cluster: a node nothing answers on is passed over, for
    reads and for writes (a connection never made cannot have applied anything), and the next stays chosen."""
    from bridge.db.embedded import free_tcp_port
    from bridge.flowable.client import FlowableClient

    dead = f"http://127.0.0.1:{free_tcp_port()}/process-api"
    key = f"p{uuid.uuid4().hex[:8]}"
    await deploy(flowable, key, one_task_process(key))
    async with FlowableClient(f"{dead}, {engine.base_url}", engine.user, engine.password) as client:
        assert client.base_urls == [dead, engine.base_url] and client.base_url == dead
        started = await client.start_process(key, business_key="through-the-second-node")
        assert client.base_url == engine.base_url  # chosen from now on
        [task] = await client.tasks(processInstanceId=started["id"])
        await client.complete_task(task["id"])
        [done] = await flowable.historic_process_instances(processInstanceId=started["id"])
        assert done["endTime"] is not None
