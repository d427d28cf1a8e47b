"""Settings of the service, read once from the environment.

Every setting is declared once (`setting(...)` on its Settings field): its environment variable, default,
how its text is read, and its line of the README's settings table, which tests/test_config.py checks
against these declarations.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from bridge.errors import BridgeError

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class ConfigError(BridgeError, ValueError):
    """A setting has a value the service cannot use."""


def _text(raw: str, name: str) -> str:
    return raw


def _optional(raw: str, name: str) -> str | None:
    return raw or None


def _int(raw: str, name: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None


def _days(raw: str, name: str) -> int:
    value = _int(raw, name)
    if not 1 <= value <= 36500:
        raise ConfigError(f"{name} must be from 1 to 36500 days, got {value}")
    return value


def _workers(raw: str, name: str) -> int:
    value = _int(raw, name)
    if value < 1:
        raise ConfigError(f"{name} must be at least 1, got {raw!r}")
    return value


def _seconds(raw: str, name: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None
    if not value > 0:
        raise ConfigError(f"{name} must be more than 0, got {raw!r}")
    return value


def _path(raw: str, name: str) -> Path:
    return Path(raw)


def _names(raw: str, name: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in raw.split(",") if part.strip())


def _paths(raw: str, name: str) -> tuple[Path, ...]:
    return tuple(Path(part.strip()) for part in raw.split(",") if part.strip())


def _log_format(raw: str, name: str) -> str:
    if raw not in ("text", "json"):
        raise ConfigError(f"{name} must be text or json, got {raw!r}")
    return raw


def setting(env: str, default: Any, doc: str, *, parse: Callable[[str, str], Any], shown: str | None = None,
            empty_is_default: bool = True, factory: Callable[[], Any] | None = None) -> Any:
    """One setting, declared once: the Settings field's default, its environment variable, how its text is
    read, and its line of the README's table (`shown`: the default as the table says it). An empty variable
    means the default, unless `empty_is_default` is False (then the empty text is read: "none")."""
    metadata = {"env": env, "doc": doc, "parse": parse, "empty_is_default": empty_is_default,
                "shown": shown if shown is not None else str(default)}
    if factory is not None:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass(frozen=True)
class Settings:
    """Every setting of the service, in the order of the README's table."""

    database_url: str | None = setting(
        "DATABASE_URL", None, "PostgreSQL to use, e.g. postgresql://user:pw@host:5432/db. Unset: start the "
        "embedded one.", parse=_optional, shown="(unset)")
    database_read_url: str | None = setting(
        "DATABASE_READ_URL", None, "A streaming replica of DATABASE_URL for the reports and the dashboard: their "
        "reads trail the primary by the replica's lag, which mirror health shows. Unset: the primary.",
        parse=_optional, shown="(unset)")
    data_dir: Path = setting(
        "BRIDGE_DATA_DIR", None, "Folder of the embedded PostgreSQL's data; kept between runs.", parse=_path,
        shown="./.bridge-data", factory=lambda: Path.cwd() / ".bridge-data")
    # TCP, not only a socket, because the Flowable engine reaches the same server over JDBC.
    embedded_pg_port: int = setting(
        "BRIDGE_EMBEDDED_PG_PORT", 55432, "TCP port (127.0.0.1) of the embedded PostgreSQL; 0 picks a free port.",
        parse=_int)
    http_host: str = setting("BRIDGE_HOST", "127.0.0.1", "Address the HTTP server binds.", parse=_text)
    http_port: int = setting("BRIDGE_PORT", 8080, "Port of the HTTP server.", parse=_int)
    migrations_dir: Path = setting(
        "BRIDGE_MIGRATIONS_DIR", PROJECT_ROOT / "migrations", "Folder of the ordered .sql migrations.",
        parse=_path, shown="./migrations")
    db_pool_size: int = setting(
        "BRIDGE_DB_POOL_SIZE", 10, "Connections each serving process keeps open to PostgreSQL.", parse=_int)
    db_pool_timeout_s: float = setting(
        "BRIDGE_DB_POOL_TIMEOUT_S", 10.0, "Seconds a request waits for a free connection; then it is answered "
        "503 with Retry-After (saturated).", parse=_seconds, shown="10")
    # measured best at 2 on 2 cores (bench/webhook_ingest.py)
    workers: int = setting(
        "BRIDGE_WORKERS", 2, "Processes serving HTTP on the same port; the first also runs the background jobs "
        "(reconciler, queue-load folding).", parse=_workers)
    flowable_url: str | None = setting(
        "FLOWABLE_URL", None, "Flowable REST base, e.g. http://flowable:8080/process-api, or the nodes of one "
        "engine cluster comma-separated (requests fail over between them). Unset: build and start engine/.",
        parse=_optional, shown="(unset)")
    flowable_user: str = setting(
        "FLOWABLE_USER", "rest-admin", "Basic-auth user of the Flowable REST API (also given to the engine it "
        "starts).", parse=_text)
    flowable_password: str = setting(
        "FLOWABLE_PASSWORD", "test", "Basic-auth password of the Flowable REST API.", parse=_text)
    engine_port: int = setting(
        "BRIDGE_ENGINE_PORT", 8081, "Port (127.0.0.1) of the engine the bridge starts; 0 picks a free port.",
        parse=_int)
    engine_java_opts: str = setting(
        "BRIDGE_ENGINE_JAVA_OPTS", "-Xmx768m -XX:+UseSerialGC", "JVM options of the engine the bridge starts.",
        parse=_text)
    deploy_on_start: tuple[Path, ...] = setting(
        "BRIDGE_DEPLOY_ON_START", (PROJECT_ROOT / "bpmn" / "OneCMS_Nextgen_WF.bpmn20.xml",),
        "Comma-separated BPMN files `bridge up` deploys on start (skipped when unchanged); empty: none.",
        parse=_paths, shown="./bpmn/OneCMS_Nextgen_WF.bpmn20.xml", empty_is_default=False)
    webhook_secret: str | None = setting(
        "WEBHOOK_SECRET", None, "Standard Webhooks secret whsec_<base64> shared with the engine; unset: made once, "
        "kept in BRIDGE_DATA_DIR.", parse=_optional, shown="(generated)")
    webhook_previous_secrets: tuple[str, ...] = setting(
        "WEBHOOK_PREVIOUS_SECRETS", (), "Comma-separated secrets still accepted on incoming webhooks while the "
        "engine moves to WEBHOOK_SECRET.", parse=_names, shown="(none)")
    log_format: str = setting(
        "BRIDGE_LOG_FORMAT", "text", "text: a line per record for a terminal; json: one JSON object per line (ts, "
        "level, logger, pid, message, request_id) for a log pipeline.", parse=_log_format)
    reconcile_interval_s: int = setting(
        "BRIDGE_RECONCILE_INTERVAL_S", 10, "Seconds between the service's reconciler passes; 0 turns the "
        "background reconciler off.", parse=_int)
    reconcile_page_size: int = setting(
        "BRIDGE_RECONCILE_PAGE_SIZE", 500, "Rows per page when the reconciler reads engine history.", parse=_int)
    escalate_interval_s: int = setting(
        "BRIDGE_ESCALATE_INTERVAL_S", 60, "Seconds between SLA escalation rounds (overdue tasks escalate, queues' "
        "escalation_config is carried out); 0: off.", parse=_int)
    auto_assign_interval_s: int = setting(
        "BRIDGE_AUTO_ASSIGN_INTERVAL_S", 2, "Seconds between auto-assignment rounds (queues whose assignments say "
        "auto_assign); 0: off.", parse=_int)
    deploy_allowed_delegates: tuple[str, ...] = setting(
        "BRIDGE_DEPLOY_ALLOWED_DELEGATES", (), "Comma-separated Java class names and Spring bean names of the "
        "site's own that deployed BPMN may use (flowable:class, delegateExpression, bean method calls in "
        "expressions); nothing else runs (bridge/bpmn/policy.py).", parse=_names, shown="(none)")
    reconcile_sweep_minutes: int = setting(
        "BRIDGE_RECONCILE_SWEEP_MINUTES", 10, "Minutes between reconciler sweeps over every running instance "
        "(between them, only what the task log names).", parse=_int)
    retention_days: int = setting(
        "BRIDGE_RETENTION_DAYS", 365, "Days a completed instance stays in the mirror's hot tables before archiving "
        "takes it, for a process key without a retention of its own (`bridge retention`).", parse=_days)
    archive_interval_s: int = setting(
        "BRIDGE_ARCHIVE_INTERVAL_S", 3600, "Seconds between archiving runs in the service (one replica at a "
        "time: history months ahead, due instances to the archive, the engine's history of archived instances, "
        "the inbox pruned); 0: off, `bridge archive` only.", parse=_int)
    lease_ttl_s: int = setting(
        "BRIDGE_LEASE_TTL_S", 15, "Seconds a replica's lease on the background jobs lasts (one replica at a time "
        "runs them: reconciler, escalation, auto-assignment, folds, archiving); renewed every third of it, so "
        "another replica takes over at most this plus a third after the holder dies.", parse=_int)
    inbox_retention_days: int = setting(
        "BRIDGE_INBOX_RETENTION_DAYS", 30, "Days an applied webhook batch stays in the inbox (a redelivery "
        "within them is recognised as a duplicate).", parse=_days)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        values = {}
        for declared in fields(cls):
            meta = declared.metadata
            raw = env.get(meta["env"])
            if raw is None or (raw == "" and meta["empty_is_default"]):
                continue
            values[declared.name] = meta["parse"](raw, meta["env"])
        return cls(**values)


# name, default, meaning: the README's settings table, made from the declarations above.
SETTINGS_DOC: list[tuple[str, str, str]] = [
    (f.metadata["env"], f.metadata["shown"], f.metadata["doc"]) for f in fields(Settings)]
