"""POST /api/migrations and GET /api/migrations[/{id}]: the HTTP face of bridge.migration (WORKFLOW_DESIGNER).

A dry run answers at once with every chosen instance, migratable or why not. A real run is started in the
background (it may take minutes) once its request has been checked against both versions: 202 with the run's id
and where to follow it. Its per-instance results are stored as they come, so GET shows progress, and a run
the service stopped midway is carried on by POST /api/migrations/{id}/resume (or `bridge instances migrate
--resume ID`).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from bridge import migration
from bridge.auth import DEPLOY_ROLE
from bridge.web.api_auth import USER_ID, problem, require_role
from bridge.web.bodies import json_answer, json_body
from bridge.web.keys import DB, FLOWABLE, MIGRATION_RUNS

log = logging.getLogger(__name__)
FIELDS = {"processKey", "fromVersion", "toVersion", "activities", "businessKeys", "mappings", "dryRun"}


async def create(request: web.Request) -> web.Response:
    await require_role(request, DB, DEPLOY_ROLE)
    body = await json_body(request)
    if isinstance(body, web.Response):
        return body
    try:
        wanted = _request(body, request[USER_ID])
    except migration.MigrationError as err:
        return problem(err.status, err.message)
    return await _start(request, wanted, resume=None)


async def resume(request: web.Request) -> web.Response:
    await require_role(request, DB, DEPLOY_ROLE)
    migration_id = _id(request)
    try:
        wanted = await migration.stored_request(request.app[DB], migration_id, requested_by=request[USER_ID])
    except migration.MigrationError as err:
        return problem(err.status, err.message)
    return await _start(request, wanted, resume=migration_id)


async def show(request: web.Request) -> web.Response:
    await require_role(request, DB, DEPLOY_ROLE)
    async with request.app[DB].connect() as conn:
        run = await migration.read_run(conn, _id(request))
    if run is None:
        return problem(404, f"no migration run {request.match_info['migration_id']}")
    return json_answer(run)


async def listed(request: web.Request) -> web.Response:
    await require_role(request, DB, DEPLOY_ROLE)
    async with request.app[DB].connect() as conn:
        return json_answer({"migrations": await migration.recent_runs(conn)})


async def _start(request: web.Request, wanted: migration.MigrationRequest, *, resume: int | None) -> web.Response:
    db, flowable = request.app[DB], request.app[FLOWABLE]
    client_info = {"via": "api", "userAgent": request.headers.get("User-Agent")}
    if wanted.dry_run:
        try:
            report = await migration.run(db, flowable, wanted, client_info=client_info)
        except migration.MigrationError as err:
            return problem(err.status, err.message)
        return json_answer(report.as_json())  # the engine down: 503 with Retry-After (bridge/web/errors.py)
    started: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    def on_start(migration_id: int) -> None:
        started.set_result(migration_id)

    task = asyncio.create_task(migration.run(db, flowable, wanted, resume=resume, client_info=client_info,
                                             on_start=on_start))
    runs = request.app[MIGRATION_RUNS]
    runs.add(task)
    task.add_done_callback(_finished(runs))
    waiting: set[asyncio.Future[Any]] = {started, task}
    done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
    if started not in done:  # refused before it began: the request cannot run as asked
        failure = task.exception()
        if isinstance(failure, migration.MigrationError):
            return problem(failure.status, failure.message)
        raise failure if failure is not None else RuntimeError("the migration ended without starting")
    migration_id = started.result()
    location = f"/api/migrations/{migration_id}"
    return web.json_response({"migrationId": migration_id, "status": "running", "location": location},
                             status=202, headers={"Location": location})


def _finished(runs: set[asyncio.Task]):
    def done(task: asyncio.Task) -> None:
        runs.discard(task)
        if not task.cancelled() and task.exception() is not None \
                and not isinstance(task.exception(), migration.MigrationError):
            log.error("a migration run failed: %s", task.exception())
    return done


def _request(body: dict[str, Any], user: str) -> migration.MigrationRequest:
    unknown = sorted(set(body) - FIELDS)
    if unknown:
        raise migration.MigrationError(400, f"unknown field(s): {', '.join(unknown)} "
                                            f"(known: {', '.join(sorted(FIELDS))})")
    mappings = body.get("mappings") or {}
    if not isinstance(mappings, dict):
        raise migration.MigrationError(400, "mappings: an object of old activity id: new activity id")
    lists = {}
    for name in ("activities", "businessKeys"):
        value = body.get(name) or []
        if not isinstance(value, list):
            raise migration.MigrationError(400, f"{name}: a list of strings")
        lists[name] = tuple(value)
    if not isinstance(body.get("dryRun", False), bool):
        raise migration.MigrationError(400, "dryRun: true or false")
    key = body.get("processKey")
    return migration.MigrationRequest(
        process_key=key if isinstance(key, str) else "",
        from_version=body.get("fromVersion"), to_version=body.get("toVersion"),  # type: ignore[arg-type]
        activities=lists["activities"], business_keys=lists["businessKeys"], mappings=mappings,
        dry_run=body.get("dryRun", False), requested_by=user)


def _id(request: web.Request) -> int:
    text = request.match_info["migration_id"]
    if not text.isascii() or not text.isdigit() or len(text) > 18:
        raise web.HTTPNotFound(text=json.dumps({"error": f"no migration run {text[:40]}"}),
                               content_type="application/json")
    return int(text)


routes = [
    web.post("/api/migrations", create),
    web.get("/api/migrations", listed),
    web.get("/api/migrations/{migration_id}", show),
    web.post("/api/migrations/{migration_id}/resume", resume),
]


async def stop_runs(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx: runs still going when the service stops are cancelled (each instance is one engine call and
    one mirror transaction: a cancelled one is either done or not begun in the mirror) and left to resume."""
    app[MIGRATION_RUNS] = set()
    yield
    running: set[asyncio.Task] = app[MIGRATION_RUNS]
    runs = list(running)
    for task in runs:
        task.cancel()
    if runs:
        await asyncio.gather(*runs, return_exceptions=True)
        log.warning("%d migration run(s) stopped with the service: POST /api/migrations/{id}/resume carries on",
                    len(runs))
