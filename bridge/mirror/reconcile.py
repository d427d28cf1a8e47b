"""The reconciler: makes the mirror whole when a push was lost, late, or never sent.

Webhooks are fast but at-most-once (a crash between the engine's commit and the send loses a batch).
The reconciler reads the engine's REST API and repairs what differs, Camunda-Optimize style:

  * BACKFILL (no cursor yet, e.g. a bridge started against an engine with history): every instance
    and task is compared and repaired; the cursor starts at the engine's newest task-log entry.
  * INCREMENTAL (every pass): the historic task log from the cursor's log number, re-reading an overlap
    of `overlap_log_entries` below it (log numbers can commit out of order) and skipping the numbers
    already read there; plus historic process instances started or finished after the process cursor
    minus `overlap` (a time cursor; rows at the cursor's very instant are read again, which is the tie
    handling). The instances those name are read whole and compared.
  * SWEEP (every `sweep_every`, and on request): also every running instance and every instance the
    mirror holds open, compared whole, `sweep_chunk` instances at a time: catches what no log entry names
    (a suspension, a lost end), in memory bounded by the chunk.

A pass reads first, then writes the repairs and the repair records (a sweep, chunk by chunk), and with the
last of them the advanced cursor, in one transaction: the cursor never moves past what was not written, and
a pass cut short is done again from the same cursor (repairs already written are found equal then).
Repairs are engine events synthesized by bridge/mirror/drift.py and applied by bridge/mirror/apply.py, so
they obey the state machines. Only one bridge reconciles at a time: a pass holds a session advisory lock,
and a replica that cannot get it skips its turn. An engine that is down makes a pass fail (after the
client's retries); the loop records the error, backs off, and the next pass starts from the same cursor.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bridge import metrics
from bridge.config import Settings
from bridge.db.queries import queries
from bridge.flowable.client import EngineUnavailable, FlowableClient, FlowableError
from bridge.mirror.apply import apply_events
from bridge.mirror.drift import Comparison, Difference, compare, engine_process_status, read_mirror
from bridge.mirror.engine_state import EngineReader, EngineState, chunks

SQL = queries("reconcile")
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReconcilerSettings:
    page_size: int = 500
    overlap_log_entries: int = 500
    overlap: timedelta = timedelta(minutes=5)
    sweep_every: timedelta = timedelta(minutes=10)
    sweep_chunk: int = 500  # instances a sweep reads and compares at a time
    # How far the bridge's clock may run ahead of the engine's (see EngineReader): repairs of rows changed
    # within this window before a read wait for the next pass.
    clock_skew: timedelta = timedelta(seconds=2)
    name: str = "default"

    @classmethod
    def of(cls, settings: Settings) -> ReconcilerSettings:
        return cls(page_size=settings.reconcile_page_size,
                   sweep_every=timedelta(minutes=settings.reconcile_sweep_minutes))


@dataclass
class PassReport:
    kind: str  # BACKFILL | INCREMENTAL | SWEEP | SKIPPED (another bridge holds the lock)
    instances_checked: int = 0
    log_entries_read: int = 0
    differences: list[Difference] = field(default_factory=list)
    repair_events: int = 0
    seconds: float = 0.0

    @property
    def repaired(self) -> int:
        return sum(1 for d in self.differences if d.repairable)

    def summary(self) -> str:
        if self.kind == "SKIPPED":
            return "reconcile: skipped, another bridge is reconciling"
        return (f"reconcile {self.kind.lower()}: {self.instances_checked} instance(s) checked, "
                f"{self.log_entries_read} task-log entries read, {len(self.differences)} difference(s), "
                f"{self.repaired} repaired, {self.seconds:.2f} s")


class Reconciler:
    def __init__(self, db: AsyncEngine, client: FlowableClient,
                 settings: ReconcilerSettings = ReconcilerSettings(),
                 progress: Callable[[str], None] = lambda what: None) -> None:
        self.db = db
        self.client = client
        self.settings = settings
        self.reader = EngineReader(client, page_size=settings.page_size, clock_skew=settings.clock_skew,
                                   progress=progress)
        self.last_report: PassReport | None = None
        self.last_error: str | None = None

    async def run_once(self, *, sweep: bool = False) -> PassReport:
        started = time.perf_counter()
        name = self.settings.name
        async with self.db.connect() as conn:
            locked = (await conn.execute(SQL.try_lock, {"name": name})).scalar_one()
            await conn.commit()
            if not locked:
                return PassReport("SKIPPED")
            try:
                report = await self._pass(conn, sweep)
            except BaseException:
                await conn.rollback()
                raise
            finally:
                await conn.execute(SQL.unlock, {"name": name})
                await conn.commit()
        report.seconds = time.perf_counter() - started
        self.last_report = report
        metrics.RECONCILE_PASSES.labels(report.kind).inc()
        metrics.RECONCILE_SECONDS.observe(report.seconds)
        for difference in report.differences:
            metrics.RECONCILE_DIFFERENCES.labels(difference.entity, str(difference.repairable).lower()).inc()
        return report

    async def _pass(self, conn: AsyncConnection, sweep: bool) -> PassReport:
        name = self.settings.name
        await conn.execute(SQL.ensure_state, {"name": name})
        cursor = (await conn.execute(SQL.read_state, {"name": name})).one()
        await conn.commit()
        if cursor.process_time is None:
            return await self._backfill(conn)
        sweep = sweep or cursor.last_full_sweep_at is None or (
            datetime.now(UTC) - cursor.last_full_sweep_at >= self.settings.sweep_every)
        report = PassReport("SWEEP" if sweep else "INCREMENTAL")

        log_number, seen, touched, newest = await self._read_task_log(cursor, report)
        touched |= await self._processes_changed_since(conn, cursor.process_time)
        parts = [sorted(touched)]
        if sweep:
            # every instance either side holds open, compared a chunk at a time: a sweep's memory is bounded
            # by the chunk, not by the open work (a sweep read all of it at once before, and a bridge's
            # resident memory grew with the cases open)
            open_ids = {r.process_instance_id for r in await conn.execute(SQL.open_process_ids)}
            await conn.commit()
            everything = sorted(open_ids | await self.reader.running_ids() | touched)
            parts = list(chunks(everything, self.settings.sweep_chunk)) or [[]]
        read_at = None
        for n, part in enumerate(parts):
            engine_state = await self.reader.read_instances(part)
            read_at = read_at or engine_state.read_at  # the first chunk's: the cursor never passes a later read
            report.instances_checked += len(engine_state.covers)
            comparison = compare(engine_state, await read_mirror(conn, sorted(engine_state.covers)))
            newest = max([t for t in (newest, *_change_times(engine_state)) if t is not None], default=None)
            last = n == len(parts) - 1
            await self._write(conn, report, comparison, {
                "task_log_number": log_number, "task_log_seen": sorted(seen),
                "process_time": read_at, "newest_change_at": newest, "full_sweep": sweep} if last else None)
        return report

    async def _backfill(self, conn: AsyncConnection) -> PassReport:
        report = PassReport("BACKFILL")
        log_number = await self.client.newest_task_log_number()  # before the read: nothing falls between
        engine_state = await self.reader.read_everything()
        report.instances_checked = len(engine_state.covers)
        mirror = await read_mirror(conn, None)
        await conn.commit()
        comparison = compare(engine_state, mirror)
        await self._write(conn, report, comparison, {
            "task_log_number": log_number, "task_log_seen": [], "process_time": engine_state.read_at,
            "newest_change_at": max(_change_times(engine_state), default=None), "full_sweep": True})
        return report

    async def _read_task_log(self, cursor, report: PassReport) -> tuple[int, set[int], set[str], datetime | None]:
        """New task-log entries since the cursor (overlap re-read, already-seen numbers skipped)."""
        overlap = self.settings.overlap_log_entries
        seen = set(cursor.task_log_seen or ())
        position = max(0, cursor.task_log_number - overlap)
        newest_number, touched, newest_time = cursor.task_log_number, set(), None
        while True:
            entries = await self.client.historic_task_log(position + 1, self.settings.page_size)
            for entry in entries:
                number = entry["logNumber"]
                report.log_entries_read += 1
                if number in seen or number <= cursor.task_log_number - overlap:
                    continue
                seen.add(number)
                if entry.get("processInstanceId"):
                    touched.add(entry["processInstanceId"])
                newest_number = max(newest_number, number)
                stamp = _parse(entry.get("timeStamp"))
                newest_time = max(newest_time, stamp) if newest_time and stamp else (stamp or newest_time)
            if len(entries) < self.settings.page_size:
                break
            position = entries[-1]["logNumber"]
        seen = {n for n in seen if n > newest_number - overlap}
        return newest_number, seen, touched, newest_time

    async def _processes_changed_since(self, conn: AsyncConnection, process_time: datetime) -> set[str]:
        """Instances started or finished since the process cursor (minus the overlap) that the mirror
        lacks or holds in another state."""
        since = process_time - self.settings.overlap
        rows: dict[str, str] = {}
        for filter_name in ("startedAfter", "finishedAfter"):
            async for row in self.client.historic_process_pages(page_size=self.settings.page_size,
                                                                **{filter_name: since}):
                rows[row["id"]] = engine_process_status({**row, "suspended": False})
        if not rows:
            return set()
        payload = [{"id": i, "status": s} for i, s in rows.items()]
        differing = {r.id for r in await conn.execute(SQL.processes_differing, {"rows": json.dumps(payload)})}
        await conn.commit()
        # a running instance the mirror holds SUSPENDED is the sweep's to judge (history has no suspension)
        return differing

    async def _write(self, conn: AsyncConnection, report: PassReport, comparison: Comparison,
                     cursor: dict[str, Any] | None) -> None:
        """The repairs and their records, and with the pass's last chunk (cursor given) the advanced cursor,
        in one transaction."""
        report.differences += comparison.differences
        report.repair_events += len(comparison.repair_events)
        if conn.in_transaction():
            await conn.commit()
        async with conn.begin():
            await apply_events(conn, comparison.repair_events)
            if comparison.differences:
                await conn.execute(SQL.record_repairs, {"rows": json.dumps([{
                    "pass_kind": report.kind, "entity_type": d.entity, "entity_id": d.entity_id, "field": d.field,
                    "mirror_value": _text(d.mirror), "engine_value": _text(d.engine), "repaired": d.repairable,
                } for d in comparison.differences])})
            if cursor is not None:
                # a sweep also recounts live counts from the tasks (self-healing); every pass folds pending changes
                await conn.execute(SQL.recount_live_counts if cursor["full_sweep"] else SQL.fold_live_counts)
                await conn.execute(SQL.save_state, {"name": self.settings.name, "repairs": report.repaired,
                                                    **cursor})
        if cursor is not None:
            metrics.reconciler_read_at(cursor["process_time"])
            metrics.mirrored_change_at(cursor["newest_change_at"])
        for d in comparison.differences:
            log.info("reconcile %s: %s", report.kind.lower(), d)

    async def run_forever(self, interval_s: float, gate: Callable[[], bool] = lambda: True) -> None:
        """Pass after pass until cancelled, while gate() says this replica runs them; failures are logged and
        recorded, then retried with backoff."""
        failures = 0
        while True:
            if not gate():
                await asyncio.sleep(interval_s)
                continue
            try:
                metrics.BACKGROUND_ROUNDS.labels("reconciler").inc()
                report = await self.run_once()
                failures, self.last_error = 0, None
                if report.differences:
                    log.info(report.summary())
            except asyncio.CancelledError:
                raise
            except (EngineUnavailable, FlowableError, OSError) as err:
                failures += 1
                metrics.RECONCILE_FAILURES.inc()
                await self._record_error(f"{type(err).__name__}: {err}")
            except Exception as err:  # a bug or a database failure: keep the service up, say so loudly
                failures += 1
                metrics.RECONCILE_FAILURES.inc()
                log.exception("reconcile pass failed")
                await self._record_error(f"{type(err).__name__}: {err}")
            backoff = min(interval_s * (2 ** min(failures, 6)), 300) if failures else interval_s
            await asyncio.sleep(backoff * random.uniform(0.8, 1.2))

    async def _record_error(self, message: str) -> None:
        self.last_error = message
        log.warning("reconcile pass failed, will retry: %s", message)
        try:
            async with self.db.begin() as conn:
                await conn.execute(SQL.ensure_state, {"name": self.settings.name})
                await conn.execute(SQL.record_error, {"name": self.settings.name, "error": message[:2000]})
        except Exception:  # the database may be what failed
            log.debug("could not record the reconcile error", exc_info=True)


def _change_times(engine_state: EngineState) -> list[datetime]:
    times = []
    for row in [*engine_state.processes.values(), *engine_state.tasks.values()]:
        for key in ("startTime", "endTime", "createTime", "claimTime"):
            stamp = _parse(row.get(key))
            if stamp:
                times.append(stamp)
    return times


def _parse(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return json.dumps(value) if isinstance(value, (list, dict)) else str(value)


async def resync_instances(db: AsyncEngine, client: FlowableClient, ids: list[str]) -> list[Difference]:
    """Make the mirror of these instances equal to the engine now (used when an action finds the mirror
    stale: the engine answered 404 or 409 for a task the mirror offered)."""
    engine_state = await EngineReader(client, clock_skew=timedelta(0)).read_instances(ids)
    async with db.begin() as conn:
        comparison = compare(engine_state, await read_mirror(conn, sorted(ids)))
        await apply_events(conn, comparison.repair_events)
    return comparison.differences
