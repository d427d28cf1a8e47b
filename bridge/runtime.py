"""Where the service's dependencies come from: given by URL, or started here for the embedded default.

Each provider is a context manager that yields what the bridge connects to and, when it started
something, stops it on the way out (in reverse order of start).
"""

from __future__ import annotations

import logging
import os
import shlex
from collections.abc import Iterator
from contextlib import contextmanager

from bridge.config import Settings
from bridge.db.embedded import EmbeddedPostgres
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


@contextmanager
def provisioned_engine(settings: Settings, database_url: str) -> Iterator[FlowableEndpoint]:
    """Yields the Flowable REST endpoint; with no FLOWABLE_URL, builds and runs engine/ meanwhile."""
    if settings.flowable_url:
        yield FlowableEndpoint(settings.flowable_url, settings.flowable_user, settings.flowable_password)
        return
    already = LocalEngine.answering(settings.engine_port, settings.flowable_user, settings.flowable_password)
    if already is not None:  # e.g. `bridge deploy` while `bridge up` runs: use its engine
        log.info("using the Flowable engine already running at %s", already)
        yield FlowableEndpoint(already, settings.flowable_user, settings.flowable_password)
        return
    engine = LocalEngine(
        build_engine_jar(),
        database_url=database_url,
        port=settings.engine_port,
        user=settings.flowable_user,
        password=settings.flowable_password,
        webhook_url=f"http://127.0.0.1:{settings.http_port}/webhooks/flowable",
        webhook_secret=webhook_secret(settings),
        log_file=settings.data_dir / "engine.log",
        java_options=shlex.split(settings.engine_java_opts),
    )
    log.info("starting the Flowable engine (log: %s)", engine.log_file)
    with engine:
        yield FlowableEndpoint(engine.base_url, engine.user, engine.password)
