"""bpmn/OneCMS_Nextgen_WF.bpmn20.xml on the real engine: every route walked to its end.

Each test starts a case, completes its tasks the way the forms would (with the decision variables),
and checks every task it meets: candidate group, form key, priority, due date, and the SLA timer
jobs that are open at each step. SLA timers (days and hours) are fired on demand by moving the
timer job to the executable jobs, as an operator would with `POST management/timer-jobs/{id}`.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta

import pytest

from bridge.flowable.client import FlowableClient, FlowableError, to_rest_variables
from tests.conftest import PROJECT_ROOT

pytestmark = pytest.mark.slow

BPMN_FILE = PROJECT_ROOT / "bpmn" / "OneCMS_Nextgen_WF.bpmn20.xml"
PROCESS_KEY = "OneCMS_Nextgen_WF"
H = timedelta(hours=1)
D = timedelta(days=1)

# task -> (candidate group, form key, priority, due date after creation); None: depends on severity
TASKS: dict[str, tuple[str, str, int | None, timedelta]] = {
    "registerCase": ("INTAKE_CLERK", "onecms/register-case", 50, 1 * H),
    "triageCase": ("INTAKE_TRIAGE_OFFICER", "onecms/triage-case", None, 2 * H),
    "gatherEvidence": ("INVESTIGATOR", "onecms/gather-evidence", 50, 2 * D),
    "writeInvestigationReport": ("INVESTIGATOR", "onecms/investigation-report", 50, 1 * D),
    "legalReview": ("LEGAL_REVIEWER", "onecms/legal-review", 70, 8 * H),
    "complianceAssessment": ("COMPLIANCE_OFFICER", "onecms/compliance-assessment", 60, 12 * H),
    "qualityReview": ("QA_ANALYST", "onecms/quality-review", 50, 1 * D),
    "legalSignOff": ("LEGAL_REVIEWER", "onecms/legal-signoff", 60, 8 * H),
    "complianceSignOff": ("COMPLIANCE_OFFICER", "onecms/compliance-signoff", 60, 8 * H),
    "supervisorApproval": ("CASE_SUPERVISOR", "onecms/supervisor-approval", 80, 4 * H),
    "closeCase": ("CASE_ADMIN", "onecms/close-case", 40, 1 * D),
    "escalateInvestigation": ("INVESTIGATIONS_LEAD", "onecms/escalation-review", 90, 4 * H),
    "escalateLegalReview": ("LEGAL_COUNSEL_LEAD", "onecms/escalation-review", 90, 4 * H),
    "escalateApproval": ("CASE_MANAGER", "onecms/escalation-review", 95, 2 * H),
}
# task -> its non-interrupting SLA timer (boundary event id, duration)
SLA_TIMERS = {
    "gatherEvidence": ("slaGatherEvidence", 2 * D),
    "legalReview": ("slaLegalReview", 8 * H),
    "supervisorApproval": ("slaSupervisorApproval", 4 * H),
}
ESCALATION_OF = {"slaGatherEvidence": "escalateInvestigation", "slaLegalReview": "escalateLegalReview",
                 "slaSupervisorApproval": "escalateApproval"}
# the department's first task for a case type and severity (the routeByType gateway)
ROUTES = [
    ("FRAUD", "HIGH", "gatherEvidence"),
    ("FRAUD", "CRITICAL", "gatherEvidence"),
    ("LEGAL_CLAIM", "LOW", "legalReview"),
    ("REGULATORY", "MEDIUM", "complianceAssessment"),
    ("REGULATORY", "CRITICAL", "legalReview"),
    ("QUALITY", "LOW", "qualityReview"),
    ("QUALITY", "CRITICAL", "legalReview"),
    ("GENERAL", "MEDIUM", "gatherEvidence"),
    ("GENERAL", "CRITICAL", "legalReview"),
]


def when(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def about(actual: timedelta, expected: timedelta) -> bool:
    # Day durations are calendar days in the engine's time zone: a DST change makes one 23 or 25 hours.
    slack = timedelta(hours=1, seconds=30) if expected >= D else timedelta(seconds=30)
    return abs(actual - expected) <= slack


@pytest.fixture(scope="module")
async def definition_id(engine) -> str:
    """The workflow deployed once for this module (a new version of the key each session)."""
    async with FlowableClient.of(engine) as client:
        deployment = await client.deploy(BPMN_FILE.name, BPMN_FILE.read_bytes(),
                                         deployment_name=f"onecms-workflow-test-{uuid.uuid4().hex[:8]}")
        [definition] = await client.process_definitions(deploymentId=deployment["id"])
    assert (definition["key"], definition["name"]) == (PROCESS_KEY, "OneCMS Unified Workflow")
    return definition["id"]


class Case:
    """One running case and the checks made at every step."""

    def __init__(self, flowable: FlowableClient, pid: str, severity: str) -> None:
        self.flowable, self.pid, self.severity = flowable, pid, severity
        self.fired: set[str] = set()  # SLA timers already fired (a non-interrupting timer fires once)

    @classmethod
    async def start(cls, flowable: FlowableClient, definition_id: str, case_type: str, severity: str) -> Case:
        case_id = f"CASE-{uuid.uuid4().hex[:8]}"
        # Started by definition id, not key: other modules may deploy other versions of the key.
        instance = await flowable.request("POST", "runtime/process-instances", json_body={
            "processDefinitionId": definition_id, "businessKey": case_id,
            "variables": to_rest_variables({"caseId": case_id, "caseType": case_type, "severity": severity})})
        return cls(flowable, instance["id"], severity)

    async def open_tasks(self) -> dict[str, dict]:
        tasks = await self.flowable.tasks(processInstanceId=self.pid)
        by_key = {t["taskDefinitionKey"]: t for t in tasks}
        assert len(by_key) == len(tasks), [t["taskDefinitionKey"] for t in tasks]
        return by_key

    async def timer_jobs(self) -> dict[str, dict]:
        jobs = (await self.flowable.request("GET", "management/timer-jobs",
                                            params={"processInstanceId": self.pid}))["data"]
        return {j["elementId"]: j for j in jobs}

    async def expect(self, *keys: str) -> dict[str, dict]:
        """Exactly these tasks are open, each as the BPMN says, with exactly their SLA timers pending."""
        tasks = await self.open_tasks()
        assert sorted(tasks) == sorted(keys)
        for task in tasks.values():
            await self.check_task(task)
        timers = await self.timer_jobs()
        expected = {SLA_TIMERS[k][0]: SLA_TIMERS[k][1] for k in keys
                    if k in SLA_TIMERS and SLA_TIMERS[k][0] not in self.fired}
        assert sorted(timers) == sorted(expected)
        for element, duration in expected.items():
            assert about(when(timers[element]["dueDate"]) - when(timers[element]["createTime"]), duration)
        return tasks

    async def check_task(self, task: dict) -> None:
        group, form_key, priority, due = TASKS[task["taskDefinitionKey"]]
        if priority is None:  # triage: ${severity == 'CRITICAL' ? 90 : 60}
            priority = 90 if self.severity == "CRITICAL" else 60
        assert (task["formKey"], task["priority"]) == (form_key, priority), task["taskDefinitionKey"]
        assert task["dueDate"] is not None
        assert about(when(task["dueDate"]) - when(task["createTime"]), due), task["taskDefinitionKey"]
        links = await self.flowable.request("GET", f"runtime/tasks/{task['id']}/identitylinks")
        assert [(link["group"], link["user"]) for link in links if link["type"] == "candidate"] == [(group, None)]

    async def complete(self, key: str, **variables: str) -> None:
        task = (await self.open_tasks())[key]
        await self.flowable.claim_task(task["id"], f"user-{key}")
        await self.flowable.complete_task(task["id"], variables)

    async def fire_sla(self, timer: str) -> None:
        """Fire an SLA timer now and wait for its escalation task."""
        job = (await self.timer_jobs())[timer]
        await self.flowable.request("POST", f"management/timer-jobs/{job['id']}", json_body={"action": "move"})
        self.fired.add(timer)
        for _ in range(200):  # the async executor runs the moved job within a fraction of a second
            if ESCALATION_OF[timer] in await self.open_tasks():
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"{timer} fired but {ESCALATION_OF[timer]} never appeared")

    async def passed(self, activity: str) -> bool:
        found = await self.flowable.request("GET", "history/historic-activity-instances", params={
            "processInstanceId": self.pid, "activityId": activity})
        return found["total"] > 0

    async def historic_task(self, key: str) -> list[dict]:
        return (await self.flowable.request("GET", "history/historic-task-instances", params={
            "processInstanceId": self.pid, "taskDefinitionKey": key}))["data"]

    async def expect_ended_at(self, end_event: str) -> dict:
        [done] = await self.flowable.historic_process_instances(processInstanceId=self.pid)
        assert done["endTime"] is not None
        assert done["endActivityId"] == end_event
        # A terminate end event leaves a deleteReason, like a cancellation does: tell them apart by it.
        assert done["deleteReason"] == f"terminate end event ({end_event})"
        assert await self.open_tasks() == {}
        assert await self.timer_jobs() == {}
        with pytest.raises(FlowableError) as gone:
            await self.flowable.process_instance(self.pid)
        assert gone.value.status == 404
        return done


# -- the steps every route shares -----------------------------------------------------------------

async def intake(case: Case, department_task: str) -> None:
    await case.expect("registerCase")
    await case.complete("registerCase")
    await case.expect("triageCase")
    await case.complete("triageCase", triageDecision="ACCEPT")
    await case.expect(department_task)


async def department_work(case: Case, department_task: str, *also_open: str) -> None:
    if department_task == "gatherEvidence":  # the investigation sub-process
        await case.complete("gatherEvidence")
        await case.expect("writeInvestigationReport", *also_open)
        await case.complete("writeInvestigationReport")
        assert await case.passed("investigationDone")
    else:
        await case.complete(department_task)


async def sign_offs(case: Case, *also_open: str) -> None:
    await case.expect("legalSignOff", "complianceSignOff", *also_open)  # both at once
    await case.complete("complianceSignOff")
    await case.expect("legalSignOff", *also_open)
    await case.complete("legalSignOff")
    await case.expect("supervisorApproval", *also_open)


async def approve_and_close(case: Case) -> None:
    await case.complete("supervisorApproval", approvalDecision="APPROVE")
    await case.expect("closeCase")
    await case.complete("closeCase")
    await case.expect_ended_at("caseClosed")


# -- the routes -----------------------------------------------------------------------------------

@pytest.mark.parametrize(("case_type", "severity", "department_task"), ROUTES)
async def test_each_case_type_goes_to_its_department_and_on_to_closure(
        flowable, definition_id, case_type, severity, department_task):
    case = await Case.start(flowable, definition_id, case_type, severity)
    await intake(case, department_task)
    await department_work(case, department_task)
    await sign_offs(case)
    await approve_and_close(case)
    assert await case.passed("caseClosed")


@pytest.mark.parametrize(("decision", "end_event"), [("REJECT", "caseRejected"), ("WITHDRAW", "caseWithdrawn")])
async def test_triage_can_reject_or_withdraw_the_case(flowable, definition_id, decision, end_event):
    case = await Case.start(flowable, definition_id, "FRAUD", "LOW")
    await case.complete("registerCase")
    await case.expect("triageCase")
    await case.complete("triageCase", triageDecision=decision)
    await case.expect_ended_at(end_event)
    assert not await case.passed("routeByType")


@pytest.mark.parametrize(("case_type", "severity", "department_task"), [
    ("FRAUD", "MEDIUM", "gatherEvidence"),
    ("LEGAL_CLAIM", "HIGH", "legalReview"),
    ("REGULATORY", "LOW", "complianceAssessment"),
    ("QUALITY", "MEDIUM", "qualityReview"),
])
async def test_rework_sends_the_case_back_to_its_department(
        flowable, definition_id, case_type, severity, department_task):
    case = await Case.start(flowable, definition_id, case_type, severity)
    await intake(case, department_task)
    first = (await case.open_tasks())[department_task]["id"]
    await department_work(case, department_task)
    await sign_offs(case)
    await case.complete("supervisorApproval", approvalDecision="REWORK")

    again = await case.expect(department_task)  # a new task of the same department, timers re-armed
    assert again[department_task]["id"] != first
    await department_work(case, department_task)
    await sign_offs(case)
    await approve_and_close(case)
    assert len(await case.historic_task(department_task)) == 2
    assert len(await case.historic_task("supervisorApproval")) == 2


@pytest.mark.parametrize(("decision", "end_event"), [("REJECT", "caseRejected"), ("WITHDRAW", "caseWithdrawn")])
async def test_supervisor_can_reject_or_withdraw_and_the_open_escalation_ends_with_the_case(
        flowable, definition_id, decision, end_event):
    case = await Case.start(flowable, definition_id, "QUALITY", "HIGH")
    await intake(case, "qualityReview")
    await department_work(case, "qualityReview")
    await sign_offs(case)
    await case.fire_sla("slaSupervisorApproval")
    await case.expect("supervisorApproval", "escalateApproval")  # the approval stays open

    await case.complete("supervisorApproval", approvalDecision=decision)
    await case.expect_ended_at(end_event)
    [escalation] = await case.historic_task("escalateApproval")
    assert escalation["deleteReason"] == f"terminate end event ({end_event})"
    assert not await case.passed("approvalEscalationHandled")


async def test_legal_review_sla_escalates_without_interrupting_the_review(flowable, definition_id):
    case = await Case.start(flowable, definition_id, "LEGAL_CLAIM", "MEDIUM")
    await intake(case, "legalReview")
    [job] = (await flowable.request("GET", "management/timer-jobs", params={"processInstanceId": case.pid}))["data"]
    assert job["elementId"] == "slaLegalReview"

    await case.fire_sla("slaLegalReview")
    await case.expect("legalReview", "escalateLegalReview")
    await case.complete("escalateLegalReview")
    assert await case.passed("legalEscalationHandled")
    await case.expect("legalReview")

    await department_work(case, "legalReview")
    await sign_offs(case)
    await approve_and_close(case)


async def test_an_escalation_still_open_when_the_case_closes_ends_with_it(flowable, definition_id):
    case = await Case.start(flowable, definition_id, "GENERAL", "CRITICAL")
    await intake(case, "legalReview")
    await case.fire_sla("slaLegalReview")
    await department_work(case, "legalReview")
    await sign_offs(case, "escalateLegalReview")  # the lead's review runs on beside the case
    await case.complete("supervisorApproval", approvalDecision="APPROVE")
    await case.expect("closeCase", "escalateLegalReview")
    await case.complete("closeCase")
    await case.expect_ended_at("caseClosed")
    [escalation] = await case.historic_task("escalateLegalReview")
    assert escalation["deleteReason"] == "terminate end event (caseClosed)"


@pytest.mark.parametrize("lead_done_first", [True, False], ids=["lead-first", "investigation-first"])
async def test_investigation_sla_escalation(flowable, definition_id, lead_done_first):
    case = await Case.start(flowable, definition_id, "FRAUD", "HIGH")
    await intake(case, "gatherEvidence")
    await case.fire_sla("slaGatherEvidence")
    await case.expect("gatherEvidence", "escalateInvestigation")
    if lead_done_first:
        await case.complete("escalateInvestigation")
        assert await case.passed("investigationEscalationHandled")
        await department_work(case, "gatherEvidence")
    else:
        # The sub-process's terminate end closes the lead's review: the case does not wait for it.
        await department_work(case, "gatherEvidence", "escalateInvestigation")
        [escalation] = await case.historic_task("escalateInvestigation")
        assert escalation["deleteReason"] == "terminate end event (investigationDone)"
        assert not await case.passed("investigationEscalationHandled")
    await sign_offs(case)
    await approve_and_close(case)


async def test_a_decision_the_gateways_do_not_know_is_refused_and_the_task_stays_open(flowable, definition_id):
    case = await Case.start(flowable, definition_id, "REGULATORY", "LOW")
    await case.complete("registerCase")
    with pytest.raises(FlowableError) as missing:
        await case.complete("triageCase")  # no triageDecision
    assert missing.value.status == 400  # the engine's own message (engine/EngineErrorAdvice.java)
    assert "Unknown property used in expression: ${triageDecision == 'REJECT'}" in missing.value.message
    await case.expect("triageCase")
    await case.complete("triageCase", triageDecision="ACCEPT")

    await department_work(case, "complianceAssessment")
    await sign_offs(case)
    with pytest.raises(FlowableError) as unknown:
        await case.complete("supervisorApproval", approvalDecision="MAYBE")
    assert unknown.value.status == 400
    assert "No outgoing sequence flow of the exclusive gateway 'approvalDecision'" in unknown.value.message
    await case.expect("supervisorApproval")
    await approve_and_close(case)


async def test_the_start_variables_are_required(flowable, definition_id):
    no_severity = await flowable.request("POST", "runtime/process-instances", json_body={
        "processDefinitionId": definition_id, "variables": to_rest_variables({"caseId": "C-1", "caseType": "FRAUD"})})
    case = Case(flowable, no_severity["id"], "?")
    with pytest.raises(FlowableError) as failed:  # the triage task's priority reads the severity
        await case.complete("registerCase")
    assert "Unknown property used in expression: ${severity == 'CRITICAL' ? 90 : 60}" in failed.value.message
    assert list(await case.open_tasks()) == ["registerCase"]
    await flowable.cancel_process(case.pid, reason="test over")

    no_type = await Case.start(flowable, definition_id, "FRAUD", "LOW")
    await flowable.request("DELETE", f"runtime/process-instances/{no_type.pid}/variables/caseType")
    await no_type.complete("registerCase")
    with pytest.raises(FlowableError) as failed:
        await no_type.complete("triageCase", triageDecision="ACCEPT")
    assert "Unknown property used in expression: ${caseType == 'FRAUD'}" in failed.value.message
    await no_type.expect("triageCase")
    await flowable.cancel_process(no_type.pid, reason="test over")
