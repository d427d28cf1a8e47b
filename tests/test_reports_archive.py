"""Reports over archived ranges (migration 0025, bridge/db/queries/reports.sql): every report gives the same
figures before and after bridge/archive.py moves the range's work out of the hot tables, whether it answers
from the hourly summaries (queues, throughput, capacity's arrivals and completions) or from the rows, hot and
archived together (escalations, workload, processes, activities, capacity's cancellations); the live figures
(age, oldest, the live columns) never see archived work, which is always ended."""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text

from bridge import archive, reports
from bridge.reports import ReportFilter
from tests import seed

RETENTION_DAYS = 365
_ids = itertools.count(1)


@dataclass(frozen=True)
class Moments:
    """When the world's instances ended and the two ranges reported on, from the moment a test lays it down."""

    now: datetime
    oldest_end: datetime  # ~450 days ago: its history month is made, and moves to the archive whole
    old_end: datetime     # its history stays in the DEFAULT partition: moved row by row
    later_end: datetime   # due too, but after the old window: capacity's backlog at its end
    recent_end: datetime  # not due: stays hot
    old_window: ReportFilter
    whole_window: ReportFilter

    @classmethod
    def at(cls, now: datetime) -> Moments:
        # noon on the 15th of the UTC month 15 months back: a whole instance fits in that month
        index = now.year * 12 + now.month - 1 - 15
        oldest_end = datetime(index // 12, index % 12 + 1, 15, 12, tzinfo=UTC)
        since = oldest_end - timedelta(days=10)
        return cls(now=now, oldest_end=oldest_end, old_end=now - timedelta(days=400),
                   later_end=now - timedelta(days=370), recent_end=now - timedelta(days=10),
                   old_window=ReportFilter(since=since, until=now - timedelta(days=385)),
                   whole_window=ReportFilter(since=since, until=now + timedelta(hours=1)))


# mirror: engine events and repairs, none of them archived work (archiving prunes the inbox, by design)
COMPARED = sorted(set(reports.REPORTS) - {"mirror"})


async def _scalar(conn, query: str, params=None):
    return (await (await conn.execute(query, params)).fetchone())[0]


async def _history(conn, task_id: str, pid: str, action: str, at: datetime, by: str = "w1",
                   level: int | None = None) -> None:
    data = json.dumps({"escalation_level": level} if level is not None else {})
    await conn.execute(
        "INSERT INTO flowable.task_history (task_id, process_instance_id, action_type, action_by, action_at, "
        "action_data) VALUES (%s, %s, %s, %s, %s, %s)", [task_id, pid, action, by, at, data])


async def _case(conn, workflow_id: int, at: Moments, *, ended: datetime | None, status: str = "COMPLETED",
                tasks: list[dict[str, Any]]) -> dict:
    """An instance started three days before it ended (or now, running) with the tasks given, their history,
    variables and case routing. A task: status, queue (Q_ARCH), activity (review), assignee, by (completed by),
    created (hours after the start), claimed, done and due (hours after created), escalations (the levels it was
    escalated to, an hour apart after created) and level (its escalation level now)."""
    started = (ended or at.now) - timedelta(days=3)
    pid = await seed.instance(conn, workflow_id, status=status if ended else "ACTIVE", started_at=started,
                              completed_at=ended)
    case_id = next(_ids) + 20_000
    await conn.execute("UPDATE flowable.process_instances SET case_id = %s WHERE process_instance_id = %s",
                       [case_id, pid])
    task_ids = []
    for spec in tasks:
        created = started + timedelta(hours=spec.get("created", 1))
        done = spec.get("done")
        finished = created + timedelta(hours=done) if done is not None else None
        claimed = created + timedelta(hours=spec["claimed"]) if "claimed" in spec else None
        due = created + timedelta(hours=spec["due"]) if "due" in spec else None
        task_id = await seed.task(conn, pid, spec.get("queue", "Q_ARCH"), status=spec["status"],
                                  created_at=created, claimed_at=claimed, completed_at=finished, due_date=due,
                                  assignee=spec.get("assignee"), completed_by=spec.get("by"),
                                  escalation_level=spec.get("level", 0), candidate_groups=["ARCHIVIST"])
        await conn.execute("UPDATE flowable.workflow_tasks SET task_definition_key = %s, task_name = %s "
                           "WHERE task_id = %s", [spec.get("activity", "review"),
                                                  spec.get("activity", "review").title(), task_id])
        await _history(conn, task_id, pid, "CREATE", created)
        for n, level in enumerate(spec.get("escalations", ()), start=1):
            await _history(conn, task_id, pid, "ESCALATE", created + timedelta(hours=n), by="system", level=level)
        if finished is not None:
            await _history(conn, task_id, pid, "COMPLETE" if spec["status"] == "COMPLETED" else "CANCEL",
                           finished, by=spec.get("by") or "system")
        task_ids.append(task_id)
    await conn.execute("INSERT INTO flowable.workflow_variables (process_instance_id, variable_name, variable_type, "
                       "variable_value) VALUES (%s, 'caseType', 'STRING', 'A')", [pid])
    await conn.execute("INSERT INTO onecms.case_workflow_mapping (case_id, process_instance_id, workflow_type, "
                       "initiated_by) VALUES (%s, %s, 'onecms', 'test')", [case_id, pid])
    return {"id": pid, "tasks": task_ids}


@pytest.fixture
async def world(conn):
    """Queues Q_ARCH (department ARCH) and Q_OTHER, users w1 and w2, process onecms; work ended long ago (due
    for archiving), ended recently and running."""
    at = Moments.at(datetime.now(UTC))
    department = await seed.department(conn, "ARCH", "Archive")
    await seed.queue(conn, "Q_ARCH", department_id=department, sla_minutes=240)
    await seed.queue(conn, "Q_OTHER", department_id=department)
    role_id = await seed.role(conn, "ARCHIVIST", queue_name="Q_ARCH")
    for user in ("w1", "w2"):
        await seed.user(conn, user, first=user.upper(), last="Worker")
        await seed.grant(conn, user, role_id)
    onecms = await seed.definition(conn, "onecms")
    await conn.execute("UPDATE flowable.workflow_definitions SET metadata = %s WHERE workflow_id = %s",
                       [json.dumps({"userTasks": ["review", "approve", "triage"]}), onecms])
    # the oldest instance's history month is a partition of its own, so archiving moves it whole (an earlier
    # test's archiving moved it out of the hot history: it is made again)
    await conn.execute("SELECT flowable.ensure_history_partition('flowable.task_history', %s)",
                       [at.oldest_end.date()])

    old = [
        await _case(conn, onecms, at, ended=at.oldest_end, tasks=[
            {"status": "COMPLETED", "by": "w1", "assignee": "w1", "created": 1, "claimed": 1, "done": 5, "due": 4,
             "escalations": [1, 2]},
            {"status": "COMPLETED", "by": "w2", "assignee": "w2", "activity": "approve", "created": 10, "done": 2,
             "due": 8, "queue": "Q_OTHER"},
            {"status": "CANCELLED", "activity": "triage", "created": 20, "done": 30, "escalations": [1]}]),
        await _case(conn, onecms, at, ended=at.old_end, tasks=[
            {"status": "COMPLETED", "by": "w1", "assignee": "w1", "created": 2, "claimed": 3, "done": 7,
             "escalations": [1]},
            {"status": "COMPLETED", "by": "w1", "assignee": "w1", "activity": "approve", "created": 30, "done": 1}]),
        await _case(conn, onecms, at, ended=at.old_end + timedelta(days=1), status="TERMINATED", tasks=[
            {"status": "CANCELLED", "created": 5, "done": 40}]),
        await _case(conn, onecms, at, ended=at.later_end, tasks=[
            {"status": "CANCELLED", "created": 1, "done": 60},
            {"status": "COMPLETED", "by": "w2", "assignee": "w2", "created": 3, "done": 4, "escalations": [1]}]),
    ]
    kept = [
        await _case(conn, onecms, at, ended=at.recent_end, tasks=[
            {"status": "COMPLETED", "by": "w2", "assignee": "w2", "created": 1, "done": 3, "escalations": [1]},
            {"status": "CANCELLED", "activity": "triage", "created": 2, "done": 5}]),
        # running: live tasks well inside their age buckets and SLA states
        await _case(conn, onecms, at, ended=None, tasks=[
            {"status": "COMPLETED", "by": "w1", "assignee": "w1", "created": 1, "done": 2},
            {"status": "CLAIMED", "assignee": "w1", "created": 40, "due": 28, "escalations": [1], "level": 1},
            {"status": "OPEN", "activity": "approve", "created": 69.5, "due": 72},
            {"status": "OPEN", "queue": "Q_OTHER", "activity": "triage", "created": 71.8}]),
    ]
    return {"at": at, "old": old, "kept": kept}


async def _every_report(db, at: Moments) -> dict[str, Any]:
    """Each compared report over the old window and the whole one; activities also for process onecms."""
    figures: dict[str, Any] = {}
    async with db.connect() as c:
        for window_name, window in (("old", at.old_window), ("whole", at.whole_window)):
            for name in COMPARED:
                figures[f"{name}/{window_name}"] = await reports.REPORTS[name](c, window)
            figures[f"activities/{window_name}/onecms"] = await reports.activities(
                c, ReportFilter(since=window.since, until=window.until, process="onecms"))
    return figures


async def _archive_the_old_work(conn, db, world) -> None:
    report = await archive.run(db, None, retention_days=RETENTION_DAYS)
    assert report.instances == len(world["old"])
    # the oldest instance's history month went whole, the rest row by row
    assert report.months_moved == [f"task_history_p{world['at'].oldest_end:%Y_%m}"]
    old_ids = [case["id"] for case in world["old"]]
    for table in ("process_instances", "workflow_tasks", "task_history"):
        assert await _scalar(conn, f"SELECT count(*) FROM flowable.{table} "
                                   "WHERE process_instance_id = ANY(%s)", [old_ids]) == 0, table
        assert await _scalar(conn, f"SELECT count(*) FROM archive.{table} "
                                   "WHERE process_instance_id = ANY(%s)", [old_ids]) > 0, table
    kept_ids = [case["id"] for case in world["kept"]]
    assert await _scalar(conn, "SELECT count(*) FROM flowable.process_instances "
                               "WHERE process_instance_id = ANY(%s)", [kept_ids]) == len(kept_ids)


def _levels(body: dict) -> dict[int, tuple[int, int]]:
    return {row["level"]: (row["live_tasks"], row["escalations_in_range"]) for row in body["levels"]}


def _queue(body: dict, name: str) -> dict:
    return next(q for q in body["queues"] if (q.get("queue_name") or q.get("queueName")) == name)


def _activity(body: dict, activity_id: str) -> dict:
    return next(a for a in body["activities"] if a["activity_id"] == activity_id)


# What each report counts of the archived work before it is archived (so that the same figures after it mean
# the archived rows were counted, not that there was nothing to count), worked out from the world above.
def _counts_archived_work(name: str, before: dict[str, Any]) -> None:
    old, whole = before[f"{name}/old"], before[f"{name}/whole"]
    if name == "queues":
        assert _queue(old, "Q_ARCH")["completed_in_range"] == 3 and _queue(old, "Q_OTHER")["completed_in_range"] == 1
        assert _queue(old, "Q_ARCH")["completed_late_in_range"] == 1
        assert (_queue(whole, "Q_ARCH")["open_tasks"], _queue(whole, "Q_ARCH")["claimed_tasks"]) == (1, 1)
    elif name == "throughput":
        assert old["totals"]["completed"] == 4 and whole["totals"]["completed"] == 7
    elif name == "escalations":
        assert _levels(old) == {1: (1, 3), 2: (0, 1)}
        assert _levels(whole) == {1: (1, 6), 2: (0, 1)}
    elif name == "workload":
        users = {u["user_id"]: u for u in old["users"]}
        assert (users["w1"]["completed_in_range"], users["w2"]["completed_in_range"]) == (3, 1)
        assert users["w1"]["avg_handling_hours"] == round((4 + 4 + 1) / 3, 4)
        whole_users = {u["user_id"]: (u["held_tasks"], u["completed_in_range"]) for u in whole["users"]}
        assert whole_users == {"w1": (1, 4), "w2": (0, 3)}
    elif name == "processes":
        row = old["processes"][0]
        assert (row["started_in_range"], row["active_instances"], row["completed_in_range"]) == (3, 1, 2)
        assert whole["processes"][0]["completed_in_range"] == 4 and whole["processes"][0]["started_in_range"] == 6
    elif name == "activities":
        for body in (old, before["activities/old/onecms"]):
            assert (_activity(body, "review")["completed_in_range"], _activity(body, "approve")["completed_in_range"],
                    _activity(body, "triage")["completed_in_range"]) == (2, 2, 0)
            assert _activity(body, "review")["completed_late_in_range"] == 1
        assert _activity(whole, "review")["completed_in_range"] == 5
        assert (_activity(whole, "review")["live_tasks"], _activity(whole, "approve")["live_tasks"]) == (1, 1)
    elif name == "capacity":
        queue, whole_queue = _queue(old, "Q_ARCH"), _queue(whole, "Q_ARCH")
        assert (queue["completions"], queue["cancellations"]) == (3, 2)
        # the backlog at the old window's end: live now, less later arrivals, plus later completions and
        # cancellations (archived ones among them)
        assert queue["backlogEnd"] == 0 and queue["backlogPeak"] > 0
        assert (whole_queue["cancellations"], whole_queue["openNow"], whole_queue["backlogEnd"]) == (4, 2, 2)
    elif name == "age":
        assert sum(b["tasks"] for b in whole["buckets"]) == 3
    elif name == "oldest":
        assert [t["status"] for t in whole["tasks"]] == ["CLAIMED", "OPEN", "OPEN"]
    else:
        raise AssertionError(f"no expectations for report {name}")


@pytest.mark.parametrize("name", COMPARED)
async def test_a_report_gives_the_same_figures_after_its_range_is_archived(conn, db, world, name):
    before = await _every_report(db, world["at"])
    _counts_archived_work(name, before)

    await _archive_the_old_work(conn, db, world)

    after = await _every_report(db, world["at"])
    for key in sorted(before):
        if key == name or key.startswith(f"{name}/"):
            assert after[key] == before[key], key


async def test_range_predicates_reach_the_summaries_and_the_archive_tables_indexes(conn, db, world):
    """Ended work in a range is read from the summaries (0028) by their keys, never from the archived rows;
    escalations made, read from the rows, reach the index 0025 made for them through the flattened view. No
    branch reads a whole table (sequential scans are turned off, so that the tiny tables here do not hide a
    missing index)."""
    await archive.run(db, None, retention_days=RETENTION_DAYS)
    expected = {
        "escalations": ["idx_archive_history_escalations"],
        "workload": ["task_work_stats_key"],
        "processes": ["process_work_stats_key"],
        "activities": ["task_work_stats_key"],
        "capacity": ["task_hourly_stats_pkey"],
    }
    async with db.connect() as c:
        await c.execute(text("SET LOCAL enable_seqscan = off"))
        await c.execute(text("SET LOCAL enable_bitmapscan = off"))
        for name, indexes in expected.items():
            statement = getattr(reports.SQL, name)
            plan = "\n".join(row[0] for row in await c.execute(text(f"EXPLAIN {statement.text}"),
                                                                 world["at"].old_window.params()))
            for index in indexes:
                # a partitioned index is scanned as its partitions' indexes: any of them will do
                tree = {index} | {row[0] for row in await c.execute(text(
                    "SELECT c.relname FROM pg_partition_tree(CAST(:index AS regclass)) t "
                    "JOIN pg_class c ON c.oid = t.relid"), {"index": f"flowable.{index}" if "_stats" in index
                                                                 else f"archive.{index}"})}
                assert any(f"using {found} on" in plan for found in tree), f"{name}: {index} not used\n{plan}"
            if name != "escalations":
                assert "idx_archive_" not in plan, f"{name} reads archived rows\n{plan}"
            read_whole = [line.strip() for line in plan.splitlines()
                          if "Seq Scan on" in line and any(table in line for table in (
                              "workflow_tasks", "process_instances", "task_history", "_stats"))]
            assert read_whole == [], f"{name}: {read_whole}\n{plan}"
