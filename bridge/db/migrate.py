"""Ordered plain-SQL migrations, applied once each, never silently changed.

Files are `migrations/NNNN_name.sql`, applied in number order, each inside its own transaction
together with its row in `public.bridge_schema_migrations` (so a file is either applied and
recorded, or neither). The whole run holds a PostgreSQL advisory lock: a second bridge starting
at the same moment waits, then finds nothing left to do. A file whose bytes changed after it was
applied is refused by name: fix forward with a new file instead.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg

from bridge.errors import BridgeError

log = logging.getLogger(__name__)

HISTORY_TABLE = "public.bridge_schema_migrations"
# pg_advisory_lock key shared by every bridge migrating the same database ("OneCMS" + 1).
MIGRATION_LOCK_KEY = 0x4F6E65434D5301
_FILE_NAME = re.compile(r"^(?P<number>\d{4})_(?P<name>[a-z0-9_]+)\.sql$")


class MigrationError(BridgeError, RuntimeError):
    """The migrations on disk and in the database do not agree, or one failed."""


@dataclass(frozen=True)
class Migration:
    version: str  # file name without .sql, e.g. "0001_schemas"
    path: Path
    checksum: str  # sha256 of the file's bytes

    @property
    def sql(self) -> str:
        return self.path.read_text(encoding="utf-8")


def discover(migrations_dir: Path) -> list[Migration]:
    """The migration files of a folder in apply order; refuses names that would order ambiguously."""
    if not migrations_dir.is_dir():
        raise MigrationError(f"migrations folder {migrations_dir} does not exist")
    found: dict[str, Migration] = {}
    numbers: dict[str, str] = {}
    for path in sorted(migrations_dir.iterdir()):
        if path.suffix != ".sql":
            continue
        match = _FILE_NAME.match(path.name)
        if not match:
            raise MigrationError(f"{path.name}: migration files are named NNNN_lower_case_name.sql")
        number = match["number"]
        if number in numbers:
            raise MigrationError(f"{path.name} and {numbers[number]} share the number {number}")
        numbers[number] = path.name
        found[path.stem] = Migration(path.stem, path, hashlib.sha256(path.read_bytes()).hexdigest())
    return [found[v] for v in sorted(found)]


_CREATE_HISTORY = f"""
CREATE TABLE IF NOT EXISTS {HISTORY_TABLE} (
    version      TEXT        PRIMARY KEY,
    checksum     TEXT        NOT NULL,
    applied_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    applied_by   TEXT        NOT NULL DEFAULT current_user,
    execution_ms INTEGER     NOT NULL
)
"""


async def _applied(conn: psycopg.AsyncConnection) -> dict[str, str]:
    cur = await conn.execute(f"SELECT version, checksum FROM {HISTORY_TABLE}")
    return {version: checksum for version, checksum in await cur.fetchall()}


def _check_history(migrations: list[Migration], applied: dict[str, str], folder: Path) -> None:
    on_disk = {m.version: m for m in migrations}
    for version, checksum in sorted(applied.items()):
        migration = on_disk.get(version)
        if migration is None:
            raise MigrationError(
                f"the database has migration {version}.sql applied, but {folder} has no such file: "
                "is this bridge older than the one that migrated the database?")
        if migration.checksum != checksum:
            raise MigrationError(
                f"{migration.path.name} was edited after it was applied "
                f"(applied sha256 {checksum[:12]}..., file now {migration.checksum[:12]}...): "
                "restore it and put the change in a new migration file")


async def migrate(conninfo: str, migrations_dir: Path) -> list[str]:
    """Apply every pending migration; returns the versions applied (empty when up to date)."""
    migrations = discover(migrations_dir)
    async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as conn:
        await conn.execute("SELECT pg_advisory_lock(%s)", [MIGRATION_LOCK_KEY])
        try:
            await conn.execute(_CREATE_HISTORY)
            applied = await _applied(conn)
            _check_history(migrations, applied, migrations_dir)
            done: list[str] = []
            for migration in migrations:
                if migration.version in applied:
                    continue
                started = time.monotonic()
                try:
                    async with conn.transaction():
                        await conn.execute(migration.sql)
                        await conn.execute(
                            f"INSERT INTO {HISTORY_TABLE} (version, checksum, execution_ms) VALUES (%s, %s, %s)",
                            [migration.version, migration.checksum, int((time.monotonic() - started) * 1000)])
                except psycopg.Error as err:
                    raise MigrationError(f"{migration.path.name} failed and was rolled back: {err}") from err
                log.info("applied migration %s", migration.version)
                done.append(migration.version)
            return done
        finally:
            if not conn.closed:  # a dropped connection has released the lock already
                await conn.execute("SELECT pg_advisory_unlock(%s)", [MIGRATION_LOCK_KEY])


async def pending(conninfo: str, migrations_dir: Path) -> list[str]:
    """Versions not yet applied (raises like migrate() when history and files disagree)."""
    migrations = discover(migrations_dir)
    async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as conn:
        cur = await conn.execute("SELECT to_regclass(%s) IS NOT NULL", [HISTORY_TABLE])
        row = await cur.fetchone()
        applied = await _applied(conn) if row and row[0] else {}
    _check_history(migrations, applied, migrations_dir)
    return [m.version for m in migrations if m.version not in applied]
