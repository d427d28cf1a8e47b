"""One error middleware: every failure of a dependency answers honestly, whatever route met it.

    database down, unreachable or dropping the connection   503, Retry-After 5
    connection pool exhausted (the database saturated)      503, Retry-After 1
    a transaction PostgreSQL rolled back for a conflict     503, Retry-After 1 (where a route does not retry it)
    the engine unreachable                                   503, Retry-After 5
    a body that does not arrive within BODY_READ_TIMEOUT_S   408 (a slow or stalled client holds no worker long)
    anything else unexpected                                 500 with the request id, logged with its traceback

Answers are the API's problem shape ({"error": ...}); handlers still answer their own refusals (4xx). A 503
says nothing was done only where that is known; an action may have reached the engine before the database
failed, so the message points the client at its Idempotency-Key.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import web
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from bridge import logs
from bridge.db.connections import transient_conflict
from bridge.flowable.client import EngineUnavailable

log = logging.getLogger(__name__)
BODY_READ_TIMEOUT_S = 30.0


class SlowBody(Exception):
    """The request's body did not arrive in time."""


@asynccontextmanager
async def body_deadline() -> AsyncIterator[None]:
    """Around reading a request's body: aiohttp waits for a body for ever, so a client that sends its headers
    and then trickles or stalls would hold its connection and the handler's memory as long as it liked."""
    try:
        async with asyncio.timeout(BODY_READ_TIMEOUT_S):
            yield
    except TimeoutError:
        raise SlowBody from None


def _unavailable(message: str, retry_after: int) -> web.Response:
    return web.json_response({"error": message}, status=503, headers={"Retry-After": str(retry_after)})


@web.middleware
async def error_middleware(request: web.Request, handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except SlowBody:
        log.warning("%s %s: the body did not arrive within %s s", request.method, request.path, BODY_READ_TIMEOUT_S)
        return web.json_response({"error": f"the request body did not arrive within {BODY_READ_TIMEOUT_S:g} s"},
                                 status=408, headers={"Connection": "close"})
    except PoolTimeout:
        log.warning("%s %s: no database connection free in time", request.method, request.path)
        return _unavailable("the service is saturated (no database connection free); try again shortly", 1)
    except DBAPIError as err:
        if transient_conflict(err):
            log.warning("%s %s: rolled back for a conflict with a concurrent change", request.method, request.path)
            return _unavailable("the request conflicted with a concurrent change and was rolled back; "
                                "try again (with the same Idempotency-Key)", 1)
        if isinstance(err, (OperationalError, InterfaceError)) or err.connection_invalidated:
            log.warning("%s %s: database unavailable: %s", request.method, request.path,
                        str(err.orig or err).strip().splitlines()[0] if str(err.orig or err).strip() else err)
            return _unavailable("the database is unavailable; try again later (an action: with the same "
                                "Idempotency-Key)", 5)
        raise _internal(request, err) from err
    except (ConnectionRefusedError, ConnectionResetError) as err:  # psycopg connecting, below SQLAlchemy
        log.warning("%s %s: database unreachable: %s", request.method, request.path, err)
        return _unavailable("the database is unavailable; try again later", 5)
    except EngineUnavailable as err:
        log.warning("%s %s: engine unavailable: %s", request.method, request.path, err)
        return _unavailable(f"the engine is unavailable: {err}", 5)
    except Exception as err:  # noqa: BLE001 - the last line: logged whole, answered without internals
        raise _internal(request, err) from err


def _internal(request: web.Request, err: BaseException) -> web.HTTPInternalServerError:
    log.error("%s %s failed", request.method, request.path, exc_info=err)
    return web.HTTPInternalServerError(
        text=json.dumps({"error": f"internal error; the request id {logs.REQUEST_ID.get()} finds it in the log"}),
        content_type="application/json")
