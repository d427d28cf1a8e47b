"""Each report endpoint at 1,000,000 tasks / 300,000 instances, beside the bare SQL of the same statements.

    make bench-reports     # or: python -m bench.reports --tasks 1000000 --instances 300000 --runs 60

Starts its own embedded PostgreSQL (durable settings, as the service runs), generates the rows directly in
SQL (half a year of OneCMS-like work over 14 queues in 6 departments: about 95% of tasks completed, the rest
live, some overdue or at risk; escalation history, pushed events and reconciler repairs), lets the hourly
summary fold, VACUUM ANALYZEs, and starts `bridge serve` (one process, no background jobs) against it.

For every report: p50 and p99 of GET /api/reports/{report} over the last --hours (default 24), one
request at a time; the same for the report's SQL statements run directly with psycopg (the bare floor:
what the endpoint costs above it is HTTP, auth, and JSON); and then the plan of each statement
(EXPLAIN ANALYZE), so the indexes each uses can be read. Target: every endpoint under 200 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlencode

import aiohttp
import psycopg

from bench.serving import wait_until_serving
from bridge import auth
from bridge.config import PROJECT_ROOT
from bridge.db.connections import open_database
from bridge.db.embedded import EmbeddedPostgres, free_tcp_port
from bridge.db.migrate import migrate
from bridge.db.queries import queries
from bridge.progress import Bars
from bridge.reports import REPORTS, ReportFilter

SQL = queries("reports")
# the statements each report runs (bridge/reports.py)
STATEMENTS = {name: [name] for name in REPORTS} | {
    "mirror": ["mirror_events", "mirror_parked_total", "mirror_reconciler", "mirror_repairs"]}
DEPARTMENTS = {"INTAKE": ["INTAKE_REGISTRATION", "INTAKE_TRIAGE"],
               "INVESTIGATIONS": ["INVESTIGATIONS", "INVESTIGATIONS_ESCALATION"],
               "LEGAL": ["LEGAL_REVIEW", "LEGAL_ESCALATION", "LEGAL_SIGNOFF"],
               "COMPLIANCE": ["COMPLIANCE_REVIEW", "COMPLIANCE_SIGNOFF"],
               "QA": ["QA_REVIEW"],
               "CASE_MANAGEMENT": ["SUPERVISOR_APPROVAL", "SUPERVISOR_ESCALATION", "CASE_CLOSURE", "CASE_ADMIN"]}
USERS = 120

GENERATE = [
    ("departments and queues", """
        INSERT INTO entitlements.departments (department_code, department_name)
        SELECT d, initcap(replace(d, '_', ' ')) FROM unnest(%(departments)s::text[]) d;
        INSERT INTO flowable.workflow_queues (queue_name, department_id, sla_minutes, max_capacity)
        SELECT q.queue_name, d.department_id, 240 + 60 * (q.n %% 8), 2000
        FROM unnest(%(queues)s::text[], %(queue_departments)s::text[]) WITH ORDINALITY AS q(queue_name, dept, n)
        JOIN entitlements.departments d ON d.department_code = q.dept;
        INSERT INTO flowable.workflow_definitions (process_key, process_name, process_version, business_app, is_active)
        VALUES ('OneCMS_Nextgen_WF', 'OneCMS (v1)', 1, 'onecms', false),
               ('OneCMS_Nextgen_WF', 'OneCMS Unified Workflow', 2, 'onecms', true);
        INSERT INTO entitlements.users (user_id, username, first_name, last_name)
        SELECT 'user' || g, 'user' || g, 'User', g::text FROM generate_series(1, %(users)s) g;"""),
    ("instances", """
        INSERT INTO flowable.process_instances (process_instance_id, workflow_id, business_key, started_by,
                                                started_at, completed_at, status)
        SELECT 'pi-' || g, 1 + (g %% 2), 'CASE-' || g, 'bench', s.started,
               CASE WHEN g %% 10 <> 0 THEN s.started + (1 + g %% 200) * interval '1 hour' END,
               CASE WHEN g %% 10 <> 0 THEN 'COMPLETED' ELSE 'ACTIVE' END
        FROM generate_series(1, %(instances)s) g,
             LATERAL (SELECT now() - (g::float / %(instances)s) * interval '180 days' AS started) s;"""),
    ("tasks", """
        INSERT INTO flowable.workflow_tasks (task_id, process_instance_id, task_definition_key, task_name, queue_name,
            status, priority, assignee_id, candidate_groups, created_at, claimed_at, claimed_by, completed_at,
            completed_by, due_date, escalation_level)
        SELECT 't-' || g, 'pi-' || (1 + g %% %(instances)s), 'step' || (g %% 14), 'Step ' || (g %% 14), q.queue_name,
               x.status, 40 + (g %% 6) * 10,
               CASE WHEN x.status <> 'OPEN' THEN 'user' || (1 + g %% %(users)s) END, ARRAY['ROLE_' || (g %% 14)],
               x.created, CASE WHEN x.status <> 'OPEN' THEN x.created + interval '20 minutes' END,
               CASE WHEN x.status <> 'OPEN' THEN 'user' || (1 + g %% %(users)s) END,
               CASE WHEN x.status = 'COMPLETED' THEN x.created + (10 + g %% 900) * interval '1 minute' END,
               CASE WHEN x.status = 'COMPLETED' THEN 'user' || (1 + g %% %(users)s) END,
               x.created + (60 + g %% 2880) * interval '1 minute',
               CASE WHEN x.status = 'ESCALATED' THEN 1 + g %% 3 ELSE 0 END
        FROM generate_series(1, %(tasks)s) g
        CROSS JOIN LATERAL (SELECT (%(queues)s::text[])[1 + g %% 14] AS queue_name) q
        CROSS JOIN LATERAL (SELECT
            CASE WHEN g %% 20 <> 0 THEN 'COMPLETED'
                 ELSE (ARRAY['OPEN', 'OPEN', 'CLAIMED', 'ESCALATED', 'DELEGATED'])[1 + (g / 20) %% 5] END AS status,
            CASE WHEN g %% 20 <> 0 THEN now() - (g::float / %(tasks)s) * interval '180 days'
                 ELSE now() - ((g / 20) %% 14400) * interval '1 minute' END AS created) x;"""),
    ("history, events, repairs", """
        INSERT INTO flowable.task_history (task_id, process_instance_id, action_type, action_by, action_at, action_data)
        SELECT task_id, process_instance_id, 'ESCALATE', 'SYSTEM', created_at + interval '2 hours',
               jsonb_build_object('escalation_level', escalation_level)
        FROM flowable.workflow_tasks WHERE escalation_level > 0;
        INSERT INTO flowable.task_history (task_id, process_instance_id, action_type, action_by, action_at)
        SELECT task_id, process_instance_id, 'COMPLETE', completed_by, completed_at
        FROM flowable.workflow_tasks WHERE status = 'COMPLETED';
        INSERT INTO flowable.webhook_batches (webhook_id, event_count, received_at)
        SELECT 'wh-' || g, 5, now() - g * interval '1 second' FROM generate_series(1, 40000) g;
        INSERT INTO flowable.engine_events (event_id, webhook_id, seq, event_type, occurred_at, payload, received_at,
                                            applied_at)
        SELECT 'ev-' || g || '-' || s, 'wh-' || g, s, 'TASK_CREATED', now() - g * interval '1 second',
               '{}'::jsonb, now() - g * interval '1 second' + interval '15 milliseconds',
               now() - g * interval '1 second' + (15 + g %% 40) * interval '1 millisecond'
        FROM generate_series(1, 40000) g, generate_series(1, 5) s;
        INSERT INTO flowable.reconciler_state (name, passes, repairs, last_pass_at, last_full_sweep_at, process_time)
        VALUES ('default', 17280, 210, now(), now() - interval '3 minutes', now());
        INSERT INTO flowable.mirror_repairs (found_at, pass_kind, entity_type, entity_id, field, repaired)
        SELECT now() - g * interval '7 minutes', (ARRAY['INCREMENTAL', 'SWEEP'])[1 + g %% 2], 'task', 't-' || g,
               'status', true FROM generate_series(1, 2000) g;"""),
    ("fold the summaries", "SELECT flowable.fold_task_stats(), flowable.fold_queue_load(), "
                           "flowable.fold_work_stats(), flowable.fold_activity_live_load()"),
]


async def generate(url: str, tasks: int, instances: int) -> None:
    queue_names = [q for qs in DEPARTMENTS.values() for q in qs]
    params = {"tasks": tasks, "instances": instances, "users": USERS, "departments": list(DEPARTMENTS),
              "queues": queue_names, "queue_departments": [d for d, qs in DEPARTMENTS.items() for _ in qs]}
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        with Bars({"generate": len(GENERATE) + 1}) as bars:
            for _, statement in GENERATE:
                for part in filter(str.strip, statement.split(";")):
                    await conn.execute(part, params)
                bars("generate")
            await conn.execute("VACUUM ANALYZE")
            bars("generate")


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


async def time_http(port: int, token: str, runs: int, where: ReportFilter) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {}
    headers = {"Authorization": f"Bearer {token}"}
    query = urlencode({"since": where.since.isoformat(), "until": where.until.isoformat()})
    async with aiohttp.ClientSession() as session:
        for name in REPORTS:
            url = f"http://127.0.0.1:{port}/api/reports/{name}?{query}"
            for n in range(runs + 3):  # three to warm up
                began = time.perf_counter()
                async with session.get(url, headers=headers) as r:
                    assert r.status == 200, (name, r.status, await r.text())
                    await r.read()
                if n >= 3:
                    times.setdefault(name, []).append((time.perf_counter() - began) * 1000)
    return times


def to_psycopg(statement) -> str:
    """A SQLAlchemy text() with :name parameters -> psycopg's %(name)s (casts like ::text stay)."""
    import re
    return re.sub(r"(?<!:):(\w+)", r"%(\1)s", str(statement).replace("%", "%%"))


