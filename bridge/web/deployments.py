"""POST /api/deployments: the HTTP face of bridge.deploy (same validation, dedupe and sync)."""

from __future__ import annotations

import json

from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError

from bridge.auth import DEPLOY_ROLE, ENTITLEMENTS_ROLE
from bridge.bpmn.model import BpmnError
from bridge.bpmn.safe_xml import MAX_BYTES
from bridge.deploy import DeployError, OwnershipError, deploy_bpmn
from bridge.flowable.client import EngineUnavailable
from bridge.web.api_auth import USER_ID, problem, require_role
from bridge.web.errors import body_deadline
from bridge.web.keys import DB, FLOWABLE, SETTINGS


async def create(request: web.Request) -> web.Response:
    """Multipart with a `file` part, or the raw BPMN as the body with ?filename=. ?dryRun=true plans only."""
    await require_role(request, DB, DEPLOY_ROLE)
    adopt = [a.strip() for a in request.query.get("adopt", "").split(",") if a.strip()]
    if adopt:  # taking over another workflow's roles, queues or departments is an entitlements decision
        await require_role(request, DB, ENTITLEMENTS_ROLE)
    async with body_deadline():
        filename, data = await _read_upload(request)
    try:
        outcome = await deploy_bpmn(data, filename, db=request.app[DB], flowable=request.app[FLOWABLE],
                                    deployed_by=request[USER_ID],
                                    allowed_delegates=request.app[SETTINGS].deploy_allowed_delegates,
                                    adopt=adopt,
                                    dry_run=request.query.get("dryRun", "").lower() == "true")
    except BpmnError as err:
        return problem(422, f"{filename} has errors; nothing was deployed", issues=[i.as_json() for i in err.issues])
    except OwnershipError as err:
        return problem(422, f"{filename} would change what other workflows own; nothing was deployed",
                       problems=err.problems)
    except DeployError as err:
        return problem(422, str(err))
    except EngineUnavailable as err:
        return problem(503, f"the Flowable engine is not reachable; nothing was deployed: {err}")
    body = {"filename": outcome.filename, "status": outcome.status, "changes": outcome.changes,
            "processes": [{"processKey": p.process_key, "version": p.version, "deploymentId": p.deployment_id,
                           "workflowId": p.workflow_id} for p in outcome.processes]}
    if outcome.plan:  # a dry run: per process key, the version it would become and what changes
        body["plan"] = [plan.as_json() for plan in outcome.plan]
    return web.json_response(body, status=201 if outcome.status == "deployed" else 200)


routes = [web.post("/api/deployments", create)]


async def _read_upload(request: web.Request) -> tuple[str, bytes]:
    if request.content_type.startswith("multipart/"):
        try:
            reader = await request.multipart()
            async for part in reader:
                # a part that is itself multipart has no name: not the file (it was an AttributeError, a 500)
                if isinstance(part, BodyPartReader) and part.name == "file":
                    data = await part.read(decode=False)
                    if len(data) > MAX_BYTES:
                        raise web.HTTPRequestEntityTooLarge(max_size=MAX_BYTES, actual_size=len(data))
                    return part.filename or request.query.get("filename") or "upload.bpmn20.xml", bytes(data)
        except (HttpProcessingError, ValueError, AssertionError) as err:  # aiohttp's parser on a broken body
            raise web.HTTPBadRequest(text=json.dumps({"error": f"the multipart body is malformed: {err}"}),
                                     content_type="application/json") from None
        raise web.HTTPBadRequest(text='{"error": "the multipart body has no part named file"}',
                                 content_type="application/json")
    data = await request.read()
    if not data:
        raise web.HTTPBadRequest(text='{"error": "send the BPMN file as the body or as a multipart part named file"}',
                                 content_type="application/json")
    return request.query.get("filename") or "upload.bpmn20.xml", data
