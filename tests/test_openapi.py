"""The OpenAPI document describes exactly the routes the app serves, and is served without a token."""

from __future__ import annotations

import re

from bridge.web.openapi import DOCUMENT
from tests.conftest import bridge_app


def test_every_route_is_in_the_document_and_every_documented_operation_is_served():
    app = bridge_app("postgresql://unused/none")
    served = set()
    for route in app.router.routes():
        if route.method == "HEAD":
            continue
        path = route.resource.canonical
        served.add((re.sub(r"\{(\w+)\}", r"{\1}", path), route.method.lower()))
    documented = {(path, method) for path, operations in DOCUMENT["paths"].items() for method in operations}
    assert served == documented


async def test_the_document_is_served_without_a_token(aiohttp_client):
    app = bridge_app("postgresql://unused/none")
    client = await aiohttp_client(app)
    response = await client.get("/api/openapi.json")
    assert response.status == 200
    assert (await response.json())["openapi"].startswith("3.1")
