"""Case routing: starting a case's workflow in the engine and reading where each of its workflows stands.

A start is checked first against the start variables the active definition declares (<onecms:entryCriteria>:
required, allowed values); a bad one is refused with 422 naming each problem, and nothing is started.

A workflow starts with the case id as its business key and as the caseId variable, as the acting user
(the engine records them as its starter); the mirror learns the new instance from the engine at once
(bridge/mirror/reconcile.py resync_instances: the same path as any repair), so the answer already shows the
case mapping, its department and phase.

A start is idempotent: while the engine runs an instance of the same process for the case, a start (a
retry, or a second click) answers with that instance (`alreadyStarted`) instead of starting another; starts
of one case and process are serialized by an advisory lock. Once the engine has started an instance the
answer is a success: a mirror that cannot take it at that moment (a deadlock, the database going away) is
logged and left to the pushes and the reconciler, never reported as a failed start.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bridge.bpmn.model import StartVariable
from bridge.db.locks import RequestLocks
from bridge.db.queries import queries
from bridge.flowable.client import EngineUnavailable, FlowableClient, FlowableError
from bridge.mirror.reconcile import resync_instances
from bridge.work.actions import Actor, WorkError, check_variables

SQL = queries("work")
log = logging.getLogger(__name__)


def parse_case_id(raw: str) -> int:
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 18 or int(raw) == 0:  # not "¹", which isdigit
        raise WorkError(400, "case id: a positive whole number")
    return int(raw)


async def start_case_workflow(db: AsyncEngine, flowable: FlowableClient, actor: Actor, case_id: int,
                              process_key: Any, variables: Any, *, locks: RequestLocks, remember=None) -> dict:
    if not isinstance(process_key, str) or not process_key:
        raise WorkError(400, "process_key: the key of a deployed workflow")
    variables = {**check_variables(variables), "caseId": case_id}
    async with db.connect() as conn:
        definition = (await conn.execute(SQL.active_definition, {"process_key": process_key})).first()
    if definition is None:
        raise WorkError(404, f"no active workflow {process_key!r}: deploy it first")
    problems = [p for name, stored in definition.entry_criteria.items()
                if (p := StartVariable.from_stored(name, stored).problem(variables))]
    if problems:
        raise WorkError(422, f"{process_key} cannot start with these variables: {'; '.join(problems)}",
                        problems=problems)
    async with locks.hold(SQL.lock_case_start, SQL.unlock_case_start, {"key": f"{case_id}:{process_key}"}):
        try:
            running = await flowable.process_instances(businessKey=str(case_id), processDefinitionKey=process_key)
            if running:
                return await _answer(db, flowable, case_id, running[0]["id"], already=True, remember=remember)
            started = await flowable.start_process(process_key, business_key=str(case_id), variables=variables,
                                                   acting_user=actor.user_id)
        except FlowableError as err:
            # the engine answers a start it cannot do (a missing start variable, an expression that fails)
            # with its own message: the request, not the bridge, needs changing
            raise WorkError(422, f"the engine refused to start it: {err.message}") from None
        except EngineUnavailable as err:
            raise WorkError(503, f"the engine is unavailable, nothing was started: {err}", retry_after=5) from None
        return await _answer(db, flowable, case_id, started["id"], already=False, remember=remember,
                             initiator=actor.user_id)


async def _answer(db: AsyncEngine, flowable: FlowableClient, case_id: int, instance_id: str, *, already: bool,
                  remember, initiator: str | None = None) -> dict:
    """Where the started instance stands, mirrored now if the mirror can take it; the start stands either way."""
    try:
        await resync_instances(db, flowable, [instance_id])
        async with db.begin() as conn:
            if initiator:
                await conn.execute(SQL.record_initiator, {"user_id": initiator, "process_instance_id": instance_id})
            workflows = await case_workflows_in(conn, case_id)
            found = next((w for w in workflows if w["processInstanceId"] == instance_id), None)
            answer = {**(found or {"caseId": case_id, "processInstanceId": instance_id, "status": "ACTIVE"}),
                      "alreadyStarted": already, "mirrored": found is not None}
            if remember:
                await remember(conn, answer)
            return answer
    except Exception:  # noqa: BLE001 - the engine started it: that is the answer, the mirror catches up
        log.exception("case %s: instance %s started, mirroring it now failed; pushes and the reconciler will",
                      case_id, instance_id)
        return {"caseId": case_id, "processInstanceId": instance_id, "status": "ACTIVE", "alreadyStarted": already,
                "mirrored": False}


async def case_workflows(db: AsyncEngine, case_id: int) -> list[dict]:
    async with db.connect() as conn:
        return await case_workflows_in(conn, case_id)


async def case_workflows_in(conn: AsyncConnection, case_id: int, *, archived: bool = True) -> list[dict]:
    """The case's workflows, live ones first; with archived, the archived ones after them (archived: true)."""
    live = [{**w, "archived": False} for w in _workflows(await conn.execute(SQL.case_workflows, {"case_id": case_id}))]
    if not archived:
        return live
    rows = list(await conn.execute(SQL.archived_case_workflows, {"case_id": case_id}))
    return live + [{**w, "archived": True, "archivedAt": r.archived_at.isoformat()}
                   for w, r in zip(_workflows(rows), rows, strict=True)]


def _workflows(rows) -> list[dict]:
    return [{"caseId": r.case_id, "processInstanceId": r.process_instance_id, "workflowType": r.workflow_type,
             "status": r.status, "currentDepartment": r.current_department, "currentPhase": r.current_phase,
             "routingHistory": r.routing_history, "initiatedBy": r.initiated_by,
             "initiatedAt": r.initiated_at.isoformat(),
             "expectedCompletion": r.expected_completion.isoformat() if r.expected_completion else None,
             "actualCompletion": r.actual_completion.isoformat() if r.actual_completion else None,
             "processVersion": r.process_version, "outcome": _outcome(r)}
            for r in rows]


def _outcome(row) -> dict | None:
    """How an ended workflow ended: the end event reached (its id and name), or for a cancellation the
    reason given; None while it runs."""
    if row.status in ("ACTIVE", "SUSPENDED"):
        return None
    return {"status": row.status, "endActivityId": row.end_activity_id, "endActivityName": row.end_activity_name,
            "reason": None if row.end_activity_id else row.end_cause}
