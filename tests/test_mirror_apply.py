"""The OneCMS workflow on the real engine, its pushed events applied to the mirror tables step by step."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import text

from bridge.config import Settings
from bridge.db.engine import create_engine
from bridge.deploy import deploy_bpmn
from bridge.flowable.client import EngineEndpoint
from bridge.web.app import create_app
from tests.test_bpmn_meta import ONECMS_FILE

pytestmark = pytest.mark.slow


@pytest.fixture
async def db(db_url):
    db = create_engine(db_url, pool_size=2)
    yield db
    await db.dispose()


@pytest.fixture
async def mirror(engine, db_url, db, flowable, webhook_receiver, aiohttp_client):
    """Forwards what the engine pushed (to the test receiver) into the bridge's real intake on this module's DB."""
    await deploy_bpmn(ONECMS_FILE.read_bytes(), ONECMS_FILE.name, db=db, flowable=flowable, deployed_by="test")
    app = create_app(Settings(webhook_secret=engine.webhook_secret, reconcile_interval_s=0), db_url,
                     EngineEndpoint(engine.base_url, engine.user, engine.password))
    client = await aiohttp_client(app)

    class Mirror:
        forwarded: set[str] = set()

        async def sync(self, process_instance_id: str, until: str) -> None:
            """Wait for the engine's batch holding `until` for this instance, then forward every new delivery."""
            await webhook_receiver.wait_for(lambda: any(
                e["type"] == until for b in webhook_receiver.events_for(process_instance_id) for e in b
                if e.get("processInstanceId") == process_instance_id and e["eventId"] not in self.seen()))
            for delivery in list(webhook_receiver.deliveries):
                batch_id = delivery.headers["webhook-id"]
                if batch_id in self.forwarded or not any(
                        e.get("processInstanceId") == process_instance_id for e in delivery.events):
                    continue
                response = await client.post("/webhooks/flowable", data=delivery.body, headers=delivery.headers)
                assert response.status == 200, await response.text()
                self.forwarded.add(batch_id)

        def seen(self) -> set[str]:
            return {e["eventId"] for d in webhook_receiver.deliveries if d.headers["webhook-id"] in self.forwarded
                    for e in d.events}

        async def replay_all(self) -> None:
            for delivery in list(webhook_receiver.deliveries):
                if delivery.headers["webhook-id"] in self.forwarded:
                    response = await client.post("/webhooks/flowable", data=delivery.body, headers=delivery.headers)
                    assert (await response.json())["duplicateDelivery"] is True

    return Mirror()


async def row(db, sql: str, **params):
    async with db.connect() as conn:
        return (await conn.execute(text(sql), params)).mappings().first()


async def rows(db, sql: str, **params):
    async with db.connect() as conn:
        return [dict(r) for r in (await conn.execute(text(sql), params)).mappings()]


TASK = "SELECT * FROM flowable.workflow_tasks WHERE process_instance_id = :p AND task_definition_key = :k"


