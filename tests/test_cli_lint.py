"""`bridge lint` and the offline check `bridge deploy` runs first: no PostgreSQL, no engine, exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from bridge.db.embedded import free_tcp_port
from tests.conftest import PROJECT_ROOT
from tests.helpers import ONECMS_FILE

BRIDGE = [sys.executable, "-m", "bridge.cli"]

UNASSIGNED = """<?xml version="1.0" encoding="UTF-8"?>
<definitions xmlns="http://www.omg.org/spec/BPMN/20100524/MODEL" targetNamespace="t">
  <process id="nobody" isExecutable="true">
    <startEvent id="s"/>
    <sequenceFlow id="f1" sourceRef="s" targetRef="t1"/>
    <userTask id="t1" name="Whose?"/>
    <sequenceFlow id="f2" sourceRef="t1" targetRef="e"/>
    <endEvent id="e"/>
  </process>
</definitions>
"""


def run(*args: str, data_dir: Path) -> subprocess.CompletedProcess:
    """The CLI with an embedded-default data folder and no engine: anything it starts would show there."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "FLOWABLE_URL")}
    env.update(BRIDGE_DATA_DIR=str(data_dir), BRIDGE_EMBEDDED_PG_PORT=str(free_tcp_port()),
               BRIDGE_ENGINE_PORT=str(free_tcp_port()))
    return subprocess.run([*BRIDGE, *args], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60, env=env)


def files(tmp_path: Path) -> dict[str, Path]:
    paths = {"malformed": tmp_path / "malformed.bpmn20.xml", "unassigned": tmp_path / "nobody.bpmn20.xml"}
    paths["malformed"].write_text("<definitions><process id='p'>")
    paths["unassigned"].write_text(UNASSIGNED)
    return paths


def test_lint_passes_the_onecms_workflow_and_starts_nothing(tmp_path: Path):
    result = run("lint", str(ONECMS_FILE), data_dir=tmp_path / "data")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith(f"{ONECMS_FILE}: ok (OneCMS_Nextgen_WF)")
    assert not (tmp_path / "data" / "pgdata").exists() and not (tmp_path / "data" / "engine.log").exists()


def test_lint_reports_every_file_in_text_and_json_with_exit_code_1(tmp_path: Path):
    bad = files(tmp_path)
    missing = tmp_path / "missing.bpmn20.xml"
    text = run("lint", str(ONECMS_FILE), str(bad["malformed"]), str(bad["unassigned"]), str(missing),
               data_dir=tmp_path / "data")
    assert text.returncode == 1
    assert f"{bad['malformed']}: 1 error(s), 0 warning(s); not deployable" in text.stdout
    assert "(XML_MALFORMED)" in text.stdout and "[t1]: error:" in text.stdout
    assert "(UNASSIGNED_USER_TASK)" in text.stdout and "(UNREADABLE)" in text.stdout

    as_json = run("lint", "--format", "json", str(ONECMS_FILE), str(bad["unassigned"]), data_dir=tmp_path / "data")
    assert as_json.returncode == 1
    answer = json.loads(as_json.stdout)
    assert answer["ok"] is False
    onecms, nobody = answer["files"]
    assert onecms["ok"] is True and onecms["processes"][0]["key"] == "OneCMS_Nextgen_WF"
    assert nobody["ok"] is False and nobody["processes"][0]["key"] == "nobody"
    assert [(i["code"], i["elementId"], i["severity"], i["line"]) for i in nobody["issues"]] == [
        ("UNASSIGNED_USER_TASK", "t1", "error", 6)]
    assert not (tmp_path / "data" / "pgdata").exists()


def test_a_broken_file_stops_a_deploy_before_postgresql_or_the_engine_starts(tmp_path: Path):
    bad = files(tmp_path)
    for dry_run in (["--dry-run"], []):
        result = run("deploy", *dry_run, str(bad["malformed"]), str(bad["unassigned"]), data_dir=tmp_path / "data")
        assert result.returncode == 1, result.stdout + result.stderr
        assert "malformed.bpmn20.xml: not deployed, the file has errors:" in result.stderr
        assert "nobody.bpmn20.xml: not deployed, the file has errors:" in result.stderr
        assert "embedded PostgreSQL" not in result.stderr and "Flowable engine" not in result.stderr
    assert not (tmp_path / "data" / "pgdata").exists() and not (tmp_path / "data" / "engine.log").exists()
