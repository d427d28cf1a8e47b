"""Retention policies (bridge/retention.py, migration 0023): from the BPMN, from `bridge retention set`, and
shown by `bridge retention` with what is past retention; real PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from datetime import timedelta

import pytest

from bridge import retention
from bridge.bpmn.reader import parse_bpmn
from tests import seed
from tests.helpers import workflow


def _with_retention(days: str) -> bytes:
    return workflow("kept").replace(
        b'<laneSet id="ls">',
        f'<extensionElements><onecms:workflow retentionDays="{days}"/></extensionElements><laneSet id="ls">'.encode())


def test_the_reader_takes_retention_days_from_the_workflow_extension():
    result = parse_bpmn(_with_retention("90"), "kept.bpmn20.xml")
    assert result.ok and result.processes[0].retention_days == 90
    assert parse_bpmn(workflow("kept"), "kept.bpmn20.xml").processes[0].retention_days is None


@pytest.mark.parametrize("bad", ["0", "-3", "ninety", "36501"])
def test_a_bad_retention_is_an_error_naming_it(bad):
    result = parse_bpmn(_with_retention(bad), "kept.bpmn20.xml")
    assert not result.ok
    issue = next(i for i in result.issues if i.code == "BAD_EXTENSION")
    assert "retentionDays" in issue.message and issue.element_id == "kept"


def _bridge(db_url: str, tmp_path, *argv: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "DATABASE_URL": db_url, "BRIDGE_DATA_DIR": str(tmp_path), "BRIDGE_RETENTION_DAYS": "100"}
    return subprocess.run([sys.executable, "-m", "bridge.cli", *argv], env=env, capture_output=True, text=True,
                          timeout=120)


async def test_policies_from_the_file_and_an_operator_and_the_default(conn, db, db_url, tmp_path):
    onecms = await seed.definition(conn, "onecms")
    await seed.definition(conn, "kept")
    await seed.definition(conn, "plain")
    for days_ago in (5, 50, 150):
        await seed.instance(conn, onecms, status="COMPLETED", started_at=seed.now() - timedelta(days=days_ago + 1),
                            completed_at=seed.now() - timedelta(days=days_ago))
    async with db.begin() as c:
        await retention.record_from_bpmn(c, "kept", 90, by="designer")

    run = await asyncio.to_thread(_bridge, db_url, tmp_path, "retention", "set", "onecms", "30", "--by", "ops")
    assert run.returncode == 0, run.stderr
    assert "onecms: 30 days" in run.stdout

    shown = await asyncio.to_thread(_bridge, db_url, tmp_path, "retention", "--json")
    assert shown.returncode == 0, shown.stderr
    body = json.loads(shown.stdout)
    by_key = {p["processKey"]: p for p in body["processes"]}
    assert body["defaultDays"] == 100
    assert (by_key["onecms"]["days"], by_key["onecms"]["source"], by_key["onecms"]["setBy"]) == (30, "cli", "ops")
    assert (by_key["onecms"]["completed"], by_key["onecms"]["pastRetention"]) == (3, 2)
    assert (by_key["kept"]["days"], by_key["kept"]["source"]) == (90, "bpmn")
    assert (by_key["plain"]["days"], by_key["plain"]["source"]) == (100, "default")

    # a new version of the file without retentionDays drops the file's policy, not an operator's
    async with db.begin() as c:
        await retention.record_from_bpmn(c, "kept", None, by="designer")
        await retention.record_from_bpmn(c, "onecms", None, by="designer")
        found = {p["processKey"]: p for p in await retention.policies(c, default_days=100)}
    assert (found["kept"]["days"], found["kept"]["source"]) == (100, "default")
    assert (found["onecms"]["days"], found["onecms"]["source"]) == (30, "cli")

    back = await asyncio.to_thread(_bridge, db_url, tmp_path, "retention", "set", "onecms", "default")
    assert back.returncode == 0 and "the default, 100 days" in back.stdout
    text = await asyncio.to_thread(_bridge, db_url, tmp_path, "retention")
    assert text.returncode == 0
    line = next(row for row in text.stdout.splitlines() if row.startswith("onecms"))
    assert line.split()[:5] == ["onecms", "100", "default", "3", "1"]


@pytest.mark.parametrize(("argv", "code", "said"), [
    (("nosuch", "30"), 1, "no process 'nosuch' has been deployed"),
    (("onecms", "0"), 1, "1 to 36500 days"),
    (("onecms", "lots"), 2, "a whole number of days"),
])
async def test_a_policy_that_cannot_be_set_changes_nothing_and_says_why(conn, db_url, tmp_path, argv, code, said):
    await seed.definition(conn, "onecms")
    run = await asyncio.to_thread(_bridge, db_url, tmp_path, "retention", "set", *argv)
    assert run.returncode == code and said in run.stderr, run.stderr
    assert (await (await conn.execute("SELECT count(*) FROM flowable.retention_policies")).fetchone())[0] == 0
