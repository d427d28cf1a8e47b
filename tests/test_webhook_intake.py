"""POST /webhooks/flowable: real engine batches stored once; forged, stale, malformed or huge ones refused."""

from __future__ import annotations

import io
import json
import random
import time
import uuid

import pytest
from sqlalchemy import text

from bridge.db.connections import open_database
from bridge.flowable.local_engine import new_webhook_secret
from bridge.web.webhooks import MAX_WEBHOOK_BYTES
from tests.conftest import bridge_app
from tests.helpers import deploy, one_task_process, signed

pytestmark = pytest.mark.slow

OLD_SECRET = new_webhook_secret()


@pytest.fixture
async def intake(engine, db_url, aiohttp_client):
    """The bridge app on this module's database, trusting the engine's secret (and an older one)."""
    return await aiohttp_client(bridge_app(db_url, engine, webhook_previous_secrets=(OLD_SECRET,)))


@pytest.fixture
async def db(db_url):
    db = open_database(db_url, pool_size=1)
    async with db.begin() as conn:
        await conn.execute(text("TRUNCATE flowable.webhook_batches CASCADE"))
    yield db
    await db.dispose()


async def count(db, table: str) -> int:
    async with db.connect() as conn:
        return (await conn.execute(text(f"SELECT count(*) FROM {table}"))).scalar()


async def run_one_task_instance(flowable, webhook_receiver, business_key: str) -> dict:
    """A one-task process started and completed on the real engine, its webhooks all received."""
    key = f"p{uuid.uuid4().hex[:8]}"
    await deploy(flowable, key, one_task_process(key))
    instance = await flowable.start_process(key, business_key=business_key, variables={"caseType": "FRAUD"})
    [task] = await flowable.tasks(processInstanceId=instance["id"])
    await flowable.complete_task(task["id"])
    await webhook_receiver.wait_for(lambda: any(
        e["type"] == "PROCESS_COMPLETED" for b in webhook_receiver.events_for(instance["id"]) for e in b))
    return instance


async def test_real_engine_batches_are_stored_once_in_order(intake, db, flowable, webhook_receiver):
    instance = await run_one_task_instance(flowable, webhook_receiver, "intake-1")
    deliveries = [d for d in webhook_receiver.deliveries if any(
        e.get("processInstanceId") == instance["id"] for e in d.events)]

    for delivery in deliveries:  # exactly as the engine signed and sent them
        response = await intake.post("/webhooks/flowable", data=delivery.body, headers=delivery.headers)
        assert response.status == 200, await response.text()
        body = await response.json()
        assert (body["duplicateDelivery"], body["newEvents"]) == (False, len(delivery.events))
    total = sum(len(d.events) for d in deliveries)
    assert await count(db, "flowable.engine_events") == total

    for delivery in deliveries:  # redelivered: recognised, nothing stored twice
        response = await intake.post("/webhooks/flowable", data=delivery.body, headers=delivery.headers)
        assert (await response.json())["duplicateDelivery"] is True
    assert await count(db, "flowable.engine_events") == total

    async with db.connect() as conn:
        stored = (await conn.execute(text(
            "SELECT e.event_type FROM flowable.engine_events e JOIN flowable.webhook_batches b USING (webhook_id) "
            "WHERE e.process_instance_id = :p ORDER BY b.batch_seq, e.seq"), {"p": instance["id"]})).scalars().all()
    assert stored[0] == "VARIABLE_CREATED" and "TASK_CREATED" in stored and stored[-1] == "PROCESS_COMPLETED"


