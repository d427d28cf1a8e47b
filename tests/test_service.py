"""The README's run command: `bridge up` on its embedded default, and on DATABASE_URL."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import psycopg
import pytest

from bridge.db.embedded import free_tcp_port
from bridge.db.migrate import discover
from tests.conftest import MIGRATIONS, PROJECT_ROOT, PostgresCluster
from tests.helpers import spawn_logged

BRIDGE = [sys.executable, "-m", "bridge.cli"]


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


class RunningBridge:
    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.port = free_tcp_port()
        self.engine_port = free_tcp_port()
        self.log = log
        self.process = spawn_logged(
            [*BRIDGE, "up"], log, cwd=PROJECT_ROOT,
            env={**os.environ, "BRIDGE_ENGINE_PORT": str(self.engine_port), **env, "BRIDGE_PORT": str(self.port)})

    def wait_healthy(self, timeout: float = 300) -> None:  # the first run may build the engine
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"bridge up exited with {self.process.returncode}:\n{self.log.read_text()}")
            try:
                if _get(f"http://127.0.0.1:{self.port}/healthz")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        pytest.fail(f"bridge up did not answer /healthz in {timeout}s:\n{self.log.read_text()}")

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=60)


def _start_case(engine_port: int) -> str:
    """Start a OneCMS case straight through the engine's REST API (as another client of the engine would)."""
    body = json.dumps({"processDefinitionKey": "OneCMS_Nextgen_WF", "businessKey": "service-test",
                       "variables": [{"name": "caseId", "type": "long", "value": 1},
                                     {"name": "caseType", "type": "string", "value": "FRAUD"},
                                     {"name": "severity", "type": "string", "value": "HIGH"}]}).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{engine_port}/process-api/runtime/process-instances",
                                     data=body, method="POST", headers={
                                         "Content-Type": "application/json",
                                         "Authorization": "Basic " + base64.b64encode(b"rest-admin:test").decode()})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())["id"]


def _postmaster_running(data_dir: Path) -> bool:
    return (data_dir / "pgdata" / "postmaster.pid").exists()


@pytest.mark.needs_postgres  # starts its own, as `bridge up` does
def test_up_starts_embedded_postgres_migrates_serves_and_keeps_data_across_restarts(tmp_path: Path):
    data_dir = tmp_path / "data"
    env = {"BRIDGE_DATA_DIR": str(data_dir), "BRIDGE_EMBEDDED_PG_PORT": str(free_tcp_port())}
    env.pop("DATABASE_URL", None)
    log = tmp_path / "bridge.log"

    first = RunningBridge({**env, "DATABASE_URL": ""}, log)
    try:
        first.wait_healthy()
        status, body = _get(f"http://127.0.0.1:{first.port}/healthz")
        assert status == 200 and json.loads(body)["status"] == "ok"
        # BRIDGE_WORKERS defaults to 2: two processes take connections on the one port
        pids: set[int] = set()
        for _ in range(300):  # the second process may still be starting
            pids.add(json.loads(_get(f"http://127.0.0.1:{first.port}/healthz")[1])["pid"])
            if len(pids) == 2:
                break
            time.sleep(0.05)
        assert len(pids) == 2
        status, body = _get(f"http://127.0.0.1:{first.port}/readyz")
        assert status == 200, body
        assert json.loads(body)["checks"] == {"database": "ok", "migrations": "ok", "engine": "ok"}
        db = f"postgresql://postgres@127.0.0.1:{env['BRIDGE_EMBEDDED_PG_PORT']}/bridge"
        with psycopg.connect(db, autocommit=True) as c:
            c.execute("INSERT INTO entitlements.departments (department_code, department_name) VALUES ('KEEP', 'Kept')")
        # The engine it started pushes its events to its intake: a case started in the engine lands in the inbox.
        instance_id = _start_case(first.engine_port)
        with psycopg.connect(db, autocommit=True) as c:
            for _ in range(100):
                types = {t for (t,) in c.execute("SELECT event_type FROM flowable.engine_events "
                                                 "WHERE process_instance_id = %s", [instance_id])}
                if "TASK_CREATED" in types:
                    break
                time.sleep(0.1)
        assert {"PROCESS_STARTED", "TASK_CREATED"} <= types
    finally:
        assert first.stop() == 0
    assert not _postmaster_running(data_dir), "the embedded PostgreSQL was left running"
    assert "Flowable engine ready" in log.read_text()
    with pytest.raises(OSError):
        _get(f"http://127.0.0.1:{first.engine_port}/bridge-emitter/health")  # the engine stopped too
    assert f"applied {len(discover(MIGRATIONS))} migration(s)" in log.read_text()

    second = RunningBridge({**env, "DATABASE_URL": ""}, log)
    try:
        second.wait_healthy()
        with psycopg.connect(db, autocommit=True) as c:
            kept = c.execute("SELECT department_name FROM entitlements.departments "
                             "WHERE department_code = 'KEEP'").fetchone()
        assert kept == ("Kept",)
    finally:
        assert second.stop() == 0
    assert log.read_text().count("database schema is current") == 1
    # The OneCMS workflow is deployed on the first start and found unchanged on the second.
    assert "OneCMS_Nextgen_WF.bpmn20.xml: deployed (OneCMS_Nextgen_WF v1)" in log.read_text()
    assert "OneCMS_Nextgen_WF.bpmn20.xml: unchanged (OneCMS_Nextgen_WF v1)" in log.read_text()


