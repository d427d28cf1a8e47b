"""Logs carry the request id, which also goes to the engine with the calls made for the request."""

from __future__ import annotations

import json
import logging

from bridge.logs import REQUEST_ID, JsonFormatter, RequestIdFilter
from tests.conftest import bridge_app


def test_json_lines_hold_the_request_id_and_the_exception():
    record = logging.LogRecord("bridge.x", logging.ERROR, __file__, 1, "failed %s", ("here",), None)
    token = REQUEST_ID.set("req-7")
    try:
        RequestIdFilter().filter(record)
    finally:
        REQUEST_ID.reset(token)
    try:
        raise ValueError("boom")
    except ValueError:
        import sys
        record.exc_info = sys.exc_info()
    line = json.loads(JsonFormatter().format(record))
    assert (line["level"], line["logger"], line["message"], line["request_id"]) == (
        "ERROR", "bridge.x", "failed here", "req-7")
    assert "ValueError: boom" in line["exception"]


async def test_a_request_id_is_echoed_made_up_when_missing_and_sent_to_the_engine(engine, aiohttp_client, caplog):
    client = await aiohttp_client(bridge_app("postgresql://unused/none", engine))
    caplog.set_level(logging.DEBUG, logger="bridge.flowable.client")
    for handler in logging.getLogger().handlers:
        handler.addFilter(RequestIdFilter())
    caplog.handler.addFilter(RequestIdFilter())
    ready = await client.get("/readyz", headers={"X-Request-Id": "trace-42"})  # calls the engine
    assert ready.headers["X-Request-Id"] == "trace-42"
    engine_calls = [r for r in caplog.records
                    if r.name == "bridge.flowable.client" and "management/engine" in r.getMessage()]
    assert engine_calls and all(r.request_id == "trace-42" for r in engine_calls)
    made_up = (await client.get("/healthz")).headers["X-Request-Id"]
    assert len(made_up) == 32
