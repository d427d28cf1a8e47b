"""Reading request bodies, and writing JSON answers: what every handler needs the same way."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from aiohttp import web

from bridge.json_limits import MAX_DEPTH, deeper_than
from bridge.web.api_auth import first_unstorable, problem
from bridge.web.errors import body_deadline


def _not_json(constant: str) -> None:
    raise ValueError(f"{constant} is not a JSON number")  # Python's json reads NaN and Infinity; JSON does not


async def json_body(request: web.Request) -> dict | web.Response:
    """The body as a JSON object ({} when empty), or the 400 that says what is wrong with it."""
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


async def read_whole(request: web.Request, limit: int) -> bytes | None:
    """The whole body, whatever its framing (Content-Length, chunked, split across packets), or None once it
    passes `limit` bytes. StreamReader.read(n) returns what has arrived so far, up to n: for a chunked body
    that was its first chunk, whose signature then failed (a 401, and the engine drops a batch on any 4xx)."""
    parts, size = [], 0
    while chunk := await request.content.read(64 * 1024):
        size += len(chunk)
        if size > limit:
            return None
        parts.append(chunk)
    return b"".join(parts)


def json_answer(value: Any, status: int = 200) -> web.Response:
    """A JSON answer; datetimes as ISO-8601."""
    return web.json_response(value, status=status, dumps=lambda v: json.dumps(v, default=_default))


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON")
