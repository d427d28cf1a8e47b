"""/api/tasks and /api/work: the queue work API over HTTP (the work itself: bridge/work/).

Actions honour an Idempotency-Key header: the first definitive answer is kept per user and key, and a
retry gets it again instead of acting twice; the same key with a different request is 422. A success is
stored in the transaction of the action's mirror write (the service calls `remember` there), so a crash
cannot leave the action done and its answer forgotten; a definitive refusal (4xx) is stored on its own; a
conflict, a 5xx or a 503 is never stored: the retry must act.
"""

from __future__ import annotations

import hashlib
import json
import logging
from datetime import datetime
from typing import Any

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from bridge import entitlements, metrics
from bridge.auth import ENTITLEMENTS_ROLE
from bridge.db.queries import queries
from bridge.failpoints import failpoint
from bridge.json_limits import MAX_DEPTH, deeper_than
from bridge.web.api_auth import USER_ID, first_unstorable, problem, require_role, storable_text
from bridge.web.errors import body_deadline
from bridge.work.actions import Actor, WorkError, WorkService
from bridge.work.cases import case_workflows, parse_case_id, start_case_workflow
from bridge.work.reads import MAX_PAGE, BadCursor, TaskFilter, list_tasks, task_detail

SQL = queries("work")
log = logging.getLogger(__name__)
DEFINITIVE = web.ResponseKey("definitive", bool)  # may the answer be stored under an Idempotency-Key
TASK_STATUSES = ("OPEN", "CLAIMED", "COMPLETED", "CANCELLED", "DELEGATED")


def work_routes(db_key: web.AppKey, work_key: web.AppKey) -> list[web.RouteDef]:
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
                request.app[db_key], request[USER_ID],
                TaskFilter(queue=query.get("queue"), status=status, assignee=query.get("assignee"),
                           due_before=due_before), limit=limit, cursor=query.get("cursor"))
        except BadCursor as err:
            return problem(400, str(err))
        return _json({"tasks": rows, "nextCursor": cursor})

    async def task(request: web.Request) -> web.Response:
        detail = await task_detail(request.app[db_key], request[USER_ID], request.match_info["task_id"])
        if detail is None:
            return problem(404, f"no task {request.match_info['task_id']} that you may see")
        return _json(detail)

    def action(run, created: bool = False):
        name = run.__name__

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
            return await _idempotent(request, db_key, work_key, key, body, created,
                                     lambda remember: _answer(run, request, actor, body, created, remember))
        return handler

    async def _answer(run, request: web.Request, actor: Actor, body: dict, created: bool, remember) -> web.Response:
        try:
            result = await run(request.app[work_key], actor, request, body, remember)
        except WorkError as err:
            headers = {"Retry-After": str(err.retry_after)} if err.retry_after else None
            body = {"error": err.message} | ({"problems": err.problems} if err.problems else {})
            response = web.json_response(body, status=err.status, headers=headers)
            response[DEFINITIVE] = err.definitive
            return response
        failpoint("action.after_commit")
        return _success(result, created)

    async def next_task(service: WorkService, actor: Actor, request: web.Request, body: dict, remember):
        queues = body.get("queues")
        if queues is not None and (not isinstance(queues, list) or not all(isinstance(q, str) for q in queues)):
            raise WorkError(400, "queues: a list of queue names")
        return await service.claim_next(actor, queues or None, remember=remember)

    def on_task(method: str, *fields: str):
        async def run(service: WorkService, actor: Actor, request: web.Request, body: dict, remember):
            return await getattr(service, method)(actor, request.match_info["task_id"],
                                                  *(body.get(f) for f in fields), remember=remember)
        run.__name__ = method
        return run

    async def start_workflow(service: WorkService, actor: Actor, request: web.Request, body: dict, remember):
        case_id = parse_case_id(request.match_info["case_id"])
        return await start_case_workflow(service.db, service.flowable, actor, case_id, body.get("process_key"),
                                         body.get("variables"), locks=service.locks, remember=remember)

    async def case(request: web.Request) -> web.Response:
        try:
            case_id = parse_case_id(request.match_info["case_id"])
        except WorkError as err:
            return problem(err.status, err.message)
        workflows = await case_workflows(request.app[db_key], case_id)
        if not workflows:
            return problem(404, f"no workflow for case {case_id}")
        return _json({"caseId": case_id, "workflows": workflows})

    async def import_entitlements(request: web.Request) -> web.Response:
        await require_role(request, db_key, ENTITLEMENTS_ROLE)
        kind = "csv" if request.content_type == "text/csv" else "yaml"
        try:
            text = (await request.read()).decode("utf-8")
            wanted = entitlements.parse(text, kind)
            if not storable_text(text):
                raise entitlements.EntitlementsError(["the file holds a NUL character or invalid text"])
            async with request.app[db_key].begin() as conn:
                await entitlements.apply(conn, wanted, by=request[USER_ID])
        except UnicodeDecodeError:
            return problem(400, "the body is not UTF-8 text")
        except entitlements.EntitlementsError as err:
            return web.json_response({"error": "nothing imported", "problems": err.problems}, status=422)
        return _json({"departments": len(wanted.departments), "users": len(wanted.users), "grants": wanted.grants})

    async def user_grants(request: web.Request) -> web.Response:
        await require_role(request, db_key, ENTITLEMENTS_ROLE)
        async with request.app[db_key].connect() as conn:
            found = await entitlements.user_grants(conn, request.match_info["user_id"])
        if found is None:
            return problem(404, f"no user {request.match_info['user_id']}")
        return _json(found)

    async def revoke_grant(request: web.Request) -> web.Response:
        await require_role(request, db_key, ENTITLEMENTS_ROLE)
        user_id, role = request.match_info["user_id"], request.match_info["role_code"]
        async with request.app[db_key].begin() as conn:
            revoked = await entitlements.revoke_grant(conn, user_id, role)
        if revoked is None:
            return problem(404, f"{user_id} holds no current or future grant of {role}")
        log.info("grant of %s to %s revoked by %s", role, user_id, request[USER_ID])
        return _json({"userId": user_id, "revoked": revoked, "revokedBy": request[USER_ID]})

    return [
        web.post("/api/admin/entitlements", import_entitlements),
        web.get("/api/admin/users/{user_id}", user_grants),
        web.delete("/api/admin/users/{user_id}/grants/{role_code}", revoke_grant),
        web.post("/api/cases/{case_id}/workflows", action(start_workflow, created=True)),
        web.get("/api/cases/{case_id}", case),
        web.get("/api/tasks", tasks),
        web.get("/api/tasks/{task_id}", task),
        web.post("/api/work/next", action(next_task)),
        web.post("/api/tasks/{task_id}/claim", action(on_task("claim"))),
        web.post("/api/tasks/{task_id}/unclaim", action(on_task("unclaim"))),
        web.post("/api/tasks/{task_id}/complete", action(on_task("complete", "outcome", "variables"))),
        web.post("/api/tasks/{task_id}/delegate", action(on_task("delegate", "to"))),
        web.post("/api/tasks/{task_id}/resolve", action(on_task("resolve"))),
        web.post("/api/tasks/{task_id}/escalate", action(on_task("escalate", "reason"))),
        web.post("/api/tasks/{task_id}/comment", action(on_task("comment", "message"))),
    ]


