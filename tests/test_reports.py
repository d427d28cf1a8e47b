"""The ops reports (bridge/reports.py, /api/reports/...) on data laid down in real PostgreSQL: each figure is
checked against what the rows say, and the hourly summary behind them against a recount."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from bridge import auth, reports
from bridge.reports import BadFilter, ReportFilter
from tests import seed
from tests.conftest import bridge_app
from tests.seed import hours, now


def hour_floor(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


async def report(db, name: str, **given) -> dict:
    async with db.connect() as c:
        return await reports.REPORTS[name](c, ReportFilter.last(**given))


async def two_departments(conn) -> str:
    """CLAIMS (queues intake, review) and FRAUD (queue fraud); returns a process instance id."""
    claims = await seed.department(conn, "CLAIMS", "Claims")
    fraud = await seed.department(conn, "FRAUD", "Fraud")
    for name, dept in [("intake", claims), ("review", claims), ("fraud", fraud)]:
        await seed.queue(conn, name, department_id=dept, sla_minutes=60)
    return await seed.instance(conn, await seed.definition(conn))


async def test_queue_report_counts_live_work_breaches_and_risk_per_queue_and_department(conn, db):
    pid = await two_departments(conn)
    t = now()
    await seed.task(conn, pid, "intake", due_date=t - hours(2), created_at=t - hours(5))      # breached
    await seed.task(conn, pid, "intake", due_date=t + timedelta(minutes=30))                # at risk
    await seed.task(conn, pid, "intake", status="CLAIMED", assignee="ann", due_date=t + hours(5))
    await seed.task(conn, pid, "intake", status="COMPLETED", created_at=t - hours(3), completed_at=t - hours(1),
                    due_date=t - hours(2), completed_by="ann")                                # late: 2 h
    await seed.task(conn, pid, "review", escalation_level=1, due_date=t - hours(1))
    await seed.task(conn, pid, "review", status="COMPLETED", created_at=t - hours(4), completed_at=t - hours(3))
    await seed.task(conn, pid, "fraud", status="DELEGATED", assignee="bob")

    body = await report(db, "queues")
    by_queue = {q["queue_name"]: q for q in body["queues"]}
    intake, review, fraud = by_queue["intake"], by_queue["review"], by_queue["fraud"]
    assert (intake["open_tasks"], intake["claimed_tasks"], intake["breached_tasks"],
            intake["at_risk_tasks"]) == (2, 1, 1, 1)
    assert (intake["completed_in_range"], intake["completed_late_in_range"],
            intake["avg_completion_hours"]) == (1, 1, 2)
    assert datetime.fromisoformat(intake["oldest_created_at"]) == t - hours(5)
    assert (review["escalated_tasks"], review["breached_tasks"], review["completed_in_range"]) == (1, 1, 1)
    assert (fraud["delegated_tasks"], fraud["department_code"]) == (1, "FRAUD")
    claims = next(d for d in body["departments"] if d["department_code"] == "CLAIMS")
    assert (claims["queues"], claims["open_tasks"], claims["breached_tasks"],
            claims["completed_in_range"]) == (2, 3, 2, 2)

    only_fraud = await report(db, "queues", department="FRAUD")
    assert [q["queue_name"] for q in only_fraud["queues"]] == ["fraud"]
    only_review = await report(db, "queues", queue="review")
    assert [q["queue_name"] for q in only_review["queues"]] == ["review"]
    wider_risk = await report(db, "queues", queue="intake", at_risk_minutes=6 * 60)
    assert wider_risk["queues"][0]["at_risk_tasks"] == 2


async def test_throughput_lists_every_hour_with_created_completed_and_late(conn, db):
    pid = await two_departments(conn)
    base = hour_floor(now()) - hours(6)
    await seed.task(conn, pid, "intake", status="COMPLETED", created_at=base + timedelta(minutes=5),
                    completed_at=base + timedelta(hours=2, minutes=10), due_date=base + hours(1))
    await seed.task(conn, pid, "intake", created_at=base + timedelta(minutes=50))
    await seed.task(conn, pid, "fraud", status="COMPLETED", created_at=base + hours(1),
                    completed_at=base + timedelta(hours=2, minutes=59))
    await seed.task(conn, pid, "fraud", created_at=base - hours(1))  # before the range

    async with db.connect() as c:
        body = await reports.throughput(c, ReportFilter(since=base, until=base + hours(4)))
        fraud = await reports.throughput(c, ReportFilter(since=base, until=base + hours(4), department="FRAUD"))
    assert [(datetime.fromisoformat(h["hour"]) - base, h["created"], h["completed"], h["completed_late"])
            for h in body["hours"]] == [(hours(0), 2, 0, 0), (hours(1), 1, 0, 0), (hours(2), 0, 2, 1),
                                        (hours(3), 0, 0, 0)]
    assert body["totals"] == {"created": 3, "completed": 2, "completed_late": 1}
    assert fraud["totals"] == {"created": 1, "completed": 1, "completed_late": 0}


async def test_the_hourly_summary_equals_a_recount_after_random_writes(conn, db):
    """Inserts, re-queues, completions, reopenings and deletes in random batches, folded at random moments:
    the summary the reports read (folded + pending) always equals counting workflow_tasks again."""
    pid = await two_departments(conn)
    rng = random.Random(7)
    t0 = hour_floor(now()) - hours(48)
    ids: list[str] = []

    def moment() -> datetime:
        return t0 + timedelta(minutes=rng.randrange(48 * 60))

    for step in range(120):
        choice = rng.random()
        if choice < 0.4 or not ids:
            created = moment()
            ids.append(await seed.task(conn, pid, rng.choice(["intake", "review", "fraud"]), created_at=created,
                                       due_date=created + hours(rng.choice([1, 4]))))
        elif choice < 0.65:
            victim = rng.choice(ids)
            await conn.execute("UPDATE flowable.workflow_tasks SET status = 'COMPLETED', "
                               "completed_at = created_at + %s WHERE task_id = %s",
                               [timedelta(minutes=rng.randrange(1, 600)), victim])
        elif choice < 0.75:
            await conn.execute("UPDATE flowable.workflow_tasks SET status = 'OPEN', completed_at = NULL "
                               "WHERE task_id = %s", [rng.choice(ids)])
        elif choice < 0.85:
            await conn.execute("UPDATE flowable.workflow_tasks SET queue_name = %s WHERE task_id = %s",
                               [rng.choice(["intake", "review", "fraud"]), rng.choice(ids)])
        elif choice < 0.92:  # one statement over many rows
            await conn.execute("UPDATE flowable.workflow_tasks SET status = 'COMPLETED', completed_at = now() "
                               "WHERE status = 'OPEN' AND created_at < %s", [moment()])
        else:
            victim = ids.pop(rng.randrange(len(ids)))
            await conn.execute("DELETE FROM flowable.workflow_tasks WHERE task_id = %s", [victim])
        if rng.random() < 0.2:
            await conn.execute("SELECT flowable.fold_task_stats()")
        if step % 30 == 29:
            assert await summary(conn) == await recount(conn)
    await conn.execute("SELECT flowable.fold_task_stats()")
    assert await summary(conn) == await recount(conn)
    assert (await (await conn.execute("SELECT count(*) FROM flowable.task_stat_changes")).fetchone())[0] == 0


async def summary(conn) -> dict:
    cur = await conn.execute("SELECT hour, queue_name, created, completed, completed_late, completion_seconds "
                             "FROM flowable.v_task_hourly_stats")
    return {(r[0], r[1]): tuple(r[2:]) for r in await cur.fetchall() if any(r[2:])}


async def recount(conn) -> dict:
    cur = await conn.execute("""
        SELECT date_bin('1 hour', t.created_at, timestamptz 'epoch') AS hour, t.queue_name,
               count(*), 0, 0, 0 FROM flowable.workflow_tasks t GROUP BY 1, 2
        UNION ALL
        SELECT date_bin('1 hour', t.completed_at, timestamptz 'epoch'), t.queue_name, 0, count(*),
               count(*) FILTER (WHERE t.completed_at > t.due_date),
               sum(extract(epoch FROM t.completed_at - t.created_at))
        FROM flowable.workflow_tasks t WHERE t.status = 'COMPLETED' GROUP BY 1, 2""")
    counted: dict = {}
    for hour, queue, *figures in await cur.fetchall():
        old = counted.get((hour, queue), (0, 0, 0, 0))
        counted[(hour, queue)] = tuple(a + b for a, b in zip(old, figures, strict=True))
    return {key: value for key, value in counted.items() if any(value)}


async def test_age_distribution_of_live_tasks(conn, db):
    pid = await two_departments(conn)
    t = now()
    for age_hours, queue in [(0.5, "intake"), (2, "intake"), (2, "review"), (30, "fraud"), (200, "fraud")]:
        await seed.task(conn, pid, queue, created_at=t - hours(age_hours))
    await seed.task(conn, pid, "fraud", status="COMPLETED", created_at=t - hours(2), completed_at=t)  # not live

    body = await report(db, "age")
    assert [(b["label"], b["tasks"]) for b in body["buckets"]] == [
        ("under 1 h", 1), ("1-4 h", 2), ("4-24 h", 0), ("1-3 days", 1), ("3-7 days", 0), ("over 7 days", 1)]
    assert body["buckets"][1]["by_queue"] == {"intake": 1, "review": 1}
    claims = await report(db, "age", department="CLAIMS")
    assert sum(b["tasks"] for b in claims["buckets"]) == 3


async def test_escalations_by_level_live_and_made_in_the_range(conn, db):
    pid = await two_departments(conn)
    first = await seed.task(conn, pid, "intake", escalation_level=1)
    second = await seed.task(conn, pid, "review", status="CLAIMED", assignee="ann", escalation_level=2)
    await seed.task(conn, pid, "review", status="COMPLETED", escalation_level=2, completed_at=now())  # not live
    for task_id, level, when in [(first, 1, now()), (second, 1, now() - hours(3)), (second, 2, now()),
                                 (first, 1, now() - hours(48))]:  # the last one is outside the range
        await conn.execute(
            "INSERT INTO flowable.task_history (task_id, process_instance_id, action_type, action_by, action_at, "
            "action_data) VALUES (%s, %s, 'ESCALATE', 'SYSTEM', %s, jsonb_build_object('escalation_level', %s))",
            [task_id, pid, when, level])

    body = await report(db, "escalations")
    assert [(lv["level"], lv["live_tasks"], lv["escalations_in_range"])
            for lv in body["levels"]] == [(1, 1, 2), (2, 1, 1)]
    fraud = await report(db, "escalations", department="FRAUD")
    assert fraud["levels"] == []


async def test_workload_per_user_held_and_completed_in_the_range(conn, db):
    pid = await two_departments(conn)
    await seed.user(conn, "ann", first="Ann", last="Lee")
    await seed.grant(conn, "ann", await seed.role(conn, "CLAIMS_AGENT", queue_name="intake"))
    t = now()
    await seed.task(conn, pid, "intake", status="CLAIMED", assignee="ann", due_date=t - hours(1))
    await seed.task(conn, pid, "review", status="CLAIMED", assignee="ann")
    await seed.task(conn, pid, "intake", status="COMPLETED", claimed_at=t - hours(3), completed_at=t - hours(1),
                    completed_by="ann")
    await seed.task(conn, pid, "intake", status="COMPLETED", claimed_at=t - hours(2), completed_at=t - hours(1),
                    completed_by="ann")
    await seed.task(conn, pid, "fraud", status="COMPLETED", completed_at=t - hours(50), completed_by="bob")  # old

    users = (await report(db, "workload"))["users"]
    assert users == [{"user_id": "ann", "username": "ann", "full_name": "Ann Lee", "roles": ["CLAIMS_AGENT"],
                      "held_tasks": 2, "held_overdue": 1, "completed_in_range": 2, "avg_handling_hours": 1.5}]
    assert [u["user_id"] for u in (await report(db, "workload", span=hours(72)))["users"]] == ["ann", "bob"]


async def test_process_performance_for_the_range(conn, db):
    v1 = await seed.definition(conn, "claims", version=1, is_active=False)
    v2 = await seed.definition(conn, "claims", version=2, name="Claims")
    t = now()
    await seed.instance(conn, v1, started_at=t - hours(2))
    for duration in (1, 2, 3, 4):
        await seed.instance(conn, v2, status="COMPLETED", started_at=t - hours(5), completed_at=t - hours(5 - duration))
    await seed.instance(conn, v2, status="COMPLETED", started_at=t - hours(100), completed_at=t - hours(90))  # old

    [claims] = (await report(db, "processes"))["processes"]
    assert (claims["process_key"], claims["process_name"], claims["started_in_range"], claims["active_instances"],
            claims["completed_in_range"], claims["avg_completion_hours"], claims["p95_completion_hours"]) == \
        ("claims", "Claims", 5, 1, 4, 2.5, 3.85)


async def test_oldest_lists_breached_then_at_risk_then_the_rest(conn, db):
    pid = await two_departments(conn)
    t = now()
    late = await seed.task(conn, pid, "intake", due_date=t - hours(1))
    later = await seed.task(conn, pid, "fraud", due_date=t - hours(3))
    soon = await seed.task(conn, pid, "review", due_date=t + timedelta(minutes=20))
    calm = await seed.task(conn, pid, "review", due_date=t + hours(8))
    undated = await seed.task(conn, pid, "review", created_at=t - hours(30))
    await seed.task(conn, pid, "intake", status="COMPLETED", due_date=t - hours(9), completed_at=t)

    tasks = (await report(db, "oldest"))["tasks"]
    assert [(x["task_id"], x["sla_state"]) for x in tasks] == [
        (later, "BREACHED"), (late, "BREACHED"), (soon, "AT_RISK"), (calm, "ON_TIME"), (undated, "ON_TIME")]
    assert len((await report(db, "oldest", limit=2))["tasks"]) == 2


async def test_mirror_health_latency_parked_and_late_or_lost_pushes(conn, db):
    t = now()
    await conn.execute("INSERT INTO flowable.webhook_batches (webhook_id, event_count) VALUES ('w1', 3)")
    for n, (lag_ms, applied) in enumerate([(100, True), (300, True), (900, True), (0, False)]):
        await conn.execute(
            "INSERT INTO flowable.engine_events (event_id, webhook_id, seq, event_type, occurred_at, payload, "
            "received_at, applied_at) VALUES (%s, 'w1', %s, 'TASK_CREATED', %s, '{}', %s, %s)",
            [f"e{n}", n, t - timedelta(seconds=5), t, t - timedelta(seconds=5) + timedelta(milliseconds=lag_ms)
             if applied else None])
    await conn.execute("INSERT INTO flowable.reconciler_state (name, passes, repairs, last_pass_at) "
                       "VALUES ('default', 12, 3, now())")
    for kind, entity in [("BACKFILL", "p1"), ("INCREMENTAL", "t1"), ("INCREMENTAL", "t1"), ("SWEEP", "p2")]:
        await conn.execute("INSERT INTO flowable.mirror_repairs (pass_kind, entity_type, entity_id, field, repaired) "
                           "VALUES (%s, %s, %s, 'status', true)",
                           [kind, "task" if entity[0] == "t" else "process", entity])

    body = await report(db, "mirror")
    events = body["events"]
    assert (events["events"], events["latency_sample"], events["parked_total"]) == (4, 3, 1)
    assert (events["availability_p50_ms"], events["availability_max_ms"]) == (300, 900)
    assert body["reconciler"][0]["passes"] == 12
    assert body["repaired_outside_backfill"] == 2  # t1 (twice, one task) and p2; the backfill's p1 is not late


def test_bad_filters_are_named():
    for query, field in [({"since": "yesterday"}, "since"), ({"until": "2026-01-01T00:00:00"}, "until"),
                         ({"since": "2026-02-01T00:00:00Z", "until": "2026-01-01T00:00:00Z"}, "since"),
                         ({"since": "2020-01-01T00:00:00Z", "until": "2026-01-01T00:00:00Z"}, "since/until"),
                         ({"limit": "0"}, "limit"), ({"at_risk_minutes": "soon"}, "at_risk_minutes"),
                         # schemathesis: the default 24 h before year 1 overflowed into a 500
                         ({"until": "0001-01-01T02:00:00Z"}, "until"), ({"since": "9999-12-31T00:00:00Z"}, "since")]:
        with pytest.raises(BadFilter, match=f"^{field}:"):
            ReportFilter.parse(query)
    parsed = ReportFilter.parse({"since": "2026-01-01T00:00:00Z", "until": "2026-01-02T00:00:00+01:00",
                                 "queue": "intake", "limit": "5"})
    assert (parsed.until - parsed.since, parsed.queue, parsed.limit) == (timedelta(hours=23), "intake", 5)


async def test_reports_over_http_need_an_ops_viewer_token(conn, db, db_url, aiohttp_client):
    pid = await two_departments(conn)
    await seed.task(conn, pid, "intake", due_date=now() - hours(1))
    await conn.execute("INSERT INTO entitlements.workflow_roles (role_code, role_name, role_type) "
                       "VALUES ('OPS_VIEWER', 'Operations viewer', 'SYSTEM')")
    async with db.begin() as c:
        await auth.add_user(c, "ops", roles=["OPS_VIEWER"], granted_by="test")
        await auth.add_user(c, "worker", roles=[], granted_by="test")
        ops_token, worker_token = await auth.create_token(c, "ops"), await auth.create_token(c, "worker")
    client = await aiohttp_client(bridge_app(db_url))

    assert (await client.get("/api/reports/queues")).status == 401
    forbidden = await client.get("/api/reports/queues", headers={"Authorization": f"Bearer {worker_token}"})
    assert forbidden.status == 403 and "OPS_VIEWER" in (await forbidden.json())["error"]
    ops = {"Authorization": f"Bearer {ops_token}"}
    bad = await client.get("/api/reports/throughput?since=soon", headers=ops)
    assert bad.status == 400 and (await bad.json())["error"].startswith("since:")
    typo = await client.get("/api/reports/queues?department=CLAMS", headers=ops)
    assert typo.status == 400 and (await typo.json())["error"] == "department: no department 'CLAMS'"
    assert (await client.get("/api/reports/age?queue=nope", headers=ops)).status == 400
    for name in reports.REPORTS:
        response = await client.get(f"/api/reports/{name}", headers=ops)
        assert response.status == 200, name
    body = await (await client.get("/api/reports/queues?department=CLAIMS", headers=ops)).json()
    assert body["filter"]["department"] == "CLAIMS"
    assert {q["queue_name"]: q["breached_tasks"] for q in body["queues"]} == {"intake": 1, "review": 0}
    assert datetime.fromisoformat(body["filter"]["until"]) <= datetime.now(UTC)
    # The engine's own push counters come over HTTP; this app's engine does not answer, and says so.
    emitter = (await (await client.get("/api/reports/mirror", headers=ops)).json())["emitter"]
    assert emitter["reachable"] is False and emitter["error"]


async def test_over_the_same_span_the_reports_agree_with_the_seeds_views(conn, db):
    """The reports are the seed's three views made range-bound and fast: over a span holding all the data
    (and a week for completions per user, as v_user_workload counts them), the figures are the same."""
    rng = random.Random(3)
    pid = await two_departments(conn)
    v1 = await seed.definition(conn, "claims", version=1, is_active=False)
    v2 = await seed.definition(conn, "claims", version=2, name="Claims")
    for user in ("ann", "bob", "cy"):
        await seed.user(conn, user)
        await seed.grant(conn, user, await seed.role(conn, f"ROLE_{user.upper()}"))
    t = now()
    for _ in range(120):
        created = t - timedelta(minutes=rng.randrange(20, 60 * 24 * 90))
        status = rng.choice(["OPEN", "CLAIMED", "DELEGATED", "COMPLETED", "COMPLETED", "COMPLETED"])
        user = rng.choice(["ann", "bob", "cy"])
        done = created + timedelta(minutes=rng.randrange(5, 3000)) if status == "COMPLETED" else None
        await seed.task(conn, pid, rng.choice(["intake", "review", "fraud"]), status=status, created_at=created,
                        assignee=user if status != "OPEN" else None, claimed_at=created if status != "OPEN" else None,
                        completed_at=min(done, t) if done else None, completed_by=user if done else None)
    for _ in range(30):
        started = t - timedelta(hours=rng.randrange(10, 24 * 80))
        finished = started + timedelta(minutes=rng.randrange(30, 9000))
        await seed.instance(conn, rng.choice([v1, v2]), status="COMPLETED" if finished < t else "ACTIVE",
                            started_at=started, completed_at=finished if finished < t else None)

    async with db.connect() as c:
        everything = ReportFilter(since=t - timedelta(days=100), until=t + hours(1))
        queues = {q["queue_name"]: q for q in (await reports.queues(c, everything))["queues"]}
        week = {u["user_id"]: u for u in (await reports.workload(c, ReportFilter.last(timedelta(days=7))))["users"]}
        claims = next(p for p in (await reports.processes(c, everything))["processes"] if p["process_key"] == "claims")
    view_queues = await (await conn.execute(
        "SELECT queue_name, open_tasks, claimed_tasks, escalated_tasks, round(avg_completion_hours, 2) "
        "FROM flowable.v_active_tasks_by_queue")).fetchall()
    for name, open_, claimed, escalated, avg_hours in view_queues:
        q = queues[name]
        assert (q["open_tasks"], q["claimed_tasks"], q["escalated_tasks"]) == (open_, claimed, escalated), name
        assert q["avg_completion_hours"] == pytest.approx(float(avg_hours), abs=0.006), name
    for user, completed_last_week in await (await conn.execute(
            "SELECT user_id, max(completed_last_week) FROM flowable.v_user_workload GROUP BY user_id")).fetchall():
        assert (week[user]["completed_in_range"] if user in week else 0) == completed_last_week, user
    [(completed, avg_hours, p95_hours)] = await (await conn.execute(
        "SELECT completed_instances, avg_completion_hours, p95_completion_hours FROM flowable.v_process_performance "
        "WHERE process_key = 'claims'")).fetchall()
    assert claims["completed_in_range"] == completed > 0
    assert len(view_queues) == 3 and sum(u["completed_in_range"] for u in week.values()) > 0  # compared something
    assert claims["avg_completion_hours"] == pytest.approx(float(avg_hours), abs=0.006)
    assert claims["p95_completion_hours"] == pytest.approx(float(p95_hours), abs=0.006)
