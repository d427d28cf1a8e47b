"""schemathesis drives every operation of /api/openapi.json against a real `bridge serve` (real engine,
real PostgreSQL, an authenticated user), one by one and in chains the document's links describe (list or
claim a task, then act on it): no generated input may get a 5xx. (503 is allowed only with
Retry-After, which nothing here should need: the engine and database are up.)"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys

import pytest

from bridge import auth
from bridge.db.connections import open_database
from bridge.db.embedded import free_tcp_port
from bridge.deploy import deploy_bpmn
from bridge.mirror.reconcile import resync_instances
from tests.conftest import ARTIFACTS
from tests.helpers import ONECMS_FILE, start_bridge, wait_healthy

pytestmark = pytest.mark.slow


async def test_no_generated_request_gets_a_server_error(db_url, flowable, engine):
    db = open_database(db_url, pool_size=2)
    await deploy_bpmn(ONECMS_FILE.read_bytes(), ONECMS_FILE.name, db=db, flowable=flowable, deployed_by="test")
    async with db.begin() as conn:
        # every role an endpoint asks for, so the fuzzer gets past the 403s to the parameters
        await auth.add_user(conn, "fuzzer",
                            roles=["INTAKE_CLERK", "WORKFLOW_DESIGNER", "OPS_VIEWER", "ENTITLEMENTS_ADMIN"],
                            granted_by="test")
        token = await auth.create_token(conn, "fuzzer")
    # Open registration tasks the fuzzer may see and work, so the stateful phase's chains (list tasks or
    # claim the next, then act on that task: the document's links) reach real tasks in the real engine.
    pids = [(await flowable.start_process("OneCMS_Nextgen_WF", business_key=f"fuzz-{n}", variables={
        "caseId": 990000 + n, "caseType": "QUALITY", "severity": "LOW"}))["id"] for n in range(15)]
    await resync_instances(db, flowable, pids)
    await db.dispose()
    port = free_tcp_port()
    bridge = start_bridge(db_url, engine, port, "fuzz-bridge.log")
    try:
        await wait_healthy(port, bridge)
        st = shutil.which("st", path=os.path.dirname(sys.executable))
        report = ARTIFACTS / "schemathesis.txt"
        command = [st, "run", f"http://127.0.0.1:{port}/api/openapi.json", "--checks", "not_a_server_error",
                   "--header", f"Authorization: Bearer {token}", "--max-examples", "20",
                   # Not the coverage phase: with 2 workers it fails about one run in seven inside the tool
                   # (hypothesis parsing lambdas: "SystemError: AST constructor recursion depth mismatch").
                   # What it found this far is pinned by its own tests (test_dashboard's unreadable forms).
                   "--phases", "examples,fuzzing,stateful", "--workers", "2", "--no-color"]
        finished = await asyncio.to_thread(subprocess.run, command, capture_output=True, text=True, timeout=600,
                                           cwd=ARTIFACTS)
        report.write_text(finished.stdout + finished.stderr)
        assert finished.returncode == 0, finished.stdout[-6000:]
    finally:
        bridge.send_signal(signal.SIGTERM)
        bridge.wait(timeout=30)
