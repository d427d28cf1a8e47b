"""docker-compose.yml: there is no Docker engine here, so the file is checked for consistency.

Where the `docker compose` client exists, `docker compose config -q` validates it as well.
"""

from __future__ import annotations

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


@pytest.mark.skipif(not shutil.which("docker") or subprocess.run(
    ["docker", "compose", "version"], capture_output=True).returncode != 0, reason="no docker compose client here")
def test_docker_compose_config_accepts_the_file():
    result = subprocess.run(["docker", "compose", "config", "-q"], cwd=PROJECT_ROOT, capture_output=True, text=True,
                            env={**ENV, "PATH": "/usr/bin:/bin:/usr/local/bin"})
    assert result.returncode == 0, result.stderr
