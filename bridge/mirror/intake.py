"""Webhook intake: a verified batch from the engine -> the inbox tables and the mirror, once, in one transaction.

The HTTP handler (bridge/web/webhooks.py) checks size and signature first; here the body is checked
for shape and stored. Every problem with a body is a BadBatch whose message names the field.

Two batches that touch the same rows can deadlock in PostgreSQL (overlapping deliveries, a redelivery
racing the first): PostgreSQL rolls one back, and `receive_batch` does the whole transaction again, a few
times with jitter, instead of answering the engine 503 or parking events a retry would have applied.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_random_exponential

from bridge.db.connections import transient_conflict
from bridge.db.metadata import engine_events, webhook_batches
from bridge.db.queries import queries
from bridge.errors import BridgeError
from bridge.json_limits import MAX_DEPTH, deeper_than
from bridge.mirror.apply import apply_events

SQL = queries("intake")
log = logging.getLogger(__name__)


def _width(column) -> int:
    """A text column's width, from the schema's one description (bridge/db/metadata.py, checked against the
    migrated database by tests/test_schema.py): what the inbox can hold is not written down a third time."""
    return int(column.type.length)


MAX_WEBHOOK_ID = _width(webhook_batches.c.webhook_id)
_BATCH_TEXT = {"engine": _width(webhook_batches.c.engine),
               "engineInstanceId": _width(webhook_batches.c.engine_instance_id)}
_EVENT_TEXT = {"eventId": _width(engine_events.c.event_id), "type": _width(engine_events.c.event_type),
               "entityType": _width(engine_events.c.entity_type),
               "processInstanceId": _width(engine_events.c.process_instance_id)}
_TASK_ID = _width(engine_events.c.task_id)


class BadBatch(BridgeError, ValueError):
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
    if deeper_than(batch):
        raise BadBatch(f"the body nests deeper than {MAX_DEPTH} levels")
    events = batch.get("events")
    if not isinstance(events, list):
        raise BadBatch("events: missing, or not an array")
    # Everything the inbox columns take is checked here, to their sizes (migration 0009): a value they
    # cannot hold would otherwise fail the INSERT, answer 500, and have the engine send it again forever.
    for name, width in _BATCH_TEXT.items():
        _text(batch, name, name, width)
    _integer(batch, "batchSeq", "batchSeq", 2**63)
    _timestamp(batch, "committedAt", "committedAt")
    for index, event in enumerate(events):
        where = f"events[{index}]"
        if not isinstance(event, dict):
            raise BadBatch(f"{where}: not an object")
        for name in ("eventId", "type"):
            if not isinstance(event.get(name), str) or not event[name]:
                raise BadBatch(f"{where}.{name}: missing or not a non-empty string")
        for name, width in _EVENT_TEXT.items():
            _text(event, name, f"{where}.{name}", width)
        for entity, key in (("task", "id"), ("identityLink", "taskId")):  # the task_id column (migration 0014)
            if isinstance(event.get(entity), dict):
                _text(event[entity], key, f"{where}.{entity}.{key}", _TASK_ID)
        _integer(event, "seq", f"{where}.seq", 2**31)
        _timestamp(event, "timestamp", f"{where}.timestamp")
    if any(isinstance(e.get("variable"), dict) and _has_float(e["variable"].get("value")) for e in events):
        # orjson reads an integer beyond 64 bits (a json or biginteger variable may hold one) as a float; the
        # standard parser keeps it whole, and orjson has already vouched for the text as strict JSON.
        batch = json.loads(body)
    return batch


def _has_float(value: Any) -> bool:
    if isinstance(value, float):
        return True
    if isinstance(value, dict):
        return any(_has_float(item) for item in value.values())
    if isinstance(value, list):
        return any(_has_float(item) for item in value)
    return False


def _text(owner: dict[str, Any], name: str, where: str, limit: int) -> None:
    value = owner.get(name)
    if value is not None and (not isinstance(value, str) or len(value) > limit):
        raise BadBatch(f"{where}: not a string of at most {limit} characters")


def _integer(owner: dict[str, Any], name: str, where: str, bound: int) -> None:
    value = owner.get(name)
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or not -bound <= value < bound):
        raise BadBatch(f"{where}: not an integer from {-bound} to {bound - 1}")


# The extended ISO-8601 form the engine writes; Python and PostgreSQL both read it the same way (each also
# takes forms the other refuses, e.g. week dates or a decimal comma).
_ISO_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}(:?\d{2})?)?")


def _timestamp(owner: dict[str, Any], name: str, where: str) -> None:
    value = owner.get(name)
    if value is None:
        return
    try:
        if not isinstance(value, str) or not _ISO_TIMESTAMP.fullmatch(value):
            raise ValueError
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise BadBatch(f"{where}: not an ISO-8601 timestamp: {value!r}") from None


CONFLICT_ATTEMPTS = 6


async def receive_batch(db: AsyncEngine, webhook_id: str, batch: dict[str, Any], body: bytes | None = None) -> Received:
    """store_batch in a transaction of its own, done again when PostgreSQL rolls it back for a conflict with
    another transaction; after the last attempt the conflict propagates (the engine is answered 503)."""
    async for attempt in AsyncRetrying(retry=retry_if_exception(transient_conflict),
                                       stop=stop_after_attempt(CONFLICT_ATTEMPTS),
                                       wait=wait_random_exponential(multiplier=0.02, max=0.5), reraise=True):
        with attempt:
            if attempt.retry_state.attempt_number > 1:
                log.info("batch %s: rolled back for a conflict with another transaction, attempt %d",
                         webhook_id, attempt.retry_state.attempt_number)
            async with db.begin() as conn:
                return await store_batch(conn, webhook_id, batch, body)
    raise AssertionError("unreachable: the last attempt returns or raises")


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
    except Exception as err:  # noqa: BLE001 - whatever an odd payload trips over in apply, it is parked
        # Parked, not lost: the events stay in the inbox with the reason, the engine gets its answer, and
        # the reconciler repairs the mirror from the engine. A database that is gone fails the whole request.
        if isinstance(err, DBAPIError) and (err.connection_invalidated or transient_conflict(err)):
            raise  # the whole transaction fails: nothing half-stored, the caller retries a conflict
        log.exception("batch %s: %d event(s) stored but not applied, parked", webhook_id, len(fresh))
        await conn.execute(SQL.park_events,
                           {"event_ids": sorted(stored), "error": f"{type(err).__name__}: {err}"[:2000]})
        return Received(webhook_id, len(events), len(stored), duplicate_delivery=False, parked=len(stored))
    return Received(webhook_id, len(events), len(stored), duplicate_delivery=False)
