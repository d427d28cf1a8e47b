"""Idempotency-Key: the first definitive answer is kept per user and key, and a retry gets it again instead
of acting twice; the same key with a different request is 422.

A success is stored in the transaction of the action's mirror write (the service calls `remember` there),
so a crash cannot leave the action done and its answer forgotten; a definitive refusal (4xx) is stored on
its own; a conflict, a 5xx or a 503 is never stored: the retry must act. One request per user and key at a
time: a concurrent retry waits for the first (bridge/db/locks.py).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from bridge.db.queries import queries
from bridge.web.api_auth import USER_ID, problem
from bridge.web.bodies import json_answer
from bridge.web.keys import DB, WORK
from bridge.work.actions import Remember

SQL = queries("work")
DEFINITIVE = web.ResponseKey("definitive", bool)  # may the answer be stored under an Idempotency-Key


async def idempotent(request: web.Request, key: str, body: dict, created: bool,
                     act: Callable[[Remember], Awaitable[web.Response]]) -> web.Response:
    """The stored answer to (user, key), or `act`'s, stored when definitive."""
    db = request.app[DB]
    user = request[USER_ID]
    fingerprint = hashlib.sha256(json.dumps([request.method, request.path, body], sort_keys=True).encode()).hexdigest()

    async def remember(conn, result: Any) -> None:
        """Called by the action inside its transaction, after its mirror write: both commit or neither."""
        response = success(result, created)
        await _store(conn, user, key, fingerprint, response.status,
                     json.loads(response.text) if response.text else None)

    async with request.app[WORK].locks.hold(SQL.lock_idempotency_key, SQL.unlock_idempotency_key,
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
                await _store(conn, user, key, fingerprint, response.status, json.loads(response.text or "null"))
        return response


async def _store(conn, user: str, key: str, fingerprint: str, status: int, body: Any) -> None:
    await conn.execute(SQL.remember_answer, {"user_id": user, "key": key, "request_hash": fingerprint,
                                             "status": status, "body": json.dumps(body)})


def success(result: Any, created: bool) -> web.Response:
    if result is None:
        return web.Response(status=204)
    return json_answer(result, status=201 if created else 200)


def _replay(status: int, body: Any) -> web.Response:
    if status == 204:
        return web.Response(status=204, headers={"Idempotent-Replayed": "true"})
    return web.json_response(body, status=status, headers={"Idempotent-Replayed": "true"})
