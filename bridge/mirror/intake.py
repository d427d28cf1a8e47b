"""Webhook intake: a verified batch from the engine -> the inbox tables and the mirror, once, in one transaction.

The HTTP handler (bridge/web/webhooks.py) checks size and signature first; here the body is checked
for shape and stored. Every problem with a body is a BadBatch whose message names the field.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection

from bridge.db.queries import queries
from bridge.mirror.apply import apply_events

SQL = queries("intake")
log = logging.getLogger(__name__)


class BadBatch(ValueError):
    """The body is not a batch of engine events; the message says which part is wrong."""


@dataclass(frozen=True)
class Received:
    webhook_id: str
    events: int
    new_events: int
    duplicate_delivery: bool
    parked: int = 0  # stored, but applying them failed (see store_batch)

    def as_json(self) -> dict[str, Any]:
        return {"webhookId": self.webhook_id, "events": self.events, "newEvents": self.new_events,
                "duplicateDelivery": self.duplicate_delivery, "parked": self.parked}


def parse_batch(body: bytes) -> dict[str, Any]:
    try:
        batch = orjson.loads(body)  # strict: invalid UTF-8 and lone surrogates are refused here
    except orjson.JSONDecodeError as err:
        raise BadBatch(f"the body is not JSON: {err}") from None
    if b"\\u0000" in body:  # the one JSON text jsonb refuses to store
        raise BadBatch("the body holds a NUL character (\\u0000), which PostgreSQL cannot store")
    if not isinstance(batch, dict):
        raise BadBatch("the body must be a JSON object with an events array")
    events = batch.get("events")
    if not isinstance(events, list):
        raise BadBatch("events: missing, or not an array")
    for index, event in enumerate(events):
        where = f"events[{index}]"
        if not isinstance(event, dict):
            raise BadBatch(f"{where}: not an object")
        for name in ("eventId", "type"):
            if not isinstance(event.get(name), str) or not event[name]:
                raise BadBatch(f"{where}.{name}: missing or not a non-empty string")
        if "seq" in event and event["seq"] is not None and not isinstance(event["seq"], int):
            raise BadBatch(f"{where}.seq: not an integer")
        if event.get("timestamp") is not None:
            _timestamp(event["timestamp"], f"{where}.timestamp")
    if batch.get("committedAt") is not None:
        _timestamp(batch["committedAt"], "committedAt")
    return batch


def _timestamp(value: Any, where: str) -> None:
    try:
        datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise BadBatch(f"{where}: not an ISO-8601 timestamp: {value!r}") from None


async def store_batch(conn: AsyncConnection, webhook_id: str, batch: dict[str, Any],
                      body: bytes | None = None) -> Received:
    """Store a parsed batch under its webhook id; a redelivered id stores nothing. `body`, when given, is
    the JSON the batch was parsed from: PostgreSQL unpacks its events itself (no second encoding here)."""
    events = batch["events"]
    first_time = (await conn.execute(SQL.insert_batch, {
        "webhook_id": webhook_id, "engine": batch.get("engine"), "engine_instance_id": batch.get("engineInstanceId"),
        "batch_seq": batch.get("batchSeq"), "committed_at": batch.get("committedAt"), "event_count": len(events),
    })).first()
    if first_time is None:
        return Received(webhook_id, len(events), 0, duplicate_delivery=True)
    stored = {row.event_id for row in await conn.execute(
        SQL.insert_events, {"webhook_id": webhook_id,
                            "batch": body.decode() if body is not None else orjson.dumps(batch).decode()})}
    # Only what was stored now is applied: an event seen before (a replayed transaction) was applied then.
    fresh = [e for e in events if e["eventId"] in stored]
    try:
        async with conn.begin_nested():
            await apply_events(conn, fresh)
    except (SQLAlchemyError, ValueError, KeyError, TypeError) as err:
        # Parked, not lost: the events stay in the inbox with the reason, the engine gets its answer, and
        # the reconciler repairs the mirror from the engine. A database that is gone fails the whole request.
        if isinstance(err, DBAPIError) and err.connection_invalidated:
            raise
        log.exception("batch %s: %d event(s) stored but not applied, parked", webhook_id, len(fresh))
        await conn.execute(SQL.park_events, {"event_ids": sorted(stored), "error": f"{type(err).__name__}: {err}"[:2000]})
        return Received(webhook_id, len(events), len(stored), duplicate_delivery=False, parked=len(stored))
    return Received(webhook_id, len(events), len(stored), duplicate_delivery=False)
