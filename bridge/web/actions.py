"""An action over HTTP: the request's body and acting user in, the service's answer (or its WorkError) out,
counted, under the request's Idempotency-Key when it has one (bridge/web/idempotency.py)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from bridge import metrics
from bridge.failpoints import failpoint
from bridge.web.api_auth import USER_ID, problem
from bridge.web.bodies import json_body
from bridge.web.idempotency import DEFINITIVE, idempotent, success
from bridge.web.keys import WORK
from bridge.work.actions import Actor, WorkError, WorkService

# (the service, the actor, the request, its JSON body, remember) -> the answer's body, or None for 204
Run = Callable[[WorkService, Actor, web.Request, dict, Any], Awaitable[Any]]


def action(run: Run, *, name: str, created: bool = False) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handler(request: web.Request) -> web.Response:
        response = await _handle(request)
        metrics.WORK_ACTIONS.labels(name, str(response.status)).inc()
        return response

    async def _handle(request: web.Request) -> web.Response:
        body = await json_body(request)
        if isinstance(body, web.Response):
            return body
        actor = Actor(request[USER_ID], {
            "ip": request.remote, "userAgent": request.headers.get("User-Agent"),
            "requestId": request.headers.get("X-Request-Id"), "path": request.path})
        key = request.headers.get("Idempotency-Key")
        if key is None:
            return await _answer(run, request, actor, body, created, None)
        if not 0 < len(key) <= 200:
            return problem(400, "Idempotency-Key: 1 to 200 characters")
        return await idempotent(request, key, body, created,
                                lambda remember: _answer(run, request, actor, body, created, remember))
    return handler


async def _answer(run: Run, request: web.Request, actor: Actor, body: dict, created: bool, remember) -> web.Response:
    try:
        result = await run(request.app[WORK], actor, request, body, remember)
    except WorkError as err:
        headers = {"Retry-After": str(err.retry_after)} if err.retry_after else None
        answer = {"error": err.message} | ({"problems": err.problems} if err.problems else {})
        response = web.json_response(answer, status=err.status, headers=headers)
        response[DEFINITIVE] = err.definitive
        return response
    failpoint("action.after_commit")
    return success(result, created)
