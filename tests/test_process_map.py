"""The live process map (/dashboard/processes/{key}) and the activities report behind it
(/api/reports/activities): per-activity figures on rows laid down in real PostgreSQL, the page's sign-in, 404s
and policy, and in Debian's headless Chromium the map of OneCMS cases driven through the real engine showing
what the reports API and the engine say."""

from __future__ import annotations

import json
import re
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from playwright.async_api import async_playwright
from sqlalchemy import text

from bridge import reports
from bridge.demo import PROCESS_KEY, DemoSeeder
from bridge.flowable.client import engine_time
from bridge.mirror.reconcile import resync_instances
from bridge.reports import BadFilter, ReportFilter, UnknownProcess
from bridge.web.dashboard import COOKIE
from tests import seed
from tests.conftest import ARTIFACTS, bridge_app
from tests.helpers import ONECMS_FILE
from tests.seed import hours, now
from tests.test_dashboard import CHROMIUM_ARGS, chromium_path, token_of

KEY = "claims"
NAME = "Claims <script>alert(1)</script>"
ONECMS_TASKS = ["registerCase", "triageCase", "legalReview"]  # user tasks of the OneCMS diagram
FIGURES = ("live_tasks", "open_tasks", "claimed_tasks", "delegated_tasks", "breached_tasks", "at_risk_tasks",
           "completed_in_range")


@pytest.fixture
async def db(db, conn):
    """conftest's, with migration 0018's OPS_VIEWER role back (emptying the tables took it)."""
    await conn.execute("INSERT INTO entitlements.workflow_roles (role_code, role_name, role_type) "
                       "VALUES ('OPS_VIEWER', 'Operations viewer', 'SYSTEM')")
    return db


async def definition(conn, key: str, version: int, *, active: bool, bpmn: bytes | None = ONECMS_FILE.read_bytes(),
                     user_tasks: list[str] = ONECMS_TASKS) -> int:
    workflow_id = await seed.definition(conn, key, version=version, is_active=active, name=NAME)
    await conn.execute("UPDATE flowable.workflow_definitions SET bpmn_xml = %s, "
                       "metadata = jsonb_build_object('userTasks', CAST(%s AS jsonb)) WHERE workflow_id = %s",
                       [bpmn.decode() if bpmn else None, json.dumps(user_tasks), workflow_id])
    return workflow_id


async def task_at(conn, pid: str, activity: str, **given) -> str:
    task_id = await seed.task(conn, pid, "intake", **given)
    await conn.execute("UPDATE flowable.workflow_tasks SET task_definition_key = %s, task_name = %s "
                       "WHERE task_id = %s", [activity, f"Task {activity}", task_id])
    return task_id


async def two_versions(conn) -> None:
    """claims v1 (inactive) and v2 (active), both drawn from the OneCMS file, and another process."""
    await seed.queue(conn, "intake")
    t = now()
    v1 = await seed.instance(conn, await definition(conn, KEY, 1, active=False))
    v2 = await seed.instance(conn, await definition(conn, KEY, 2, active=True))
    other = await seed.instance(conn, await definition(conn, "other", 1, active=True))
    await task_at(conn, v1, "triageCase", due_date=t - hours(2), created_at=t - hours(6))           # breached
    await task_at(conn, v1, "triageCase", status="CLAIMED", assignee="ann",
                  due_date=t + timedelta(minutes=30))                                             # at risk
    await task_at(conn, v1, "triageCase", status="CANCELLED")                                     # not live
    await task_at(conn, v1, "legalReview", status="DELEGATED", assignee="bob", due_date=t + hours(5))
    await task_at(conn, v1, "registerCase", status="COMPLETED", created_at=t - hours(3),
                  completed_at=t - hours(1), completed_by="ann")                                  # 2 h there
    await task_at(conn, v1, "registerCase", status="COMPLETED", created_at=t - hours(30),
                  completed_at=t - hours(26), completed_by="ann")                                 # before the range
    await task_at(conn, v2, "triageCase")
    await task_at(conn, v2, "registerCase", status="COMPLETED", created_at=t - hours(5), completed_at=t - hours(4),
                  due_date=t - hours(4.5), completed_by="ann")                                    # late, 1 h
    await task_at(conn, other, "triageCase", due_date=t - hours(1))


async def activities(db, span: timedelta = reports.DEFAULT_RANGE, **given) -> dict:
    async with db.connect() as c:
        return await reports.activities(c, ReportFilter.last(span, **given))


