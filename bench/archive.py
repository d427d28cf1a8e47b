"""Archiving a big mirror: the bridge's archive run against a bare INSERT ... SELECT + DELETE of the same rows,
then reports and claim_next_task on what is left, all in one run.

    make bench-archive     # or: python -m bench.archive --tasks 10000000 --instances 3000000

Starts its own embedded PostgreSQL (durable settings, as the service runs) and generates, in SQL, half a year
of work: --instances instances (the newest 3% still running), --tasks tasks spread over them, one history row
per task, a variable and a case mapping per instance. The history is generated into task_history's DEFAULT
partition and then split into month partitions by flowable.ensure_history_partition, as migration 0024 does
to an existing table (timed: "months made"). The database is then copied (CREATE DATABASE ... TEMPLATE), and:

  * bare: on the copy, one transaction per table, INSERT INTO archive.x SELECT ... of every row of the
    instances due (completed more than --retention-days ago) and DELETE of them from the hot table; no
    counting, no ledger, no batches (and the summary triggers off, as archiving has them);
  * bridge: on the original, bridge.archive.run (whole months by DETACH/ATTACH, then 200 instances per
    transaction with per-instance counts checked, the ledger written).

Rows/s and WAL bytes per archived row for both (WAL from pg_current_wal_lsn around each; the cluster does
nothing else meanwhile). Then the reports' SQL after archiving (p50/p99 over --runs, the last 24 h and a
30-day range of archived work; target p99 under 200 ms; HTTP adds about 1 ms, bench/reports.py), and
claim_next_task at 16 clients with pgbench (bench/claim_throughput.py's transaction) on an empty mirror and on
this one (target: within 10%), alternated --claim-rounds times (the disk's flush time drifts
between runs by as much as the target): the median of the rounds' ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

from bench.claim_throughput import CLAIM_NEXT_TASK, ROLES, USERS, pgbench
from bench.reports import percentile, time_sql
from bridge import archive
from bridge.config import PROJECT_ROOT
from bridge.db.connections import open_database
from bridge.db.embedded import EmbeddedPostgres
from bridge.db.migrate import migrate
from bridge.progress import Bars
from bridge.reports import REPORTS, ReportFilter

QUEUES = 14
GENERATE = [
    ("definitions and queues", """
        INSERT INTO flowable.workflow_definitions (process_key, process_name, process_version, business_app,
                                                   is_active)
        VALUES ('OneCMS_Nextgen_WF', 'OneCMS Unified Workflow', 1, 'onecms', true);
        INSERT INTO flowable.workflow_queues (queue_name, sla_minutes, max_capacity)
        SELECT 'QUEUE_' || g, 480, 2000 FROM generate_series(0, %(queues)s - 1) g"""),
    ("instances", """
        INSERT INTO flowable.process_instances (process_instance_id, workflow_id, case_id, business_key, started_by,
                                                started_at, completed_at, status)
        SELECT 'pi-' || g, 1, g, 'CASE-' || g, 'bench', s.started,
               CASE WHEN s.ended THEN s.started + (1 + g %% 200) * interval '1 hour' END,
               CASE WHEN s.ended THEN 'COMPLETED' ELSE 'ACTIVE' END
        FROM generate_series(1, %(instances)s) g,
             LATERAL (SELECT now() - (1 - g::float / %(instances)s) * interval '180 days' AS started,
                             g <= 0.97 * %(instances)s AS ended) s"""),
    ("tasks", """
        INSERT INTO flowable.workflow_tasks (task_id, process_instance_id, task_definition_key, task_name, queue_name,
            status, priority, assignee_id, candidate_groups, created_at, claimed_at, claimed_by, completed_at,
            completed_by, due_date)
        SELECT 't-' || t, p.process_instance_id, 'step' || (t %% %(queues)s), 'Step ' || (t %% %(queues)s),
               'QUEUE_' || (t %% %(queues)s), CASE WHEN p.completed_at IS NULL THEN 'OPEN' ELSE 'COMPLETED' END,
               50, CASE WHEN p.completed_at IS NOT NULL THEN 'user' || (t %% 100) END,
               ARRAY['ROLE_' || (t %% %(queues)s)], x.created,
               CASE WHEN p.completed_at IS NOT NULL THEN x.created + interval '10 minutes' END,
               CASE WHEN p.completed_at IS NOT NULL THEN 'user' || (t %% 100) END,
               CASE WHEN p.completed_at IS NOT NULL THEN x.created + (20 + t %% 600) * interval '1 minute' END,
               CASE WHEN p.completed_at IS NOT NULL THEN 'user' || (t %% 100) END,
               x.created + interval '8 hours'
        FROM generate_series(1, %(tasks)s) t
        CROSS JOIN LATERAL (SELECT 'pi-' || (1 + (t - 1)::bigint * %(instances)s / %(tasks)s) AS id) i
        JOIN flowable.process_instances p ON p.process_instance_id = i.id
        CROSS JOIN LATERAL (SELECT p.started_at + (t %% 4) * interval '1 hour' AS created) x"""),
    ("history", """
        INSERT INTO flowable.task_history (task_id, process_instance_id, action_type, action_by, action_at)
        SELECT task_id, process_instance_id, CASE WHEN completed_at IS NULL THEN 'CREATE' ELSE 'COMPLETE' END,
               coalesce(completed_by, 'SYSTEM'), coalesce(completed_at, created_at)
        FROM flowable.workflow_tasks"""),
    ("variables and case routing", """
        INSERT INTO flowable.workflow_variables (process_instance_id, variable_name, variable_type, variable_value)
        SELECT process_instance_id, 'caseType', 'STRING', 'QUALITY' FROM flowable.process_instances;
        INSERT INTO onecms.case_workflow_mapping (case_id, process_instance_id, workflow_type, initiated_by,
                                                  initiated_at, actual_completion)
        SELECT case_id, process_instance_id, 'onecms', 'bench', started_at, completed_at
        FROM flowable.process_instances"""),
    ("fold the summaries", "SELECT flowable.fold_task_stats(), flowable.fold_queue_load(), "
                           "flowable.fold_work_stats(), flowable.fold_activity_live_load()"),
]
TABLES = [("workflow_variables", "flowable"), ("task_history", "flowable"), ("workflow_tasks", "flowable"),
          ("case_workflow_mapping", "onecms"), ("process_instances", "flowable")]


async def generate(url: str, tasks: int, instances: int) -> dict[str, float]:
    params = {"tasks": tasks, "instances": instances, "queues": QUEUES}
    seconds = {}
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        with Bars({"generate": len(GENERATE) + 2}) as bars:
            for name, statement in GENERATE:
                began = time.perf_counter()
                for part in filter(str.strip, statement.split(";")):
                    await conn.execute(part, params)
                seconds[name] = time.perf_counter() - began
                bars("generate")
            began = time.perf_counter()
            months = await (await conn.execute("""
                SELECT DISTINCT CAST(date_trunc('month', action_at AT TIME ZONE 'UTC') AS date)
                FROM flowable.task_history_default ORDER BY 1""")).fetchall()
            for (month,) in months:
                await conn.execute("SELECT flowable.ensure_history_partition('flowable.task_history', %s)", [month])
            seconds["months made"] = time.perf_counter() - began
            bars("generate")
            await conn.execute("VACUUM ANALYZE")
            bars("generate")
    return seconds


async def wal_lsn(conn: psycopg.AsyncConnection) -> int:
    return (await (await conn.execute("SELECT pg_current_wal_lsn() - '0/0'")).fetchone())[0]


async def bare_move(url: str, as_of: datetime, retention_days: int) -> tuple[int, float, int]:
    """Every row of the due instances moved with one INSERT ... SELECT and one DELETE per table, in one
    transaction: (rows, seconds, WAL bytes)."""
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await conn.execute("""
            CREATE TEMPORARY TABLE due AS SELECT process_instance_id FROM flowable.process_instances
            WHERE completed_at < %s""", [as_of - timedelta(days=retention_days)])
        await conn.execute("CREATE TEMPORARY TABLE due_tasks AS SELECT task_id FROM flowable.workflow_tasks "
                           "WHERE process_instance_id IN (SELECT process_instance_id FROM due)")
        await conn.execute("ANALYZE due; ANALYZE due_tasks")
        for (month,) in await (await conn.execute("""
                SELECT DISTINCT CAST(date_trunc('month', action_at AT TIME ZONE 'UTC') AS date)
                FROM flowable.task_history""")).fetchall():
            await conn.execute("SELECT flowable.ensure_history_partition('archive.task_history', %s)", [month])
        wal_before, rows = await wal_lsn(conn), 0
        began = time.perf_counter()
        async with conn.transaction():
            await conn.execute("SELECT set_config('bridge.archiving', 'on', true)")
            wheres = {table: ["process_instance_id IN (SELECT process_instance_id FROM due)"] for table, _ in TABLES}
            # task-scope variables by their task (an OR of the two would defeat both indexes)
            wheres["workflow_variables"].append("process_instance_id IS NULL "
                                                "AND task_id IN (SELECT task_id FROM due_tasks)")
            for table, schema in TABLES:
                for where in wheres[table]:
                    rows += (await conn.execute(f"INSERT INTO archive.{table} SELECT * FROM {schema}.{table} "
                                                f"WHERE {where}")).rowcount
                    await conn.execute(f"DELETE FROM {schema}.{table} WHERE {where}")
        seconds = time.perf_counter() - began
        return rows, seconds, await wal_lsn(conn) - wal_before


async def bridge_move(url: str, as_of: datetime, retention_days: int) -> tuple[int, float, int, archive.ArchiveReport]:
    db = open_database(url, pool_size=2)
    try:
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
            wal_before = await wal_lsn(conn)
            with Bars({"archive": 1}) as bars:
                report = await archive.run(db, None, retention_days=retention_days, as_of=as_of, by="bench")
                bars("archive")
            wal = await wal_lsn(conn) - wal_before
            rows = (await (await conn.execute("""
                SELECT coalesce(sum(v::bigint), 0) FROM archive.archived_instances, jsonb_each_text(row_counts) e(k, v)
                """)).fetchone())[0]
        return int(rows), report.seconds, wal, report
    finally:
        await db.dispose()


async def load_claimable(url: str, tasks: int) -> None:
    """bench/claim_throughput.py's open tasks and workers, under ids of their own beside the mirror's."""
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as c:
        await c.execute("INSERT INTO flowable.workflow_definitions (process_key, process_name, business_app, "
                        "is_active) VALUES ('claim_bench', 'Claim bench', 'bench', true)")
        for i, code in enumerate(ROLES):
            await c.execute("INSERT INTO flowable.workflow_queues (queue_name) VALUES (%s)", [f"CQ{i}"])
            await c.execute("INSERT INTO entitlements.workflow_roles (role_code, role_name, role_type, queue_name) "
                            "VALUES (%s, %s, 'DEPARTMENT', %s)", [code, code, f"CQ{i}"])
        await c.execute("INSERT INTO entitlements.users (user_id, username) SELECT 'worker' || g, 'worker' || g "
                        "FROM generate_series(1, %s) g", [USERS])
        await c.execute("INSERT INTO entitlements.user_workflow_roles (user_id, role_id, assigned_by) "
                        "SELECT u.user_id, r.role_id, 'bench' FROM entitlements.users u "
                        "CROSS JOIN entitlements.workflow_roles r WHERE u.user_id LIKE 'worker%%'")
        await c.execute("""
            INSERT INTO flowable.process_instances (process_instance_id, workflow_id, started_by)
            SELECT 'cpi-' || g, (SELECT workflow_id FROM flowable.workflow_definitions
                                 WHERE process_key = 'claim_bench'), 'bench'
            FROM generate_series(1, %s) g""", [max(1, tasks // 10)])
        await c.execute("""
            INSERT INTO flowable.workflow_tasks (task_id, process_instance_id, task_definition_key, task_name,
                                                 queue_name, candidate_groups, priority, created_at)
            SELECT 'ct-' || g, 'cpi-' || (1 + g %% %s), 'review', 'Review', 'CQ' || (g %% 4),
                   ARRAY[(%s::text[])[1 + g %% 4]], (random() * 100)::int, now() - g * interval '1 second'
            FROM generate_series(1, %s) g""", [max(1, tasks // 10), ROLES, tasks])
        await c.execute("VACUUM ANALYZE")


async def reopen_claimable(url: str) -> None:
    """load_claimable's tasks open again, their claims' history gone, the summaries folded: each run starts
    from the same state."""
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as c:
        await c.execute("UPDATE flowable.workflow_tasks SET status = 'OPEN', assignee_id = NULL, claimed_at = NULL, "
                        "claimed_by = NULL WHERE task_id LIKE 'ct-%' AND status <> 'OPEN'")
        await c.execute("DELETE FROM flowable.task_history WHERE task_id LIKE 'ct-%' AND action_type = 'CLAIM'")
        await c.execute("SELECT flowable.fold_task_stats(), flowable.fold_queue_load(), flowable.fold_work_stats(), "
                        "flowable.fold_activity_live_load()")
        await c.execute("VACUUM ANALYZE flowable.workflow_tasks")
        await c.execute("CHECKPOINT")


async def claim_rate(pg: EmbeddedPostgres, database: str, script: Path, seconds: int) -> tuple[float, float]:
    _, tps, _, p99 = await asyncio.to_thread(pgbench, pg.host, pg.port, database, script, 16, seconds)
    return tps, p99


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=10_000_000)
    parser.add_argument("--instances", type=int, default=3_000_000)
    parser.add_argument("--retention-days", type=int, default=60)
    parser.add_argument("--runs", type=int, default=20, help="timed runs of each report's SQL")
    parser.add_argument("--claim-tasks", type=int, default=100_000)
    parser.add_argument("--claim-seconds", type=int, default=10)
    parser.add_argument("--claim-rounds", type=int, default=3, help="alternated runs on each mirror")
    args = parser.parse_args()
    as_of = datetime.now(UTC)

    with tempfile.TemporaryDirectory(prefix="bench-archive-") as tmp, EmbeddedPostgres(Path(tmp), port=0) as pg:
        url = pg.ensure_database("bench")
        await migrate(url, PROJECT_ROOT / "migrations")
        generated = await generate(url, args.tasks, args.instances)
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as c:
            size = (await (await c.execute("SELECT pg_size_pretty(pg_database_size('bench'))")).fetchone())[0]
        admin = pg.url("postgres")
        async with await psycopg.AsyncConnection.connect(admin, autocommit=True) as c:
            began = time.perf_counter()
            await c.execute("CREATE DATABASE bench_bare TEMPLATE bench STRATEGY FILE_COPY")
            copied_s = time.perf_counter() - began
        bare_rows, bare_s, bare_wal = await bare_move(url.rsplit("/", 1)[0] + "/bench_bare", as_of,
                                                      args.retention_days)
        async with await psycopg.AsyncConnection.connect(admin, autocommit=True) as c:
            await c.execute("DROP DATABASE bench_bare")
        rows, bridge_s, bridge_wal, report = await bridge_move(url, as_of, args.retention_days)
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as c:
            await c.execute("VACUUM ANALYZE")

        windows = {"last 24 h": ReportFilter.last(timedelta(hours=24)),
                   "30 archived days": ReportFilter(since=as_of - timedelta(days=150),
                                                    until=as_of - timedelta(days=120))}
        report_times = {label: (await time_sql(url, args.runs, where))[0] for label, where in windows.items()}

        script = Path(tmp) / "claim.sql"
        script.write_text(CLAIM_NEXT_TASK.format(users=USERS))
        empty = pg.ensure_database("claim_empty")
        await migrate(empty, PROJECT_ROOT / "migrations")
        await load_claimable(empty, args.claim_tasks)
        await load_claimable(url, args.claim_tasks)
        claims: dict[str, list[tuple[float, float]]] = {"empty mirror": [], "this mirror": []}
        for rnd in range(args.claim_rounds):
            # alternated, first one then the other: the disk's flush time drifts by more than the 10% asked
            pair = [("empty mirror", "claim_empty", empty), ("this mirror", "bench", url)]
            for label, database, database_url in pair if rnd % 2 == 0 else reversed(pair):
                await reopen_claimable(database_url)
                claims[label].append(await claim_rate(pg, database, script, args.claim_seconds))

    print(f"\narchiving: {args.tasks:,} tasks, {args.instances:,} instances ({size}); retention "
          f"{args.retention_days} days; PostgreSQL 18 embedded (durable), 2 cores")
    print("generated in " + ", ".join(f"{k} {v:.0f} s" for k, v in generated.items())
          + f"; copied for the baseline in {copied_s:.0f} s\n")
    print(f"{'way':<36} | {'rows':>11} | {'seconds':>8} | {'rows/s':>9} | {'WAL/row':>8} | vs bare")
    print("-" * 92)
    print(f"{'bare INSERT ... SELECT + DELETE':<36} | {bare_rows:>11,} | {bare_s:>8.1f} | "
          f"{bare_rows / bare_s:>9,.0f} | {bare_wal / bare_rows:>7.0f}B | 1.00x")
    print(f"{'bridge archive (batches of 200)':<36} | {rows:>11,} | {bridge_s:>8.1f} | {rows / bridge_s:>9,.0f} | "
          f"{bridge_wal / rows:>7.0f}B | {(rows / bridge_s) / (bare_rows / bare_s):.2f}x")
    print(f"\nbridge run: {report.instances:,} instances in {report.batches:,} transactions; "
          f"{len(report.months_moved)} history months moved whole ({', '.join(report.months_moved) or '-'}); "
          f"rows moved one by one: {sum(report.rows.values()):,}")
    print(f"\n{'report SQL after archiving':<14} | " + " | ".join(f"{w:>26}" for w in windows))
    print(f"{'':<14} | " + " | ".join(f"{'p50 ms':>12}   {'p99 ms':>11}" for _ in windows))
    print("-" * 76)
    for name in REPORTS:
        cells = [f"{percentile(report_times[w][name], 50):>12.1f}   {percentile(report_times[w][name], 99):>11.1f}"
                 for w in windows]
        print(f"{name:<14} | " + " | ".join(cells))
    worst = max(percentile(t, 99) for times in report_times.values() for t in times.values())
    print(f"worst p99 {worst:.1f} ms: {'under' if worst < 200 else 'OVER'} the 200 ms target")
    base_tps = statistics.median(tps for tps, _ in claims["empty mirror"])
    print(f"\n{'claim_next_task, 16 clients':<28} | {'median claims/s':>15} | {'each run':<24} | "
          f"{'p99 ms':>7} | vs empty")
    print("-" * 92)
    for label, runs in claims.items():
        tps = statistics.median(t for t, _ in runs)
        each = ", ".join(f"{t:.0f}" for t, _ in runs)
        p99 = statistics.median(p for _, p in runs)
        print(f"{label:<28} | {tps:>15.0f} | {each:<24} | {p99:>7.2f} | {tps / base_tps:.2f}x")
    ratio = statistics.median(claims["this mirror"][n][0] / claims["empty mirror"][n][0]
                              for n in range(args.claim_rounds))
    print(f"median of the rounds' ratios {ratio:.2f}x: {'within' if ratio >= 0.9 else 'NOT within'} 10% of the "
          f"empty mirror's rate")


if __name__ == "__main__":
    asyncio.run(main())
