"""The aiohttp application: shared resources live in cleanup contexts, handlers stay thin."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
import uuid
from collections.abc import AsyncIterator, Callable

import prometheus_client
import psycopg
from aiohttp import web
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from bridge import archive, db_health, logs, metrics
from bridge.background import periodic
from bridge.bpmn.safe_xml import MAX_BYTES
from bridge.config import ConfigError, Settings
from bridge.db import migrate
from bridge.db.connections import libpq_url, open_database
from bridge.db.locks import RequestLocks
from bridge.flowable.client import EngineUnavailable, FlowableClient, FlowableEndpoint, FlowableError, RetryPolicy
from bridge.leadership import Leadership, replica_id
from bridge.mirror.apply import fold_pending_counts
from bridge.mirror.reconcile import Reconciler, ReconcilerSettings
from bridge.mirror.signature import decode_secret
from bridge.runtime import webhook_secret
from bridge.web import admin, cases, dashboard, deployments, migrations, queues, reports, tasks, webhooks
from bridge.web.api_auth import authentication_middleware
from bridge.web.errors import error_middleware
from bridge.web.keys import (
    DATABASE_URL,
    DB,
    FLOWABLE,
    FLOWABLE_ENDPOINT,
    LEADERSHIP,
    LOCKS,
    READ_DB,
    RECONCILER,
    SETTINGS,
    WEBHOOK_KEYS,
    WORK,
)
from bridge.web.openapi import DOCUMENT
from bridge.work.actions import WorkService
from bridge.work.assignment import auto_assign_once
from bridge.work.escalation import escalate_once

READY_ENGINE_TIMEOUT_S = 3
log = logging.getLogger(__name__)


# A BPMN upload may be up to safe_xml.MAX_BYTES; the multipart envelope needs a little more.
MAX_REQUEST_BYTES = MAX_BYTES + 64 * 1024


def create_app(settings: Settings, database_url: str, endpoint: FlowableEndpoint, *,
               background_jobs: bool = True) -> web.Application:
    """The app; background_jobs=False for extra serving processes (bridge/web/server.py)."""
    app = web.Application(middlewares=[request_id, request_metrics, error_middleware, authentication_middleware(DB)],
                          client_max_size=MAX_REQUEST_BYTES)
    app[SETTINGS] = settings
    app[DATABASE_URL] = database_url
    app[FLOWABLE_ENDPOINT] = endpoint
    # The current secret signs; previous ones are still accepted while the engine switches over.
    try:
        app[WEBHOOK_KEYS] = [decode_secret(webhook_secret(settings)),
                             *(decode_secret(s) for s in settings.webhook_previous_secrets)]
    except ValueError as err:
        raise ConfigError(f"WEBHOOK_SECRET / WEBHOOK_PREVIOUS_SECRETS: {err}") from None
    app.cleanup_ctx.append(_database_pool)
    app.cleanup_ctx.append(_flowable_client)
    app.cleanup_ctx.append(migrations.stop_runs)
    if background_jobs:
        # one replica at a time runs what follows: the holder of the lease (bridge/leadership.py)
        app.cleanup_ctx.append(_leadership)
        app.cleanup_ctx.append(_background_reconciler)
        # queue load and the summaries trail the tasks by at most this (migrations 0013, 0018, 0028, 0029)
        app.cleanup_ctx.append(periodic("queue-load folding", lambda a: QUEUE_LOAD_FOLD_S,
                                        lambda a: lambda: _fold_pending_counts(a[DB]), _leading))
        app.cleanup_ctx.append(periodic("SLA escalation", lambda a: a[SETTINGS].escalate_interval_s,
                                        lambda a: lambda: escalate_once(a[DB], a[FLOWABLE]), _leading))
        app.cleanup_ctx.append(periodic("auto-assignment", lambda a: a[SETTINGS].auto_assign_interval_s,
                                        lambda a: lambda: auto_assign_once(a[DB], a[FLOWABLE]), _leading))
        app.cleanup_ctx.append(_history_months_ahead)
        app.cleanup_ctx.append(periodic("archiving", lambda a: a[SETTINGS].archive_interval_s,
                                        lambda a: lambda: _archive(a), _leading))
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_endpoint)
    app.router.add_get("/api/openapi.json", openapi_document)
    app.router.add_routes(deployments.routes)
    app.router.add_routes(migrations.routes)
    app.router.add_routes(webhooks.routes)
    app.router.add_routes(tasks.routes)
    app.router.add_routes(cases.routes)
    app.router.add_routes(admin.routes)
    app.router.add_routes(queues.routes)
    app.router.add_routes(reports.routes)
    app.router.add_routes(dashboard.routes)
    return app


async def _database_pool(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    size, timeout = settings.db_pool_size, settings.db_pool_timeout_s
    database = open_database(app[DATABASE_URL], pool_size=size, pool_timeout=timeout)
    app[DB] = database
    replica = settings.database_read_url
    app[READ_DB] = open_database(replica, pool_size=size, pool_timeout=timeout) if replica else database
    # the locks a request holds across its engine calls: a pool of their own (bridge/db/locks.py)
    app[LOCKS] = RequestLocks(open_database(app[DATABASE_URL], pool_size=size, pool_timeout=timeout))
    yield
    await app[LOCKS].dispose()
    if replica:
        await app[READ_DB].dispose()
    await database.dispose()


async def _flowable_client(app: web.Application) -> AsyncIterator[None]:
    endpoint = app[FLOWABLE_ENDPOINT]
    client = FlowableClient.of(endpoint)
    app[FLOWABLE] = client
    app[WORK] = WorkService(app[DB], client, locks=app[LOCKS])
    yield
    await client.close()


async def _leadership(app: web.Application) -> AsyncIterator[None]:
    """The lease on the background jobs: renewed (or waited for) all along, released on the way out."""
    leadership = Leadership(app[DB], ttl_s=app[SETTINGS].lease_ttl_s, holder=replica_id())
    app[LEADERSHIP] = leadership
    task = asyncio.create_task(leadership.run_forever(), name="leadership")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await leadership.release()


def _leading(app: web.Application) -> Callable[[], bool]:
    leadership = app[LEADERSHIP]
    return lambda: leadership.leading


async def _background_reconciler(app: web.Application) -> AsyncIterator[None]:
    """Pass after pass in the background (BRIDGE_RECONCILE_INTERVAL_S; 0: none in this process)."""
    settings = app[SETTINGS]
    if settings.reconcile_interval_s <= 0:
        yield
        return
    reconciler = Reconciler(app[DB], app[FLOWABLE], ReconcilerSettings.of(settings))
    app[RECONCILER] = reconciler
    task = asyncio.create_task(reconciler.run_forever(settings.reconcile_interval_s, _leading(app)),
                               name="reconciler")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _history_months_ahead(app: web.Application) -> AsyncIterator[None]:
    """task_history's months ahead at start (archiving runs make them too, but may be off or an hour away). A
    database that is down does not stop the start: rows of a month not made yet wait in the DEFAULT partition."""
    try:
        async with app[DB].connect() as conn:
            await archive.ensure_partitions_ahead(conn)
    except Exception as err:  # noqa: BLE001 - the service serves (503s) until the database is back
        log.warning("task_history months ahead not made at start: %s", err)
    yield


async def _archive(app: web.Application) -> None:
    settings = app[SETTINGS]
    try:
        report = await archive.run(app[DB], app[FLOWABLE], retention_days=settings.retention_days,
                                   inbox_days=settings.inbox_retention_days)
    except archive.ArchiverBusy:
        return  # another replica (or `bridge archive`) is at it
    if report.instances or report.months_moved or report.engine_histories_deleted or report.inbox_batches_pruned:
        log.info("archiving: %d instance(s) in %d batch(es), months %s, engine histories deleted %d, "
                 "inbox batches pruned %d (%.1fs)", report.instances, report.batches, report.months_moved or "-",
                 report.engine_histories_deleted, report.inbox_batches_pruned, report.seconds)


QUEUE_LOAD_FOLD_S = 1.0
QUEUE_STATE_SQL = """
    SELECT v.queue_name, v.current_load AS open_tasks,
           (SELECT count(*) FROM flowable.workflow_tasks t
            WHERE t.queue_name = v.queue_name AND t.due_date < now()
              AND t.status IN ('OPEN', 'CLAIMED', 'DELEGATED', 'ESCALATED')) AS overdue_tasks
    FROM flowable.v_queue_load v"""


async def _fold_pending_counts(db: AsyncEngine) -> None:
    async with db.begin() as conn:
        await fold_pending_counts(conn)


async def openapi_document(request: web.Request) -> web.Response:
    return web.json_response(DOCUMENT)


@web.middleware
async def request_id(request: web.Request, handler) -> web.StreamResponse:
    """The caller's X-Request-Id (or a new one) on every log record of this request, on the engine calls it
    makes (bridge/flowable/client.py), and back in the answer."""
    given = request.headers.get("X-Request-Id", "")
    rid = given if 0 < len(given) <= 100 and given.isprintable() else uuid.uuid4().hex
    token = logs.REQUEST_ID.set(rid)
    try:
        try:
            response = await handler(request)
        except web.HTTPException as err:
            err.headers["X-Request-Id"] = rid
            raise
        response.headers["X-Request-Id"] = rid
        return response
    finally:
        logs.REQUEST_ID.reset(token)


@web.middleware
async def request_metrics(request: web.Request, handler) -> web.StreamResponse:
    """Count and time every request by its route's pattern (not its path: ids would explode the labels)."""
    route = request.match_info.route.resource.canonical if request.match_info.route.resource else "unmatched"
    began = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as err:
        status = err.status
        raise
    finally:
        metrics.HTTP_REQUESTS.labels(route, request.method, str(status)).inc()
        metrics.HTTP_SECONDS.labels(route).observe(time.perf_counter() - began)