def by_activity(body: dict) -> dict[str, dict]:
    return {row["activity_id"]: row for row in body["activities"]}


async def test_the_activities_report_counts_each_activity_of_one_version(conn, db):
    await two_versions(conn)

    active = await activities(db, process=KEY)  # no version: the active one
    assert (active["process"]["process_version"], [v["process_version"] for v in active["versions"]]) == (2, [2, 1])
    v2 = by_activity(active)
    assert sorted(v2) == sorted(ONECMS_TASKS)  # every user task the file declares, with zeros where none is
    assert (v2["triageCase"]["live_tasks"], v2["triageCase"]["open_tasks"], v2["triageCase"]["breached_tasks"]) \
        == (1, 1, 0)
    assert (v2["registerCase"]["completed_in_range"], v2["registerCase"]["completed_late_in_range"],
            v2["registerCase"]["avg_completion_hours"]) == (1, 1, 1)
    assert (v2["legalReview"]["live_tasks"], v2["legalReview"]["avg_completion_hours"]) == (0, None)

    v1 = by_activity(await activities(db, process=KEY, version=1))
    triage = v1["triageCase"]
    assert [triage[k] for k in FIGURES] == [2, 1, 1, 0, 1, 1, 0]
    assert datetime.fromisoformat(triage["oldest_created_at"]) <= now() - hours(6)
    assert [v1["legalReview"][k] for k in FIGURES] == [1, 0, 0, 1, 0, 0, 0]
    assert (v1["registerCase"]["completed_in_range"], v1["registerCase"]["avg_completion_hours"]) == (1, 2)
    longer = by_activity(await activities(db, timedelta(hours=48), process=KEY, version=1))
    assert (longer["registerCase"]["completed_in_range"], longer["registerCase"]["avg_completion_hours"]) == (2, 3)
    assert by_activity(await activities(db, process=KEY, version=1, at_risk_minutes=20))["triageCase"][
        "at_risk_tasks"] == 0

    every = await activities(db)  # no process: each process's active version
    assert every["process"] is None
    assert {(r["process_key"], r["process_version"]) for r in every["activities"]} == {(KEY, 2), ("other", 1)}
    assert sum(r["breached_tasks"] for r in every["activities"]) == 1  # other's; claims v2 has none

    with pytest.raises(UnknownProcess, match="no process 'nope'"):
        await activities(db, process="nope")
    with pytest.raises(UnknownProcess, match="has no version 3"):
        await activities(db, process=KEY, version=3)
    with pytest.raises(BadFilter, match="^version: give the process too"):
        ReportFilter.parse({"version": "1"})
    with pytest.raises(BadFilter, match="^version: a whole number"):
        ReportFilter.parse({"process": KEY, "version": "first"})