def test_up_with_database_url_uses_that_server_and_starts_no_postgres(tmp_path: Path, pg_cluster: PostgresCluster):
    url = pg_cluster.create_database("t_service")
    data_dir = tmp_path / "must-stay-empty"
    bridge = RunningBridge({"DATABASE_URL": url, "BRIDGE_DATA_DIR": str(data_dir)}, tmp_path / "bridge.log")
    try:
        bridge.wait_healthy()
        status, body = _get(f"http://127.0.0.1:{bridge.port}/readyz")
        assert status == 200, body
        with psycopg.connect(url) as c:
            assert c.execute("SELECT count(*) FROM public.bridge_schema_migrations").fetchone()[0] >= 7
    finally:
        assert bridge.stop() == 0
        pg_cluster.drop_database(url)
    assert not (data_dir / "pgdata").exists(), "an embedded PostgreSQL was started despite DATABASE_URL"


def test_serve_refuses_an_unmigrated_database(tmp_path: Path, pg_cluster: PostgresCluster):
    url = pg_cluster.create_database("t_serve")
    try:
        result = subprocess.run([*BRIDGE, "serve"], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60,
                                env={**os.environ, "DATABASE_URL": url, "BRIDGE_PORT": str(free_tcp_port())})
    finally:
        pg_cluster.drop_database(url)
    assert result.returncode == 1
    assert "needs migrations first (bridge migrate): 0001_schemas" in result.stderr


def test_users_add_and_token_create_from_the_command_line(pg_cluster: PostgresCluster):
    url = pg_cluster.create_database("t_cli_tokens")
    env = {**os.environ, "DATABASE_URL": url}
    try:
        def bridge(*args: str) -> subprocess.CompletedProcess:
            return subprocess.run([*BRIDGE, *args], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60,
                                  env=env)

        missing = bridge("token", "create", "alice")
        assert missing.returncode == 2 and "no user 'alice': add them first" in missing.stderr
        assert bridge("users", "add", "alice", "--role", "NO_SUCH_ROLE").returncode == 2
        added = bridge("users", "add", "alice", "--role", "WORKFLOW_DESIGNER", "--email", "alice@example.org")
        assert added.returncode == 0, added.stderr
        created = bridge("token", "create", "alice", "--label", "ci", "--days", "30")
        assert created.returncode == 0, created.stderr
        token = created.stdout.strip()
        assert token.startswith("ocb_") and len(token) > 40
        with psycopg.connect(url) as c:
            stored = c.execute("SELECT user_id, label, expires_at > now() + interval '29 days', token_hash "
                               "FROM entitlements.api_tokens").fetchall()
            grants = c.execute("SELECT role_code FROM entitlements.v_active_role_grants WHERE user_id = 'alice'"
                               ).fetchall()
        assert [(u, label, expires) for u, label, expires, _ in stored] == [("alice", "ci", True)]
        assert token.encode() not in bytes(stored[0][3])  # only the hash is kept
        assert grants == [("WORKFLOW_DESIGNER",)]
    finally:
        pg_cluster.drop_database(url)


