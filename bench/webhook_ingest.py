"""Webhook ingest: signed batches of 50 events from concurrent senders into the bridge's intake.

    make bench-ingest     # or: python -m bench.webhook_ingest --seconds 10 --senders 4 --workers 2

The bridge (its real aiohttp app, BRIDGE_WORKERS processes) serves on an embedded PostgreSQL; the
senders are asyncio clients here, each posting Standard Webhooks-signed batches shaped like the
engine's. Baseline, same run and database: raw psycopg inserts of the same rows (inbox, instance,
tasks, history), one batched statement per table per 50-event batch, from as many connections. The
intake verifies, parses, dedupes and stores the batch (two statements), then applies the new events to
the mirror tables (bridge/mirror/apply.py: a fixed handful of set-based statements per batch). Each batch
starts one case and creates 49 of its tasks, so every event becomes rows: a process instance, tasks, their
CREATE history. Target for issue 5: 5,000 events/s, p99 under 100 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import aiohttp
import psycopg

from bench.serving import wait_until_serving
from bridge.config import PROJECT_ROOT, Settings
from bridge.db.embedded import EmbeddedPostgres, free_tcp_port
from bridge.db.migrate import migrate
from bridge.flowable.client import FlowableEndpoint
from bridge.flowable.local_engine import new_webhook_secret
from bridge.mirror.signature import decode_secret, sign

EVENTS_PER_BATCH = 50


def event(process_id: str, seq: int) -> dict:
    task_id = str(uuid.uuid4())
    return {
        "eventId": str(uuid.uuid4()), "type": "TASK_CREATED", "timestamp": "2026-11-25T10:00:00.000Z", "seq": seq,
        "entityType": "task", "processInstanceId": process_id, "processDefinitionId": "OneCMS_Nextgen_WF:1:x",
        "executionId": str(uuid.uuid4()),
        "task": {"id": task_id, "name": "Legal review", "taskDefinitionKey": "legalReview", "assignee": None,
                 "owner": None, "candidateUsers": [], "candidateGroups": ["LEGAL_REVIEWER"], "priority": 70,
                 "dueDate": "2026-11-25T18:00:00.000Z", "formKey": "onecms/legal-review",
                 "createTime": "2026-11-25T10:00:00.000Z", "processInstanceId": process_id},
    }


def process_started(process_id: str) -> dict:
    return {"eventId": str(uuid.uuid4()), "type": "PROCESS_STARTED", "timestamp": "2026-11-25T10:00:00.000Z",
            "seq": 0, "entityType": "processInstance", "processInstanceId": process_id,
            "processInstance": {"id": process_id, "processDefinitionId": "OneCMS_Nextgen_WF:1:x",
                                "processDefinitionKey": "OneCMS_Nextgen_WF", "processDefinitionVersion": 1,
                                "businessKey": "1234", "startUserId": "bench",
                                "startTime": "2026-11-25T10:00:00.000Z"}}


def batch_body(sequence: int) -> bytes:
    """One case started and 49 of its tasks created: every event becomes mirror rows."""
    process_id = str(uuid.uuid4())
    events = [process_started(process_id)] + [event(process_id, i + 1) for i in range(EVENTS_PER_BATCH - 1)]
    return json.dumps({"batchId": str(uuid.uuid4()), "engine": "bench", "batchSeq": sequence,
                       "committedAt": "2026-11-25T10:00:00.000Z", "events": events}).encode()


def serve(database_url: str, secret: str, port: int, workers: int) -> None:
    from bridge.web import server

    settings = Settings(webhook_secret=secret, db_pool_size=6, deploy_on_start=(), reconcile_interval_s=0,
                        escalate_interval_s=0, auto_assign_interval_s=0, http_port=port, workers=workers)
    server.serve(settings, database_url, FlowableEndpoint("http://127.0.0.1:1/process-api", "x", "y"))


async def send(port: int, secret: str, senders: int, seconds: float,
               per_sender: int = 600) -> tuple[int, float, list[float]]:
    key = decode_secret(secret)
    # Made before the clock starts, and never sent twice: a resent event would be deduplicated, not applied.
    bodies = [[batch_body(i) for i in range(per_sender)] for _ in range(senders)]
    latencies: list[float] = []
    deadline = time.monotonic() + seconds
    url = f"http://127.0.0.1:{port}/webhooks/flowable"

    async def sender(offset: int, session: aiohttp.ClientSession) -> int:
        sent = 0
        while time.monotonic() < deadline and sent < per_sender:
            body = bodies[offset][sent]
            msg_id = f"msg_{uuid.uuid4().hex}"
            ts = int(time.time())
            headers = {"webhook-id": msg_id, "webhook-timestamp": str(ts), "content-type": "application/json",
                       "webhook-signature": sign(key, msg_id, ts, body)}
            began = time.perf_counter()
            async with session.post(url, data=body, headers=headers) as response:
                assert response.status == 200, await response.text()
                await response.read()
            latencies.append((time.perf_counter() - began) * 1000)
            sent += 1
        return sent

    started = time.monotonic()
    async with aiohttp.ClientSession() as session:
        counts = await asyncio.gather(*(sender(i, session) for i in range(senders)))
    return sum(counts), time.monotonic() - started, latencies


RAW_TASK_SQL = (
    "INSERT INTO flowable.workflow_tasks (task_id, process_instance_id, task_definition_key, task_name, queue_name,"
    " candidate_groups, candidate_users, priority, status, form_key, created_at, due_date, metadata)"
    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, 'OPEN', %s, %s, %s, %s)")
RAW_HISTORY_SQL = (
    "INSERT INTO flowable.task_history (task_id, process_instance_id, action_type, action_by, action_at, new_status)"
    " VALUES (%s, %s, 'CREATE', 'engine', %s, 'OPEN')")


async def raw_inserts(database_url: str, connections: int, seconds: float) -> tuple[int, float, list[float]]:
    """The same rows the intake writes, with nothing in between: the inbox rows, the process instance, the
    tasks and their history, each table one batched psycopg statement per 50-event batch."""
    latencies: list[float] = []
    deadline = time.monotonic() + seconds
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        workflow_id, queue = await (await conn.execute(
            "SELECT (SELECT workflow_id FROM flowable.workflow_definitions WHERE process_key = 'OneCMS_Nextgen_WF'),"
            " (SELECT queue_name FROM flowable.workflow_tasks LIMIT 1)")).fetchone()

    async def inserter() -> int:
        done = 0
        async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
            while time.monotonic() < deadline:
                webhook_id = f"raw_{uuid.uuid4().hex}"
                events = json.loads(batch_body(done))["events"]
                process = events[0]["processInstance"]
                tasks = [e["task"] for e in events[1:]]
                began = time.perf_counter()
                async with conn.transaction(), conn.cursor() as cur:
                    await cur.execute("INSERT INTO flowable.webhook_batches (webhook_id, event_count) VALUES (%s, %s)",
                                      [webhook_id, len(events)])
                    await cur.executemany(
                        "INSERT INTO flowable.engine_events (event_id, webhook_id, seq, event_type, entity_type,"
                        " process_instance_id, occurred_at, payload, applied_at)"
                        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, now())",
                        [(e["eventId"], webhook_id, e["seq"], e["type"], e["entityType"], e["processInstanceId"],
                          e["timestamp"], json.dumps(e)) for e in events])
                    await cur.execute(
                        "INSERT INTO flowable.process_instances"
                        " (process_instance_id, workflow_id, case_id, business_key, started_by, started_at)"
                        " VALUES (%s, %s, 1234, %s, %s, %s)",
                        [process["id"], workflow_id, process["businessKey"], process["startUserId"],
                         process["startTime"]])
                    await cur.executemany(RAW_TASK_SQL, [
                        (t["id"], t["processInstanceId"], t["taskDefinitionKey"], t["name"], queue,
                         t["candidateGroups"], t["candidateUsers"], t["priority"], t["formKey"], t["createTime"],
                         t["dueDate"], json.dumps({"lastEventAt": t["createTime"]})) for t in tasks])
                    await cur.executemany(RAW_HISTORY_SQL, [(t["id"], t["processInstanceId"], t["createTime"])
                                                            for t in tasks])
                latencies.append((time.perf_counter() - began) * 1000)
                done += 1
        return done

    started = time.monotonic()
    counts = await asyncio.gather(*(inserter() for _ in range(connections)))
    return sum(counts), time.monotonic() - started, latencies


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--senders", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2, help="serving processes (BRIDGE_WORKERS)")
    args = parser.parse_args()
    secret = new_webhook_secret()

    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp, EmbeddedPostgres(Path(tmp), port=0) as pg:
        url = pg.ensure_database("bench")
        await migrate(url, PROJECT_ROOT / "migrations")
        port = free_tcp_port()
        server = multiprocessing.Process(target=serve, args=(url, secret, port, args.workers))
        server.start()
        try:
            await wait_until_serving(f"http://127.0.0.1:{port}/healthz")
            await send(port, secret, args.senders, 2, per_sender=50)  # warm-up, not counted
            async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
                await conn.execute("ANALYZE")  # a fresh database's planner statistics, as autovacuum would have
            intake = await send(port, secret, args.senders, args.seconds)
        finally:
            server.terminate()
            server.join()
        async with await psycopg.AsyncConnection.connect(url) as conn:
            mirrored = await (await conn.execute(
                "SELECT (SELECT count(*) FROM flowable.process_instances),"
                " (SELECT count(*) FROM flowable.workflow_tasks),"
                " (SELECT count(*) FROM flowable.task_history), (SELECT count(*) FROM flowable.engine_events"
                " WHERE applied_at IS NULL)")).fetchone()
        baseline = await raw_inserts(url, args.senders, args.seconds)

    print(f"\nwebhook ingest: batches of {EVENTS_PER_BATCH} events, {args.senders} concurrent senders, "
          f"{args.workers} serving process(es), {args.seconds:.0f}s each, PostgreSQL 18 (embedded, durable)\n")
    print(f"{'path':<38} | {'batches':>7} | {'events/s':>8} | {'p50 ms':>7} | {'p99 ms':>7} | {'vs raw':>6}")
    print("-" * 86)
    raw_rate = baseline[0] * EVENTS_PER_BATCH / baseline[1]
    for name, (batches, elapsed, latencies) in (("bridge intake (verify, store, apply)", intake),
                                                 ("raw psycopg inserts, same rows", baseline)):
        q = statistics.quantiles(latencies, n=100)
        rate = batches * EVENTS_PER_BATCH / elapsed
        print(f"{name:<38} | {batches:>7} | {rate:>8.0f} | {q[49]:>7.1f} | {q[98]:>7.1f} | {rate / raw_rate:>5.2f}x")
    print(f"\nmirrored by the intake (warm-up included): {mirrored[0]} process instances, {mirrored[1]} tasks, "
          f"{mirrored[2]} history rows; {mirrored[3]} events left unapplied")


if __name__ == "__main__":
    asyncio.run(main())