async def test_the_map_signs_in_back_to_itself_answers_404_and_allows_no_script(conn, db, db_url, aiohttp_client):
    await two_versions(conn)
    await definition(conn, "undrawn", 1, active=True, bpmn=None)  # registered by the mirror: no file, no engine
    ops = await token_of(db, "ops", "OPS_VIEWER")
    client = await aiohttp_client(bridge_app(db_url))
    bearer = {"Authorization": f"Bearer {ops}"}

    refused = await client.get(f"/dashboard/processes/{KEY}?version=1")
    assert refused.status == 401
    assert f'name="next" value="/dashboard/processes/{KEY}?version=1"' in await refused.text()
    for wanted, went in ((f"/dashboard/processes/{KEY}?version=1", f"/dashboard/processes/{KEY}?version=1"),
                         ("https://evil.example/", "/dashboard"), ("//evil.example/dashboard", "/dashboard"),
                         ("/dashboard/processes/x/../../api", "/dashboard")):
        signed_in = await client.post("/dashboard/login", data={"token": ops, "next": wanted}, allow_redirects=False)
        assert (signed_in.status, signed_in.headers["Location"]) == (303, went), wanted
    assert f"{COOKIE}=" in signed_in.headers["Set-Cookie"]

    page = await client.get(f"/dashboard/processes/{KEY}?version=1")  # by the cookie
    body = await page.text()
    assert page.status == 200
    policy = page.headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy and "script-src" not in policy
    assert "<script" not in body.lower() and "Claims &lt;script&gt;alert(1)&lt;/script&gt;" in body
    assert '<option value="1" selected>v1' in body and '<option value="2">v2 (active)' in body
    since, until = (re.search(f'data-{edge}="([^"]+)"', body).group(1) for edge in ("since", "until"))
    api = await (await client.get("/api/reports/activities", headers=bearer, params={
        "process": KEY, "version": "1", "since": since, "until": until})).json()
    assert api["filter"]["process"] == KEY and api["process"]["process_version"] == 1
    for row in api["activities"]:
        group = re.search(f'<g class="activity" data-activity="{row["activity_id"]}"([^>]*)>', body)
        assert group, row["activity_id"]  # drawn over its shape
        shown = dict(re.findall(r'data-([a-z-]+)="([^"]*)"', group.group(1)))
        assert [int(shown[k.replace("_", "-")]) for k in FIGURES] == [row[k] for k in FIGURES], row["activity_id"]
    assert 'data-bpmn-id="triageCase"' in body and body.count('<g class="activity"') == len(ONECMS_TASKS)

    assert (await client.get("/dashboard/processes/claims")).status == 200  # the active version
    for path in ("/dashboard/processes/nope", f"/dashboard/processes/{KEY}?version=3",
                 f"/dashboard/processes/{KEY}?version=0", f"/dashboard/processes/{KEY}?version=first",
                 f"/dashboard/processes/{KEY}?version=%D9%A1"):
        missing = await client.get(path)
        assert missing.status == 404 and 'id="message"' in await missing.text(), path
        assert "script-src" not in missing.headers["Content-Security-Policy"]
    undrawn = await client.get("/dashboard/processes/undrawn")
    text = await undrawn.text()
    assert undrawn.status == 200 and "cannot be drawn" in text and 'data-activity="triageCase"' in text
    # the dashboard's process list leads here
    assert f'href="/dashboard/processes/{KEY}?hours=24"' in await (await client.get("/dashboard")).text()
    api_errors = [await client.get("/api/reports/activities", headers=bearer, params=given)
                  for given in ({"process": "nope"}, {"version": "1"})]
    assert [r.status for r in api_errors] == [400, 400]


async def overlay_figures(page) -> dict[str, dict[str, int]]:
    groups = await page.eval_on_selector_all("section#map g.figures g.activity", "gs => gs.map(g => g.dataset)")
    return {g["activity"]: {k: int(g[re.sub(r"_(\w)", lambda m: m.group(1).upper(), k)]) for k in FIGURES}
            for g in groups}


async def api_figures(client, bearer: dict, page, key: str, version: int) -> dict[str, dict[str, int]]:
    """The reports API's figures for the range the page shows (its since and until)."""
    since = await page.get_attribute("section#map", "data-since")
    until = await page.get_attribute("section#map", "data-until")
    body = await (await client.get("/api/reports/activities", headers=bearer, params={
        "process": key, "version": str(version), "since": since, "until": until})).json()
    assert body["process"]["process_version"] == version
    return {row["activity_id"]: {k: row[k] for k in FIGURES} for row in body["activities"]}


def watch(page, problems: list[str]) -> None:
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type in
            ("error", "warning") else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))


@pytest.mark.slow
async def test_in_chromium_the_version_selector_shows_each_versions_figures(conn, db, db_url, aiohttp_client):
    await two_versions(conn)
    ops = await token_of(db, "ops", "OPS_VIEWER")
    client = await aiohttp_client(bridge_app(db_url))
    bearer = {"Authorization": f"Bearer {ops}"}
    problems: list[str] = []
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page(viewport={"width": 1400, "height": 900})
            await page.goto(str(client.make_url(f"/dashboard/processes/{KEY}")))  # the sign-in page: a 401
            await page.fill("#token", ops)
            watch(page, problems)
            await page.click("button[type=submit]")
            await page.wait_for_selector("section#map g.figures")  # signed in, and back on the map
            assert await page.inner_text("#version") == "2"
            assert await overlay_figures(page) == await api_figures(client, bearer, page, KEY, 2)

            await page.select_option("select[name=version]", "1")
            await page.click("header form[method=get] button")
            await page.wait_for_url("**version=1**")
            assert await page.inner_text("#version") == "1"
            shown = await overlay_figures(page)
            assert shown == await api_figures(client, bearer, page, KEY, 1)
            assert shown["triageCase"]["breached_tasks"] == 1 and shown["triageCase"]["at_risk_tasks"] == 1
            assert await page.locator("script").count() == 0
        finally:
            await browser.close()
    assert problems == []


