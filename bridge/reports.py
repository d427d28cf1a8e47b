"""The ops reports: the numbers behind /api/reports/... and the dashboard, one function per report.

Every report takes a ReportFilter (department, queue, time range; process and version for the per-activity
report behind the process map); SQL in bridge/db/queries/reports.sql. A range left out is the last 24 hours,
or the report's own span (REPORT_SPANS: the capacity review's 30 days).
They read as the owner, not under row-level security: an ops viewer sees every queue's figures (the
OPS_VIEWER role gates them, bridge/web/reports.py). Results are plain JSON-ready dicts.
"""

from __future__ import annotations

import asyncio
import itertools
import math
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bridge.db.queries import queries
from bridge.errors import BridgeError
from bridge.flowable.client import EngineUnavailable, FlowableClient, FlowableError

SQL = queries("reports")
ONE_SNAPSHOT = text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
DEFAULT_RANGE = timedelta(hours=24)
MAX_RANGE = timedelta(days=366)
DEFAULT_AT_RISK_MINUTES = 60
MAX_LIMIT = 200
MAX_VERSION = 2**31 - 1


class BadFilter(BridgeError, ValueError):
    """A filter parameter that cannot be used; the message names it."""


class UnknownProcess(BadFilter):
    """The process key, or that version of it, is not recorded (the process map answers 404)."""


@dataclass(frozen=True)
class ReportFilter:
    since: datetime
    until: datetime
    department: str | None = None
    queue: str | None = None
    at_risk_minutes: int = DEFAULT_AT_RISK_MINUTES
    limit: int = 20
    process: str | None = None  # a process key: the activities report's; the others ignore it
    version: int | None = None  # a version of that process (default: the active one, else the newest)

    @classmethod
    def last(cls, span: timedelta = DEFAULT_RANGE, **given) -> ReportFilter:
        until = datetime.now(UTC)
        return cls(since=until - span, until=until, **given)

    @classmethod
    def parse(cls, query: Mapping[str, str], span: timedelta = DEFAULT_RANGE) -> ReportFilter:
        """From query parameters: department, queue, since, until (ISO-8601; default: until now, since span
        before until, the last 24 hours unless the report has a span of its own, span_of()), at_risk_minutes
        (due within this many minutes: at risk; default 60), limit (lists; default 20), process and version
        (the activities report)."""
        until = _moment(query, "until") or datetime.now(UTC)
        since = _moment(query, "since") or until - span
        if since >= until:
            raise BadFilter("since: must be before until")
        if until - since > MAX_RANGE:
            raise BadFilter(f"since/until: at most {MAX_RANGE.days} days apart")
        process = query.get("process") or None
        version = _whole(query, "version", 0, 1, MAX_VERSION) if query.get("version") else None
        if version is not None and process is None:
            raise BadFilter("version: give the process too")
        return cls(since=since, until=until, department=query.get("department") or None,
                   queue=query.get("queue") or None,
                   at_risk_minutes=_whole(query, "at_risk_minutes", DEFAULT_AT_RISK_MINUTES, 1, 7 * 24 * 60),
                   limit=_whole(query, "limit", 20, 1, MAX_LIMIT), process=process, version=version)

    def params(self) -> dict[str, Any]:
        return {"since": self.since, "until": self.until, "department": self.department, "queue": self.queue,
                "at_risk_minutes": self.at_risk_minutes, "limit": self.limit, "process": self.process,
                "version": self.version}

    def describe(self) -> dict[str, Any]:
        described = {"since": self.since.isoformat(), "until": self.until.isoformat(), "department": self.department,
                     "queue": self.queue, "atRiskMinutes": self.at_risk_minutes}
        if self.process is not None:
            described |= {"process": self.process, "version": self.version}
        return described


FIRST_YEAR, LAST_YEAR = 1970, 9998


def _moment(query: Mapping[str, str], name: str) -> datetime | None:
    value = query.get(name)
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise BadFilter(f"{name}: an ISO-8601 date-time, e.g. 2026-11-25T08:00:00Z") from None
    if moment.tzinfo is None:
        raise BadFilter(f"{name}: give a time zone (Z or +hh:mm), or the hours are ambiguous")
    # Far enough from datetime's year 1 and 9999 that the default range and a time zone cannot overflow.
    if not FIRST_YEAR <= moment.year <= LAST_YEAR:
        raise BadFilter(f"{name}: a date between the years {FIRST_YEAR} and {LAST_YEAR}")
    return moment


