"""Reconciler: a cold backfill of the real engine's history, and an incremental pass with nothing new.

    make bench-reconcile     # or: python -m bench.reconcile_backfill --instances 2000

One engine (the jar under engine/) and one embedded PostgreSQL; the emitter is paused, so the mirror
learns everything from the reconciler. OneCMS cases are driven to three tasks each (register and
triage completed, the department's review open), in two halves. After each half, a fresh mirror
database is backfilled cold and then reconciled incrementally with nothing new, several times: the
incremental pass must not grow with the history (it reads the task log from its cursor and the
process history of the overlap window only). The overlap is shortened to 15 s here and the passes wait
it out, so that they measure "nothing new" rather than "re-read the last five minutes" (with the default
five minutes, a pass also re-reads every instance started or finished in them: a cost bounded by the
engine's rate, not by its history).

Baseline, same run: reading the same history through the same REST client with nothing else (every
historic process instance with its variables, every historic task, the open tasks' candidates), the
floor any backfill over REST pays.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from bridge.config import PROJECT_ROOT
from bridge.db.connections import open_database
from bridge.db.embedded import EmbeddedPostgres
from bridge.db.migrate import migrate
from bridge.deploy import deploy_bpmn
from bridge.flowable.client import FlowableClient
from bridge.flowable.local_engine import LocalEngine, build_engine_jar, new_webhook_secret
from bridge.mirror.drift import find_drift
from bridge.mirror.engine_state import EngineReader
from bridge.mirror.reconcile import Reconciler, ReconcilerSettings

ONECMS = PROJECT_ROOT / "bpmn" / "OneCMS_Nextgen_WF.bpmn20.xml"
OVERLAP = timedelta(seconds=15)


async def drive_cases(client: FlowableClient, first: int, count: int, concurrency: int = 6) -> None:
    """Each case: start, complete registration, complete triage (ACCEPT): three tasks, one left open."""
    gate = asyncio.Semaphore(concurrency)

    async def case(n: int) -> None:
        async with gate:
            pid = (await client.start_process("OneCMS_Nextgen_WF", business_key=str(n), variables={
                "caseId": n, "caseType": ("QUALITY", "REGULATORY", "LEGAL_CLAIM")[n % 3], "severity": "LOW"}))["id"]
            for variables in ({}, {"triageDecision": "ACCEPT"}):
                task = (await client.tasks(processInstanceId=pid))[0]
                await client.claim_task(task["id"], f"user{n % 7}")
                await client.complete_task(task["id"], variables)

    await asyncio.gather(*(case(n) for n in range(first, first + count)))


async def mirror_database(pg: EmbeddedPostgres, name: str, client: FlowableClient):
    url = pg.ensure_database(name)
    await migrate(url, PROJECT_ROOT / "migrations")
    db = open_database(url, pool_size=2)
    await deploy_bpmn(ONECMS.read_bytes(), ONECMS.name, db=db, flowable=client, deployed_by="bench")
    return db


async def measure(pg: EmbeddedPostgres, client: FlowableClient, name: str, repeats: int) -> dict:
    db = await mirror_database(pg, name, client)
    try:
        reconciler = Reconciler(db, client, ReconcilerSettings(overlap=OVERLAP))
        began = time.perf_counter()
        backfill = await reconciler.run_once()
        backfill_s = time.perf_counter() - began
        assert backfill.kind == "BACKFILL"
        await reconciler.run_once()  # the sweep due after a backfill's first pass, not measured
        await asyncio.sleep(OVERLAP.total_seconds() + 1)
        incremental = []
        for _ in range(repeats):
            began = time.perf_counter()
            report = await reconciler.run_once()
            incremental.append(time.perf_counter() - began)
            assert report.kind == "INCREMENTAL" and not report.differences, report.summary()
        async with db.connect() as conn:
            drift, _ = await find_drift(conn, EngineReader(client))
        began = time.perf_counter()
        everything = await EngineReader(client).read_everything()
        read_s = time.perf_counter() - began
        return {"instances": backfill.instances_checked, "tasks": len(everything.tasks), "backfill_s": backfill_s,
                "incremental_ms": statistics.median(incremental) * 1000, "read_s": read_s, "drift": len(drift)}
    finally:
        await db.dispose()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--instances", type=int, default=2000, help="cases in all, driven in two halves")
    parser.add_argument("--repeats", type=int, default=5, help="incremental passes measured per size")
    args = parser.parse_args()

    jar = await asyncio.to_thread(build_engine_jar)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-reconcile-") as tmp, EmbeddedPostgres(Path(tmp), port=0) as pg:
        engine_url = pg.ensure_database("engine")
        await migrate(engine_url, PROJECT_ROOT / "migrations")
        engine = LocalEngine(jar, database_url=engine_url, webhook_url="http://127.0.0.1:9/nowhere",
                             webhook_secret=new_webhook_secret(), log_file=Path(tmp) / "engine.log",
                             java_options=["-Xmx1g"], extra_env={"WEBHOOK_MAX_ATTEMPTS": "1"})
        await asyncio.to_thread(engine.start)
        try:
            async with FlowableClient.of(engine) as client:
                await client.request("POST", "../bridge-emitter/pause")  # webhooks off: the reconciler alone
                await client.deploy(ONECMS.name, ONECMS.read_bytes())
                half = args.instances // 2
                for step, first in enumerate((0, half)):
                    began = time.perf_counter()
                    await drive_cases(client, first, half)
                    print(f"drove {half} cases in {time.perf_counter() - began:.0f}s", flush=True)
                    rows.append(await measure(pg, client, f"mirror{step}", args.repeats))
        finally:
            await asyncio.to_thread(engine.stop)

    print("\nreconciler against the real engine (webhooks off), cases of 3 tasks, PostgreSQL 18 embedded\n")
    print(f"{'instances':>9} | {'tasks':>6} | {'REST read only s':>16} | {'backfill s':>10} | {'vs read':>7} | "
          f"{'incremental ms (nothing new)':>28} | {'drift after':>11}")
    print("-" * 107)
    for r in rows:
        print(f"{r['instances']:>9} | {r['tasks']:>6} | {r['read_s']:>16.2f} | {r['backfill_s']:>10.2f} | "
              f"{r['backfill_s'] / r['read_s']:>6.2f}x | {r['incremental_ms']:>28.1f} | {r['drift']:>11}")
    if len(rows) == 2:
        print(f"\nincremental pass at {rows[1]['instances']} vs {rows[0]['instances']} instances: "
              f"{rows[1]['incremental_ms'] / rows[0]['incremental_ms']:.2f}x "
              "(flat means it does not grow with history)")


if __name__ == "__main__":
    asyncio.run(main())
