"""The Flowable engine under engine/, built once with Maven and run as a local process.

    jar = build_engine_jar()                   # cached by a fingerprint of engine/'s sources
    with LocalEngine(jar, database_url=..., webhook_url=..., webhook_secret=...) as engine:
        engine.base_url                        # http://127.0.0.1:PORT/process-api

The built jar is kept in a cache folder outside the work tree (~/.cache/onecms-bridge/engine/),
named by the fingerprint, so a fresh clone with the same engine sources (CI) starts without a
Maven build, and any change under engine/ builds a new one.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from sqlalchemy.engine import make_url

from bridge.config import PROJECT_ROOT
from bridge.db.embedded import free_tcp_port
from bridge.errors import BridgeError

log = logging.getLogger(__name__)

ENGINE_DIR = PROJECT_ROOT / "engine"
JAR_NAME = "onecms-flowable-engine.jar"
READY_PATH = "/management/engine"  # under the REST base
KEEP_BUILDS = 3


class EngineError(BridgeError, RuntimeError):
    """The engine could not be built or started; the message carries the log's tail."""


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(os.environ.get("BRIDGE_ENGINE_CACHE", Path(base) / "onecms-bridge" / "engine"))


def source_fingerprint(engine_dir: Path = ENGINE_DIR) -> str:
    """sha256 over every source file of the engine project (paths and bytes), build output excluded."""
    digest = hashlib.sha256()
    for path in sorted(p for p in engine_dir.rglob("*") if p.is_file()):
        relative = path.relative_to(engine_dir)
        if relative.parts[0] == "target":
            continue
        digest.update(str(relative).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def build_engine_jar(engine_dir: Path = ENGINE_DIR, *, force: bool = False) -> Path:
    """The engine's executable jar, built with Maven only when its sources changed."""
    fingerprint = source_fingerprint(engine_dir)
    cached = cache_dir() / f"onecms-flowable-engine-{fingerprint}.jar"
    if cached.exists() and not force:
        log.info("engine jar is current: %s", cached)
        return cached
    mvn = shutil.which("mvn")
    if mvn is None:
        raise EngineError("Maven (mvn) is not installed; it builds the engine (JDK 17 + Maven 3.8+)")
    log.info("building the Flowable engine with Maven (first build downloads its dependencies)")
    started = time.monotonic()
    result = subprocess.run([mvn, "-q", "-B", "-DskipTests", "package"], cwd=engine_dir,
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise EngineError(f"mvn package failed (exit {result.returncode}):\n"
                          f"{_tail(result.stdout + result.stderr, 60)}")
    cached.parent.mkdir(parents=True, exist_ok=True)
    partial = cached.with_suffix(".partial")
    shutil.copyfile(engine_dir / "target" / JAR_NAME, partial)
    partial.replace(cached)  # atomic: a concurrent starter never sees half a jar
    log.info("engine built in %.0fs: %s", time.monotonic() - started, cached)
    _prune(cached.parent, keep=KEEP_BUILDS)
    return cached


def _prune(folder: Path, keep: int) -> None:
    """Drop all but the newest `keep` cached jars (41 MB each; other checkouts may use the recent ones)."""
    jars = sorted(folder.glob("onecms-flowable-engine-*.jar"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in jars[keep:]:
        old.unlink(missing_ok=True)


def jdbc_settings(database_url: str) -> dict[str, str]:
    """Spring datasource environment for a postgresql:// URL, tables in schema flowable."""
    url = make_url(database_url)
    host = url.host or "127.0.0.1"
    port = url.port or 5432
    return {
        "SPRING_DATASOURCE_URL": f"jdbc:postgresql://{host}:{port}/{url.database}?currentSchema=flowable",
        "SPRING_DATASOURCE_USERNAME": url.username or "postgres",
        "SPRING_DATASOURCE_PASSWORD": url.password or "",
    }


def new_webhook_secret() -> str:
    """A Standard Webhooks secret: whsec_ + base64 of 32 random bytes."""
    return "whsec_" + base64.b64encode(os.urandom(32)).decode()


class LocalEngine:
    """One engine process on a local port; start() waits until its REST API answers."""

    def __init__(
        self,
        jar: Path,
        *,
        database_url: str,
        port: int = 0,
        user: str = "rest-admin",
        password: str = "test",
        webhook_url: str | None = None,
        webhook_secret: str | None = None,
        log_file: Path,
        java_options: list[str] | None = None,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.jar = jar
        self.port = port or free_tcp_port()
        self.user, self.password = user, password
        self.log_file = log_file
        self.webhook_secret = webhook_secret
        self.java_options = java_options if java_options is not None else ["-Xmx768m", "-XX:+UseSerialGC"]
        self.env = {
            **jdbc_settings(database_url),
            "SERVER_PORT": str(self.port),
            "SERVER_ADDRESS": "127.0.0.1",
            "FLOWABLE_REST_USER": user,
            "FLOWABLE_REST_PASSWORD": password,
            "WEBHOOK_URL": webhook_url or "",
            "WEBHOOK_SECRET": webhook_secret or "",
            "WEBHOOK_ENABLED": "true" if webhook_url else "false",
            **(extra_env or {}),
        }
        self._process: subprocess.Popen | None = None
        # told the pid at once, before the engine answers (bridge/flowable/engine_record.py records it)
        self.on_spawn: Callable[[int], None] | None = None

    @property
    def root_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.root_url}/process-api"

    def start(self, timeout: float = 240) -> LocalEngine:
        java = shutil.which("java")
        if java is None:
            raise EngineError("java is not installed; the engine needs JDK 17")
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        log_handle = self.log_file.open("ab")
        started = time.monotonic()
        self._process = subprocess.Popen(
            [java, *self.java_options, "-jar", str(self.jar)],
            env={**os.environ, **self.env}, stdout=log_handle, stderr=subprocess.STDOUT,
            start_new_session=True)  # Ctrl-C in a terminal reaches us, and we stop it in order
        log_handle.close()
        if self.on_spawn is not None:
            self.on_spawn(self._process.pid)
        while not self._answers():
            if self._process.poll() is not None:
                raise EngineError(f"the engine exited with {self._process.returncode} while starting; "
                                  f"log {self.log_file}:\n{self.log_tail()}")
            if time.monotonic() - started > timeout:
                self.stop()
                raise EngineError(f"the engine did not answer {READY_PATH} within {timeout:.0f}s; "
                                  f"log {self.log_file}:\n{self.log_tail()}")
            time.sleep(0.5)
        log.info("Flowable engine ready at %s in %.1fs", self.base_url, time.monotonic() - started)
        return self

    def stop(self, timeout: float = 30) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)  # Spring shuts down gracefully: executor, emitter, pool
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def __enter__(self) -> LocalEngine:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def log_tail(self, lines: int = 80) -> str:
        try:
            return _tail(self.log_file.read_text(errors="replace"), lines)
        except FileNotFoundError:
            return "(no log written)"

    @property
    def auth_header(self) -> dict[str, str]:
        return _basic_auth(self.user, self.password)

    def _answers(self) -> bool:
        return engine_answers(self.base_url, self.user, self.password)


def _basic_auth(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def engine_answers(base_url: str, user: str, password: str) -> bool:
    """Whether an engine serves its REST API at `base_url` (.../process-api) with these credentials."""
    request = urllib.request.Request(base_url + READY_PATH, headers=_basic_auth(user, password))
    try:
        with urllib.request.urlopen(request, timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def _tail(text: str, lines: int) -> str:
    return "\n".join(text.splitlines()[-lines:])
