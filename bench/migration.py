"""Migrating running instances to a new version: the bridge's run (bridge/migration.py) against the engine's
migrate call alone, in the same run, on the same engine and database.

    make bench-migration     # or: python -m bench.migration --instances 500

Starts its own embedded PostgreSQL and the real engine (engine/, its webhooks paused: the bridge's own mirror
writes are what is measured), deploys two versions of a three-task process through the bridge (version 2 renames
one activity and adds one), and starts 2 x --instances instances on version 1, half of them one task on, all read
into the mirror. Then, each on its own half of the instances, --concurrency at a time:

  * engine alone: POST /bridge-migration/process-instances/{id}/migrate per instance (Flowable's
    ProcessMigrationService: validation and migration in one engine transaction, candidate groups re-mapped),
    nothing else; Flowable's stock migrate resource is closed (it runs scripts a document carries) and does the
    same work without the validation and re-mapping;
  * bridge: migration.run: instances chosen from the engine, each validated (one call), migrated (one call)
    and followed in the mirror (BRIDGE_MIGRATE events through the apply path, the result row) in one
    transaction.

Prints instances/s for both and the ratio, and checks the mirror matches the engine afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from bridge import migration
from bridge.config import PROJECT_ROOT
from bridge.db.connections import open_database
from bridge.db.embedded import EmbeddedPostgres
from bridge.db.migrate import migrate
from bridge.deploy import deploy_bpmn
from bridge.flowable.client import FlowableClient
from bridge.flowable.local_engine import LocalEngine, build_engine_jar, new_webhook_secret
from bridge.mirror.drift import compare, read_mirror
from bridge.mirror.engine_state import EngineReader
from bridge.mirror.reconcile import resync_instances
from bridge.progress import Bars

KEY = "benchMigration"
BPMN = "http://www.omg.org/spec/BPMN/20100524/MODEL"


def _task(task_id: str, name: str, group: str) -> str:
    return (f'<userTask id="{task_id}" name="{name}" flowable:candidateGroups="{group}"><extensionElements>'
            f'<onecms:queue name="BENCH_{group}" slaMinutes="240"/></extensionElements></userTask>')


def process(version: int) -> bytes:
    steps = [("triage", "Triage", "TRIAGE"), ("review", "Review", "REVIEW"), ("hold", "Hold", "LEGAL")] \
        if version == 1 else [("triage", "Triage", "TRIAGE"), ("assess", "Assess", "ASSESS"),
                              ("approve", "Approve", "APPROVE")]
    nodes = "".join(_task(*s) for s in steps)
    ids = ["start", *(s[0] for s in steps), "end"]
    flows = "".join(f'<sequenceFlow id="f{n}" sourceRef="{a}" targetRef="{b}"/>'
                    for n, (a, b) in enumerate(zip(ids, ids[1:], strict=False)))
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<definitions xmlns="{BPMN}" xmlns:flowable="http://flowable.org/bpmn" xmlns:onecms="urn:onecms:bpmn:1.0"
             targetNamespace="bench"><process id="{KEY}" name="Bench migration" isExecutable="true">
<startEvent id="start"/>{nodes}<endEvent id="end"/>{flows}</process></definitions>""".encode()