async def time_sql(url: str, runs: int, where: ReportFilter) -> tuple[dict[str, list[float]], dict[str, str]]:
    params = where.params()
    times: dict[str, list[float]] = {}
    plans: dict[str, str] = {}
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        for name, statements in STATEMENTS.items():
            sqls = [to_psycopg(getattr(SQL, s)) for s in statements]
            for n in range(runs + 3):
                began = time.perf_counter()
                for sql in sqls:
                    await (await conn.execute(sql, params)).fetchall()
                if n >= 3:
                    times.setdefault(name, []).append((time.perf_counter() - began) * 1000)
            for statement, sql in zip(statements, sqls, strict=True):
                rows = await (await conn.execute("EXPLAIN (ANALYZE, COSTS OFF, SUMMARY ON) " + sql, params)).fetchall()
                plans[statement] = "\n".join(r[0] for r in rows)
    return times, plans


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=1_000_000)
    parser.add_argument("--instances", type=int, default=300_000)
    parser.add_argument("--runs", type=int, default=60, help="timed requests per report (after 3 to warm up)")
    parser.add_argument("--hours", type=int, default=24, help="the reports' time range, ending now (default 24)")
    parser.add_argument("--plans", action="store_true", help="print every statement's plan in full")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-reports-") as tmp, EmbeddedPostgres(Path(tmp), port=0) as pg:
        url = pg.ensure_database("bench")
        await migrate(url, PROJECT_ROOT / "migrations")
        began = time.monotonic()
        await generate(url, args.tasks, args.instances)
        generated_s = time.monotonic() - began
        db = open_database(url, pool_size=1)
        async with db.begin() as conn:
            await auth.add_user(conn, "ops", roles=["OPS_VIEWER"], granted_by="bench")
            token = await auth.create_token(conn, "ops")
        await db.dispose()

        port = free_tcp_port()
        env = {**os.environ, "DATABASE_URL": url, "FLOWABLE_URL": "http://127.0.0.1:1/process-api",
               "WEBHOOK_SECRET": "whsec_" + "A" * 43 + "=", "BRIDGE_PORT": str(port), "BRIDGE_WORKERS": "1",
               "BRIDGE_RECONCILE_INTERVAL_S": "0", "BRIDGE_ESCALATE_INTERVAL_S": "0",
               "BRIDGE_AUTO_ASSIGN_INTERVAL_S": "0"}
        with (Path(tmp) / "bridge.log").open("wb") as log:  # the child keeps its own copy
            bridge = await asyncio.to_thread(subprocess.Popen, [sys.executable, "-m", "bridge.cli", "serve"],
                                             cwd=PROJECT_ROOT, env=env, stdout=log,
                                             stderr=subprocess.STDOUT)
        try:
            await wait_until_serving(f"http://127.0.0.1:{port}/healthz")
            where = ReportFilter.last(timedelta(hours=args.hours))
            http = await time_http(port, token, args.runs, where)
        finally:
            bridge.terminate()
            bridge.wait()
        bare, plans = await time_sql(url, args.runs, where)

    print(f"\nreports: {args.tasks:,} tasks, {args.instances:,} instances (generated in {generated_s:.0f} s), "
          f"the last {args.hours} h, {args.runs} requests each, one at a time; PostgreSQL 18 embedded\n")
    print(f"{'report':<12} | {'HTTP p50':>8} | {'HTTP p99':>8} | {'SQL p50':>8} | {'SQL p99':>8} | "
          f"{'HTTP/SQL p50':>12} | target 200 ms")
    print("-" * 84)
    for name in REPORTS:
        h50, h99 = percentile(http[name], 50), percentile(http[name], 99)
        s50, s99 = percentile(bare[name], 50), percentile(bare[name], 99)
        print(f"{name:<12} | {h50:>8.1f} | {h99:>8.1f} | {s50:>8.1f} | {s99:>8.1f} | {h50 / s50:>11.2f}x | "
              f"{'ok' if h99 < 200 else 'OVER'}")
    print(f"\nmedian over all reports: HTTP {statistics.median(sum(http.values(), [])):.1f} ms, "
          f"SQL {statistics.median(sum(bare.values(), [])):.1f} ms  (ms; HTTP includes auth, JSON, the mirror "
          f"report's engine call, refused at once here)\n")
    for statement, plan in plans.items():
        lines = plan.splitlines()
        shown = lines if args.plans else [ln for ln in lines if "Scan" in ln or "Execution Time" in ln]
        print(f"-- {statement}\n" + "\n".join(shown) + "\n")


if __name__ == "__main__":
    asyncio.run(main())
