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


def _float(env: dict[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None
    if not value > 0:
        raise ConfigError(f"{name} must be more than 0, got {raw!r}")
    return value


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
    # Seconds a request waits for a free connection before it is answered 503 (saturated).
    db_pool_timeout_s: float = 10
    # Processes serving HTTP on the same port (SO_REUSEPORT); measured best at 2 on 2 cores.
    workers: int = 2
    # None means: build and start the Flowable engine under engine/ on engine_port.
    flowable_url: str | None = None
    flowable_user: str = "rest-admin"
    flowable_password: str = "test"
    engine_port: int = 8081
    engine_java_opts: str = "-Xmx768m -XX:+UseSerialGC"
    # None means: generate one on first run and keep it in data_dir/webhook-secret.
    webhook_secret: str | None = None
    # Secrets that signed before the current one, still accepted during a rotation.
    webhook_previous_secrets: tuple[str, ...] = ()
    # BPMN files `bridge up` deploys (idempotently) once the engine answers.
    deploy_on_start: tuple[Path, ...] = (PROJECT_ROOT / "bpmn" / "OneCMS_Nextgen_WF.bpmn20.xml",)
    # Seconds between the service's reconciler passes; 0 turns the background reconciler off.
    reconcile_interval_s: int = 10
    # Rows per page when the reconciler reads engine history.
    reconcile_page_size: int = 500
    # Minutes between sweeps that compare every running instance, not only what the task log names.
    reconcile_sweep_minutes: int = 10
    # Seconds between SLA escalation rounds; 0 turns the background escalation off.
    escalate_interval_s: int = 60
    # Seconds between auto-assignment rounds; 0 turns auto-assignment off.
    auto_assign_interval_s: int = 2
    # Java classes and Spring beans of the site's own that deployed BPMN may call (bridge/bpmn_policy.py).
    deploy_allowed_delegates: tuple[str, ...] = ()

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if env is None else env)
        defaults = cls()
        if env.get("BRIDGE_LOG_FORMAT", "text") not in ("text", "json"):
            raise ConfigError(f"BRIDGE_LOG_FORMAT must be text or json, got {env['BRIDGE_LOG_FORMAT']!r}")
        if _int(env, "BRIDGE_WORKERS", defaults.workers) < 1:
            raise ConfigError(f"BRIDGE_WORKERS must be at least 1, got {env['BRIDGE_WORKERS']!r}")
        return cls(
            database_url=env.get("DATABASE_URL") or None,
            data_dir=Path(env["BRIDGE_DATA_DIR"]) if env.get("BRIDGE_DATA_DIR") else defaults.data_dir,
            embedded_pg_port=_int(env, "BRIDGE_EMBEDDED_PG_PORT", defaults.embedded_pg_port),
            http_host=env.get("BRIDGE_HOST") or defaults.http_host,
            http_port=_int(env, "BRIDGE_PORT", defaults.http_port),
            migrations_dir=(Path(env["BRIDGE_MIGRATIONS_DIR"]) if env.get("BRIDGE_MIGRATIONS_DIR")
                            else defaults.migrations_dir),
            db_pool_size=_int(env, "BRIDGE_DB_POOL_SIZE", defaults.db_pool_size),
            db_pool_timeout_s=_float(env, "BRIDGE_DB_POOL_TIMEOUT_S", defaults.db_pool_timeout_s),
            workers=_int(env, "BRIDGE_WORKERS", defaults.workers),
            flowable_url=env.get("FLOWABLE_URL") or None,
            flowable_user=env.get("FLOWABLE_USER") or defaults.flowable_user,
            flowable_password=env.get("FLOWABLE_PASSWORD") or defaults.flowable_password,
            engine_port=_int(env, "BRIDGE_ENGINE_PORT", defaults.engine_port),
            engine_java_opts=env.get("BRIDGE_ENGINE_JAVA_OPTS") or defaults.engine_java_opts,
            webhook_secret=env.get("WEBHOOK_SECRET") or None,
            webhook_previous_secrets=tuple(s.strip() for s in env.get("WEBHOOK_PREVIOUS_SECRETS", "").split(",")
                                           if s.strip()),
            deploy_on_start=(tuple(Path(p) for p in env["BRIDGE_DEPLOY_ON_START"].split(",") if p.strip())
                             if "BRIDGE_DEPLOY_ON_START" in env else defaults.deploy_on_start),
            reconcile_interval_s=_int(env, "BRIDGE_RECONCILE_INTERVAL_S", defaults.reconcile_interval_s),
            reconcile_page_size=_int(env, "BRIDGE_RECONCILE_PAGE_SIZE", defaults.reconcile_page_size),
            reconcile_sweep_minutes=_int(env, "BRIDGE_RECONCILE_SWEEP_MINUTES", defaults.reconcile_sweep_minutes),
            escalate_interval_s=_int(env, "BRIDGE_ESCALATE_INTERVAL_S", defaults.escalate_interval_s),
            auto_assign_interval_s=_int(env, "BRIDGE_AUTO_ASSIGN_INTERVAL_S", defaults.auto_assign_interval_s),
            deploy_allowed_delegates=tuple(s.strip() for s in env.get("BRIDGE_DEPLOY_ALLOWED_DELEGATES", "").split(",")
                                           if s.strip()),
        )


# name, default, meaning: the source of the README's settings table.
SETTINGS_DOC: list[tuple[str, str, str]] = [
    ("DATABASE_URL", "(unset)",
     "PostgreSQL to use, e.g. postgresql://user:pw@host:5432/db. Unset: start the embedded one."),
    ("BRIDGE_DATA_DIR", "./.bridge-data", "Folder of the embedded PostgreSQL's data; kept between runs."),
    ("BRIDGE_EMBEDDED_PG_PORT", "55432", "TCP port (127.0.0.1) of the embedded PostgreSQL; 0 picks a free port."),
    ("BRIDGE_HOST", "127.0.0.1", "Address the HTTP server binds."),
    ("BRIDGE_PORT", "8080", "Port of the HTTP server."),
    ("BRIDGE_MIGRATIONS_DIR", "./migrations", "Folder of the ordered .sql migrations."),
    ("BRIDGE_DB_POOL_SIZE", "10", "Connections each serving process keeps open to PostgreSQL."),
    ("BRIDGE_DB_POOL_TIMEOUT_S", "10",
     "Seconds a request waits for a free connection; then it is answered 503 with Retry-After (saturated)."),
    ("BRIDGE_WORKERS", "2",
     "Processes serving HTTP on the same port; the first also "
     "runs the background jobs (reconciler, queue-load folding)."),
    ("FLOWABLE_URL", "(unset)",
     "Flowable REST base, e.g. http://flowable:8080/process-api. Unset: build and start engine/."),
    ("FLOWABLE_USER", "rest-admin", "Basic-auth user of the Flowable REST API (also given to the engine it starts)."),
    ("FLOWABLE_PASSWORD", "test", "Basic-auth password of the Flowable REST API."),
    ("BRIDGE_ENGINE_PORT", "8081", "Port (127.0.0.1) of the engine the bridge starts; 0 picks a free port."),
    ("BRIDGE_ENGINE_JAVA_OPTS", "-Xmx768m -XX:+UseSerialGC", "JVM options of the engine the bridge starts."),
    ("BRIDGE_DEPLOY_ON_START", "./bpmn/OneCMS_Nextgen_WF.bpmn20.xml",
     "Comma-separated BPMN files `bridge up` deploys on start (skipped when unchanged); empty: none."),
    ("WEBHOOK_SECRET", "(generated)",
     "Standard Webhooks secret whsec_<base64> shared with the engine; unset: made once, kept in BRIDGE_DATA_DIR."),
    ("WEBHOOK_PREVIOUS_SECRETS", "(none)",
     "Comma-separated secrets still accepted on incoming webhooks while the engine moves to WEBHOOK_SECRET."),
    ("BRIDGE_LOG_FORMAT", "text",
     "text: a line per record for a terminal; json: one JSON object per "
     "line (ts, level, logger, pid, message, request_id) for a log pipeline."),
    ("BRIDGE_RECONCILE_INTERVAL_S", "10",
     "Seconds between the service's reconciler passes; 0 turns the background reconciler off."),
    ("BRIDGE_RECONCILE_PAGE_SIZE", "500", "Rows per page when the reconciler reads engine history."),
    ("BRIDGE_ESCALATE_INTERVAL_S", "60",
     "Seconds between SLA escalation rounds (overdue tasks "
     "escalate, queues' escalation_config is carried out); 0: off."),
    ("BRIDGE_AUTO_ASSIGN_INTERVAL_S", "2",
     "Seconds between auto-assignment rounds (queues whose assignments say auto_assign); 0: off."),
    ("BRIDGE_DEPLOY_ALLOWED_DELEGATES", "(none)",
     "Comma-separated Java class names and Spring bean names of the site's own "
     "that deployed BPMN may use (flowable:class, delegateExpression, bean "
     "method calls in expressions); nothing else runs (bridge/bpmn_policy.py)."),
    ("BRIDGE_RECONCILE_SWEEP_MINUTES", "10",
     "Minutes between reconciler sweeps over every running instance (between them, only what the task log names)."),
]
