"""docker-compose.yml: there is no Docker engine here, so the file is checked for consistency.

Where a `docker compose` client exists, the real compose validates, interpolates and normalises the file as well
(`config` needs no engine). `make test` builds one with Go from the version pinned in tools/compose-cli/go.mod
and passes it as COMPOSE_CLI; without Go those tests skip and say so.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from urllib.parse import urlparse

import pytest
import yaml

from tests.conftest import PROJECT_ROOT

ENV = {"WEBHOOK_SECRET": "whsec_dGVzdC1zZWNyZXQtb2YtZW5vdWdoLWxlbmd0aA==", "FLOWABLE_PASSWORD": "s3cret"}


def _interpolate(value, env: dict[str, str]):
    """Compose's ${VAR}, ${VAR:-default} and ${VAR:?error} on strings, recursively."""
    if isinstance(value, dict):
        return {k: _interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def one(match: re.Match) -> str:
        name, op, arg = match.group(1), match.group(2), match.group(3)
        if env.get(name):
            return env[name]
        if op == ":?":
            raise KeyError(f"{name}: {arg}")
        return arg or ""
    return re.sub(r"\$\{([A-Z_]+)(?:(:-|:\?)([^}]*))?\}", one, value)


@pytest.fixture(scope="module")
def compose() -> dict:
    raw = yaml.safe_load((PROJECT_ROOT / "docker-compose.yml").read_text())
    return _interpolate(raw, ENV)


def test_the_services_build_from_files_that_exist_and_start_in_order(compose):
    services = compose["services"]
    assert set(services) == {"postgres", "flowable", "bridge", "gateway"}
    assert (PROJECT_ROOT / services["flowable"]["build"] / "Dockerfile").is_file()
    assert (PROJECT_ROOT / services["bridge"]["build"] / "Dockerfile").is_file()
    assert services["flowable"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    assert services["bridge"]["depends_on"] == {"postgres": {"condition": "service_healthy"},
                                                "flowable": {"condition": "service_healthy"}}
    assert services["gateway"]["depends_on"] == {"bridge": {"condition": "service_healthy"}}
    assert all("healthcheck" in s for s in services.values())


def test_environment_is_consistent_between_services(compose):
    pg, engine, bridge = (compose["services"][n]["environment"] for n in ("postgres", "flowable", "bridge"))

    db = urlparse(bridge["DATABASE_URL"])
    assert (db.hostname, db.port, db.path.lstrip("/")) == ("postgres", 5432, pg["POSTGRES_DB"])
    assert (db.username, db.password) == (pg["POSTGRES_USER"], pg["POSTGRES_PASSWORD"])

    jdbc = urlparse(engine["SPRING_DATASOURCE_URL"].removeprefix("jdbc:"))
    assert (jdbc.hostname, jdbc.port, jdbc.path.lstrip("/")) == ("postgres", 5432, pg["POSTGRES_DB"])
    assert "currentSchema=flowable" in jdbc.query
    assert (engine["SPRING_DATASOURCE_USERNAME"], engine["SPRING_DATASOURCE_PASSWORD"]) == (
        pg["POSTGRES_USER"], pg["POSTGRES_PASSWORD"])

    rest = urlparse(bridge["FLOWABLE_URL"])
    assert (rest.hostname, rest.port, rest.path) == ("flowable", int(engine["SERVER_PORT"]), "/process-api")
    assert (bridge["FLOWABLE_USER"], bridge["FLOWABLE_PASSWORD"]) == (
        engine["FLOWABLE_REST_USER"], engine["FLOWABLE_REST_PASSWORD"]) == ("rest-admin", "s3cret")

    # the emitter's list: any replica by the service name, then the gateway in front of them all
    hooks = [urlparse(u) for u in engine["WEBHOOK_URL"].split(",")]
    assert [(h.hostname, h.port, h.path) for h in hooks] == [
        ("bridge", int(bridge["BRIDGE_PORT"]), "/webhooks/flowable"), ("gateway", 8080, "/webhooks/flowable")]
    assert bridge["WEBHOOK_SECRET"] == engine["WEBHOOK_SECRET"] == ENV["WEBHOOK_SECRET"]


def test_scaled_services_publish_no_port_and_the_gateway_reaches_the_replicas(compose):
    """docker compose up --scale bridge=2 --scale flowable=2: a fixed host port on a scaled service would clash."""
    services = compose["services"]
    assert "ports" not in services["flowable"] and "ports" not in services["bridge"]
    assert services["gateway"]["ports"] == ["8080:8080"]
    [mount] = services["gateway"]["volumes"]
    config_file, target = mount.removesuffix(":ro").split(":")
    config = (PROJECT_ROOT / config_file).read_text()
    assert target == "/etc/nginx/conf.d/default.conf" and "listen 8080;" in config
    bridge_port = services["bridge"]["environment"]["BRIDGE_PORT"]
    assert f"set $bridge http://bridge:{bridge_port};" in config and "resolver 127.0.0.11" in config
    assert "proxy_next_upstream error timeout http_503;" in config


def test_the_bridge_image_carries_what_bridge_up_reads():
    dockerfile = (PROJECT_ROOT / "Dockerfile").read_text()
    for folder in ("migrations", "bpmn"):
        assert re.search(rf"^COPY {folder} {folder}$", dockerfile, re.M), f"the image lacks {folder}/"
    assert "BRIDGE_MIGRATIONS_DIR=/app/migrations" in dockerfile
    assert "BRIDGE_DEPLOY_ON_START=/app/bpmn/OneCMS_Nextgen_WF.bpmn20.xml" in dockerfile


def test_secrets_are_required_not_defaulted():
    raw = yaml.safe_load((PROJECT_ROOT / "docker-compose.yml").read_text())
    with pytest.raises(KeyError, match="WEBHOOK_SECRET"):
        _interpolate(raw, {"FLOWABLE_PASSWORD": "x"})
    with pytest.raises(KeyError, match="FLOWABLE_PASSWORD"):
        _interpolate(raw, {"WEBHOOK_SECRET": "x"})


def _compose_client() -> list[str] | None:
    if built := os.environ.get("COMPOSE_CLI"):
        return [built]
    if shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    return None


COMPOSE_CLIENT = _compose_client()
needs_compose_client = pytest.mark.skipif(
    COMPOSE_CLIENT is None, reason="no docker compose client: `make test` builds one with Go (tools/compose-cli/build)")


def run_compose(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    """The compose client on our file, with nothing from this shell's environment but PATH and HOME."""
    assert COMPOSE_CLIENT is not None
    return subprocess.run([*COMPOSE_CLIENT, "-f", str(PROJECT_ROOT / "docker-compose.yml"), *args], cwd=PROJECT_ROOT,
                          capture_output=True, text=True, timeout=60,
                          env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ["HOME"], **env})


@needs_compose_client
def test_docker_compose_accepts_the_file():
    result = run_compose("config", "-q", env=ENV)
    assert result.returncode == 0, result.stderr


@needs_compose_client
def test_docker_compose_refuses_to_start_without_the_secrets():
    for missing in ENV:
        result = run_compose("config", "-q", env={k: v for k, v in ENV.items() if k != missing})
        assert result.returncode != 0
        assert f"required variable {missing} is missing a value" in result.stderr


@needs_compose_client
def test_docker_compose_sees_what_scaling_needs():
    """Compose's own normalised model, not our reading of the YAML: what `up --scale bridge=2 --scale flowable=2`
    will create from this file."""
    result = run_compose("config", "--format", "json", env=ENV)
    assert result.returncode == 0, result.stderr
    services = json.loads(result.stdout)["services"]
    assert "ports" not in services["flowable"] and "ports" not in services["bridge"]
    [published] = services["gateway"]["ports"]
    assert (published["published"], published["target"]) == ("8080", 8080)
    for name, folder in (("bridge", PROJECT_ROOT), ("flowable", PROJECT_ROOT / "engine")):
        build = services[name]["build"]
        assert build["context"] == str(folder) and (folder / build["dockerfile"]).is_file()
    [mount] = services["gateway"]["volumes"]
    assert mount["source"] == str(PROJECT_ROOT / "deploy" / "gateway.conf") and mount["read_only"] is True
    engine, bridge = services["flowable"]["environment"], services["bridge"]["environment"]
    assert engine["WEBHOOK_URL"].split(",")[0] == f"http://bridge:{bridge['BRIDGE_PORT']}/webhooks/flowable"
    assert engine["WEBHOOK_SECRET"] == bridge["WEBHOOK_SECRET"] == ENV["WEBHOOK_SECRET"]
    assert engine["FLOWABLE_REST_PASSWORD"] == bridge["FLOWABLE_PASSWORD"] == ENV["FLOWABLE_PASSWORD"]
