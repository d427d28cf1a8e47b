"""The capacity review (bridge/reports.py capacity(), /api/reports/capacity, the dashboard's "Capacity" panel) on
a workload laid down by hand in real PostgreSQL: every per-day figure, backlog, trend and suggestion is checked
against numbers worked out here from the rows inserted."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from fractions import Fraction

import jsonschema_rs
import pytest
from sqlalchemy import text

from bridge import auth, reports
from bridge.reports import ReportFilter, suggested_capacity
from bridge.web.openapi import DOCUMENT
from tests import seed
from tests.conftest import bridge_app
from tests.seed import hours, now

DAY = timedelta(days=1)


def midnight(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


async def capacity(db, since: datetime, until: datetime, *, time_zone: str | None = None, **given) -> dict:
    async with db.connect() as c:
        if time_zone is not None:  # as a server whose TimeZone is not UTC runs it
            await c.execute(text(f"SET LOCAL TIME ZONE '{time_zone}'"))
        return await reports.capacity(c, ReportFilter(since=since, until=until, **given))


async def set_capacity(conn, queue: str, max_capacity: int) -> None:
    await conn.execute("UPDATE flowable.workflow_queues SET max_capacity = %s WHERE queue_name = %s",
                       [max_capacity, queue])


async def three_queues(conn) -> str:
    """CLAIMS (intake, review), FRAUD (fraud), and an inactive queue; returns a process instance id."""
    claims = await seed.department(conn, "CLAIMS", "Claims")
    fraud = await seed.department(conn, "FRAUD", "Fraud")
    for name, dept in [("intake", claims), ("review", claims), ("fraud", fraud)]:
        await seed.queue(conn, name, department_id=dept, sla_minutes=60)
    await seed.queue(conn, "retired", department_id=claims, is_active=False)
    return await seed.instance(conn, await seed.definition(conn))


def slope(backlogs: list[int]) -> Fraction:
    """Least squares over whole days 0, 1, 2, ... (the test's ranges start and end at midnight)."""
    n = len(backlogs)
    mean_x, mean_y = Fraction(n - 1, 2), Fraction(sum(backlogs), n)
    return (sum((x - mean_x) * (y - mean_y) for x, y in enumerate(backlogs))
            / sum((x - mean_x) ** 2 for x in range(n)))


async def lay_down_five_days(conn, pid: str, d0: datetime) -> dict[str, tuple[datetime, datetime]]:
    """The workload of the known-workload test over the days d0 .. d0 + 4 (the range) and after it; returns
    intake's tasks completed in the range, (created, completed), for the mean handling time."""
    d = [d0 + n * DAY for n in range(6)]  # d[5]: the first day after the range

    async def task(queue: str, created: datetime, status: str = "OPEN", done: datetime | None = None) -> str:
        return await seed.task(conn, pid, queue, status=status, created_at=created, completed_at=done,
                               assignee="ann" if status == "CLAIMED" else None,
                               completed_by="ann" if status == "COMPLETED" else None)

    completed_in_range: dict[str, tuple[datetime, datetime]] = {}

    async def done(queue: str, created: datetime, finished: datetime) -> None:
        task_id = await task(queue, created, "COMPLETED", finished)
        if queue == "intake" and d0 <= finished < d[5]:
            completed_in_range[task_id] = (created, finished)

    # intake: before the range, 3 live at its start (P1 open, P2 claimed, P3 completed on day 1)
    await task("intake", d0 - 2 * DAY)                                      # P1, open now
    await task("intake", d0 - 2 * DAY + hours(1), "CLAIMED")                # P2, claimed now
    await done("intake", d0 - DAY, d[1] + hours(10))                        # P3
    await done("intake", d0 - 3 * DAY, d0 - 2 * DAY)                        # P4: in and out before the range
    await task("intake", d0 - 3 * DAY, "CANCELLED", d0 - DAY)               # P5: likewise, cancelled
    await conn.execute("SELECT flowable.fold_task_stats()")  # the summary holds these; the rest stay pending
    # day 0: 4 in, 1 out
    await done("intake", d[0] + hours(9), d[0] + hours(12))                 # A1
    await done("intake", d[0] + hours(10), d[1] + hours(14))                # A2
    await task("intake", d[0] + hours(11), "CANCELLED", d[1] + hours(16))   # A3
    await done("intake", d[0] + hours(15), d[2] + hours(9))                 # A4
    # day 1: 3 in, P3 and A2 completed, A3 cancelled
    await done("intake", d[1] + hours(8), d[2] + hours(11))                 # A5
    await done("intake", d[1] + hours(9), d[3] + hours(8))                  # A6
    await done("intake", d[1] + hours(13), d[3] + hours(9))                 # A7
    # day 2: 5 in, A4 and A5 completed
    await done("intake", d[2] + hours(1), d[3] + hours(10))                 # A8
    await done("intake", d[2] + hours(2), d[3] + hours(23.5))               # A9
    await done("intake", d[2] + hours(3), d[4] + hours(7))                  # A10
    await task("intake", d[2] + hours(4), "CANCELLED", d[4] + hours(8))     # A11
    await done("intake", d[2] + hours(23.9), d[5] + hours(1))               # A12: completed after the range
    # day 3: 1 in, A6 .. A9 completed
    await task("intake", d[3] + hours(12), "CANCELLED", d[5] + hours(5))    # A13: cancelled after the range
    # day 4: A10 completed, A11 cancelled
    # after the range
    await task("intake", d[5] + hours(2))                                   # A14, open now
    await done("intake", d[5] + hours(3), d[5] + hours(4))                  # A15

    # review: 6 waiting at the start, worked down; one arrival on day 2; 10 arrive after the range, still open
    for finished in (d[1] + hours(3), d[1] + hours(4), d[3] + hours(5), d[3] + hours(6), d[4] + hours(7)):
        await done("review", d0 - DAY, finished)
    await task("review", d0 - DAY)
    await task("review", d[2] + hours(6), "DELEGATED")
    for n in range(10):
        await task("review", d[5] + hours(1) + timedelta(minutes=n))

    # the inactive queue's work is in no report
    await task("retired", d[1])
    return completed_in_range


async def test_a_known_workload_per_day_backlog_trend_and_suggestion(conn, db):
    pid = await three_queues(conn)
    await set_capacity(conn, "intake", 10)
    await set_capacity(conn, "review", 8)
    d0 = midnight(now()) - 7 * DAY
    until = d0 + 5 * DAY
    handled = await lay_down_five_days(conn, pid, d0)

    body = await capacity(db, d0, until)
    assert (body["headroom"], body["roundTo"]) == (1.25, 5) and "1.25" in body["rule"]
    assert [q["queueName"] for q in body["queues"]] == ["intake", "review", "fraud"]  # CLAIMS, FRAUD; not retired
    intake, review, fraud = body["queues"]

    # intake, day by day: (arrivals, completions, cancellations, net, backlog at the day's end)
    assert [(x["day"], x["arrivals"], x["completions"], x["cancellations"], x["net"], x["backlog"])
            for x in intake["days"]] == [
        ((d0 + n * DAY).strftime("%Y-%m-%d"), *figures) for n, figures in enumerate([
            (4, 1, 0, 3, 6), (3, 2, 1, 0, 6), (5, 2, 0, 3, 9), (1, 4, 0, -3, 6), (0, 1, 1, -2, 4)])]
    assert [(datetime.fromisoformat(x["start"]), datetime.fromisoformat(x["end"])) for x in intake["days"]] == [
        (d0 + n * DAY, d0 + (n + 1) * DAY) for n in range(5)]
    assert (intake["arrivals"], intake["completions"], intake["cancellations"]) == (13, 10, 2)
    # live: P1, P2 at the start and P3 (completed on day 1); at the end P1, P2, A12 and A13 (they leave later)
    assert (intake["backlogStart"], intake["backlogEnd"], intake["backlogPeak"]) == (3, 4, 9)
    backlogs = [3, 6, 6, 9, 6, 4]
    assert slope(backlogs) == Fraction(8, 35)
    assert intake["backlogSlopePerDay"] == pytest.approx(8 / 35, abs=5e-5) and intake["trend"] == "rising"
    assert (intake["openNow"], intake["maxCapacity"], intake["utilisation"]) == (3, 10, 0.3)  # P1, P2, A14
    # peak 9 x 1.25 = 11.25 -> 12 -> 15, more than the 3 open now
    assert (intake["suggestedCapacity"], intake["suggestedFrom"]) == (15, "peak backlog")
    mean_hours = sum((done - created).total_seconds() for created, done in handled.values()) / len(handled) / 3600
    assert len(handled) == 10 and intake["meanHandlingHours"] == pytest.approx(mean_hours, abs=1e-4)
    assert (intake["departmentCode"], intake["departmentName"], intake["slaMinutes"]) == ("CLAIMS", "Claims", 60)

    # review: 6 at the start worked down to 2; the 10 that arrived after the range are open now
    assert [(x["arrivals"], x["completions"], x["cancellations"], x["backlog"]) for x in review["days"]] == [
        (0, 0, 0, 6), (0, 2, 0, 4), (1, 0, 0, 5), (0, 2, 0, 3), (0, 1, 0, 2)]
    assert (review["backlogStart"], review["backlogEnd"], review["backlogPeak"]) == (6, 2, 6)
    assert slope([6, 6, 4, 5, 3, 2]) == Fraction(-4, 5)
    assert review["backlogSlopePerDay"] == -0.8 and review["trend"] == "falling"
    assert (review["openNow"], review["utilisation"]) == (12, 1.5)
    # peak 6 x 1.25 = 7.5 -> 8, less than the 12 open now -> 15
    assert (review["suggestedCapacity"], review["suggestedFrom"]) == (15, "open now")

    # fraud: nothing at all
    assert [(x["arrivals"], x["completions"], x["cancellations"], x["net"], x["backlog"])
            for x in fraud["days"]] == [(0, 0, 0, 0, 0)] * 5
    assert (fraud["backlogStart"], fraud["backlogEnd"], fraud["backlogPeak"], fraud["backlogSlopePerDay"],
            fraud["trend"], fraud["openNow"], fraud["utilisation"], fraud["meanHandlingHours"]) == \
        (0, 0, 0, 0, "flat", 0, 0, None)
    assert (fraud["suggestedCapacity"], fraud["suggestedFrom"]) == (5, "minimum")

    # Folding the pending changes into the summary changes nothing.
    await conn.execute("SELECT flowable.fold_task_stats()")
    assert await capacity(db, d0, until) == body


async def test_the_backlog_walk_agrees_with_a_recount_at_every_boundary(conn, db):
    """Each backlog the report gives (walked back from now) equals counting the tasks live at that moment."""
    pid = await three_queues(conn)
    d0 = midnight(now()) - 7 * DAY
    await lay_down_five_days(conn, pid, d0)
    body = await capacity(db, d0, d0 + 5 * DAY)
    for q in body["queues"]:
        boundaries = [d0] + [datetime.fromisoformat(x["end"]) for x in q["days"]]
        shown = [q["backlogStart"]] + [x["backlog"] for x in q["days"]]
        counted = []
        for moment in boundaries:
            cur = await conn.execute(
                "SELECT count(*) FROM flowable.workflow_tasks WHERE queue_name = %s AND created_at < %s "
                "AND (completed_at IS NULL OR completed_at >= %s)", [q["queueName"], moment, moment])
            counted.append((await cur.fetchone())[0])
        assert shown == counted, q["queueName"]


async def test_partial_first_and_last_days_are_widened_to_whole_hours(conn, db):
    pid = await three_queues(conn)
    d0 = midnight(now()) - 5 * DAY
    since, until = d0 + timedelta(hours=6, minutes=30), d0 + 2 * DAY + timedelta(hours=3, minutes=15)
    await seed.task(conn, pid, "intake", created_at=d0 + hours(5.9))          # before the range: backlog
    await seed.task(conn, pid, "intake", created_at=d0 + hours(6.1))          # in the widened first hour
    await seed.task(conn, pid, "intake", created_at=d0 + DAY + hours(12))
    await seed.task(conn, pid, "intake", status="COMPLETED", created_at=d0 + DAY, completed_at=d0 + 2 * DAY + hours(1))
    await seed.task(conn, pid, "intake", created_at=d0 + 2 * DAY + hours(3.5))  # after until, in its hour: in
    await seed.task(conn, pid, "intake", created_at=d0 + 2 * DAY + hours(4.1))  # after the last hour: out
    await seed.task(conn, pid, "intake", status="CANCELLED", created_at=d0 + DAY + hours(2),
                    completed_at=d0 + 2 * DAY + hours(2))                     # cancelled in the last day
    await seed.task(conn, pid, "intake", status="CANCELLED", created_at=d0 + DAY + hours(1),
                    completed_at=d0 + 2 * DAY + hours(5))                     # that day too, but after the range

    [intake] = (await capacity(db, since, until, queue="intake"))["queues"]
    assert [(datetime.fromisoformat(x["start"]), datetime.fromisoformat(x["end"]), x["arrivals"],
             x["completions"], x["cancellations"], x["backlog"]) for x in intake["days"]] == [
        (d0 + hours(6), d0 + DAY, 1, 0, 0, 2),
        (d0 + DAY, d0 + 2 * DAY, 4, 0, 0, 6),
        (d0 + 2 * DAY, d0 + 2 * DAY + hours(4), 1, 1, 1, 5)]
    assert (intake["backlogStart"], intake["backlogEnd"], intake["openNow"]) == (1, 5, 5)
    # x in days from 06:00 on day 0: 0, 0.75, 1.75, 1.9167 (the last day ends at 04:00)
    xs = [Fraction(0), Fraction(3, 4), Fraction(7, 4), Fraction(23, 12)]
    ys = [1, 2, 6, 5]
    mx, my = sum(xs) / 4, Fraction(sum(ys), 4)
    expected = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum((x - mx) ** 2 for x in xs)
    assert intake["backlogSlopePerDay"] == pytest.approx(float(expected), abs=5e-5) and intake["trend"] == "rising"


async def test_days_are_utc_days_whatever_the_sessions_time_zone(conn, db):
    """A server whose TimeZone keeps summer time (Europe/London went to BST on 2025-03-30) gives the same UTC
    days and figures as one in UTC."""
    pid = await three_queues(conn)
    d0 = datetime(2025, 3, 28, tzinfo=UTC)
    for n in range(5):
        await seed.task(conn, pid, "intake", created_at=d0 + n * DAY + hours(12))
        await seed.task(conn, pid, "intake", created_at=d0 + n * DAY + hours(0.5))  # 00:30 UTC: just after midnight
    since, until = d0, d0 + 5 * DAY
    in_utc = await capacity(db, since, until, queue="intake")
    for zone in ("Europe/London", "America/New_York", "Asia/Kolkata"):
        elsewhere = await capacity(db, since, until, queue="intake", time_zone=zone)
        [a], [b] = in_utc["queues"], elsewhere["queues"]
        assert [(x["day"], datetime.fromisoformat(x["start"]), datetime.fromisoformat(x["end"]), x["arrivals"],
                 x["backlog"]) for x in b["days"]] == \
            [(x["day"], datetime.fromisoformat(x["start"]), datetime.fromisoformat(x["end"]), x["arrivals"],
              x["backlog"]) for x in a["days"]], zone
    [a] = in_utc["queues"]
    assert [(x["day"], x["arrivals"], x["backlog"]) for x in a["days"]] == [
        ((d0 + n * DAY).strftime("%Y-%m-%d"), 2, 2 * (n + 1)) for n in range(5)]
    assert [datetime.fromisoformat(x["end"]) - datetime.fromisoformat(x["start"]) for x in a["days"]] == [DAY] * 5


@pytest.mark.parametrize(("peak", "open_now", "expected"), [
    (0, 0, (5, "minimum")),
    (8, 0, (10, "peak backlog")),      # 10 exactly
    (4, 12, (15, "open now")),         # 5 from the peak, 12 open
    (4, 0, (5, "peak backlog")),       # 4 x 1.25 = 5 exactly
    (16, 0, (20, "peak backlog")),     # 20 exactly
    (9, 0, (15, "peak backlog")),      # 11.25 -> 12 -> 15
    (0, 10, (10, "open now")),         # a multiple of 5 open: no rounding
    (0, 11, (15, "open now")),
    (12, 15, (15, "peak backlog")),    # 12 x 1.25 = 15 = open now
    (40, 20, (50, "peak backlog")),
])
def test_suggested_capacity_rule(peak, open_now, expected):
    assert suggested_capacity(peak, open_now) == expected


def test_suggested_capacity_is_a_multiple_of_five_at_least_the_need():
    for peak in range(0, 60):
        for open_now in range(0, 60):
            suggested, _ = suggested_capacity(peak, open_now)
            need = max(Fraction(peak * 5, 4), open_now, 1)
            assert suggested % 5 == 0 and suggested >= 5 and need <= suggested < need + 5, (peak, open_now)


async def test_queue_and_department_filters_choose_the_queues(conn, db):
    pid = await three_queues(conn)
    d0 = midnight(now()) - 7 * DAY
    await lay_down_five_days(conn, pid, d0)
    until = d0 + 5 * DAY

    async def names(**given) -> list[str]:
        return [q["queueName"] for q in (await capacity(db, d0, until, **given))["queues"]]

    assert await names(queue="review") == ["review"]
    assert await names(department="CLAIMS") == ["intake", "review"]
    assert await names(department="FRAUD") == ["fraud"]
    assert await names(department="FRAUD", queue="intake") == []
    assert await names(queue="retired") == []  # inactive
    # the filter does not change a queue's figures
    everything = {q["queueName"]: q for q in (await capacity(db, d0, until))["queues"]}
    assert (await capacity(db, d0, until, queue="review"))["queues"] == [everything["review"]]

    [fraud] = (await capacity(db, d0, until, department="FRAUD"))["queues"]
    assert len(fraud["days"]) == 5 and all(x["arrivals"] == x["completions"] == x["cancellations"] == x["backlog"]
                                           == 0 for x in fraud["days"])
    assert (fraud["trend"], fraud["backlogSlopePerDay"]) == ("flat", 0)

    with pytest.raises(reports.BadFilter, match="^queue: no queue 'nope'"):
        await reports.run(db, "capacity", ReportFilter(since=d0, until=until, queue="nope"))


@pytest.fixture
async def ops_viewer_role(conn):
    """Migration 0018's OPS_VIEWER role back (emptying the tables took it)."""
    await conn.execute("INSERT INTO entitlements.workflow_roles (role_code, role_name, role_type) "
                       "VALUES ('OPS_VIEWER', 'Operations viewer', 'SYSTEM')")


async def token_of(db, user: str, *roles: str) -> str:
    async with db.begin() as c:
        await auth.add_user(c, user, roles=list(roles), granted_by="test")
        return await auth.create_token(c, user)


async def test_capacity_over_http_defaults_to_30_days_and_needs_ops_viewer(
        conn, db, db_url, aiohttp_client, ops_viewer_role):
    pid = await three_queues(conn)
    for n in range(7):
        await seed.task(conn, pid, "intake", created_at=now() - timedelta(days=3, hours=n))
    await seed.task(conn, pid, "intake", status="COMPLETED", created_at=now() - timedelta(days=40),
                    completed_at=now() - timedelta(days=2))
    ops, worker = await token_of(db, "ops", "OPS_VIEWER"), await token_of(db, "worker")
    client = await aiohttp_client(bridge_app(db_url))
    bearer = {"Authorization": f"Bearer {ops}"}

    assert (await client.get("/api/reports/capacity")).status == 401
    forbidden = await client.get("/api/reports/capacity", headers={"Authorization": f"Bearer {worker}"})
    assert forbidden.status == 403 and "OPS_VIEWER" in (await forbidden.json())["error"]
    for query in ("since=2026-02-01T00:00:00Z&until=2026-01-01T00:00:00Z",
                  "since=2026-01-01T00:00:00Z&until=2026-01-01T00:00:00Z"):
        bad = await client.get(f"/api/reports/capacity?{query}", headers=bearer)
        assert bad.status == 400 and (await bad.json())["error"].startswith("since:"), query
    typo = await client.get("/api/reports/capacity?queue=intak", headers=bearer)
    assert typo.status == 400 and (await typo.json())["error"] == "queue: no queue 'intak'"

    response = await client.get("/api/reports/capacity", headers=bearer)
    assert response.status == 200
    body = await response.json()
    since, until = (datetime.fromisoformat(body["filter"][k]) for k in ("since", "until"))
    assert until - since == timedelta(days=30) and until <= datetime.now(UTC)
    intake = next(q for q in body["queues"] if q["queueName"] == "intake")
    assert len(intake["days"]) in (30, 31)  # 31 when the range does not start at midnight: first and last partial
    assert datetime.fromisoformat(intake["days"][0]["start"]) == since.replace(minute=0, second=0, microsecond=0)
    assert (intake["arrivals"], intake["completions"], intake["backlogStart"], intake["backlogEnd"],
            intake["backlogPeak"], intake["openNow"]) == (7, 1, 1, 7, 8, 7)
    # the peak: the old task and the 7 new ones at the midnight between them and its completion; 8 x 1.25 = 10
    assert (intake["suggestedCapacity"], intake["suggestedFrom"]) == (10, "peak backlog")
    schema = DOCUMENT["paths"]["/api/reports/capacity"]["get"]["responses"]["200"]["content"]["application/json"]
    jsonschema_rs.validator_for(schema["schema"]).validate(body)

    given = await client.get("/api/reports/capacity?since=2026-01-01T00:00:00Z&until=2026-01-04T00:00:00Z"
                             "&department=FRAUD", headers=bearer)
    assert given.status == 200
    [fraud] = (await given.json())["queues"]
    assert [x["day"] for x in fraud["days"]] == ["2026-01-01", "2026-01-02", "2026-01-03"]


async def test_the_dashboard_shows_the_capacity_panel(conn, db, db_url, aiohttp_client, ops_viewer_role):
    pid = await three_queues(conn)
    await set_capacity(conn, "intake", 10)
    for n in range(9):  # 9 waiting: 9 x 1.25 = 11.25 -> 15
        await seed.task(conn, pid, "intake", created_at=now() - timedelta(days=2, hours=n))
    ops = await token_of(db, "ops", "OPS_VIEWER")
    client = await aiohttp_client(bridge_app(db_url))
    bearer = {"Authorization": f"Bearer {ops}"}

    page = await client.get("/dashboard", headers=bearer)
    assert page.status == 200
    html = await page.text()
    assert "Capacity (last 30 days)" in html
    row = re.search(r'<tr data-capacity-queue="intake">(.*?)</tr>', html, re.S)
    assert row is not None
    cells = dict(re.findall(r'data-field="(\w+)"[^>]*>([^<]*)<', row.group(1)))
    assert (cells["arrivals"], cells["openNow"], cells["maxCapacity"], cells["suggestedCapacity"]) == \
        ("9", "9", "10", "15")
    assert cells["utilisation"] == "90%"
    assert 'data-trend="rising"' in row.group(1)
    assert re.search(r'data-capacity-queue="review">.*?data-field="suggestedCapacity"[^>]*>5<', html, re.S)

    only_fraud = await (await client.get("/dashboard?department=FRAUD", headers=bearer)).text()
    assert 'data-capacity-queue="fraud"' in only_fraud and 'data-capacity-queue="intake"' not in only_fraud
