"""POST /webhooks/flowable: the engine's signed batches into the inbox.

401 and nothing written when the signature fails; 413 over the size limit (checked before the body is
read); 400 with the field for a malformed body; 503 when the database is unavailable, or the batch still
conflicts with concurrent ones after bridge/mirror/intake.py's retries (nothing stored, the engine sends
again); 200 with counts, also for a redelivery and for a batch stored but parked because applying it failed.
"""

from __future__ import annotations

import logging

from aiohttp import web
from sqlalchemy.exc import InterfaceError, OperationalError

from bridge import metrics
from bridge.db.connections import transient_conflict
from bridge.mirror.intake import CONFLICT_ATTEMPTS, MAX_WEBHOOK_ID, BadBatch, Received, parse_batch, receive_batch
from bridge.mirror.signature import SignatureError, verify
from bridge.web.bodies import read_whole
from bridge.web.errors import body_deadline
from bridge.web.keys import DB, WEBHOOK_KEYS

MAX_WEBHOOK_BYTES = 1024 * 1024
log = logging.getLogger(__name__)


async def receive(request: web.Request) -> web.Response:
    if (request.content_length or 0) > MAX_WEBHOOK_BYTES:
        return _refused("too_large", 413, f"a batch may be at most {MAX_WEBHOOK_BYTES} bytes")
    async with body_deadline():
        body = await read_whole(request, MAX_WEBHOOK_BYTES)
    if body is None:
        return _refused("too_large", 413, f"a batch may be at most {MAX_WEBHOOK_BYTES} bytes")
    headers = {k.lower(): v for k, v in request.headers.items()}
    keys: list[bytes] = request.app[WEBHOOK_KEYS]
    try:
        webhook_id = verify(keys, headers, body)
    except SignatureError as err:
        return _refused("bad_signature", 401, f"signature check failed: {err}")
    if len(webhook_id) > MAX_WEBHOOK_ID:
        return _refused("malformed", 400, f"webhook-id: at most {MAX_WEBHOOK_ID} characters")
    try:
        batch = parse_batch(body)
    except BadBatch as err:
        return _refused("malformed", 400, str(err))
    try:
        with metrics.APPLY_SECONDS.time():
            received = await receive_batch(request.app[DB], webhook_id, batch, body)
    except (OperationalError, InterfaceError, OSError) as err:
        # nothing was committed: the engine keeps the batch and sends it again
        if transient_conflict(err):
            log.warning("batch %s not stored, still conflicting after %d attempts: %s", webhook_id,
                        CONFLICT_ATTEMPTS, err)
            return _refused("conflict", 503, "the batch kept conflicting with concurrent ones; send it again")
        log.warning("batch %s not stored, database unavailable: %s", webhook_id, err)
        return _refused("database_unavailable", 503, "the database is unavailable; send the batch again later")
    _count(received, batch)
    return web.json_response(received.as_json())


routes = [web.post("/webhooks/flowable", receive)]


def _refused(outcome: str, status: int, message: str) -> web.Response:
    metrics.WEBHOOK_BATCHES.labels(outcome).inc()
    return web.json_response({"error": message}, status=status)


def _count(received: Received, batch: dict) -> None:
    outcome = "duplicate" if received.duplicate_delivery else "parked" if received.parked else "accepted"
    metrics.WEBHOOK_BATCHES.labels(outcome).inc()
    metrics.EVENTS_RECEIVED.inc(received.events)
    metrics.EVENTS_DEDUPLICATED.inc(received.events - received.new_events)
    metrics.EVENTS_PARKED.inc(received.parked)
    metrics.EVENTS_APPLIED.inc(received.new_events - received.parked)
    if received.new_events and not received.parked:
        metrics.mirrored_change_at(max((e.get("timestamp") for e in batch["events"] if e.get("timestamp")),
                                       default=None))
