"""Connections to PostgreSQL: one pooled SQLAlchemy AsyncEngine (psycopg 3 underneath) per process, opened
with `open_database` (SQLAlchemy calls it an engine; here "engine" is Flowable's alone).

URLs are accepted in the form users write them (postgresql://...); the driver suffix SQLAlchemy
needs is added here and nowhere else.
"""

from __future__ import annotations

from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine


def sqlalchemy_url(url: str) -> str:
    """postgresql://... -> postgresql+psycopg://... (the async psycopg 3 dialect)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql":
        raise ValueError(f"not a PostgreSQL URL: {parsed.render_as_string(hide_password=True)}")
    return parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)


def libpq_url(url: str) -> str:
    """The same URL as plain libpq/psycopg accepts it (no +driver)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


# PostgreSQL rolled the transaction back because of another one: doing it again may well succeed.
TRANSIENT_SQLSTATES = {"40P01": "deadlock detected", "40001": "serialization failure"}


def transient_conflict(err: BaseException) -> bool:
    """Whether `err` (SQLAlchemy's wrapper or psycopg's own) is a transaction PostgreSQL rolled back for a
    conflict with another one, as opposed to a failure a retry would meet again."""
    return getattr(getattr(err, "orig", err), "sqlstate", None) in TRANSIENT_SQLSTATES


def open_database(url: str, *, pool_size: int = 10, pool_timeout: float = 30) -> AsyncEngine:
    """A connection pool to the database at `url`; the caller disposes of it."""
    return create_async_engine(
        sqlalchemy_url(url),
        pool_size=pool_size,
        max_overflow=0,
        pool_timeout=pool_timeout,  # then sqlalchemy.exc.TimeoutError: the service answers 503 (web/errors.py)
        pool_pre_ping=True,  # survive a database restart without a burst of errors
    )