@pytest.mark.slow
async def test_in_chromium_the_map_of_seeded_onecms_cases_shows_what_the_api_and_the_engine_say(
        db, db_url, engine, flowable, aiohttp_client):
    seeder = DemoSeeder(db, flowable, seed=5)
    await seeder.prepare()
    outcome = await seeder.seed(24)
    # Something at risk and something breached for certain, in the engine, then mirrored.
    live = [t for pid in outcome.instance_ids for t in await flowable.tasks(processInstanceId=pid)]
    assert len(live) >= 3
    await flowable.update_task(live[0]["id"], dueDate=engine_time(datetime.now(UTC) + timedelta(minutes=30)))
    await flowable.update_task(live[1]["id"], dueDate=engine_time(datetime.now(UTC) - timedelta(hours=2)))
    await resync_instances(db, flowable, outcome.instance_ids)
    # What the engine itself holds for these cases, per activity.
    engine_live: Counter[str] = Counter()
    engine_breached: Counter[str] = Counter()
    engine_at_risk: Counter[str] = Counter()
    moment = datetime.now(UTC)
    for pid in outcome.instance_ids:
        for t in await flowable.tasks(processInstanceId=pid):
            engine_live[t["taskDefinitionKey"]] += 1
            due = datetime.fromisoformat(t["dueDate"]) if t.get("dueDate") else None
            engine_breached[t["taskDefinitionKey"]] += due is not None and due < moment
            engine_at_risk[t["taskDefinitionKey"]] += due is not None and moment <= due < moment + timedelta(hours=1)

    ops = await token_of(db, "ops", "OPS_VIEWER")
    client = await aiohttp_client(bridge_app(db_url, engine))
    bearer = {"Authorization": f"Bearer {ops}"}
    problems: list[str] = []
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page(viewport={"width": 1400, "height": 900})
            await page.goto(str(client.make_url("/dashboard")))  # the sign-in page: a 401
            await page.fill("#token", ops)
            watch(page, problems)
            await page.click("button[type=submit]")
            await page.click(f'tr[data-process="{PROCESS_KEY}"] a')  # from the dashboard's process list
            await page.wait_for_selector("section#map g.figures")
            version = int(await page.inner_text("#version"))

            shown = await overlay_figures(page)
            api = await api_figures(client, bearer, page, PROCESS_KEY, version)
            assert shown == api
            assert {a: f["live_tasks"] for a, f in api.items() if f["live_tasks"]} == dict(engine_live)
            assert {a: f["breached_tasks"] for a, f in api.items() if f["breached_tasks"]} == \
                {a: n for a, n in engine_breached.items() if n}
            assert {a: f["at_risk_tasks"] for a, f in api.items() if f["at_risk_tasks"]} == \
                {a: n for a, n in engine_at_risk.items() if n}
            assert sum(f["completed_in_range"] for f in api.values()) == outcome.tasks_completed
            assert len([a for a, f in api.items() if f["live_tasks"]]) >= 2
            # the table says the same, and every activity is drawn on the diagram
            for activity, figures in api.items():
                row = page.locator(f'tr[data-activity="{activity}"]')
                for field in ("live_tasks", "breached_tasks", "at_risk_tasks", "completed_in_range"):
                    assert int(await row.locator(f'td[data-field="{field}"]').inner_text()) == figures[field]
                assert await page.locator(f'section#map g[data-bpmn-id="{activity}"]').count() == 1
            assert int(await page.inner_text('[data-total="live_tasks"]')) == sum(engine_live.values())
            assert await page.locator("script").count() == 0
            ARTIFACTS.mkdir(exist_ok=True)
            await page.screenshot(path=str(ARTIFACTS / "process-map.png"), full_page=True)
        finally:
            await browser.close()
    assert problems == []

    # A version the bridge holds no file for (deployed some other way): the diagram comes from the engine.
    async with db.begin() as c:
        await c.execute(text("UPDATE flowable.workflow_definitions SET bpmn_xml = NULL WHERE process_key = :k"),
                        {"k": PROCESS_KEY})
    page_text = await (await client.get(f"/dashboard/processes/{PROCESS_KEY}", headers=bearer)).text()
    assert "cannot be drawn" not in page_text and 'data-bpmn-id="registerCase"' in page_text
