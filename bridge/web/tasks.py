"""/api/tasks and /api/work: reading the tasks a user may see, and acting on them (the work itself:
bridge/work/actions.py)."""

from __future__ import annotations

from datetime import datetime

from aiohttp import web

from bridge.web.actions import Run, action
from bridge.web.api_auth import USER_ID, problem
from bridge.web.bodies import json_answer
from bridge.web.keys import DB
from bridge.work.actions import Actor, WorkError, WorkService
from bridge.work.reads import MAX_PAGE, BadCursor, TaskFilter, list_tasks, task_detail

TASK_STATUSES = ("OPEN", "CLAIMED", "COMPLETED", "CANCELLED", "DELEGATED")


async def tasks(request: web.Request) -> web.Response:
    query = request.query
    try:
        limit = int(query.get("limit", "50"))
        if not 1 <= limit <= MAX_PAGE:
            raise ValueError
    except ValueError:
        return problem(400, f"limit: a whole number from 1 to {MAX_PAGE}")
    status = query.get("status")
    if status is not None and status not in TASK_STATUSES:
        return problem(400, f"status: one of {', '.join(TASK_STATUSES)}")
    due_before = None
    if query.get("due_before"):
        try:
            due_before = datetime.fromisoformat(query["due_before"].replace("Z", "+00:00"))
        except ValueError:
            return problem(400, "due_before: an ISO-8601 date-time")
    try:
        rows, cursor = await list_tasks(
            request.app[DB], request[USER_ID],
            TaskFilter(queue=query.get("queue"), status=status, assignee=query.get("assignee"),
                       due_before=due_before), limit=limit, cursor=query.get("cursor"))
    except BadCursor as err:
        return problem(400, str(err))
    return json_answer({"tasks": rows, "nextCursor": cursor})


async def task(request: web.Request) -> web.Response:
    detail = await task_detail(request.app[DB], request[USER_ID], request.match_info["task_id"])
    if detail is None:
        return problem(404, f"no task {request.match_info['task_id']} that you may see")
    return json_answer(detail)


async def next_task(service: WorkService, actor: Actor, request: web.Request, body: dict, remember):
    queues = body.get("queues")
    if queues is not None and (not isinstance(queues, list) or not all(isinstance(q, str) for q in queues)):
        raise WorkError(400, "queues: a list of queue names")
    return await service.claim_next(actor, queues or None, remember=remember)


def on_task(method: str, *fields: str) -> Run:
    """The service's `method` on the path's task, with these body fields as its arguments."""
    async def run(service: WorkService, actor: Actor, request: web.Request, body: dict, remember):
        return await getattr(service, method)(actor, request.match_info["task_id"],
                                              *(body.get(f) for f in fields), remember=remember)
    return run


routes = [
    web.get("/api/tasks", tasks),
    web.get("/api/tasks/{task_id}", task),
    web.post("/api/work/next", action(next_task, name="next_task")),
    web.post("/api/tasks/{task_id}/claim", action(on_task("claim"), name="claim")),
    web.post("/api/tasks/{task_id}/unclaim", action(on_task("unclaim"), name="unclaim")),
    web.post("/api/tasks/{task_id}/complete", action(on_task("complete", "outcome", "variables"), name="complete")),
    web.post("/api/tasks/{task_id}/delegate", action(on_task("delegate", "to"), name="delegate")),
    web.post("/api/tasks/{task_id}/resolve", action(on_task("resolve"), name="resolve")),
    web.post("/api/tasks/{task_id}/escalate", action(on_task("escalate", "reason"), name="escalate")),
    web.post("/api/tasks/{task_id}/comment", action(on_task("comment", "message"), name="comment")),
]
