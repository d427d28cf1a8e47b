"""Case routing: starting a case's workflow in the engine and reading where each of its workflows stands.

A workflow starts with the case id as its business key and as the caseId variable; the mirror learns
the new instance from the engine at once (bridge/mirror/reconcile.py resync_instances: the same path as
any repair), so the answer already shows the case mapping, its department and phase.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from bridge.db.queries import queries
from bridge.flowable.client import EngineUnavailable, FlowableClient, FlowableError
from bridge.mirror.reconcile import resync_instances
from bridge.work.actions import Actor, WorkError, check_variables

SQL = queries("work")


def parse_case_id(raw: str) -> int:
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 18 or int(raw) == 0:  # not "¹", which isdigit
        raise WorkError(400, "case id: a positive whole number")
    return int(raw)


async def start_case_workflow(db: AsyncEngine, flowable: FlowableClient, actor: Actor, case_id: int,
                              process_key: Any, variables: Any) -> dict:
    if not isinstance(process_key, str) or not process_key:
        raise WorkError(400, "process_key: the key of a deployed workflow")
    variables = {**check_variables(variables), "caseId": case_id}
    async with db.connect() as conn:
        definition = (await conn.execute(SQL.active_definition, {"process_key": process_key})).first()
    if definition is None:
        raise WorkError(404, f"no active workflow {process_key!r}: deploy it first")
    try:
        started = await flowable.start_process(process_key, business_key=str(case_id), variables=variables)
    except FlowableError as err:
        # the engine answers a start it cannot do (a missing start variable, an expression that fails)
        # with 400 or 500 and its message: either way the request, not the bridge, needs changing
        raise WorkError(422, f"the engine refused to start it: {err.message}") from None
    except EngineUnavailable as err:
        raise WorkError(503, f"the engine is unavailable, nothing was started: {err}", retry_after=5) from None
    await resync_instances(db, flowable, [started["id"]])
    async with db.begin() as conn:
        await conn.execute(SQL.record_initiator, {"user_id": actor.user_id, "process_instance_id": started["id"]})
    workflows = await case_workflows(db, case_id)
    return next(w for w in workflows if w["processInstanceId"] == started["id"])


async def case_workflows(db: AsyncEngine, case_id: int) -> list[dict]:
    async with db.connect() as conn:
        rows = await conn.execute(SQL.case_workflows, {"case_id": case_id})
        return [{"caseId": r.case_id, "processInstanceId": r.process_instance_id, "workflowType": r.workflow_type,
                 "status": r.status, "currentDepartment": r.current_department, "currentPhase": r.current_phase,
                 "routingHistory": r.routing_history, "initiatedBy": r.initiated_by,
                 "initiatedAt": r.initiated_at.isoformat(),
                 "expectedCompletion": r.expected_completion.isoformat() if r.expected_completion else None,
                 "actualCompletion": r.actual_completion.isoformat() if r.actual_completion else None}
                for r in rows]
