"""Settings of the service, read once from the environment.

Every setting has one name, one default and one line of why; the README's settings table is
generated from the same knowledge, so keep them in step.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class ConfigError(ValueError):
    """A setting has a value the service cannot use."""


def _int(env: dict[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None


@dataclass(frozen=True)
class Settings:
    # None means: start the embedded PostgreSQL and use it.
    database_url: str | None = None
    # Where the embedded PostgreSQL keeps its data (kept between runs).
    data_dir: Path = field(default_factory=lambda: Path.cwd() / ".bridge-data")
    # TCP port of the embedded PostgreSQL on 127.0.0.1 (0 picks a free one). TCP, not only a
    # socket, because the Flowable engine reaches the same server over JDBC.
    embedded_pg_port: int = 55432
    http_host: str = "127.0.0.1"
    http_port: int = 8080
    migrations_dir: Path = PROJECT_ROOT / "migrations"
    db_pool_size: int = 10

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> "Settings":
        env = dict(os.environ if env is None else env)
        defaults = cls()
        return cls(
            database_url=env.get("DATABASE_URL") or None,
            data_dir=Path(env["BRIDGE_DATA_DIR"]) if env.get("BRIDGE_DATA_DIR") else defaults.data_dir,
            embedded_pg_port=_int(env, "BRIDGE_EMBEDDED_PG_PORT", defaults.embedded_pg_port),
            http_host=env.get("BRIDGE_HOST") or defaults.http_host,
            http_port=_int(env, "BRIDGE_PORT", defaults.http_port),
            migrations_dir=Path(env["BRIDGE_MIGRATIONS_DIR"]) if env.get("BRIDGE_MIGRATIONS_DIR") else defaults.migrations_dir,
            db_pool_size=_int(env, "BRIDGE_DB_POOL_SIZE", defaults.db_pool_size),
        )


# name, default, meaning: the source of the README's settings table.
SETTINGS_DOC: list[tuple[str, str, str]] = [
    ("DATABASE_URL", "(unset)", "PostgreSQL to use, e.g. postgresql://user:pw@host:5432/db. Unset: start the embedded one."),
    ("BRIDGE_DATA_DIR", "./.bridge-data", "Folder of the embedded PostgreSQL's data; kept between runs."),
    ("BRIDGE_EMBEDDED_PG_PORT", "55432", "TCP port (127.0.0.1) of the embedded PostgreSQL; 0 picks a free port."),
    ("BRIDGE_HOST", "127.0.0.1", "Address the HTTP server binds."),
    ("BRIDGE_PORT", "8080", "Port of the HTTP server."),
    ("BRIDGE_MIGRATIONS_DIR", "./migrations", "Folder of the ordered .sql migrations."),
    ("BRIDGE_DB_POOL_SIZE", "10", "Connections the service keeps open to PostgreSQL."),
]