def _whole(query: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    value = query.get(name)
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        number = low - 1
    if not low <= number <= high:
        raise BadFilter(f"{name}: a whole number from {low} to {high}")
    return number


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return value


async def _rows(conn: AsyncConnection, statement, where: ReportFilter) -> list[dict[str, Any]]:
    result = await conn.execute(statement, where.params())
    return [{key: _plain(value) for key, value in row.items()} for row in result.mappings()]


async def queues(conn: AsyncConnection, where: ReportFilter) -> dict[str, Any]:
    """Per queue and per department: live work by state, SLA breaches, tasks at risk, the oldest waiting,
    and completions in the range with the share that missed the due date."""
    rows = await _rows(conn, SQL.queues, where)
    departments: dict[str | None, dict[str, Any]] = {}
    for row in rows:
        dept = departments.setdefault(row["department_code"], {
            "department_code": row["department_code"], "department_name": row["department_name"],
            "queues": 0, "open_tasks": 0, "claimed_tasks": 0, "delegated_tasks": 0, "escalated_tasks": 0,
            "breached_tasks": 0, "at_risk_tasks": 0, "completed_in_range": 0, "completed_late_in_range": 0})
        dept["queues"] += 1
        for key in ("open_tasks", "claimed_tasks", "delegated_tasks", "escalated_tasks", "breached_tasks",
                    "at_risk_tasks", "completed_in_range", "completed_late_in_range"):
            dept[key] += row[key]
    return {"queues": rows, "departments": list(departments.values())}


async def throughput(conn: AsyncConnection, where: ReportFilter) -> dict[str, Any]:
    """Tasks created and completed per hour (completed late: after their due date); every hour of the
    range is listed, empty ones with zeros."""
    hours = await _rows(conn, SQL.throughput, where)
    return {"hours": hours, "totals": {key: sum(h[key] for h in hours)
                                       for key in ("created", "completed", "completed_late")}}


async def age(conn: AsyncConnection, where: ReportFilter) -> dict[str, Any]:
    """Live tasks by how long they have waited, in all and per queue."""
    buckets: dict[int, dict[str, Any]] = {}
    for row in await _rows(conn, SQL.age, where):
        bucket = buckets.setdefault(row["bucket"], {
            "label": row["label"], "from_hours": row["from_hours"], "to_hours": row["to_hours"],
            "tasks": 0, "by_queue": {}})
        if row["queue_name"] is not None:
            bucket["tasks"] += row["tasks"]
            bucket["by_queue"][row["queue_name"]] = row["tasks"]
    return {"buckets": [buckets[key] for key in sorted(buckets)]}


async def escalations(conn: AsyncConnection, where: ReportFilter) -> dict[str, Any]:
    """By escalation level: live tasks at that level now, and escalations to it made in the range."""
    return {"levels": await _rows(conn, SQL.escalations, where)}


async def workload(conn: AsyncConnection, where: ReportFilter) -> dict[str, Any]:
    """Per user (most loaded first, up to limit): tasks held now, how many of them overdue, completed in
    the range and the mean handling time from claim to completion."""
    return {"users": await _rows(conn, SQL.workload, where)}


async def processes(conn: AsyncConnection, where: ReportFilter) -> dict[str, Any]:
    """Per process key: instances started in the range, active now, completed in the range with mean and
    95th-percentile duration (department and queue do not apply)."""
    return {"processes": await _rows(conn, SQL.processes, where)}


async def activities(conn: AsyncConnection, where: ReportFilter) -> dict[str, Any]:
    """Per activity of one process version (process, version; default the active one, else the newest) or,
    without process, of every process's active version: live tasks there now (open, claimed, delegated),
    SLA breached and at risk (as in the queues report), the oldest waiting, and completed there in the range
    with the mean time spent there (created to completed). Department and queue do not apply."""
    chosen: dict[str, Any] | None = None
    versions: list[dict[str, Any]] = []
    if where.process is not None:
        versions = await _rows(conn, SQL.process_versions, where)
        if not versions:
            raise UnknownProcess(f"process: no process {where.process!r}")
        if where.version is None:
            chosen = next((v for v in versions if v["is_active"]), versions[0])
            where = replace(where, version=chosen["process_version"])
        else:
            chosen = next((v for v in versions if v["process_version"] == where.version), None)
            if chosen is None:
                raise UnknownProcess(f"version: process {where.process!r} has no version {where.version}")
    return {"process": chosen, "versions": versions, "activities": await _rows(conn, SQL.activities, where)}


async def oldest(conn: AsyncConnection, where: ReportFilter) -> dict[str, Any]:
    """The live tasks most in need of attention (up to limit): overdue, then due soonest, then oldest."""
    return {"tasks": await _rows(conn, SQL.oldest, where)}


async def mirror(conn: AsyncConnection, where: ReportFilter) -> dict[str, Any]:
    """Mirror health: how soon pushed changes become readable, parked events, the reconciler's last
    passes, and the repairs it made. Instances and tasks repaired outside a backfill are changes the
    reconciler saw before a push brought them: pushes lost, or slower than the reconciler under load
    (the engine's own count of dropped pushes is in `emitter`, added over HTTP by emitter())."""
    events = (await _rows(conn, SQL.mirror_events, where))[0]
    events["parked_total"] = (await conn.execute(SQL.mirror_parked_total)).scalar_one()
    repairs = await _rows(conn, SQL.mirror_repairs, where)
    return {"events": events, "reconciler": await _rows(conn, SQL.mirror_reconciler, where),
            "repairs": repairs,
            "repaired_outside_backfill": sum(r["entities"] for r in repairs if r["pass_kind"] != "BACKFILL")}


CAPACITY_SPAN = timedelta(days=30)
CAPACITY_HEADROOM = Fraction(5, 4)
CAPACITY_STEP = 5
CAPACITY_RULE = (f"the peak backlog (the highest backlog at the range's start or at the end of any of its days) times "
                 f"{float(CAPACITY_HEADROOM)}, or the tasks open now if that is more, rounded up to a multiple of "
                 f"{CAPACITY_STEP}; at least {CAPACITY_STEP}")


def suggested_capacity(peak_backlog: int, open_now: int) -> tuple[int, str]:
    """CAPACITY_RULE: the suggestion and what set it ("peak backlog", "open now", or "minimum")."""
    from_peak = math.ceil(peak_backlog * CAPACITY_HEADROOM)
    need, basis = max((from_peak, "peak backlog"), (open_now, "open now"), (1, "minimum"), key=lambda n: n[0])
    return -(-need // CAPACITY_STEP) * CAPACITY_STEP, basis


def _slope(points: list[tuple[Fraction, int]]) -> Fraction:
    """The least-squares slope of y over x (0 when every x is the same)."""
    n = len(points)
    mean_x = sum((x for x, _ in points), Fraction(0)) / n
    mean_y = Fraction(sum(y for _, y in points), n)
    spread = sum((x - mean_x) ** 2 for x, _ in points)
    return sum(((x - mean_x) * (y - mean_y) for x, y in points), Fraction(0)) / spread if spread else Fraction(0)


async def capacity(conn: AsyncConnection, where: ReportFilter) -> dict[str, Any]:
    """The capacity review (default range: the last 30 days), per active queue: arrivals (tasks created),
    completions and cancellations per UTC day of the range (whole hours; the first and last day may be partial)
    and in all; the backlog (live tasks) at the start and end of the range and at the end of each day (net per
    day: arrivals - completions - cancellations), its peak and its trend (the least-squares slope of the
    backlog at those day boundaries, in tasks per day, against time; rising, falling or flat to two decimals);
    live tasks now against max_capacity (utilisation); the mean handling time of the tasks completed in the
    range (created to completed, as the queues report's); and suggestedCapacity, by the rule: the peak backlog
    times 1.25, or the tasks open now if that is more, rounded up to a multiple of 5, at least 5. A task moved
    to another queue counts as that queue's from its creation, as in the hourly summary."""
    rows = await _rows(conn, SQL.capacity, where)
    found = []
    for _, group in itertools.groupby(rows, key=lambda row: row["queue_name"]):
        days = list(group)
        q = days[0]
        net = [d["arrivals"] - d["completions"] - d["cancellations"] for d in days]
        backlog_end = q["backlog_end"]
        backlogs = list(itertools.accumulate(net, initial=backlog_end - sum(net)))  # the start, then each day's end
        start = datetime.fromisoformat(days[0]["day_start"])
        at = [start] + [datetime.fromisoformat(d["day_end"]) for d in days]
        slope = _slope([(Fraction(int((moment - start).total_seconds()), 86400), backlog)
                        for moment, backlog in zip(at, backlogs, strict=True)])
        rounded = round(slope, 2)
        suggested, basis = suggested_capacity(max(backlogs), q["open_now"])
        found.append({
            "queueName": q["queue_name"], "departmentCode": q["department_code"],
            "departmentName": q["department_name"], "maxCapacity": q["max_capacity"], "slaMinutes": q["sla_minutes"],
            "openNow": q["open_now"], "utilisation": round(q["open_now"] / q["max_capacity"], 4),
            "arrivals": sum(d["arrivals"] for d in days), "completions": sum(d["completions"] for d in days),
            "cancellations": sum(d["cancellations"] for d in days),
            "backlogStart": backlogs[0], "backlogEnd": backlog_end, "backlogPeak": max(backlogs),
            "backlogSlopePerDay": float(round(slope, 4)),
            "trend": "rising" if rounded > 0 else "falling" if rounded < 0 else "flat",
            "meanHandlingHours": q["mean_handling_hours"],
            "suggestedCapacity": suggested, "suggestedFrom": basis,
            "days": [{"day": d["day"], "start": d["day_start"], "end": d["day_end"], "arrivals": d["arrivals"],
                      "completions": d["completions"], "cancellations": d["cancellations"], "net": n,
                      "backlog": backlog}
                     for d, n, backlog in zip(days, net, backlogs[1:], strict=True)]})
    return {"rule": CAPACITY_RULE, "headroom": float(CAPACITY_HEADROOM), "roundTo": CAPACITY_STEP, "queues": found}


EMITTER_FIELDS = ("sentEvents", "sentBatches", "sentPosts", "droppedEvents", "droppedBatches", "queueDepth",
                  "failedAttempts", "lastError", "lastErrorAt", "paused")


async def emitter(client: FlowableClient, timeout_s: float = 2.0) -> dict[str, Any]:
    """The engine's webhook emitter counters since the engine started (sent, dropped, queued), or why
    they could not be read: the one place that knows for certain whether pushes were dropped."""
    try:
        async with asyncio.timeout(timeout_s):
            stats = await client.emitter_stats()
    except (EngineUnavailable, FlowableError, TimeoutError) as err:
        return {"reachable": False, "error": str(err) or f"no answer within {timeout_s} s"}
    return {"reachable": True, **{key: stats.get(key) for key in EMITTER_FIELDS}}


Report = Callable[[AsyncConnection, ReportFilter], Awaitable[dict[str, Any]]]
REPORTS: dict[str, Report] = {report.__name__: report for report in (
    queues, throughput, age, escalations, workload, processes, oldest, mirror, activities, capacity)}
PROCESS_MAP_ONLY = frozenset({"activities"})  # drawn on /dashboard/processes/{key}, not on /dashboard
# Reports whose range, when none is given, is not the last 24 hours; the dashboard shows them over this span too.
REPORT_SPANS: dict[str, timedelta] = {"capacity": CAPACITY_SPAN}


def span_of(name: str) -> timedelta:
    """How far back a report reaches when the request gives no since."""
    return REPORT_SPANS.get(name, DEFAULT_RANGE)


async def run(db: AsyncEngine, name: str, where: ReportFilter) -> dict[str, Any]:
    """One report; BadFilter for a department or queue that does not exist (a typo should not read as
    'no work')."""
    async with db.connect() as conn:
        known = (await conn.execute(SQL.filter_names_known, where.params())).one()
        if not known.department_known:
            raise BadFilter(f"department: no department {where.department!r}")
        if not known.queue_known:
            raise BadFilter(f"queue: no queue {where.queue!r}")
        return {"filter": where.describe(), **await REPORTS[name](conn, where)}


async def run_all(db: AsyncEngine, where: ReportFilter) -> dict[str, dict[str, Any]]:
    """Every report of the dashboard on one connection and one snapshot (its figures agree with each other).
    A report with a span of its own (REPORT_SPANS: capacity) covers that span up to where.until instead."""
    async with db.connect() as conn:
        await conn.execute(ONE_SNAPSHOT)
        return {name: await report(conn, replace(where, since=where.until - REPORT_SPANS[name])
                                   if name in REPORT_SPANS else where)
                for name, report in REPORTS.items() if name not in PROCESS_MAP_ONLY}


async def read_replica(primary: AsyncEngine, replica: AsyncEngine) -> dict[str, Any] | None:
    """How far the read replica (DATABASE_READ_URL) the reports come from trails the primary: WAL bytes not yet
    replayed, and how long ago it replayed the primary's last transaction (which also grows while the primary
    is idle). None without a replica; {"error": ...} when one of the two does not answer."""
    if replica is primary:
        return None
    try:
        async with primary.connect() as conn:
            written = (await conn.execute(SQL.primary_wal_position)).scalar_one()
        async with replica.connect() as conn:
            state = (await conn.execute(SQL.replica_position)).one()
    except (SQLAlchemyError, OSError) as err:
        return {"error": str(err).splitlines()[0]}
    return {"in_recovery": state.in_recovery, "replayed_lsn": state.replayed_lsn,
            "bytes_behind": max(0, _lsn(written) - _lsn(state.replayed_lsn)) if state.replayed_lsn else None,
            "last_replay_seconds_ago": (round(float(state.replay_age_s), 3)
                                        if state.replay_age_s is not None else None)}


def _lsn(position: str) -> int:
    high, low = position.split("/")
    return (int(high, 16) << 32) + int(low, 16)


async def department_codes(db: AsyncEngine) -> list[str]:
    async with db.connect() as conn:
        return list((await conn.execute(SQL.department_codes)).scalars())
