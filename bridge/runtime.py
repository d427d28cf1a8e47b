"""Where the service's PostgreSQL comes from: DATABASE_URL, or the embedded server."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from bridge.config import Settings
from bridge.db.embedded import EmbeddedPostgres

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
