"""Helpers the test modules share, in one place (test modules do not import each other): the OneCMS file,
signed webhook headers, a `bridge serve` process, an app client, users with tokens, drift of given instances,
bearer headers and BPMN uploads, small BPMN files of our own."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import text

from bridge import auth
from bridge.flowable.client import FlowableEndpoint
from bridge.mirror.drift import compare, read_mirror
from bridge.mirror.engine_state import EngineReader
from bridge.mirror.signature import decode_secret, sign
from tests.conftest import ARTIFACTS, PROJECT_ROOT, bridge_app

# The OneCMS workflow we author (bpmn/README.md).
ONECMS_FILE = PROJECT_ROOT / "bpmn" / "OneCMS_Nextgen_WF.bpmn20.xml"


def signed(body: bytes, secret: str, *, msg_id: str | None = None, ts: int | None = None) -> dict[str, str]:
    msg_id = msg_id or f"msg_{uuid.uuid4().hex}"
    ts = int(time.time()) if ts is None else ts
    return {"webhook-id": msg_id, "webhook-timestamp": str(ts), "webhook-signature": sign(decode_secret(secret),
                                                                                         msg_id, ts, body),
            "content-type": "application/json"}


def spawn_logged(argv: list[str], log: Path, *, mode: str = "ab", **popen: Any) -> subprocess.Popen:
    """A process whose output goes to `log`; the file is the child's to keep, this process closes its own copy."""
    with log.open(mode) as out:
        return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, **popen)


def start_bridge(db_url: str, engine, port: int, log_name: str, **extra_env: str) -> subprocess.Popen:
    env = {**os.environ, "DATABASE_URL": db_url, "FLOWABLE_URL": engine.base_url, "FLOWABLE_USER": engine.user,
           "FLOWABLE_PASSWORD": engine.password, "WEBHOOK_SECRET": engine.webhook_secret,
           "BRIDGE_PORT": str(port), "BRIDGE_RECONCILE_INTERVAL_S": "0", "BRIDGE_ESCALATE_INTERVAL_S": "0",
           "BRIDGE_AUTO_ASSIGN_INTERVAL_S": "0", **extra_env}
    ARTIFACTS.mkdir(exist_ok=True)
    return spawn_logged([sys.executable, "-m", "bridge.cli", "serve"], ARTIFACTS / log_name, mode="wb",
                        cwd=PROJECT_ROOT, env=env)


def leads_background_jobs(metrics_text: str) -> bool:
    """Whether a bridge's /metrics says it holds the lease on the background jobs (bridge/leadership.py)."""
    found = re.search(r"^bridge_background_leader (\S+)$", metrics_text, re.M)
    return found is not None and float(found.group(1)) == 1


async def eventually(check, seconds: float, what: str):
    """check()'s first true answer, asked every 0.1 s; the test fails with `what` after `seconds`."""
    for _ in range(int(seconds * 10)):
        if result := await check():
            return result
        await asyncio.sleep(0.1)
    pytest.fail(what)


async def wait_healthy(port: int, process: subprocess.Popen) -> None:
    async with aiohttp.ClientSession() as session:
        for _ in range(300):
            assert process.poll() is None, "bridge serve exited"
            try:
                async with session.get(f"http://127.0.0.1:{port}/healthz") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    pytest.fail("bridge serve did not come up")


async def app_client(aiohttp_client, db_url, engine, base_url: str | None = None):
    endpoint = FlowableEndpoint(base_url or engine.base_url, engine.user, engine.password)
    return await aiohttp_client(bridge_app(db_url, endpoint, webhook_secret=engine.webhook_secret))


BUILT_IN_ROLES = {"QUEUE_ADMIN": "Queue administrator", "ENTITLEMENTS_ADMIN": "Entitlements administrator",
                  "WORKFLOW_DESIGNER": "Workflow designer"}


async def worker(db, user: str, *roles: str) -> dict[str, str]:
    async with db.begin() as conn:
        for role in set(roles) & set(BUILT_IN_ROLES):  # the migrations' built-in roles (the conn fixture empties
            await conn.execute(text(                  # the role table)
                "INSERT INTO entitlements.workflow_roles (role_code, role_name, role_type) "
                "VALUES (:code, :name, 'SYSTEM') ON CONFLICT (role_code) DO NOTHING"),
                {"code": role, "name": BUILT_IN_ROLES[role]})
        await auth.add_user(conn, user, roles=list(roles), granted_by="test")
        token = await auth.create_token(conn, user)
    return {"Authorization": f"Bearer {token}"}


async def drift_of(db, flowable, pids: list[str]) -> list[str]:
    engine = await EngineReader(flowable).read_instances(pids)
    async with db.connect() as conn:
        return [str(d) for d in compare(engine, await read_mirror(conn, pids)).differences]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def upload(data: bytes, name: str) -> aiohttp.FormData:
    form = aiohttp.FormData()
    form.add_field("file", data, filename=name, content_type="text/xml")
    return form


def workflow(key: str, *, task_name: str = "Review", extra: str = "") -> bytes:
    tag = key.upper()
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<definitions xmlns="http://www.omg.org/spec/BPMN/20100524/MODEL" xmlns:flowable="http://flowable.org/bpmn"
             xmlns:onecms="urn:onecms:bpmn:1.0" targetNamespace="tests">
  <process id="{key}" name="Deploy test {key}" isExecutable="true">
    <laneSet id="ls">
      <lane id="lane_a" name="Desk {tag}">
        <extensionElements><onecms:department code="DESK_{tag}" name="Desk {tag}"/></extensionElements>
        <flowNodeRef>start</flowNodeRef><flowNodeRef>review</flowNodeRef><flowNodeRef>end</flowNodeRef>
        {extra}
      </lane>
    </laneSet>
    <startEvent id="start"/>
    <sequenceFlow id="f1" sourceRef="start" targetRef="review"/>
    <userTask id="review" name="{task_name}" flowable:candidateGroups="REVIEWER_{tag}" flowable:formKey="f"
              flowable:priority="50" flowable:dueDate="PT2H">
      <extensionElements>
        <onecms:queue name="Q_{tag}" type="PRIORITY" slaMinutes="120" maxCapacity="30"/>
      </extensionElements>
    </userTask>
    <sequenceFlow id="f2" sourceRef="review" targetRef="end"/>
    <endEvent id="end"/>
  </process>
</definitions>""".encode()


BPMN = "http://www.omg.org/spec/BPMN/20100524/MODEL"


def one_task_process(key: str, *, extra: str = "", after_start: str = "review") -> bytes:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<definitions xmlns="{BPMN}" xmlns:flowable="http://flowable.org/bpmn" targetNamespace="onecms-tests">
  <process id="{key}" name="Test {key}" isExecutable="true">
    <startEvent id="start"/>
    <sequenceFlow id="f1" sourceRef="start" targetRef="{after_start}"/>
    {extra}
    <userTask id="review" name="Review" flowable:candidateGroups="INTAKE_CLERK" flowable:formKey="intake-form"
              flowable:priority="70" flowable:dueDate="PT4H"/>
    <sequenceFlow id="f2" sourceRef="review" targetRef="end"/>
    <endEvent id="end"/>
  </process>
</definitions>""".encode()


async def deploy(flowable, key: str, xml: bytes) -> None:
    await flowable.deploy(f"{key}.bpmn20.xml", xml)