@pytest.mark.needs_postgres  # runs the CLI against a database that is not there, timeouts included
def test_an_unreachable_database_or_a_bad_secret_is_a_one_line_error_not_a_traceback(tmp_path: Path):
    base = {**os.environ, "FLOWABLE_URL": "http://127.0.0.1:1/process-api", "BRIDGE_DEPLOY_ON_START": "",
            "BRIDGE_PORT": str(free_tcp_port())}
    down = subprocess.run([*BRIDGE, "serve"], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60,
                          env={**base, "DATABASE_URL": f"postgresql://x@127.0.0.1:{free_tcp_port()}/x"})
    assert down.returncode == 2
    assert "cannot reach the database: connection failed" in down.stderr and "Traceback" not in down.stderr

    bad = subprocess.run([*BRIDGE, "up"], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                         env={**base, "DATABASE_URL": "", "BRIDGE_DATA_DIR": str(tmp_path / "d"),
                              "BRIDGE_EMBEDDED_PG_PORT": "0", "WEBHOOK_SECRET": "whsec_not base64"})
    assert bad.returncode == 2
    assert "WEBHOOK_SECRET / WEBHOOK_PREVIOUS_SECRETS: a webhook secret is whsec_ followed by base64" in bad.stderr
    assert "Traceback" not in bad.stderr
    assert not (tmp_path / "d" / "pgdata" / "postmaster.pid").exists()  # stopped on the way out


def test_commands_find_the_running_engine_and_never_start_a_second_one(tmp_path: Path, pg_cluster: PostgresCluster):
    """`bridge up` on any engine port records what it runs; status, drift, deploy, escalate and reconcile use
    that engine; from another data folder, the same database's engine is named and no second one starts."""
    url = pg_cluster.create_database("t_one_engine")
    data_dir = tmp_path / "data"
    env = {"DATABASE_URL": url, "BRIDGE_DATA_DIR": str(data_dir)}
    up = RunningBridge({**env, "BRIDGE_ENGINE_PORT": "0"}, tmp_path / "bridge.log")

    def bridge(*args: str, data: Path = data_dir) -> subprocess.CompletedProcess:
        return subprocess.run([*BRIDGE, *args], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120,
                              env={**os.environ, **env, "BRIDGE_DATA_DIR": str(data), "BRIDGE_ENGINE_PORT": "0"})

    try:
        up.wait_healthy()
        record = json.loads((data_dir / "engine.json").read_text())
        assert record["owner"]["pid"] == up.process.pid and record["owner"]["command"] == "bridge up"
        engine_url = record["base_url"]

        status = bridge("status")
        assert status.returncode == 0, status.stdout + status.stderr
        assert f"engine      ok, {engine_url}" in status.stdout
        assert f"bridge      serving at http://127.0.0.1:{up.port} (pid {up.process.pid}" in status.stdout

        for command in (["drift"], ["deploy", "--dry-run", "bpmn/OneCMS_Nextgen_WF.bpmn20.xml"], ["escalate"],
                        ["reconcile"]):
            result = bridge(*command)
            assert result.returncode == 0, f"{command}: {result.stdout}{result.stderr}"
            assert f"using the Flowable engine already running at {engine_url}" in result.stderr, result.stderr
            assert "starting the Flowable engine" not in result.stderr

        refused = bridge("drift", data=tmp_path / "elsewhere")
        assert refused.returncode == 2, refused.stdout + refused.stderr
        assert "an engine already runs on this database, started by bridge engine pid=" in refused.stderr
        assert "starting the Flowable engine" not in refused.stderr
        elsewhere = bridge("status", data=tmp_path / "elsewhere")
        assert elsewhere.returncode == 1
        assert "engine      NOT RUNNING from this data folder" in elsewhere.stdout
        assert bridge("engine", "start").returncode == 2  # the folder's engine runs: no second one
    finally:
        assert up.stop() == 0
        pg_cluster.drop_database(url)
    assert (data_dir / "engine.log").read_text().count("Started EngineApplication") == 1
    assert not (data_dir / "engine.json").exists(), "the record outlived the engine"
