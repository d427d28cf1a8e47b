"""Bearer-token authentication for /api: the acting user comes from the token, never from the request body."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

from aiohttp import web

from bridge.auth import holds_role, user_of_token

USER_ID = web.RequestKey("user_id", str)  # set for authenticated /api requests
PUBLIC = {"/api/openapi.json"}  # the API's description needs no token

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def storable_text(value: str) -> bool:
    """Text PostgreSQL can hold: no NUL character, valid UTF-8 (no lone surrogates)."""
    if "\x00" in value:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def first_unstorable(value, where: str = "body") -> str | None:
    """The place in a parsed JSON value holding text PostgreSQL cannot store, or None."""
    if isinstance(value, str):
        return None if storable_text(value) else where
    if isinstance(value, dict):
        for key, item in value.items():
            found = (where if not storable_text(key) else None) or first_unstorable(item, f"{where}.{key}")
            if found:
                return found
    if isinstance(value, list):
        for index, item in enumerate(value):
            found = first_unstorable(item, f"{where}[{index}]")
            if found:
                return found
    return None


def problem(status: int, message: str, **extra) -> web.Response:
    headers = {"WWW-Authenticate": 'Bearer realm="onecms-bridge"'} if status == 401 else None
    return web.json_response({"error": message, **extra}, status=status, headers=headers)


def authentication_middleware(db_key: web.AppKey) -> Callable:
    @web.middleware
    async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
        # every route, not only /api: a value PostgreSQL cannot hold fails later, as a 500, wherever it is used
        for name, value in [*request.query.items(), *request.match_info.items()]:
            if not storable_text(value):
                return problem(400, f"{name}: contains a NUL character or a lone surrogate, which no field may hold")
        if not request.path.startswith("/api/") or request.path in PUBLIC:
            return await handler(request)
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return problem(401, "this endpoint needs an Authorization: Bearer <token> header "
                                "(bridge token create USER)")
        async with request.app[db_key].begin() as conn:
            user_id = await user_of_token(conn, token.strip())
        if user_id is None:
            return problem(401, "the token is unknown, revoked or expired, or its user is inactive")
        request[USER_ID] = user_id
        return await handler(request)

    return authenticate


async def require_role(request: web.Request, db_key: web.AppKey, role_code: str) -> None:
    async with request.app[db_key].connect() as conn:
        if not await holds_role(conn, request[USER_ID], role_code):
            # json.dumps, not an f-string: a user id may hold quotes.
            raise web.HTTPForbidden(text=json.dumps({"error": f"this needs the {role_code} role, which "
                                                             f"{request[USER_ID]} does not hold"}),
                                    content_type="application/json")
