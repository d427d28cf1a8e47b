"""/dashboard: signing in, what the page refuses, and, in Debian's headless Chromium, the page over cases
`bridge demo seed` drove through the real engine showing the numbers the reporting API gives."""

from __future__ import annotations

import os
import shutil

import pytest
from playwright.async_api import async_playwright

from bridge import auth
from bridge.demo import DemoSeeder
from bridge.web.dashboard import COOKIE
from tests import seed
from tests.conftest import ARTIFACTS, bridge_app
from tests.seed import hours, now


@pytest.fixture
async def db(db, conn):
    """conftest's, with migration 0018's OPS_VIEWER role back (emptying the tables took it)."""
    await conn.execute("INSERT INTO entitlements.workflow_roles (role_code, role_name, role_type) "
                       "VALUES ('OPS_VIEWER', 'Operations viewer', 'SYSTEM')")
    return db


async def token_of(db, user: str, *roles: str) -> str:
    async with db.begin() as c:
        await auth.add_user(c, user, roles=list(roles), granted_by="test")
        return await auth.create_token(c, user)


async def test_sign_in_sets_a_dashboard_only_cookie_and_refuses_the_wrong_tokens(db, db_url, aiohttp_client):
    ops, worker = await token_of(db, "ops", "OPS_VIEWER"), await token_of(db, "worker")
    client = await aiohttp_client(bridge_app(db_url))

    page = await client.get("/dashboard")
    assert page.status == 401 and 'action="/dashboard/login"' in await page.text()
    refused = await client.post("/dashboard/login", data={"token": worker}, allow_redirects=False)
    assert refused.status == 403 and "worker does not hold the OPS_VIEWER role" in await refused.text()
    unknown = await client.post("/dashboard/login", data={"token": "bt_nonsense"}, allow_redirects=False)
    assert unknown.status == 401 and "unknown, revoked or expired" in await unknown.text()
    for content_type, body in (("multipart/form-data", b"token="),  # no boundary: schemathesis found a 500
                               ("application/x-www-form-urlencoded; charset=utf-8", b"token=\xff\xfe")):
        unreadable = await client.post("/dashboard/login", data=body, headers={"Content-Type": content_type},
                                       allow_redirects=False)
        assert unreadable.status == 400 and "could not be read" in await unreadable.text()

    signed_in = await client.post("/dashboard/login", data={"token": ops}, allow_redirects=False)
    assert signed_in.status == 303 and signed_in.headers["Location"] == "/dashboard"
    cookie = signed_in.headers["Set-Cookie"]
    assert f"{COOKIE}=" in cookie and "HttpOnly" in cookie
    assert "SameSite=Strict" in cookie and "Path=/dashboard" in cookie
    page = await client.get("/dashboard")
    assert page.status == 200 and "Queue depth and SLA state" in await page.text()
    assert "script-src" not in page.headers["Content-Security-Policy"]  # default-src 'none': no script at all
    # The cookie is the dashboard's only: /api still wants a bearer header.
    assert (await client.get("/api/reports/queues")).status == 401

    await client.post("/dashboard/logout", allow_redirects=False)
    assert (await client.get("/dashboard")).status == 401


async def test_a_bearer_header_works_and_names_from_the_data_are_escaped(db, db_url, conn, aiohttp_client):
    ops = await token_of(db, "ops", "OPS_VIEWER")
    dept = await seed.department(conn, "X<b>", "Dept <img src=x onerror=alert(1)>")
    await seed.queue(conn, "q<script>alert(1)</script>", department_id=dept)
    pid = await seed.instance(conn, await seed.definition(conn))
    await seed.task(conn, pid, "q<script>alert(1)</script>", due_date=now() - hours(1))
    client = await aiohttp_client(bridge_app(db_url))

    page = await client.get("/dashboard", headers={"Authorization": f"Bearer {ops}"})
    body = await page.text()
    assert page.status == 200
    assert "<script>" not in body and "<img src=x" not in body
    assert "q&lt;script&gt;alert(1)&lt;/script&gt;" in body
    # found by schemathesis: text PostgreSQL cannot hold is refused before it reaches a query
    refused = await client.get("/dashboard?department=%00x", headers={"Authorization": f"Bearer {ops}"})
    assert refused.status == 400 and "department" in (await refused.json())["error"]


