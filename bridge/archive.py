"""Archiving: completed instances past their retention leave the hot tables, and then the engine.

    report = await archive.run(db, flowable, retention_days=365)          # `bridge archive`, the background job
    report = await archive.run(db, flowable, retention_days=365, dry_run=True)

One run, under a session advisory lock so that one archiver works at a time across replicas:
  1. the hot task_history gets its months ahead (PARTITIONS_AHEAD);
  2. old months of task_history whose every row belongs to due or archived instances move to the archive
     whole (DETACH, then ATTACH to archive.task_history): no row-by-row delete;
  3. due instances move with their tasks, history, variables and case routing, BATCH instances per
     transaction. Each transaction counts the rows per instance before and after and rolls back unless the
     archive holds exactly what the hot tables held; archive.archived_instances records each instance with its
     counts. A crash loses at most the batch in flight, which is still hot: the next run takes it again;
  4. the engine's history of archived instances is deleted ENGINE_BATCH instances per engine call (each its
     own engine transaction), then marked in archive.archived_instances;
  5. the webhook inbox drops applied batches older than inbox_days, INBOX_BATCH per transaction.
Archived instances are archived, not missing: the mirror's apply, the reconciler and `bridge drift` skip
them (bridge/mirror/apply.py, bridge/mirror/drift.py). SQL in bridge/db/queries/archive.sql; tables in migration 0024.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bridge.db.queries import queries
from bridge.errors import BridgeError
from bridge.failpoints import failpoint
from bridge.flowable.client import FlowableClient, FlowableError
from bridge.mirror.apply import try_lock_entities

log = logging.getLogger(__name__)
SQL = queries("archive")

BATCH = 200
ENGINE_BATCH = 50
INBOX_BATCH = 1000
PARTITIONS_AHEAD = 3
COUNTED = ("process_instances", "workflow_tasks", "task_history", "workflow_variables", "case_workflow_mapping")
_MONTH_PARTITION = re.compile(r"^task_history_p(\d{4})_(\d{2})$")
MONTH_LOCK_TIMEOUT = "2s"  # detaching waits no longer than this for readers of the hot history


class ArchiveMismatch(BridgeError):
    """The archive does not hold what the hot tables held: the batch was rolled back."""


class ArchiverBusy(BridgeError):
    """Another archiver (another replica, or `bridge archive`) is running."""


@dataclass
class ArchiveReport:
    dry_run: bool
    as_of: datetime
    due: list[dict[str, Any]] = field(default_factory=list)  # per process key: instances due, oldest end
    instances: int = 0
    rows: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTED, 0))
    batches: int = 0
    months_moved: list[str] = field(default_factory=list)
    partitions_created: int = 0
    engine_histories_deleted: int = 0
    engine_histories_pending: int = 0
    engine_error: str | None = None
    inbox_batches_pruned: int = 0
    inbox_events_pruned: int = 0
    seconds: float = 0.0

    def as_json(self) -> dict[str, Any]:
        return {"dryRun": self.dry_run, "asOf": self.as_of.isoformat(), "due": self.due,
                "instances": self.instances, "rows": self.rows, "batches": self.batches,
                "monthsMoved": self.months_moved, "partitionsCreated": self.partitions_created,
                "engineHistoriesDeleted": self.engine_histories_deleted,
                "engineHistoriesPending": self.engine_histories_pending, "engineError": self.engine_error,
                "inboxBatchesPruned": self.inbox_batches_pruned, "inboxEventsPruned": self.inbox_events_pruned,
                "seconds": round(self.seconds, 3)}


async def run(db: AsyncEngine, flowable: FlowableClient | None, *, retention_days: int, inbox_days: int = 30,
              as_of: datetime | None = None, dry_run: bool = False, by: str = "archiver", batch: int = BATCH,
              max_instances: int | None = None, progress: Callable[[int], None] | None = None) -> ArchiveReport:
    """One archiving run (see the module's docstring). flowable None: the engine's history is left for a
    later run. Raises ArchiverBusy when another archiver holds the lock."""
    as_of = as_of or datetime.now(UTC)
    report = ArchiveReport(dry_run, as_of)
    began = time.perf_counter()
    async with db.connect() as lock_conn:
        if not (await lock_conn.execute(SQL.try_lock_archiver)).scalar_one():
            await lock_conn.rollback()
            raise ArchiverBusy("another archiver is running (a replica's background job or `bridge archive`)")
        await lock_conn.commit()
        try:
            async with db.connect() as conn:
                params = {"as_of": as_of, "default_days": retention_days}
                report.due = [{"processKey": r.process_key, "instances": r.instances,
                               "oldestEnd": r.oldest_end.isoformat()}
                              for r in await conn.execute(SQL.due, params)]
                report.engine_histories_pending = (await conn.execute(SQL.engine_pending_count)).scalar_one()
                before = as_of - timedelta(days=inbox_days)
                if dry_run:
                    report.inbox_batches_pruned = (await conn.execute(SQL.prunable_inbox,
                                                                      {"before": before})).scalar_one()
                    await conn.rollback()
                    return report
                await conn.commit()
                report.partitions_created = await ensure_partitions_ahead(conn, as_of)
                report.months_moved = await _move_whole_months(conn, as_of, retention_days)
                await _move_instances(conn, report, params, by=by, batch=batch, limit=max_instances,
                                      progress=progress)
                if flowable is not None:
                    await _delete_engine_history(conn, flowable, report)
                report.engine_histories_pending = (await conn.execute(SQL.engine_pending_count)).scalar_one()
                await conn.commit()
                await _prune_inbox(conn, report, before)
        finally:
            await lock_conn.execute(SQL.unlock_archiver)
            await lock_conn.commit()
            report.seconds = time.perf_counter() - began
    return report


async def ensure_partitions_ahead(conn: AsyncConnection, now: datetime | None = None) -> int:
    """The hot history's partitions for this month and PARTITIONS_AHEAD more; how many were created."""
    month = _month_start((now or datetime.now(UTC)).date())
    created = 0
    for ahead in range(PARTITIONS_AHEAD + 1):
        async with conn.begin():
            created += bool((await conn.execute(SQL.ensure_partition, {
                "parent": "flowable.task_history", "month": _add_months(month, ahead)})).scalar_one())
    return created


async def _move_whole_months(conn: AsyncConnection, as_of: datetime, retention_days: int) -> list[str]:
    """Months of hot history older than the shortest retention whose every row belongs to an instance that
    is archived or due: each moves to the archive as a table, in a transaction of its own."""
    shortest = (await conn.execute(SQL.shortest_retention, {"default_days": retention_days})).scalar_one()
    months = [r.partition for r in await conn.execute(SQL.hot_months)]
    await conn.commit()
    horizon = (as_of - timedelta(days=shortest)).date()
    moved = []
    for name in months:
        found = _MONTH_PARTITION.match(name)
        if found is None:
            continue
        start = date(int(found[1]), int(found[2]), 1)
        end = _add_months(start, 1)
        if end > horizon:
            break
        try:
            async with conn.begin():
                if await _move_month(conn, name, start, end, as_of, retention_days):
                    moved.append(name)
        except DBAPIError as err:  # a lock not had in time: the month stays for the next run
            log.warning("archive: month %s stays hot this run: %s", name, err.orig)
    return moved


async def _move_month(conn: AsyncConnection, name: str, start: date, end: date, as_of: datetime,
                      retention_days: int) -> bool:
    await conn.execute(text(f"SET LOCAL lock_timeout = '{MONTH_LOCK_TIMEOUT}'"))
    # writers of this month wait from here; readers of the rest of the history do not
    await conn.execute(text(f"LOCK TABLE flowable.{name} IN SHARE ROW EXCLUSIVE MODE"))
    blocked = (await conn.execute(text(f"""
        SELECT EXISTS (
            SELECT 1 FROM flowable.{name} h
            WHERE NOT EXISTS (SELECT 1 FROM archive.archived_instances a
                              WHERE a.process_instance_id = h.process_instance_id)
              AND NOT EXISTS (
                  SELECT 1 FROM flowable.process_instances p
                  JOIN flowable.workflow_definitions d ON d.workflow_id = p.workflow_id
                  LEFT JOIN flowable.retention_policies r ON r.process_key = d.process_key
                  WHERE p.process_instance_id = h.process_instance_id
                    AND p.completed_at IS NOT NULL AND p.status NOT IN ('ACTIVE', 'SUSPENDED')
                    AND p.completed_at < CAST(:as_of AS timestamptz)
                                         - make_interval(days => coalesce(r.retention_days, :default_days))))"""),
        {"as_of": as_of, "default_days": retention_days})).scalar_one()
    if blocked:
        return False
    await conn.execute(text(f"ALTER TABLE flowable.task_history DETACH PARTITION flowable.{name}"))
    if (await conn.execute(text(f"SELECT to_regclass('archive.{name}') IS NOT NULL"))).scalar_one():
        await conn.execute(text(f"INSERT INTO archive.task_history SELECT * FROM flowable.{name}"))
        await conn.execute(text(f"DROP TABLE flowable.{name}"))
    else:
        await conn.execute(text(f"ALTER TABLE flowable.{name} SET SCHEMA archive"))
        await conn.execute(text(f"ALTER TABLE archive.task_history ATTACH PARTITION archive.{name} "
                                f"FOR VALUES FROM ('{start.isoformat()} 00:00+00') TO ('{end.isoformat()} 00:00+00')"))
    log.info("archive: history month %s moved to the archive whole", name)
    return True


async def _move_instances(conn: AsyncConnection, report: ArchiveReport, params: dict[str, Any], *, by: str,
                          batch: int, limit: int | None, progress: Callable[[int], None] | None) -> None:
    busy_rounds = 0
    while limit is None or report.instances < limit:
        size = batch if limit is None else min(batch, limit - report.instances)
        try:
            async with conn.begin():
                picked = (await conn.execute(SQL.pick_batch, {**params, "limit": size})).mappings().all()
                if not picked:
                    return
                ids = [r["process_instance_id"] for r in picked]
                task_ids = [r.task_id for r in await conn.execute(SQL.task_ids, {"ids": ids})]
                # the mirror's writers lock instances and tasks before their rows; waiting here, holding the
                # rows, could deadlock with one of them: try, and on failure give the batch back, come again
                if not await try_lock_entities(conn, ids + task_ids):
                    raise _Held
                moved = await _move_batch(conn, picked, ids, by)
                if report.batches:  # one batch committed, this one moved but not yet
                    failpoint("archive.mid_run")
        except _Held:
            busy_rounds += 1
            if busy_rounds > 50:
                raise ArchiverBusy("archive: due instances stayed locked by the mirror's writers") from None
            await asyncio.sleep(0.1)
            continue
        busy_rounds = 0
        report.batches += 1
        report.instances += len(ids)
        for table, count in moved.items():
            report.rows[table] += count
        if progress is not None:
            progress(len(ids))


class _Held(Exception):
    """A batch's instances are locked by a mirror writer: the batch rolls back and is picked again."""


async def _move_batch(conn: AsyncConnection, picked, ids: list[str], by: str) -> dict[str, int]:
    for r in await conn.execute(SQL.history_months, {"ids": ids}):
        await conn.execute(SQL.ensure_partition, {"parent": "archive.task_history", "month": r.month})
    before = {r["process_instance_id"]: {t: r[t] for t in COUNTED}
              for r in (await conn.execute(SQL.hot_counts, {"ids": ids})).mappings()}
    await conn.execute(SQL.archiving_on)
    moved: dict[str, int] = {}
    for table, statement in (("workflow_variables", SQL.move_variables),
                             ("workflow_variables", SQL.move_task_variables), ("task_history", SQL.move_history),
                             ("workflow_tasks", SQL.move_tasks), ("case_workflow_mapping", SQL.move_case_mappings),
                             ("process_instances", SQL.move_instances)):
        moved[table] = moved.get(table, 0) + (await conn.execute(statement, {"ids": ids})).rowcount
    after = {r["process_instance_id"]: {t: r[t] for t in COUNTED}
             for r in (await conn.execute(SQL.archived_counts, {"ids": ids})).mappings()}
    wrong = {i: (before[i], after[i]) for i in ids if before[i] != after[i]}
    if wrong:
        raise ArchiveMismatch(f"archive: rows differ after the move, batch rolled back: {wrong}")
    await conn.execute(SQL.record_archived, {"by": by, "rows": json.dumps([
        {"process_instance_id": r["process_instance_id"], "process_key": r["process_key"], "case_id": r["case_id"],
         "business_key": r["business_key"], "completed_at": r["completed_at"].isoformat(),
         "row_counts": before[r["process_instance_id"]]} for r in picked])})
    return moved


async def _delete_engine_history(conn: AsyncConnection, flowable: FlowableClient, report: ArchiveReport) -> None:
    """ENGINE_BATCH archived instances per engine call until none is left; an engine that fails stops this
    part of the run (the rest waits for the next)."""
    while True:
        ids = [r.process_instance_id for r in await conn.execute(SQL.engine_pending, {"limit": ENGINE_BATCH})]
        await conn.commit()
        if not ids:
            return
        try:
            try:
                await flowable.delete_historic_processes(ids)
            except FlowableError as err:
                if err.status != 404:
                    raise
                # one of them is gone already (an earlier run deleted it, then died before marking it)
                for instance_id in ids:
                    await flowable.delete_historic_process(instance_id)
        except Exception as err:  # the engine down or refusing: the instances stay pending, archived as they are
            report.engine_error = str(err)
            log.warning("archive: the engine's history of %d archived instance(s) stays for the next run: %s",
                        len(ids), err)
            return
        async with conn.begin():
            await conn.execute(SQL.engine_deleted, {"ids": ids})
        report.engine_histories_deleted += len(ids)


async def _prune_inbox(conn: AsyncConnection, report: ArchiveReport, before: datetime) -> None:
    while True:
        async with conn.begin():
            row = (await conn.execute(SQL.prune_inbox, {"before": before, "limit": INBOX_BATCH})).one()
        report.inbox_batches_pruned += row.batches
        report.inbox_events_pruned += row.events
        if row.batches < INBOX_BATCH:
            return


def _month_start(day: date) -> date:
    return day.replace(day=1)


def _add_months(month: date, count: int) -> date:
    index = month.year * 12 + month.month - 1 + count
    return date(index // 12, index % 12 + 1, 1)