ODD_VALUES = [None, 0, -1, 2**63, 2**64, 1.5, 1e308, "", "x" * 5000, "2026-13-45T99:00:00Z", "2026-W48-3", [], {},
              True, "0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "${x}", "'; DROP TABLE x; --", "\U0001f642"]


def _oddly(value, rng: random.Random, rate: float):
    """The value with some of its fields (at any depth) swapped for odd values or dropped."""
    if isinstance(value, dict):
        changed = {}
        for key, item in value.items():
            roll = rng.random()
            if roll < rate:
                changed[key] = rng.choice(ODD_VALUES)
            elif roll >= rate * 1.3:
                changed[key] = _oddly(item, rng, rate)
        return changed
    if isinstance(value, list):
        return [_oddly(item, rng, rate) for item in value]
    return value


async def test_signed_batches_of_odd_values_get_200_or_400_and_every_200_stores_its_events(
        intake, db, engine, flowable, webhook_receiver):
    """What a signed fuzzer found as 500s (which the engine resends forever): values the inbox columns cannot
    hold, and payloads that apply trips over. Real engine events, some fields swapped for odd values."""
    instance = await run_one_task_instance(flowable, webhook_receiver, "odd-1")
    samples = [e for batch in webhook_receiver.events_for(instance["id"]) for e in batch]

    rng = random.Random(20261125)
    outcomes: dict[int, int] = {}
    for _ in range(150):
        events = [_oddly(rng.choice(samples), rng, rate=rng.choice((0.03, 0.1))) for _ in range(rng.randint(1, 4))]
        fresh = set()
        for event in events:
            if isinstance(event, dict) and rng.random() < 0.9:
                event["eventId"] = str(uuid.uuid4())  # never seen: a 200 must store it
                fresh.add(event["eventId"])
        body = json.dumps({"events": events}).encode()
        before = await count(db, "flowable.engine_events")
        response = await intake.post("/webhooks/flowable", data=body, headers=signed(body, engine.webhook_secret))
        outcomes[response.status] = outcomes.get(response.status, 0) + 1
        assert response.status in (200, 400), (response.status, await response.text(), body[:2000])
        if response.status == 200:
            answer = await response.json()
            assert len(fresh) <= answer["newEvents"] <= len(events)
            assert await count(db, "flowable.engine_events") == before + answer["newEvents"]
    assert outcomes.get(200, 0) > 20 and outcomes.get(400, 0) > 20, outcomes  # both sides were exercised


async def test_a_json_variable_holding_an_integer_beyond_64_bits_is_mirrored_whole(
        intake, db, flowable, webhook_receiver):
    """orjson reads such an integer as a float and cannot write one: the mirror kept 1.7e38, or failed."""
    key = f"p{uuid.uuid4().hex[:8]}"
    await deploy(flowable, key, one_task_process(key))
    instance = await flowable.start_process(key, business_key="big-1", variables={"ledger": {"total": 2**127}})
    await webhook_receiver.wait_for(lambda: any(
        e["type"] == "TASK_CREATED" for b in webhook_receiver.events_for(instance["id"]) for e in b))
    for delivery in webhook_receiver.deliveries:
        if any(e.get("processInstanceId") == instance["id"] for e in delivery.events):
            response = await intake.post("/webhooks/flowable", data=delivery.body, headers=delivery.headers)
            assert response.status == 200 and (await response.json())["parked"] == 0, await response.text()
    async with db.connect() as conn:
        mirrored = (await conn.execute(text(
            "SELECT variable_json FROM flowable.workflow_variables WHERE process_instance_id = :p "
            "AND variable_name = 'ledger'"), {"p": instance["id"]})).scalar()
    assert mirrored == {"total": 2**127}


async def test_a_rotated_secret_is_still_accepted_and_an_event_seen_before_is_not_stored_again(intake, db):
    event = {"eventId": str(uuid.uuid4()), "type": "TASK_CREATED", "seq": 1, "timestamp": "2026-11-25T10:00:00.000Z"}
    body = json.dumps({"batchId": "b1", "events": [event]}).encode()
    assert (await intake.post("/webhooks/flowable", data=body, headers=signed(body, OLD_SECRET))).status == 200
    # The same event inside another batch (a replayed transaction): the batch is new, the event is not.
    response = await intake.post("/webhooks/flowable", data=body, headers=signed(body, OLD_SECRET))
    assert (await response.json()) == {"webhookId": response.request_info.headers["webhook-id"], "events": 1,
                                       "newEvents": 0, "duplicateDelivery": False, "parked": 0}
    assert await count(db, "flowable.engine_events") == 1


@pytest.mark.parametrize("case", ["forged", "tampered", "stale", "unsigned", "unknown secret"])
async def test_bad_signatures_get_401_and_write_nothing(intake, db, engine, case):
    body = json.dumps({"events": [{"eventId": "e1", "type": "TASK_CREATED"}]}).encode()
    headers = signed(body, engine.webhook_secret)
    if case == "forged":
        headers["webhook-signature"] = "v1,bm90IGEgc2lnbmF0dXJlIGF0IGFsbCwgbm90IGF0IGFsbCE="
    elif case == "tampered":
        body = body.replace(b"e1", b"e2")
    elif case == "stale":
        headers = signed(body, engine.webhook_secret, ts=int(time.time()) - 600)
    elif case == "unsigned":
        del headers["webhook-signature"]
    else:
        headers = signed(body, new_webhook_secret())
    response = await intake.post("/webhooks/flowable", data=body, headers=headers)
    assert response.status == 401
    assert (await response.json())["error"].startswith("signature check failed")
    assert await count(db, "flowable.webhook_batches") == 0


@pytest.mark.parametrize("body, message", [
    (b'{"events": [', "the body is not JSON"),
    (b"[]", "the body must be a JSON object"),
    (b'{"batchId": "x"}', "events: missing, or not an array"),
    (b'{"events": [{"type": "TASK_CREATED"}]}', "events[0].eventId: missing"),
    (b'{"events": [{"eventId": "e", "type": "X", "seq": "one"}]}', "events[0].seq: not an integer"),
    (b'{"events": [{"eventId": "e", "type": "X", "timestamp": "yesterday"}]}', "events[0].timestamp: not an ISO"),
    (b'{"events": [{"eventId": "e", "type": "X\\u0000"}]}', "the body holds a NUL character"),
    # Values the inbox columns cannot hold: each made the INSERT fail with a 500 (found by a signed fuzzer),
    # and the engine would have sent the batch again forever.
    (b'{"events": [{"eventId": "e", "type": "X", "processInstanceId": "' + b"p" * 65 + b'"}]}',
     "events[0].processInstanceId: not a string of at most 64 characters"),
    (b'{"events": [{"eventId": "e", "type": "X", "entityType": {"a": 1}}]}', "events[0].entityType: not a string"),
    (b'{"events": [{"eventId": "e", "type": "X", "task": {"id": ["' + b"t" * 70 + b'"]}}]}',
     "events[0].task.id: not a string of at most 64"),
    (b'{"events": [{"eventId": "e", "type": "X", "identityLink": {"taskId": "' + b"t" * 65 + b'"}}]}',
     "events[0].identityLink.taskId: not a string of at most 64"),
    (b'{"events": [{"eventId": "' + b"e" * 101 + b'", "type": "X"}]}', "events[0].eventId: not a string of at most"),
    (b'{"events": [{"eventId": "e", "type": "X", "seq": 2147483648}]}', "events[0].seq: not an integer from"),
    (b'{"events": [{"eventId": "e", "type": "X", "seq": true}]}', "events[0].seq: not an integer from"),
    (b'{"events": [{"eventId": "e", "type": "X", "timestamp": "2026-W48-3"}]}', "events[0].timestamp: not an ISO"),
    (b'{"events": [{"eventId": "e", "type": "X", "timestamp": "2026-11-25T11:03:44,5Z"}]}',
     "events[0].timestamp: not an ISO"),
    (b'{"events": [], "committedAt": "20261125T110344Z"}', "committedAt: not an ISO"),
    (b'{"events": [], "batchSeq": 9223372036854775808}', "batchSeq: not an integer from"),
    (b'{"events": [], "engine": "' + b"x" * 101 + b'"}', "engine: not a string of at most 100"),
])
async def test_malformed_bodies_get_400_naming_the_field(intake, db, engine, body: bytes, message: str):
    response = await intake.post("/webhooks/flowable", data=body, headers=signed(body, engine.webhook_secret))
    assert response.status == 400
    assert (await response.json())["error"].startswith(message)
    assert await count(db, "flowable.webhook_batches") == 0


async def test_a_webhook_id_longer_than_the_inbox_takes_gets_400(intake, db, engine):
    body = b'{"events": []}'
    response = await intake.post("/webhooks/flowable", data=body,
                                 headers=signed(body, engine.webhook_secret, msg_id="m" * 101))
    assert response.status == 400 and (await response.json())["error"] == "webhook-id: at most 100 characters"
    assert await count(db, "flowable.webhook_batches") == 0


async def test_an_oversized_batch_gets_413(intake, db, engine):
    body = b'{"events": [], "padding": "' + b"x" * MAX_WEBHOOK_BYTES + b'"}'
    response = await intake.post("/webhooks/flowable", data=io.BytesIO(body),  # aiohttp's advice for large bodies
                                 headers=signed(body, engine.webhook_secret))
    assert response.status == 413
    assert await count(db, "flowable.webhook_batches") == 0


async def test_events_of_unknown_types_or_shapes_are_stored_and_skipped(intake, db, engine):
    events = [{"eventId": str(uuid.uuid4()), "type": "SOMETHING_NEW", "entityType": "gadget"},
              {"eventId": str(uuid.uuid4()), "type": "TASK_CREATED", "entityType": "task"},  # no task payload
              {"eventId": str(uuid.uuid4()), "type": "PROCESS_STARTED", "entityType": "processInstance",
               "processInstance": "not an object"},
              # found by a signed fuzzer: a variable that is not an object was a 500, so the engine resent it
              {"eventId": str(uuid.uuid4()), "type": "VARIABLE_DELETED", "entityType": "variable", "variable": 7,
               "timestamp": "2026-11-25T11:03:43.794Z"}]
    body = json.dumps({"events": events}).encode()
    response = await intake.post("/webhooks/flowable", data=body, headers=signed(body, engine.webhook_secret))
    assert response.status == 200 and (await response.json())["newEvents"] == 4
    async with db.connect() as conn:
        applied = (await conn.execute(text("SELECT count(applied_at) FROM flowable.engine_events"))).scalar()
    assert applied == 4  # looked at once; the reconciler owns whatever they should have changed


async def test_a_batch_the_mirror_cannot_apply_is_stored_parked_and_answered(intake, db, engine):
    """Applying fails (the database refuses a row): the batch is kept, parked with the reason, not lost."""
    bad = {"eventId": str(uuid.uuid4()), "type": "PROCESS_STARTED", "entityType": "processInstance",
           "timestamp": "2026-05-01T10:00:00.000Z",
           "processInstance": {"id": "p-parked", "processDefinitionKey": "Odd", "processDefinitionVersion": 0,
                               "processDefinitionId": "Odd:0:x"}}  # version 0: the CHECK refuses it
    other = {"eventId": str(uuid.uuid4()), "type": "SOMETHING_NEW", "entityType": "gadget"}
    body = json.dumps({"events": [bad, other]}).encode()
    response = await intake.post("/webhooks/flowable", data=body, headers=signed(body, engine.webhook_secret))
    assert response.status == 200, await response.text()
    assert (await response.json())["parked"] == 2
    async with db.connect() as conn:
        parked = (await conn.execute(text(
            "SELECT event_id, applied_at, apply_error FROM flowable.engine_events ORDER BY seq"))).all()
    assert [(p.event_id, p.applied_at) for p in parked] == [(bad["eventId"], None), (other["eventId"], None)]
    assert all("process_version" in (p.apply_error or "") for p in parked), [p.apply_error for p in parked]
    async with db.connect() as conn:
        assert (await conn.execute(text("SELECT count(*) FROM flowable.workflow_definitions "
                                        "WHERE process_key = 'Odd'"))).scalar() == 0

    again = await intake.post("/webhooks/flowable", data=body, headers=signed(body, engine.webhook_secret))
    assert ((await again.json())["newEvents"], (await again.json())["parked"]) == (0, 0)  # kept once


async def test_a_database_that_is_down_gets_503_so_the_engine_sends_again(engine, aiohttp_client):
    from bridge.db.embedded import free_tcp_port

    client = await aiohttp_client(bridge_app(f"postgresql://nobody@127.0.0.1:{free_tcp_port()}/nothing", engine))
    body = json.dumps({"events": [{"eventId": str(uuid.uuid4()), "type": "SOMETHING_NEW"}]}).encode()
    response = await client.post("/webhooks/flowable", data=body, headers=signed(body, engine.webhook_secret))
    assert response.status == 503
    assert "database is unavailable" in (await response.json())["error"]


async def test_metrics_count_each_outcome_and_are_served(intake, db, engine):
    from prometheus_client import REGISTRY

    def value(name: str, **labels) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    accepted0, duplicate0 = value("bridge_webhook_batches_total", outcome="accepted"), \
        value("bridge_webhook_batches_total", outcome="duplicate")
    bad0, applied0, dedup0 = (value("bridge_webhook_batches_total", outcome="bad_signature"),
                              value("bridge_events_applied_total"), value("bridge_events_deduplicated_total"))
    events = [{"eventId": str(uuid.uuid4()), "type": "SOMETHING_NEW", "timestamp": "2026-05-01T10:00:00.000Z"}
              for _ in range(3)]
    body = json.dumps({"events": events}).encode()
    headers = signed(body, engine.webhook_secret)
    assert (await intake.post("/webhooks/flowable", data=body, headers=headers)).status == 200
    assert (await intake.post("/webhooks/flowable", data=body, headers=headers)).status == 200  # redelivered
    assert (await intake.post("/webhooks/flowable", data=body,
                              headers=signed(body, new_webhook_secret()))).status == 401
    assert value("bridge_webhook_batches_total", outcome="accepted") == accepted0 + 1
    assert value("bridge_webhook_batches_total", outcome="duplicate") == duplicate0 + 1
    assert value("bridge_webhook_batches_total", outcome="bad_signature") == bad0 + 1
    assert value("bridge_events_applied_total") == applied0 + 3
    assert value("bridge_events_deduplicated_total") == dedup0 + 3

    served = await intake.get("/metrics")
    assert served.status == 200 and served.content_type == "text/plain"
    text_body = await served.text()
    assert "bridge_events_applied_total" in text_body and "bridge_mirror_data_age_seconds" in text_body


async def test_a_batch_postgresql_rolls_back_for_a_deadlock_is_done_again_not_answered_503_or_parked(
        intake, db, db_url, engine, caplog):
    """A real deadlock: another transaction holds the advisory lock of the batch's instance (as an
    overlapping batch would) and then waits for the event row the batch inserted. PostgreSQL breaks the cycle
    by rolling the intake back (it waited longest); the intake does the whole transaction again."""
    import asyncio
    import logging

    import psycopg

    from bridge.db.connections import libpq_url

    pid = f"p-deadlock-{uuid.uuid4().hex[:6]}"
    event = {"eventId": str(uuid.uuid4()), "type": "ENTITY_SUSPENDED", "entityType": "processInstance",
             "timestamp": "2026-05-01T10:00:00.000Z", "processInstanceId": pid, "processInstance": {"id": pid}}
    body = json.dumps({"events": [event]}).encode()
    async with await psycopg.AsyncConnection.connect(libpq_url(db_url)) as other:
        await other.execute("SET deadlock_timeout = '20s'")  # so that the intake is the one rolled back
        await other.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", [pid])
        caplog.set_level(logging.INFO, logger="bridge.mirror.intake")
        posted = asyncio.ensure_future(intake.post("/webhooks/flowable", data=body,
                                                   headers=signed(body, engine.webhook_secret)))
        for _ in range(100):  # the intake has stored the event and waits for the advisory lock
            waiting = await (await other.execute(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")).fetchone()
            if waiting[0]:
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the intake never waited for the lock")
        # wait for the intake's uncommitted event row: a cycle, which PostgreSQL breaks after 1 s
        await other.execute("INSERT INTO flowable.webhook_batches (webhook_id, event_count) VALUES ('x', 0)")
        await other.execute("""INSERT INTO flowable.engine_events (event_id, webhook_id, seq, event_type, payload)
                               VALUES (%s, 'x', 1, 'X', '{}')""", [event["eventId"]])
        await other.rollback()
        response = await posted
    assert response.status == 200, await response.text()
    answer = await response.json()
    assert (answer["newEvents"], answer.get("parked", 0)) == (1, 0)
    assert "rolled back for a conflict with another transaction, attempt 2" in caplog.text
    async with db.connect() as conn:
        stored = (await conn.execute(text("SELECT applied_at, apply_error FROM flowable.engine_events "
                                          "WHERE event_id = :e"), {"e": event["eventId"]})).one()
    assert stored.applied_at is not None and stored.apply_error is None