async def start_instances(flowable: FlowableClient, definition_id: str, count: int, tag: str,
                          bars: Bars) -> list[str]:
    gate = asyncio.Semaphore(8)

    async def one(n: int) -> str:
        async with gate:
            pid = (await flowable.request("POST", "runtime/process-instances", json_body={
                "processDefinitionId": definition_id, "businessKey": f"{tag}-{n}"}))["id"]
            if n % 2:  # half of them at review, which version 2 calls assess
                task = (await flowable.tasks(processInstanceId=pid))[0]
                await flowable.complete_task(task["id"])
            bars(f"start {tag}")
            return pid

    return list(await asyncio.gather(*(one(n) for n in range(count))))


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--instances", type=int, default=500, help="instances per way (default 500)")
    parser.add_argument("--concurrency", type=int, default=migration.DEFAULT_CONCURRENCY)
    args = parser.parse_args()
    jar = await asyncio.to_thread(build_engine_jar)
    with tempfile.TemporaryDirectory(prefix="bench-migration-") as tmp, EmbeddedPostgres(Path(tmp), port=0) as pg:
        url = pg.ensure_database("bench")
        await migrate(url, PROJECT_ROOT / "migrations")
        engine = LocalEngine(jar, database_url=url, webhook_url="http://127.0.0.1:9/nowhere",
                             webhook_secret=new_webhook_secret(), log_file=Path(tmp) / "engine.log",
                             java_options=["-Xmx1g"], extra_env={"WEBHOOK_MAX_ATTEMPTS": "1"})
        await asyncio.to_thread(engine.start)
        db = open_database(url, pool_size=args.concurrency + 2)
        try:
            async with FlowableClient.of(engine) as flowable:
                await flowable.request("POST", "../bridge-emitter/pause")
                for version in (1, 2):
                    await deploy_bpmn(process(version), f"{KEY}.bpmn20.xml", db=db, flowable=flowable,
                                      deployed_by="bench")
                v1, v2 = [(await flowable.process_definitions(key=KEY, version=v))[0]["id"] for v in (1, 2)]
                with Bars() as bars:
                    alone = await start_instances(flowable, v1, args.instances, "alone", bars)
                    through = await start_instances(flowable, v1, args.instances, "bridge", bars)
                for chunk in range(0, len(alone + through), 200):
                    await resync_instances(db, flowable, (alone + through)[chunk:chunk + 200])

                document = {"fromProcessDefinitionId": v1, "toProcessDefinitionId": v2,
                            "activityMappings": [{"fromActivityId": "review", "toActivityId": "assess"}]}
                gate = asyncio.Semaphore(args.concurrency)

                async def engine_alone(pid: str) -> None:
                    async with gate:
                        await flowable.migrate_instance(pid, document, acting_user="bench")

                began = time.perf_counter()
                await asyncio.gather(*(engine_alone(pid) for pid in alone))
                alone_s = time.perf_counter() - began

                request = migration.MigrationRequest(process_key=KEY, from_version=1, to_version=2,
                                                     mappings={"review": "assess"}, requested_by="bench")
                began = time.perf_counter()
                report = await migration.run(db, flowable, request, concurrency=args.concurrency)
                bridge_s = time.perf_counter() - began
                state = await EngineReader(flowable).read_instances(through)
                async with db.connect() as conn:
                    drift = compare(state, await read_mirror(conn, through)).differences
        finally:
            await db.dispose()
            await asyncio.to_thread(engine.stop)

    migrated = report.counts.get("MIGRATED", 0)
    print(f"\nmigrating {args.instances} running instances per way ({KEY} v1 -> v2, one activity renamed, one "
          f"added; half at each of two activities), {args.concurrency} at a time; real engine, PostgreSQL 18 "
          "embedded, 2 cores\n")
    print(f"{'way':<44} | {'instances':>9} | {'seconds':>8} | {'inst/s':>7} | vs engine alone")
    print("-" * 92)
    print(f"{'engine alone (its migrate call per instance)':<44} | {len(alone):>9} | {alone_s:>8.2f} | "
          f"{len(alone) / alone_s:>7.1f} | 1.00x")
    print(f"{'bridge (choose, validate, migrate, mirror)':<44} | {migrated:>9} | {bridge_s:>8.2f} | "
          f"{migrated / bridge_s:>7.1f} | {(migrated / bridge_s) / (len(alone) / alone_s):.2f}x")
    print(f"\nbridge run: {report.counts}; mirror vs engine afterwards: {len(drift)} difference(s)")


if __name__ == "__main__":
    asyncio.run(main())
