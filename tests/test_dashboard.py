"""/dashboard: signing in, what the page refuses, the database health panel, and, in Debian's headless Chromium,
the page over cases `bridge demo seed` drove through the real engine showing the numbers the reporting API
gives."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import shutil
from datetime import UTC, datetime, timedelta

import lxml.html
import psycopg
import pytest
from playwright.async_api import async_playwright

from bridge import auth, db_health
from bridge.demo import DemoSeeder
from bridge.web.dashboard import COOKIE, INDEXES_SHOWN, _health_context
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


# -- the database health panel ------------------------------------------------------------------------


async def health_panel(client, token: str) -> lxml.html.HtmlElement:
    page = await client.get("/dashboard", headers={"Authorization": f"Bearer {token}"})
    body = await page.text()
    assert page.status == 200, body
    (panel,) = lxml.html.fromstring(body).xpath('//section[@aria-label="database"]')
    return panel


def field(node: lxml.html.HtmlElement, name: str) -> str:
    (found,) = node.xpath(f'.//*[@data-field="{name}"]')
    return found.text_content().strip()


async def stat_of(conn: psycopg.AsyncConnection, table: str) -> tuple[int, int]:
    row = await (await conn.execute("SELECT n_live_tup, n_dead_tup FROM pg_stat_user_tables "
                                    "WHERE schemaname || '.' || relname = %s", [table])).fetchone()
    assert row is not None, table
    return row[0], row[1]


async def test_the_health_panel_shows_the_dead_tuples_of_the_hot_tables(db, db_url, conn, aiohttp_client):
    ops = await token_of(db, "ops", "OPS_VIEWER")
    # flowable.webhook_batches: hot, and read by none of the dashboard's reports (a read could prune dead
    # tuples); autovacuum off for it while the figures are compared.
    await conn.execute("ALTER TABLE flowable.webhook_batches SET (autovacuum_enabled = false)")
    try:
        await conn.execute("INSERT INTO flowable.webhook_batches (webhook_id, event_count) "
                           "SELECT 'wh-' || n, 0 FROM generate_series(1, 150) n")
        await conn.execute("DELETE FROM flowable.webhook_batches WHERE webhook_id <> ALL(%s)",
                           [[f"wh-{n}" for n in range(1, 14)]])
        await conn.execute("SELECT pg_stat_force_next_flush()")
        for _ in range(50):  # the statistics reach pg_stat_user_tables when this session's are flushed
            live, dead = await stat_of(conn, "flowable.webhook_batches")
            if dead >= 137:
                break
            await asyncio.sleep(0.1)
        assert (live, dead) == (13, 137)

        panel = await health_panel(await aiohttp_client(bridge_app(db_url)), ops)
        shown = {row.get("data-table"): row for row in panel.xpath(".//tr[@data-table]")}
        assert set(shown) == set(db_health.HOT_TABLES)
        row = shown["flowable.webhook_batches"]
        assert (int(field(row, "live_tuples")), int(field(row, "dead_tuples"))) == (live, dead)
        assert await stat_of(conn, "flowable.webhook_batches") == (live, dead)  # still what the page read
        assert field(row, "dead_pct") == "91.3%"
        assert field(row, "last_vacuum") == field(row, "last_autovacuum") == "never"
        assert list(shown)[0] == "flowable.webhook_batches"  # the most dead tuples first

        # never-used indexes: the count, and the biggest few with their size as PostgreSQL writes it
        unused = panel.xpath(".//tr[@data-unused-index]")
        assert int(field(panel, "unused_indexes")) >= len(unused) > 0 and len(unused) <= INDEXES_SHOWN
        for index in unused:
            size = (await (await conn.execute("SELECT pg_size_pretty(pg_relation_size(%s::regclass))",
                                              [index.get("data-unused-index")])).fetchone())[0]
            assert field(index, "size") == size
    finally:
        await conn.execute("ALTER TABLE flowable.webhook_batches RESET (autovacuum_enabled)")


async def test_a_transaction_held_open_shows_as_the_oldest_flagged_long_only_when_old_enough(
        db, db_url, aiohttp_client, monkeypatch):
    ops = await token_of(db, "ops", "OPS_VIEWER")
    client = await aiohttp_client(bridge_app(db_url))
    async with await psycopg.AsyncConnection.connect(db_url, application_name="held-by-dashboard") as held:
        await held.execute("SELECT txid_current()")  # a transaction with an id, left open
        await asyncio.sleep(1.2)  # older than any short transaction of anything else on the server
        panel = await health_panel(client, ops)
        (oldest,) = panel.xpath(".//tr[@data-oldest-transaction]")
        assert (field(oldest, "pid"), field(oldest, "application_name"), field(oldest, "state")) == (
            str(held.info.backend_pid), "held-by-dashboard", "idle in transaction")
        assert int(field(oldest, "open_seconds")) >= 1 and int(field(panel, "xmin_horizon_age")) >= 1
        assert not panel.xpath('.//*[@data-field="long_transaction"]')  # 1 s is not long (300 s is)

        monkeypatch.setattr(db_health, "LONG_TRANSACTION_S", 1)
        panel = await health_panel(client, ops)
        (oldest,) = panel.xpath(".//tr[@data-oldest-transaction]")
        assert field(oldest, "pid") == str(held.info.backend_pid)
        assert field(oldest, "long_transaction") == "LONG"
        await held.rollback()

    panel = await health_panel(client, ops)
    assert all(field(row, "application_name") != "held-by-dashboard"
               for row in panel.xpath(".//tr[@data-oldest-transaction]"))


def fabricated(open_seconds: float, **given) -> db_health.Health:
    t = {"pid": 4242, "user_name": "bridge", "application_name": "psql", "client": None,
         "state": "idle in transaction", "open_seconds": open_seconds, "xmin_age": 7, "last_query": "BEGIN"}
    return db_health.Health(**{"tables": [], "oldest_transactions": [t], "xmin_horizon_age": 7,
                               "unused_indexes": [], "index_bloat": [], "slow_statements": None, **given})


def test_the_long_flag_starts_at_long_transaction_s_and_the_indexes_read_as_sizes():
    now, nothing = datetime.now(UTC), db_health.Archiving(0, 0, None)
    long_s = db_health.LONG_TRANSACTION_S
    assert _health_context(fabricated(long_s - 0.5), nothing, now)["oldest"]["long"] is False
    assert _health_context(fabricated(long_s), nothing, now)["oldest"]["long"] is True
    assert _health_context(fabricated(long_s * 10), nothing, now)["oldest"]["open_text"] == "50 min"
    assert _health_context(dataclasses.replace(fabricated(1), oldest_transactions=[]), nothing, now)["oldest"] is None

    unused = [{"index_name": f"flowable.idx_{n}", "table_name": "flowable.t", "bytes": b}
              for n, b in enumerate([3 * 1024 ** 3, 20 * 1024 ** 2, 16384, 8192, 8192, 8192, 8192])]
    bloat = [{"index_name": "flowable.idx_b", "table_name": "flowable.t", "pages": 100, "bytes": 819200,
              "bloat_pages": 25}]
    vacuumed = {"table_name": "flowable.workflow_tasks", "live_tuples": 0, "dead_tuples": 0,
                "last_vacuum": now - timedelta(minutes=12), "last_autovacuum": None,
                "last_analyze": now - timedelta(hours=3), "changed_since_analyze": 0, "total_bytes": 8192}
    shown = _health_context(fabricated(1, unused_indexes=unused, index_bloat=bloat, tables=[vacuumed]),
                            db_health.Archiving(4, 1, now - timedelta(days=3)), now)
    assert shown["unused_count"] == 7 and len(shown["unused"]) == INDEXES_SHOWN
    assert [i["size"] for i in shown["unused"]] == ["3072 MB", "20 MB", "16 kB", "8192 bytes", "8192 bytes"]
    assert (shown["bloated"][0]["bloat_size"], shown["bloated"][0]["bloat_pct"], shown["bloat_pages"]) == (
        "200 kB", "25%", 25)
    (table,) = shown["tables"]
    assert (table["last_vacuum_text"], table["last_autovacuum_text"], table["last_analyze_text"],
            table["dead_pct"]) == ("12 min ago", "never", "3.0 h ago", "–")
    assert (shown["archived_instances"], shown["engine_history_pending"], shown["last_archived_text"]) == (
        4, 1, "3.0 days ago")


async def test_the_panel_counts_the_archive_ledger_and_says_whether_slow_statements_are_recorded(
        db, db_url, conn, aiohttp_client, monkeypatch):
    ops = await token_of(db, "ops", "OPS_VIEWER")
    client = await aiohttp_client(bridge_app(db_url))
    panel = await health_panel(client, ops)
    assert (field(panel, "archived_instances"), field(panel, "engine_history_pending")) == ("0", "0")
    assert field(panel, "slow_statements").startswith("pg_stat_statements is not installed")

    await conn.execute("""INSERT INTO archive.archived_instances
                            (process_instance_id, process_key, completed_at, archived_by, row_counts,
                             engine_history_deleted_at)
                          VALUES ('p1', 'onecms', now() - interval '400 days', 'test', '{}', now()),
                                 ('p2', 'onecms', now() - interval '400 days', 'test', '{}', NULL),
                                 ('p3', 'onecms', now() - interval '399 days', 'test', '{}', NULL)""")
    panel = await health_panel(client, ops)
    assert (field(panel, "archived_instances"), field(panel, "engine_history_pending")) == ("3", "2")

    real_read = db_health.read

    async def with_slow_statements(c, **kw) -> db_health.Health:  # as pg_stat_statements would give them
        return dataclasses.replace(await real_read(c, **kw), slow_statements=[
            {"query": "SELECT <b>slow</b> FROM flowable.workflow_tasks", "calls": 12, "mean_ms": 1234.5,
             "total_ms": 14814.0}])

    monkeypatch.setattr(db_health, "read", with_slow_statements)
    page = await client.get("/dashboard", headers={"Authorization": f"Bearer {ops}"})
    assert "SELECT &lt;b&gt;slow&lt;/b&gt; FROM flowable.workflow_tasks" in await page.text()
    (slow,) = lxml.html.fromstring(await page.text()).xpath('//tr[@data-slow-statement]')
    assert (field(slow, "calls"), field(slow, "mean_ms")) == ("12", "1,234.5 ms")


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
