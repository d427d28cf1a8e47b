"""Case workers' actions, each through the engine and the mirror, consistently.

The engine is the source of truth for task state. Each action locks the mirror row, asks the engine,
and writes the mirror (state, lastEventAt, a task_history row with the acting user and client info) only
when the engine said yes, in the same transaction: an engine that refuses or is down leaves both as they
were. When the engine says the mirror was stale (404: the task is gone; 409: someone holds it), the
instance is re-read from the engine and the mirror repaired before answering.

Who may do what: a user acts on tasks row-level security lets them see (their own, their queues',
those offered to them or their roles); claiming needs the task OPEN; completing, unclaiming and
delegating need the task to be theirs.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bridge import metrics
from bridge.db.queries import queries
from bridge.flowable.client import (LONG_MAX, LONG_MIN, EngineUnavailable, FlowableClient, FlowableError,
                                    engine_time, to_rest_variables)
from bridge.mirror.reconcile import resync_instances

SQL = queries("work")
log = logging.getLogger(__name__)

HELD = ("CLAIMED", "DELEGATED", "ESCALATED")
OPEN_STATES = ("OPEN", *HELD)
CLAIM_NEXT_ATTEMPTS = 5
VARIABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,254}$")


class WorkError(Exception):
    """An action that cannot be done; status is the HTTP status that says why."""

    def __init__(self, status: int, message: str, *, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.retry_after = status, message, retry_after


@dataclass(frozen=True)
class Actor:
    user_id: str
    client_info: dict[str, Any]


def event_time_now() -> str:
    """Now, in the engine's timestamp form: what an action writes as the mirror row's lastEventAt."""
    return engine_time(datetime.now(timezone.utc))


def check_variables(variables: Any) -> dict[str, Any]:
    if variables is None:
        return {}
    if not isinstance(variables, dict):
        raise WorkError(400, "variables: must be an object of name: value")
    for name, value in variables.items():
        if not VARIABLE_NAME.match(name):
            raise WorkError(400, f"variables.{name}: a name is a letter or _ then letters, digits or _")
        # The engine keeps a whole number as a Java long and silently stores 0 or the limit for one
        # outside it; inside an object or list (a json variable) it keeps any number.
        if isinstance(value, int) and not isinstance(value, bool) and not LONG_MIN <= value <= LONG_MAX:
            raise WorkError(400, f"variables.{name}: a whole number from {LONG_MIN} to {LONG_MAX} "
                                 "(put larger ones in a string)")
    return variables


class WorkService:
    def __init__(self, db: AsyncEngine, flowable: FlowableClient) -> None:
        self.db = db
        self.flowable = flowable

    # -- claim-next ------------------------------------------------------------------------------

    async def claim_next(self, actor: Actor, queues: list[str] | None) -> dict | None:
        """The best open task the user may take, claimed in the engine and the mirror; None if none."""
        for _ in range(CLAIM_NEXT_ATTEMPTS):
            stale = None
            async with self.db.connect() as conn:
                async with conn.begin():
                    with metrics.CLAIM_NEXT_SECONDS.time():
                        row = (await conn.execute(SQL.claim_next, {
                            "user_id": actor.user_id, "queues": queues,
                            "client_info": json.dumps(actor.client_info)})).first()
                    if row is None:
                        return None
                    task = dict(row._mapping)
                    try:
                        await self.flowable.claim_task(task["task_id"], actor.user_id)
                    except FlowableError as err:
                        if err.status not in (404, 409):
                            raise _engine_refused(err) from None
                        stale = task  # the mirror offered what the engine no longer has open: repair, retry
                        await conn.rollback()
                    except EngineUnavailable as err:
                        raise _engine_down(err) from None
                    else:
                        await conn.execute(SQL.touch_task, {"task_id": task["task_id"], "event_at": event_time_now()})
                        return task
            log.info("claim-next: task %s was taken in the engine meanwhile; mirror repaired, trying the next",
                     stale["task_id"])
            await resync_instances(self.db, self.flowable, [stale["process_instance_id"]])
        raise WorkError(409, "every task offered was taken in the engine meanwhile; try again")

    # -- actions on one task ---------------------------------------------------------------------

    async def claim(self, actor: Actor, task_id: str) -> dict:
        return await self._act(actor, task_id, "CLAIM", allowed=("OPEN",), mine=False,
                               engine=lambda: self.flowable.claim_task(task_id, actor.user_id),
                               status="CLAIMED", assignee=actor.user_id, claimed=True)

    async def unclaim(self, actor: Actor, task_id: str) -> dict:
        return await self._act(actor, task_id, "UNCLAIM", allowed=HELD, mine=True,
                               engine=lambda: self.flowable.claim_task(task_id, None),
                               status="OPEN", assignee=None)

    async def complete(self, actor: Actor, task_id: str, outcome: str | None, variables: Any) -> dict:
        variables = dict(check_variables(variables))
        if outcome is not None:
            if not isinstance(outcome, str) or not 0 < len(outcome) <= 100:
                raise WorkError(400, "outcome: a string of 1 to 100 characters")
            variables.setdefault("outcome", outcome)
        try:
            rest_variables = to_rest_variables(variables)
        except (TypeError, ValueError) as err:
            raise WorkError(400, f"variables: {err}") from None
        return await self._act(actor, task_id, "COMPLETE", allowed=HELD, mine=True,
                               engine=lambda: self.flowable.request(
                                   "POST", f"runtime/tasks/{task_id}",
                                   json_body={"action": "complete", "variables": rest_variables}),
                               status="COMPLETED", assignee=actor.user_id, outcome=outcome)

    async def delegate(self, actor: Actor, task_id: str, to: Any) -> dict:
        if not isinstance(to, str) or not 0 < len(to) <= 50:
            raise WorkError(400, "to: the user id to delegate to (1 to 50 characters)")
        return await self._act(actor, task_id, "DELEGATE", allowed=HELD, mine=True,
                               engine=lambda: self.flowable.delegate_task(task_id, to),
                               status="DELEGATED", assignee=to, delegate_to=to)

    async def escalate(self, actor: Actor, task_id: str, reason: Any) -> dict:
        if not isinstance(reason, str) or not 0 < len(reason) <= 2000:
            raise WorkError(400, "reason: why the task is escalated (1 to 2000 characters)")
        # escalation is the bridge's own state: the engine keeps the task as it is
        return await self._act(actor, task_id, "ESCALATE", allowed=OPEN_STATES, mine=False, engine=None,
                               status="ESCALATED", assignee=None, keep_assignee=True, comments=reason)

    async def comment(self, actor: Actor, task_id: str, message: Any) -> dict:
        if not isinstance(message, str) or not 0 < len(message) <= 4000:
            raise WorkError(400, "message: the comment (1 to 4000 characters)")
        return await self._act(actor, task_id, "COMMENT", allowed=None, mine=False,
                               engine=lambda: self.flowable.request(
                                   "POST", f"runtime/tasks/{task_id}/comments",
                                   json_body={"message": message, "saveProcessInstanceId": True}),
                               status=None, assignee=None, keep_assignee=True, comments=message)

    async def _act(self, actor: Actor, task_id: str, action: str, *, allowed: tuple[str, ...] | None, mine: bool,
                   engine, status: str | None, assignee: str | None, keep_assignee: bool = False,
                   claimed: bool = False, outcome: str | None = None, delegate_to: str | None = None,
                   comments: str | None = None) -> dict:
        stale_instance = None
        async with self.db.connect() as conn:
            async with conn.begin():
                await self._visible_or_404(conn, actor.user_id, task_id)
                row = dict((await conn.execute(SQL.lock_task, {"task_id": task_id})).one()._mapping)
                if allowed is not None and row["status"] not in allowed:
                    raise WorkError(409, f"the task is {row['status']}; {action.lower()} needs it "
                                         f"{' or '.join(allowed)}")
                if mine and row["assignee_id"] != actor.user_id:
                    holder = f"held by {row['assignee_id']}" if row["assignee_id"] else "unclaimed"
                    raise WorkError(409, f"the task is not yours ({holder}); claim it first")
                try:
                    if engine is not None:
                        await engine()
                except FlowableError as err:
                    if err.status not in (404, 409):
                        raise _engine_refused(err) from None
                    # the mirror was stale: nothing is written here; the instance is re-read below
                    stale_instance = row["process_instance_id"]
                    refusal = (404, "the task no longer exists in the engine") if err.status == 404 else (
                        409, f"the engine refused: {err.message}")
                except EngineUnavailable as err:
                    raise _engine_down(err) from None
                else:
                    new_status = status or row["status"]
                    new_assignee = row["assignee_id"] if keep_assignee else assignee
                    if status is not None:
                        await conn.execute(SQL.set_task, {
                            "task_id": task_id, "status": new_status, "assignee": new_assignee,
                            "claimed": claimed, "user_id": actor.user_id, "outcome": outcome, "event_at": event_time_now()})
                    await conn.execute(SQL.add_history, {
                        "task_id": task_id, "process_instance_id": row["process_instance_id"], "action": action,
                        "user_id": actor.user_id, "old_status": row["status"], "new_status": new_status,
                        "old_assignee": row["assignee_id"], "new_assignee": new_assignee,
                        "delegate_to": delegate_to, "comments": comments,
                        "client_info": json.dumps(actor.client_info)})
                    return {"taskId": task_id, "action": action.lower(), "status": new_status,
                            "assignee": new_assignee}
        await resync_instances(self.db, self.flowable, [stale_instance])
        raise WorkError(refusal[0], f"{refusal[1]}; the mirror has been brought up to date")

    async def _visible_or_404(self, conn: AsyncConnection, user_id: str, task_id: str) -> None:
        await conn.execute(SQL.act_as_user, {"user_id": user_id})
        visible = (await conn.execute(SQL.visible_task, {"task_id": task_id})).first()
        await conn.execute(SQL.act_as_bridge)
        if visible is None:  # unknown and invisible look the same: no probing for other queues' tasks
            raise WorkError(404, f"no task {task_id} that you may see")


def _engine_refused(err: FlowableError) -> WorkError:
    return WorkError(422, f"the engine refused: {err.message}")


def _engine_down(err: EngineUnavailable) -> WorkError:
    return WorkError(503, f"the engine is unavailable, nothing was changed: {err}", retry_after=5)
