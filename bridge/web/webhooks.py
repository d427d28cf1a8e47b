"""POST /webhooks/flowable: the engine's signed batches into the inbox.

401 and nothing written when the signature fails; 413 over the size limit (checked before the body is
read); 400 with the field for a malformed body; 200 with counts, also for a redelivery.
"""

from __future__ import annotations

from aiohttp import web

from bridge.mirror.intake import BadBatch, parse_batch, store_batch
from bridge.mirror.signature import SignatureError, verify

MAX_WEBHOOK_BYTES = 1024 * 1024


def webhook_routes(db_key: web.AppKey, keys_key: web.AppKey) -> list[web.RouteDef]:
    async def receive(request: web.Request) -> web.Response:
        if (request.content_length or 0) > MAX_WEBHOOK_BYTES:
            return _error(413, f"a batch may be at most {MAX_WEBHOOK_BYTES} bytes")
        body = await request.content.read(MAX_WEBHOOK_BYTES + 1)
        if len(body) > MAX_WEBHOOK_BYTES:
            return _error(413, f"a batch may be at most {MAX_WEBHOOK_BYTES} bytes")
        headers = {k.lower(): v for k, v in request.headers.items()}
        try:
            webhook_id = verify(request.app[keys_key], headers, body)
        except SignatureError as err:
            return _error(401, f"signature check failed: {err}")
        try:
            batch = parse_batch(body)
        except BadBatch as err:
            return _error(400, str(err))
        async with request.app[db_key].begin() as conn:
            received = await store_batch(conn, webhook_id, batch)
        return web.json_response(received.as_json())

    return [web.post("/webhooks/flowable", receive)]


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)
