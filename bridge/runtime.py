"""Where the service's dependencies come from: given by URL, or started here for the embedded default.

Each provider is a context manager that yields what the bridge connects to and, when it started
something, stops it on the way out (in reverse order of start).
"""

from __future__ import annotations

import logging
import os
import shlex
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

from bridge.config import Settings
from bridge.db.embedded import EmbeddedPostgres
from bridge.flowable import engine_record
from bridge.flowable.client import FlowableEndpoint
from bridge.flowable.local_engine import LocalEngine, build_engine_jar, new_webhook_secret

log = logging.getLogger(__name__)

EMBEDDED_DATABASE = "bridge"


@contextmanager
def provisioned_database(settings: Settings) -> Iterator[str]:
    """Yields the database URL to use; with no DATABASE_URL, runs the embedded server meanwhile."""
    if settings.database_url:
        yield settings.database_url
        return
    server = EmbeddedPostgres(settings.data_dir, port=settings.embedded_pg_port)
    with server:
        url = server.ensure_database(EMBEDDED_DATABASE)
        log.info("using embedded PostgreSQL: %s", url)
        yield url


def webhook_secret(settings: Settings) -> str:
    """WEBHOOK_SECRET, or the one generated on first run and kept beside the embedded data."""
    if settings.webhook_secret:
        return settings.webhook_secret
    path = settings.data_dir / "webhook-secret"
    if not path.exists():
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(new_webhook_secret())
        os.chmod(path, 0o600)
    return path.read_text().strip()


# How long a command waits for an engine another command of this folder is starting (a first start builds it).
ENGINE_START_WAIT_S = 300


@contextmanager
def provisioned_engine(settings: Settings, database_url: str, command: str = "") -> Iterator[FlowableEndpoint]:
    """Yields the Flowable REST endpoint: FLOWABLE_URL; else the engine a command of this data folder runs on
    this database (bridge/flowable/engine_record.py); else one built from engine/ and run meanwhile, unless
    an engine started elsewhere already runs on this database (then EngineAlreadyRunning: never a second).
    `command` (e.g. "deploy") names, in the record, what started the engine."""
    user, password = settings.flowable_user, settings.flowable_password
    if settings.flowable_url:
        yield FlowableEndpoint(settings.flowable_url, user, password)
        return
    recorded = engine_record.read(settings.data_dir, database_url)
    if recorded is not None:  # e.g. `bridge deploy` while `bridge up` runs: use its engine
        yield _running(recorded, settings)
        return
    engine = LocalEngine(
        build_engine_jar(),
        database_url=database_url,
        port=settings.engine_port,
        user=user,
        password=password,
        webhook_url=f"http://127.0.0.1:{settings.http_port}/webhooks/flowable",
        webhook_secret=webhook_secret(settings),
        log_file=settings.data_dir / "engine.log",
        java_options=shlex.split(settings.engine_java_opts),
    )
    with ExitStack() as stack:
        try:
            stack.enter_context(engine_record.holding_the_database(database_url, engine_port=engine.port))
        except engine_record.EngineAlreadyRunning:
            recorded = _recorded_soon(settings, database_url)
            if recorded is None:
                raise
        if recorded is not None:  # another command of this folder won the race a moment ago
            yield _running(recorded, settings)
            return
        engine.on_spawn = stack.enter_context(engine_record.recording(
            settings.data_dir, base_url=engine.base_url, database_url=database_url,
            command=f"bridge {command}".strip()))
        log.info("starting the Flowable engine (log: %s)", engine.log_file)
        with engine:
            yield FlowableEndpoint(engine.base_url, engine.user, engine.password)


def _recorded_soon(settings: Settings, database_url: str) -> engine_record.RecordedEngine | None:
    """The record of a command of this folder that took the database's engine lock a moment ago (it records
    at once), or None: then the engine was started from elsewhere."""
    for _ in range(10):
        time.sleep(0.2)
        if (recorded := engine_record.read(settings.data_dir, database_url)) is not None:
            return recorded
    return None

def _running(recorded: engine_record.RecordedEngine, settings: Settings) -> FlowableEndpoint:
    user, password = settings.flowable_user, settings.flowable_password
    url = recorded.wait_until_answering(user, password, timeout_s=ENGINE_START_WAIT_S)
    log.info("using the Flowable engine already running at %s", recorded.describe())
    return FlowableEndpoint(url, user, password)
