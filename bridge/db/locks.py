"""Advisory locks held across a request's engine calls (one request per Idempotency-Key, one start per case
and process): session locks, on connections of a pool of their own.

Why a pool of their own: a request that holds a lock connection also needs a connection for its work. Taken
from one pool, ten concurrent requests each holding one and waiting for a second exhaust a pool of ten and
wait for each other until the pool times out (seen: eight concurrent keyed case starts). With two pools,
always taken in the same order (lock, then work) and at most one connection of each per request, nobody
waits while holding what another waits for. A request that needs two locks takes both on its one lock
connection (the connection is remembered per asyncio task, i.e. per request).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from contextvars import ContextVar

from sqlalchemy import TextClause
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

_HELD: ContextVar[AsyncConnection | None] = ContextVar("bridge_lock_connection", default=None)


class RequestLocks:
    def __init__(self, database: AsyncEngine) -> None:
        self.database = database

    @asynccontextmanager
    async def hold(self, lock: TextClause, unlock: TextClause, params: dict) -> AsyncIterator[None]:
        """Hold the advisory lock `lock` takes (with `params`) for the block; `unlock` releases it."""
        held = _HELD.get()
        if held is not None:
            async with _locked(held, lock, unlock, params):
                yield
            return
        async with self.database.connect() as conn:
            token = _HELD.set(conn)
            try:
                async with _locked(conn, lock, unlock, params):
                    yield
            finally:
                _HELD.reset(token)

    async def dispose(self) -> None:
        await self.database.dispose()


@asynccontextmanager
async def _locked(conn: AsyncConnection, lock: TextClause, unlock: TextClause, params: dict) -> AsyncIterator[None]:
    await conn.execute(lock, params)
    await conn.commit()  # a session lock outlives the transaction; the connection is not left idle in one
    try:
        yield
    finally:
        await conn.execute(unlock, params)
        await conn.commit()