async def metrics_endpoint(request: web.Request) -> web.Response:
    """Prometheus exposition of bridge/metrics.py (and the process collector's defaults); queue depth, SLA
    breaches and database health are read at each scrape."""
    try:
        async with request.app[DB].connect() as conn:
            for row in await conn.execute(text(QUEUE_STATE_SQL)):
                metrics.QUEUE_OPEN.labels(row.queue_name).set(row.open_tasks)
                metrics.QUEUE_OVERDUE.labels(row.queue_name).set(row.overdue_tasks)
            db_health.set_metrics(await db_health.read(conn))
    except (SQLAlchemyError, OSError) as err:  # the rest of the metrics are still worth serving
        log.warning("queue and database health metrics not read: %s", err)
    response = web.Response(body=prometheus_client.generate_latest())
    response.content_type = prometheus_client.CONTENT_TYPE_LATEST.split(";")[0]
    response.charset = "utf-8"
    return response


async def healthz(request: web.Request) -> web.Response:
    """The process is up and serving; says nothing about its dependencies (pid: which serving process)."""
    return web.json_response({"status": "ok", "pid": os.getpid()})


async def readyz(request: web.Request) -> web.Response:
    """Ready to do work: the database answers, its schema is current, and the engine answers."""
    app = request.app
    checks: dict[str, str] = {}
    try:
        async with app[DB].connect() as conn:
            await conn.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except (SQLAlchemyError, OSError) as err:
        checks["database"] = f"error: {err}"
    else:
        try:
            waiting = await migrate.pending(libpq_url(app[DATABASE_URL]), app[SETTINGS].migrations_dir)
            checks["migrations"] = "ok" if not waiting else f"pending: {', '.join(waiting)}"
        except (migrate.MigrationError, psycopg.Error) as err:
            checks["migrations"] = f"error: {err}"
    try:
        async with asyncio.timeout(READY_ENGINE_TIMEOUT_S):
            # each engine node once: a dead one passes the probe to the next (bridge/flowable/client.py)
            await app[FLOWABLE].engine_info(retry=RetryPolicy(attempts=len(app[FLOWABLE].base_urls)))
        checks["engine"] = "ok"
    except (EngineUnavailable, FlowableError, TimeoutError) as err:
        # asyncio's TimeoutError has no message (and an exception object is always true)
        checks["engine"] = f"error: {str(err) or f'no answer within {READY_ENGINE_TIMEOUT_S}s'}"
    ready = all(value == "ok" for value in checks.values())
    body: dict = {"status": "ready" if ready else "not ready", "checks": checks}
    if RECONCILER in app:  # informative: a failing reconciler does not stop the bridge from serving
        reconciler = app[RECONCILER]
        body["reconciler"] = {"lastPass": reconciler.last_report.summary() if reconciler.last_report else None,
                              "lastError": reconciler.last_error}
    return web.json_response(body, status=200 if ready else 503)
