"""The OpenAPI document describes exactly the routes the app serves, and is served without a token."""

from __future__ import annotations

import re

from bridge.config import Settings
from bridge.flowable.client import EngineEndpoint
from bridge.web.app import create_app
from bridge.web.openapi import DOCUMENT


def test_every_route_is_in_the_document_and_every_documented_operation_is_served():
    app = create_app(Settings(webhook_secret="whsec_" + "A" * 43 + "=", reconcile_interval_s=0,
                              escalate_interval_s=0, auto_assign_interval_s=0), "postgresql://unused/none",
                     EngineEndpoint("http://127.0.0.1:1/process-api", "x", "y"))
    served = set()
    for route in app.router.routes():
        if route.method == "HEAD":
            continue
        path = route.resource.canonical
        served.add((re.sub(r"\{(\w+)\}", r"{\1}", path), route.method.lower()))
    documented = {(path, method) for path, operations in DOCUMENT["paths"].items() for method in operations}
    assert served == documented


async def test_the_document_is_served_without_a_token(aiohttp_client):
    app = create_app(Settings(webhook_secret="whsec_" + "A" * 43 + "=", reconcile_interval_s=0,
                              escalate_interval_s=0, auto_assign_interval_s=0), "postgresql://unused/none",
                     EngineEndpoint("http://127.0.0.1:1/process-api", "x", "y"))
    client = await aiohttp_client(app)
    response = await client.get("/api/openapi.json")
    assert response.status == 200
    assert (await response.json())["openapi"].startswith("3.1")
