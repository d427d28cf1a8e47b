"""Database health: what keeps a PostgreSQL-backed queue and mirror fast, for `bridge status`, `/metrics` and
`bridge maintenance` (the seed design's daily and weekly maintenance items).

A queue table's throughput falls when dead row versions pile up faster than vacuum removes them, and vacuum
can remove none deleted after the oldest open transaction began (the xmin horizon): one forgotten
`BEGIN` in a psql window is enough. So: dead tuples and last (auto)vacuum of the hot tables, the oldest open
transactions and how far back they hold the horizon, never-used indexes, estimated index bloat, and the
slowest statements when pg_stat_statements is installed. And, for the dashboard, the archive ledger's two
counts (archiving()). SQL in bridge/db/queries/health.sql.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg import sql
from sqlalchemy.ext.asyncio import AsyncConnection

from bridge import metrics
from bridge.db.connections import libpq_url
from bridge.db.queries import queries

SQL = queries("health")

# Written on every engine event or work action: the tables vacuum must keep up with.
HOT_TABLES = ("flowable.workflow_tasks", "flowable.task_history", "flowable.engine_events",
              "flowable.webhook_batches", "flowable.process_instances", "flowable.workflow_variables",
              "flowable.queue_load_changes", "flowable.task_stat_changes", "flowable.api_idempotency",
              "onecms.case_workflow_mapping")
# An open transaction older than this is reported as one to look at (a batch or report takes seconds).
LONG_TRANSACTION_S = 300


@dataclass(frozen=True)
class Health:
    tables: list[dict[str, Any]]
    oldest_transactions: list[dict[str, Any]]
    xmin_horizon_age: int  # transaction ids the oldest snapshot, slot or prepared transaction holds back
    unused_indexes: list[dict[str, Any]]
    index_bloat: list[dict[str, Any]]
    slow_statements: list[dict[str, Any]] | None  # None: pg_stat_statements is not installed

    @property
    def oldest_transaction_seconds(self) -> float:
        return self.oldest_transactions[0]["open_seconds"] if self.oldest_transactions else 0.0

    def as_json(self) -> dict:
        return {"tables": self.tables, "oldestTransactions": self.oldest_transactions,
                "xminHorizonAge": self.xmin_horizon_age, "unusedIndexes": self.unused_indexes,
                "indexBloat": self.index_bloat, "slowStatements": self.slow_statements}


async def read(conn: AsyncConnection, *, slow_limit: int = 5) -> Health:
    async def rows(statement, **params) -> list[dict[str, Any]]:
        return [dict(r) for r in (await conn.execute(statement, params)).mappings()]

    slow = None
    if (await conn.execute(SQL.has_pg_stat_statements)).scalar_one():
        slow = await rows(SQL.slow_statements, limit=slow_limit)
    return Health(
        tables=await rows(SQL.tables, names=list(HOT_TABLES)),
        oldest_transactions=await rows(SQL.oldest_transactions),
        xmin_horizon_age=int((await conn.execute(SQL.xmin_horizon)).scalar_one()),
        unused_indexes=await rows(SQL.unused_indexes),
        index_bloat=[r for r in await rows(SQL.index_bloat) if r["bloat_pages"] > 0],
        slow_statements=slow)


@dataclass(frozen=True)
class Archiving:
    """The archive ledger (archive.archived_instances, migration 0024): instances archived, and how many of them
    still wait for their engine history to be deleted (bridge/archive.py does it after the move)."""
    archived_instances: int
    engine_history_pending: int
    last_archived_at: datetime | None


async def archiving(conn: AsyncConnection) -> Archiving:
    row = (await conn.execute(SQL.archiving)).one()
    return Archiving(archived_instances=int(row.archived_instances),
                     engine_history_pending=int(row.engine_history_pending), last_archived_at=row.last_archived_at)


def lines(health: Health, *, now: datetime | None = None) -> list[str]:
    """The `bridge status` section."""
    now = now or datetime.now(UTC)
    out = []
    if health.oldest_transactions:
        t = health.oldest_transactions[0]
        flag = "LONG " if t["open_seconds"] >= LONG_TRANSACTION_S else ""
        who = t["application_name"] or t["user_name"] or "?"
        out.append(f"transaction {flag}oldest open {t['open_seconds']:.0f} s (pid {t['pid']}, {who}, {t['state']}); "
                   f"xmin horizon held {health.xmin_horizon_age} xids back")
    else:
        out.append(f"transaction none open; xmin horizon held {health.xmin_horizon_age} xids back")
    for t in health.tables[:4]:  # the most dead tuples first
        vacuumed = _ago(now, t["last_vacuum"])
        out.append(f"vacuum      {t['table_name']}: {t['dead_tuples']} dead / {t['live_tuples']} live, "
                   f"last vacuum {vacuumed}")
    bloat = sum(r["bloat_pages"] for r in health.index_bloat)
    out.append(f"indexes     {len(health.unused_indexes)} never used, ~{bloat} page(s) of estimated bloat"
               + ("" if health.slow_statements is not None else "; pg_stat_statements not installed"))
    return out


def set_metrics(health: Health, *, now: datetime | None = None) -> None:
    now = now or datetime.now(UTC)
    for t in health.tables:
        metrics.DB_DEAD_TUPLES.labels(t["table_name"]).set(t["dead_tuples"])
        last = t["last_vacuum"]
        metrics.DB_VACUUM_AGE.labels(t["table_name"]).set((now - last).total_seconds() if last else float("nan"))
    metrics.DB_OLDEST_TRANSACTION.set(health.oldest_transaction_seconds)
    metrics.DB_XMIN_HORIZON_AGE.set(health.xmin_horizon_age)
    metrics.DB_UNUSED_INDEXES.set(len(health.unused_indexes))
    metrics.DB_INDEX_BLOAT_PAGES.set(sum(r["bloat_pages"] for r in health.index_bloat))


async def maintain(database_url: str) -> list[str]:
    """The seed's daily and weekly items: VACUUM (ANALYZE) of each hot table, then ANALYZE of the rest of our
    schemas (fresh statistics for the planner and the bloat estimate). One line per thing done. VACUUM
    cannot run in a transaction: an autocommit session of its own."""
    done = []
    async with await psycopg.AsyncConnection.connect(libpq_url(database_url), autocommit=True,
                                                     application_name="bridge maintenance") as conn:
        for table in HOT_TABLES:
            schema, name = table.split(".")
            before = await _dead(conn, table)
            began = time.perf_counter()
            await conn.execute(sql.SQL("VACUUM (ANALYZE) {}").format(sql.Identifier(schema, name)))
            after = await _dead(conn, table)
            done.append(f"vacuum analyze {table}: {before} -> {after} dead tuples, "
                        f"{(time.perf_counter() - began) * 1000:.0f} ms")
        began = time.perf_counter()
        for schema in ("flowable", "onecms", "entitlements"):
            tables = await (await conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = %s ORDER BY tablename", [schema])).fetchall()
            for (name,) in tables:
                if f"{schema}.{name}" not in HOT_TABLES:
                    await conn.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(schema, name)))
        done.append(f"analyze: statistics of the other tables of flowable, onecms and entitlements, "
                    f"{(time.perf_counter() - began) * 1000:.0f} ms")
    return done


async def _dead(conn: psycopg.AsyncConnection, table: str) -> int:
    # pg_stat_user_tables lags by the stats flush; pg_stat_get_dead_tuples reads this session's view now
    row = await (await conn.execute("SELECT pg_stat_get_dead_tuples(%s::regclass)", [table])).fetchone()
    return int(row[0]) if row else 0


def _ago(now: datetime, moment: datetime | None) -> str:
    return "never" if moment is None else f"{(now - moment).total_seconds():.0f} s ago"
