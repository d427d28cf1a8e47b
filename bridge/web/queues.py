"""/api/queues: a queue's settings as they take effect, and an administrator's change of them
(the settings and their checks: bridge/queue_settings.py; reading, changing, recording: bridge/work/queues.py)."""

from __future__ import annotations

from aiohttp import web

from bridge.auth import QUEUE_ROLE
from bridge.web.api_auth import USER_ID, problem, require_role
from bridge.web.bodies import json_body
from bridge.web.keys import DB
from bridge.work.queues import QueueSettingsError, change_queue, queue_names, read_queue


async def list_queues(request: web.Request) -> web.Response:
    async with request.app[DB].connect() as conn:
        queues = [await read_queue(conn, name, changes=0) for name in await queue_names(conn)]
    return web.json_response({"queues": queues})


async def show_queue(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    async with request.app[DB].connect() as conn:
        queue = await read_queue(conn, name)
    return web.json_response(queue) if queue else problem(404, f"no queue {name}")


async def set_queue(request: web.Request) -> web.Response:
    await require_role(request, DB, QUEUE_ROLE)
    body = await json_body(request)
    if isinstance(body, web.Response):
        return body
    try:
        async with request.app[DB].begin() as conn:
            queue = await change_queue(conn, request.match_info["name"], body, by=request[USER_ID],
                                       source="api")
    except QueueSettingsError as err:
        return problem(err.status, str(err), problems=err.problems)
    return web.json_response(queue)


routes = [web.get("/api/queues", list_queues), web.get("/api/queues/{name}", show_queue),
          web.put("/api/queues/{name}", set_queue)]