def chromium_path() -> str:
    path = os.environ.get("CHROMIUM") or shutil.which("chromium")
    if not path:
        pytest.fail("no Chromium: `make browser` installs Debian's chromium (make test does it first), "
                    "or set CHROMIUM to a Chromium binary")
    return path


CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-sync",
                 "--disable-background-networking", "--disable-component-update"]


@pytest.mark.slow
async def test_the_dashboard_in_chromium_shows_what_the_api_says_for_seeded_cases(
        db, db_url, engine, flowable, aiohttp_client):
    seeder = DemoSeeder(db, flowable, seed=11)
    await seeder.prepare()
    outcome = await seeder.seed(30)
    assert outcome.cases == 30 and outcome.tasks_completed > 30 and outcome.left_open + outcome.left_claimed > 0
    ops = await token_of(db, "ops", "OPS_VIEWER")
    client = await aiohttp_client(bridge_app(db_url, engine))
    bearer = {"Authorization": f"Bearer {ops}"}
    api = {name: await (await client.get(f"/api/reports/{name}", headers=bearer)).json()
           for name in ("queues", "throughput", "workload")}
    live = sum(q[k] for q in api["queues"]["queues"]
               for k in ("open_tasks", "claimed_tasks", "delegated_tasks", "escalated_tasks"))
    assert live == outcome.left_open + outcome.left_claimed  # the seed's open work, all mirrored

    problems: list[str] = []
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page(viewport={"width": 1400, "height": 900})
            await page.goto(str(client.make_url("/dashboard")))
            await page.fill("#token", ops)
            page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type in
                    ("error", "warning") else None)
            page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
            await page.click("button[type=submit]")
            await page.wait_for_selector("section[aria-label=queues] table")

            assert await page.get_attribute("meta[http-equiv=refresh]", "content") == "30"
            for q in api["queues"]["queues"]:
                row = page.locator(f'tr[data-queue="{q["queue_name"]}"]')
                for field in ("open_tasks", "claimed_tasks", "breached_tasks", "at_risk_tasks", "completed_in_range"):
                    shown = await row.locator(f'td[data-field="{field}"]').inner_text()
                    assert int(shown) == q[field], (q["queue_name"], field)
            assert int(await page.inner_text('[data-total="live_tasks"]')) == live
            assert int(await page.inner_text('[data-total="completed"]')) == api["throughput"]["totals"]["completed"]
            assert int(await page.inner_text('[data-total="created"]')) == api["throughput"]["totals"]["created"]
            for u in api["workload"]["users"][:15]:
                held = await page.locator(f'tr[data-user="{u["user_id"]}"] td[data-field="held_tasks"]').inner_text()
                assert int(held) == u["held_tasks"], u["user_id"]
            assert await page.locator("section[aria-label=throughput] svg rect").count() >= 48  # 24 h, two bars each
            pushed, dropped = (await page.inner_text('td[data-field="emitter"]')).split(" / ")
            assert int(pushed) > 0 and int(dropped) >= 0  # the real engine's emitter answered
            ARTIFACTS.mkdir(exist_ok=True)
            await page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)

            # One department, chosen the way a person would: its queues only, as the API filters them.
            department = next(d["department_code"] for d in api["queues"]["departments"] if d["department_code"])
            await page.select_option("select[name=department]", department)
            await page.click("header form[action=\"/dashboard\"] button")
            await page.wait_for_url(f"**department={department}**")
            only = await (await client.get(f"/api/reports/queues?department={department}", headers=bearer)).json()
            shown = await page.eval_on_selector_all("tr[data-queue]", "rows => rows.map(r => r.dataset.queue)")
            assert sorted(shown) == sorted(q["queue_name"] for q in only["queues"]) and shown
        finally:
            await browser.close()
    assert problems == []