def _not_json(constant: str) -> None:
    raise ValueError(f"{constant} is not a JSON number")  # Python's json reads NaN and Infinity; JSON does not


async def json_body(request: web.Request) -> dict | web.Response:
    async with body_deadline():
        raw = await request.read()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw, parse_constant=_not_json)
    except (ValueError, UnicodeDecodeError) as err:
        return problem(400, f"the body is not JSON: {err}")
    except RecursionError:
        return problem(400, f"the body nests deeper than {MAX_DEPTH} levels")
    if not isinstance(body, dict):
        return problem(400, "the body must be a JSON object")
    if deeper_than(body):
        return problem(400, f"the body nests deeper than {MAX_DEPTH} levels")
    bad = first_unstorable(body)
    if bad:
        return problem(400, f"{bad}: contains a NUL character or a lone surrogate, which no field may hold")
    return body


async def _idempotent(request: web.Request, db_key: web.AppKey, work_key: web.AppKey, key: str, body: dict,
                      created: bool, act) -> web.Response:
    db: AsyncEngine = request.app[db_key]
    user = request[USER_ID]
    fingerprint = hashlib.sha256(json.dumps([request.method, request.path, body], sort_keys=True).encode()).hexdigest()

    async def remember(conn, result: Any) -> None:
        """Called by the action inside its transaction, after its mirror write: both commit or neither."""
        response = _success(result, created)
        await _store(conn, user, key, fingerprint, response.status,
                     json.loads(response.text) if response.text else None)

    # one request per (user, key) at a time: a concurrent retry waits (the lock's connection is not the work's)
    async with request.app[work_key].locks.hold(SQL.lock_idempotency_key, SQL.unlock_idempotency_key,
                                                {"user_id": user, "key": key}):
        async with db.connect() as conn:
            seen = (await conn.execute(SQL.remembered_answer, {"user_id": user, "key": key})).first()
        if seen is not None:
            if seen.request_hash != fingerprint:
                return problem(422, "Idempotency-Key was used before for a different request")
            return _replay(seen.response_status, seen.response_body)
        response = await act(remember)
        if response.status >= 400 and response.get(DEFINITIVE, response.status < 500):
            # a definitive refusal changed nothing to commit beside: stored on its own
            async with db.begin() as conn:
                await _store(conn, user, key, fingerprint, response.status, json.loads(response.body))
        return response


async def _store(conn, user: str, key: str, fingerprint: str, status: int, body: Any) -> None:
    await conn.execute(SQL.remember_answer, {"user_id": user, "key": key, "request_hash": fingerprint,
                                             "status": status, "body": json.dumps(body)})


def _success(result: Any, created: bool) -> web.Response:
    if result is None:
        return web.Response(status=204)
    return _json(result, status=201 if created else 200)


def _replay(status: int, body: Any) -> web.Response:
    if status == 204:
        return web.Response(status=204, headers={"Idempotent-Replayed": "true"})
    return web.json_response(body, status=status, headers={"Idempotent-Replayed": "true"})


def _json(value: Any, status: int = 200) -> web.Response:
    return web.json_response(value, status=status, dumps=lambda v: json.dumps(v, default=_default))


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON")