async def test_a_case_from_intake_to_rejection_is_mirrored_step_by_step(flowable, db, mirror):
    started = await flowable.start_process("OneCMS_Nextgen_WF", business_key="4711",
                                           variables={"caseId": 4711, "caseType": "FRAUD", "severity": "HIGH"})
    pid = started["id"]
    await mirror.sync(pid, "TASK_CREATED")

    process = await row(db, "SELECT p.*, d.process_key FROM flowable.process_instances p "
                            "JOIN flowable.workflow_definitions d USING (workflow_id) WHERE process_instance_id = :p",
                        p=pid)
    assert (process["status"], process["case_id"], process["business_key"], process["process_key"]) == (
        "ACTIVE", 4711, "4711", "OneCMS_Nextgen_WF")
    assert process["current_activity"] == "registerCase"
    assert process["sla_due_date"] - process["started_at"] == timedelta(minutes=14400)

    register = await row(db, TASK, p=pid, k="registerCase")
    assert (register["status"], register["queue_name"], register["candidate_groups"], register["priority"],
            register["form_key"]) == ("OPEN", "INTAKE_REGISTRATION", ["INTAKE_CLERK"], 50, "onecms/register-case")
    assert abs(register["due_date"] - register["created_at"] - timedelta(hours=1)) < timedelta(seconds=5)

    await flowable.claim_task(register["task_id"], "alice")
    await mirror.sync(pid, "TASK_ASSIGNED")
    claimed = await row(db, TASK, p=pid, k="registerCase")
    assert (claimed["status"], claimed["assignee_id"], claimed["claimed_by"]) == ("CLAIMED", "alice", "alice")

    await flowable.complete_task(register["task_id"])
    await mirror.sync(pid, "TASK_COMPLETED")
    done = await row(db, TASK, p=pid, k="registerCase")
    assert (done["status"], done["completed_by"]) == ("COMPLETED", "alice")
    triage = await row(db, TASK, p=pid, k="triageCase")
    assert (triage["status"], triage["queue_name"], triage["priority"]) == ("OPEN", "INTAKE_TRIAGE", 60)

    await flowable.complete_task(triage["task_id"], {"triageDecision": "REJECT"})
    await mirror.sync(pid, "PROCESS_COMPLETED_WITH_TERMINATE_END_EVENT")
    ended = await row(db, "SELECT status, completed_at, metadata ->> 'endCause' AS cause "
                          "FROM flowable.process_instances WHERE process_instance_id = :p", p=pid)
    assert (ended["status"], ended["cause"]) == ("COMPLETED", "caseRejected") and ended["completed_at"]
    assert (await row(db, TASK, p=pid, k="triageCase"))["status"] == "COMPLETED"

    history = [(h["task_definition_key"], h["action_type"], h["old_status"], h["new_status"]) for h in await rows(db, """
        SELECT t.task_definition_key, h.action_type, h.old_status, h.new_status
        FROM flowable.task_history h JOIN flowable.workflow_tasks t USING (task_id)
        WHERE h.process_instance_id = :p ORDER BY h.history_id""", p=pid)]
    assert history == [("registerCase", "CREATE", None, "OPEN"), ("registerCase", "CLAIM", "OPEN", "CLAIMED"),
                       ("registerCase", "COMPLETE", "CLAIMED", "COMPLETED"), ("triageCase", "CREATE", None, "OPEN"),
                       ("triageCase", "COMPLETE", "OPEN", "COMPLETED")]

    await mirror.replay_all()  # every batch again: recognised, nothing applied twice
    assert len(await rows(db, "SELECT 1 FROM flowable.task_history WHERE process_instance_id = :p", p=pid)) == 5


async def test_a_cancelled_case_cancels_its_open_tasks_in_the_mirror(flowable, db, mirror):
    started = await flowable.start_process("OneCMS_Nextgen_WF", business_key="case-b",
                                           variables={"caseId": 2, "caseType": "QUALITY", "severity": "LOW"})
    pid = started["id"]
    await mirror.sync(pid, "TASK_CREATED")
    await flowable.cancel_process(pid, reason="withdrawn by requester")
    await mirror.sync(pid, "PROCESS_CANCELLED")

    task = await row(db, TASK, p=pid, k="registerCase")
    assert (task["status"], task["outcome_reason"]) == ("CANCELLED", "withdrawn by requester")
    process = await row(db, "SELECT status, case_id FROM flowable.process_instances WHERE process_instance_id = :p",
                        p=pid)
    assert (process["status"], process["case_id"]) == ("TERMINATED", None)  # business key is not a number
    assert [h["action_type"] for h in await rows(db, "SELECT action_type FROM flowable.task_history "
                                                     "WHERE task_id = :t ORDER BY history_id",
                                                 t=task["task_id"])] == ["CREATE", "CANCEL"]
