"""/api/cases: starting a case's workflow and reading where each of its workflows stands
(bridge/work/cases.py)."""

from __future__ import annotations

from aiohttp import web

from bridge.web.actions import action
from bridge.web.api_auth import problem
from bridge.web.bodies import json_answer
from bridge.web.keys import DB
from bridge.work.actions import Actor, WorkError, WorkService
from bridge.work.cases import case_workflows, parse_case_id, start_case_workflow


async def start_workflow(service: WorkService, actor: Actor, request: web.Request, body: dict, remember):
    case_id = parse_case_id(request.match_info["case_id"])
    return await start_case_workflow(service.db, service.flowable, actor, case_id, body.get("process_key"),
                                     body.get("variables"), locks=service.locks, remember=remember)


async def case(request: web.Request) -> web.Response:
    try:
        case_id = parse_case_id(request.match_info["case_id"])
    except WorkError as err:
        return problem(err.status, err.message)
    workflows = await case_workflows(request.app[DB], case_id)
    if not workflows:
        return problem(404, f"no workflow for case {case_id}")
    return json_answer({"caseId": case_id, "workflows": workflows})


routes = [
    web.post("/api/cases/{case_id}/workflows", action(start_workflow, name="start_workflow", created=True)),
    web.get("/api/cases/{case_id}", case),
]
