"""/api/reports/{report}: the ops reports (bridge/reports.py) as JSON, for a token holding OPS_VIEWER, read from the
read replica when there is one (DATABASE_READ_URL)."""

from __future__ import annotations

import json

from aiohttp import web

from bridge import reports
from bridge.auth import OPS_ROLE
from bridge.web.api_auth import problem, require_role
from bridge.web.keys import DB, FLOWABLE, READ_DB


def handler(name: str):
    async def report(request: web.Request) -> web.Response:
        await require_role(request, DB, OPS_ROLE)
        try:
            where = reports.ReportFilter.parse(request.query, reports.span_of(name))
            body = await reports.run(request.app[READ_DB], name, where)
        except reports.BadFilter as err:
            return problem(400, str(err))
        if name == "mirror":
            body["emitter"] = await reports.emitter(request.app[FLOWABLE])
            body["read_replica"] = await reports.read_replica(request.app[DB], request.app[READ_DB])
        return web.json_response(body, dumps=json.dumps)
    report.__doc__ = reports.REPORTS[name].__doc__
    return report


routes = [web.get(f"/api/reports/{name}", handler(name)) for name in reports.REPORTS]

