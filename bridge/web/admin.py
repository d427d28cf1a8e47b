"""/api/admin: entitlements for ENTITLEMENTS_ADMIN (import, a user's grants, revoking one;
bridge/entitlements.py)."""

from __future__ import annotations

import logging

from aiohttp import web

from bridge import entitlements
from bridge.auth import ENTITLEMENTS_ROLE
from bridge.web.api_auth import USER_ID, problem, require_role, storable_text
from bridge.web.bodies import json_answer
from bridge.web.keys import DB

log = logging.getLogger(__name__)


async def import_entitlements(request: web.Request) -> web.Response:
    await require_role(request, DB, ENTITLEMENTS_ROLE)
    kind = "csv" if request.content_type == "text/csv" else "yaml"
    try:
        text = (await request.read()).decode("utf-8")
        wanted = entitlements.read(text, kind)  # refuses only a file it cannot read at all
        if not storable_text(text):  # the database cannot be asked about such text: the file's problems only
            raise entitlements.EntitlementsError(wanted.problems + ["the file holds a NUL character or invalid text"])
        async with request.app[DB].begin() as conn:  # apply answers the file's problems and the database's together
            await entitlements.apply(conn, wanted, by=request[USER_ID])
    except UnicodeDecodeError:
        return problem(400, "the body is not UTF-8 text")
    except entitlements.EntitlementsError as err:
        return web.json_response({"error": "nothing imported", "problems": err.problems}, status=422)
    return json_answer({"departments": len(wanted.departments), "users": len(wanted.users), "grants": wanted.grants})


async def user_grants(request: web.Request) -> web.Response:
    await require_role(request, DB, ENTITLEMENTS_ROLE)
    async with request.app[DB].connect() as conn:
        found = await entitlements.user_grants(conn, request.match_info["user_id"])
    if found is None:
        return problem(404, f"no user {request.match_info['user_id']}")
    return json_answer(found)


async def revoke_grant(request: web.Request) -> web.Response:
    await require_role(request, DB, ENTITLEMENTS_ROLE)
    user_id, role = request.match_info["user_id"], request.match_info["role_code"]
    async with request.app[DB].begin() as conn:
        revoked = await entitlements.revoke_grant(conn, user_id, role)
    if revoked is None:
        return problem(404, f"{user_id} holds no current or future grant of {role}")
    log.info("grant of %s to %s revoked by %s", role, user_id, request[USER_ID])
    return json_answer({"userId": user_id, "revoked": revoked, "revokedBy": request[USER_ID]})


routes = [
    web.post("/api/admin/entitlements", import_entitlements),
    web.get("/api/admin/users/{user_id}", user_grants),
    web.delete("/api/admin/users/{user_id}/grants/{role_code}", revoke_grant),
]
