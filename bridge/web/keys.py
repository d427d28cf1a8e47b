"""What the application holds, by key: one module, so that handlers at module level reach them
(`request.app[DB]`) without each route table being built around the keys it is given."""

from __future__ import annotations

import asyncio

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from bridge.config import Settings
from bridge.db.locks import RequestLocks
from bridge.flowable.client import FlowableClient, FlowableEndpoint
from bridge.leadership import Leadership
from bridge.mirror.reconcile import Reconciler
from bridge.work.actions import WorkService

SETTINGS = web.AppKey("settings", Settings)
DATABASE_URL = web.AppKey("database_url", str)
FLOWABLE_ENDPOINT = web.AppKey("flowable_endpoint", FlowableEndpoint)
DB = web.AppKey("db", AsyncEngine)
READ_DB = web.AppKey("read_db", AsyncEngine)  # the reports' and dashboard's reads: DATABASE_READ_URL, else DB
FLOWABLE = web.AppKey("flowable", FlowableClient)
WEBHOOK_KEYS = web.AppKey("webhook_keys", list[bytes])  # current secret first, then previous ones
RECONCILER = web.AppKey("reconciler", Reconciler)
WORK = web.AppKey("work", WorkService)
LOCKS = web.AppKey("locks", RequestLocks)
MIGRATION_RUNS = web.AppKey("migration_runs", set[asyncio.Task])  # this process's background migration runs, until done
LEADERSHIP = web.AppKey("leadership", Leadership)  # the lease on the background jobs (main process only)
