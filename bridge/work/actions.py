"""Case workers' actions, each through the engine and the mirror, consistently.

The engine is the source of truth for task state. Each action takes the mirror's locks for the task and its
instance (the ones a pushed batch takes, so a push applies before or after the action, never between),
checks the row, asks the engine as the acting user, and then records what the engine accepted as a bridge
event through the mirror's one apply path (bridge/mirror/bridge_events.py), in the same transaction, with
the acting user and client info. An engine that refuses or is down leaves both as they were. A conflict
the engine rolled back (two users finishing the branches of a join at once) is retried by the client; one
still there after that is a 503 to retry, never a stored failure. When the engine says the mirror was
stale (404: the task is gone; 409: someone holds it), the instance is re-read from the engine and the
mirror repaired before answering.

Who may do what: a user acts on tasks row-level security lets them see (their own, their queues', those
offered to them or their roles); claiming needs the task OPEN; completing, unclaiming and delegating need
it CLAIMED by them; resolving needs it DELEGATED to them (it then returns to its owner, who completes).
Escalation is a level with consequences (bridge/work/escalation.py), not a state: an escalated task stays
takeable and is offered first.

`remember`, when given, runs in the action's transaction after the mirror write with the result: the
web layer stores the answer under the request's Idempotency-Key there, so the two commit together.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bridge import metrics
from bridge.db.connections import transient_conflict
from bridge.db.locks import RequestLocks
from bridge.db.queries import queries
from bridge.errors import BridgeError
from bridge.failpoints import failpoint
from bridge.flowable.client import (
    LONG_MAX,
    LONG_MIN,
    EngineUnavailable,
    FlowableClient,
    FlowableError,
    to_rest_variables,
)
from bridge.mirror import bridge_events
from bridge.mirror.apply import lock_entities, try_lock_entities
from bridge.mirror.reconcile import resync_instances
from bridge.work.escalation import escalate_task

SQL = queries("work")
log = logging.getLogger(__name__)

LIVE_STATES = ("OPEN", "CLAIMED", "DELEGATED")
CLAIM_NEXT_ATTEMPTS = 5
DB_CONFLICT_ATTEMPTS = 3  # an action PostgreSQL rolled back for a conflict is done again this many times at most
CLAIM_NEXT_BUSY_SKIPS = 20  # tasks passed over because a push for them was being applied at that moment
VARIABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,254}$")

Remember = Callable[[AsyncConnection, Any], Awaitable[None]]


class WorkError(BridgeError):
    """An action that cannot be done; status is the HTTP status that says why. `definitive` is false for
    an answer that a retry of the same request may change (a conflict, the engine down): such an answer is
    never stored under an Idempotency-Key."""

    def __init__(self, status: int, message: str, *, retry_after: int | None = None,
                 definitive: bool | None = None, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.retry_after, self.problems = status, message, retry_after, problems
        self.definitive = status < 500 if definitive is None else definitive


@dataclass(frozen=True)
class Actor:
    user_id: str
    client_info: dict[str, Any]


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


@dataclass(frozen=True)
class _Step:
    """One action: who may do it, what the engine is asked, and the bridge event that records it."""
    name: str
    allowed: tuple[str, ...]
    mine: bool
    engine: Callable[[dict], Awaitable[str | None]] | None
    event: Callable[[dict, str | None], dict]
    answer: Callable[[dict], dict]
    # The task's row once this very action is done: a retry under an Idempotency-Key with no stored answer
    # (the first attempt died between the engine and the commit) that finds it so answers success.
    done: Callable[[dict], bool] | None = None


class WorkService:
    def __init__(self, db: AsyncEngine, flowable: FlowableClient, *, locks: RequestLocks | None = None) -> None:
        self.db = db
        self.flowable = flowable
        # Locks held across engine calls (a case's start). The service's own pool: a request never holds a
        # lock connection and waits for a second one of the same pool (bridge/db/locks.py).
        self.locks = locks or RequestLocks(db)

    # -- claim-next ------------------------------------------------------------------------------

    async def claim_next(self, actor: Actor, queues: list[str] | None, *,
                         remember: Remember | None = None) -> dict | None:
        """The best open task the user may take, claimed in the engine and the mirror; None if none."""
        busy = 0
        attempts = 0
        while attempts < CLAIM_NEXT_ATTEMPTS:
            stale = None
            async with self.db.connect() as conn:
                async with conn.begin():
                    with metrics.CLAIM_NEXT_SECONDS.time():
                        row = (await conn.execute(SQL.claim_next, {"user_id": actor.user_id, "queues": queues})).first()
                    if row is None:
                        result = None
                        if remember:
                            await remember(conn, result)
                        return result
                    task = dict(row._mapping)
                    if not await try_lock_entities(conn, [task["task_id"], task["process_instance_id"]]):
                        # a push for this task or case is being applied: let it finish, then look again
                        await conn.rollback()
                        busy += 1
                        if busy > CLAIM_NEXT_BUSY_SKIPS:
                            raise WorkError(503, "every task offered was being changed meanwhile; try again",
                                            retry_after=1)
                        continue
                    try:
                        at = await self.flowable.claim_task(task["task_id"], actor.user_id, acting_user=actor.user_id)
                    except FlowableError as err:
                        if err.conflict:
                            raise _engine_conflict(err) from None
                        if err.status not in (404, 409):
                            raise _engine_refused(err) from None
                        stale = task  # the mirror offered what the engine no longer has open: repair, retry
                        await conn.rollback()
                    except EngineUnavailable as err:
                        raise _engine_down(err) from None
                    else:
                        await bridge_events.record(conn, bridge_events.claimed(
                            task["task_id"], task["process_instance_id"], user=actor.user_id, actor=actor.user_id,
                            at=at, client_info=actor.client_info))
                        if remember:
                            await remember(conn, task)
                        return task
            attempts += 1
            log.info("claim-next: task %s was taken in the engine meanwhile; mirror repaired, trying the next",
                     stale["task_id"])
            await resync_instances(self.db, self.flowable, [stale["process_instance_id"]])
        raise WorkError(409, "every task offered was taken in the engine meanwhile; try again", definitive=False)

    # -- actions on one task ---------------------------------------------------------------------

    async def claim(self, actor: Actor, task_id: str, *, remember: Remember | None = None) -> dict:
        user = actor.user_id
        return await self._act(actor, task_id, _Step(
            "claim", ("OPEN",), False,
            lambda row: self.flowable.claim_task(task_id, user, acting_user=user),
            lambda row, at: bridge_events.claimed(task_id, row["process_instance_id"], user=user, actor=user, at=at,
                                                  client_info=actor.client_info),
            lambda row: {"status": "CLAIMED", "assignee": user},
            lambda row: row["status"] == "CLAIMED" and row["assignee_id"] == user), remember)

    async def unclaim(self, actor: Actor, task_id: str, *, remember: Remember | None = None) -> dict:
        user = actor.user_id
        return await self._act(actor, task_id, _Step(
            "unclaim", ("CLAIMED",), True,
            lambda row: self.flowable.claim_task(task_id, None, acting_user=user),
            lambda row, at: bridge_events.unclaimed(task_id, row["process_instance_id"], actor=user, at=at,
                                                    client_info=actor.client_info),
            lambda row: {"status": "OPEN", "assignee": None}), remember)

    async def complete(self, actor: Actor, task_id: str, outcome: str | None, variables: Any, *,
                       remember: Remember | None = None) -> dict:
        variables = dict(check_variables(variables))
        if outcome is not None:
            if not isinstance(outcome, str) or not 0 < len(outcome) <= 100:
                raise WorkError(400, "outcome: a string of 1 to 100 characters")
            variables.setdefault("outcome", outcome)
        try:
            to_rest_variables(variables)
        except (TypeError, ValueError) as err:
            raise WorkError(400, f"variables: {err}") from None
        user = actor.user_id
        return await self._act(actor, task_id, _Step(
            "complete", ("CLAIMED",), True,
            lambda row: self.flowable.complete_task(task_id, variables, acting_user=user),
            lambda row, at: bridge_events.completed(task_id, row["process_instance_id"], actor=user, at=at,
                                                    outcome=outcome, client_info=actor.client_info),
            lambda row: {"status": "COMPLETED", "assignee": user},
            lambda row: row["status"] == "COMPLETED" and row["completed_by"] == user), remember)

    async def delegate(self, actor: Actor, task_id: str, to: Any, *, remember: Remember | None = None) -> dict:
        if not isinstance(to, str) or not 0 < len(to) <= 50:
            raise WorkError(400, "to: the user id to delegate to (1 to 50 characters)")
        user = actor.user_id
        if to == user:
            raise WorkError(400, "to: someone other than yourself")
        return await self._act(actor, task_id, _Step(
            "delegate", ("CLAIMED",), True,
            lambda row: self.flowable.delegate_task(task_id, to, acting_user=user),
            lambda row, at: bridge_events.delegated(task_id, row["process_instance_id"], to=to, actor=user, at=at,
                                                    client_info=actor.client_info),
            lambda row: {"status": "DELEGATED", "assignee": to, "owner": user},
            lambda row: row["status"] == "DELEGATED" and row["assignee_id"] == to), remember)

    async def resolve(self, actor: Actor, task_id: str, *, remember: Remember | None = None) -> dict:
        """The delegate is done: the task returns to its owner (who delegated it), CLAIMED by them."""
        user = actor.user_id
        owner: dict[str, str | None] = {}

        async def engine(row: dict) -> str | None:
            at = await self.flowable.resolve_task(task_id, acting_user=user)
            owner["id"] = (await self.flowable.task(task_id)).get("assignee")  # Flowable hands it to the owner
            return at

        return await self._act(actor, task_id, _Step(
            "resolve", ("DELEGATED",), True, engine,
            lambda row, at: bridge_events.resolved(task_id, row["process_instance_id"], owner=owner["id"], actor=user,
                                                   at=at, client_info=actor.client_info),
            lambda row: {"status": "CLAIMED" if owner["id"] else "OPEN", "assignee": owner["id"]}), remember)

    async def escalate(self, actor: Actor, task_id: str, reason: Any, *, remember: Remember | None = None) -> dict:
        if not isinstance(reason, str) or not 0 < len(reason) <= 2000:
            raise WorkError(400, "reason: why the task is escalated (1 to 2000 characters)")
        async with self.db.connect() as conn:
            async with conn.begin():
                row = await self._locked_visible(conn, actor.user_id, task_id)
                if row["status"] not in LIVE_STATES:
                    raise WorkError(409, f"the task is {row['status']}; escalate needs it {' or '.join(LIVE_STATES)}")
                try:
                    result = await escalate_task(conn, self.flowable, row, actor=actor.user_id, reason=reason,
                                                 client_info=actor.client_info)
                except FlowableError as err:
                    raise (_engine_conflict(err) if err.conflict else _engine_refused(err)) from None
                except EngineUnavailable as err:
                    raise _engine_down(err) from None
                if result is None:
                    raise WorkError(409, f"the task is at the top escalation level ({row['escalation_level']})")
                answer = {"taskId": task_id, "action": "escalate", "status": row["status"],
                          "assignee": row["assignee_id"], **result}
                if remember:
                    await remember(conn, answer)
                return answer

    async def comment(self, actor: Actor, task_id: str, message: Any, *, remember: Remember | None = None) -> dict:
        if not isinstance(message, str) or not 0 < len(message) <= 4000:
            raise WorkError(400, "message: the comment (1 to 4000 characters)")
        user = actor.user_id
        return await self._act(actor, task_id, _Step(
            "comment", LIVE_STATES, False,
            lambda row: self.flowable.comment_task(task_id, message, acting_user=user),
            lambda row, at: bridge_events.commented(task_id, row["process_instance_id"], message=message, actor=user,
                                                    at=at, client_info=actor.client_info),
            lambda row: {"status": row["status"], "assignee": row["assignee_id"]}), remember)

    async def _act(self, actor: Actor, task_id: str, step: _Step, remember: Remember | None) -> dict:
        """The action, done again when PostgreSQL rolls its transaction back for a conflict (a deadlock, a
        serialization failure): the engine may have done it the first time, so the retry, like a keyed one,
        takes the task found as this action leaves it for success."""
        for attempt in range(1, DB_CONFLICT_ATTEMPTS + 1):
            try:
                return await self._act_once(actor, task_id, step, remember, retried=attempt > 1)
            except DBAPIError as err:
                if not transient_conflict(err) or attempt == DB_CONFLICT_ATTEMPTS:
                    raise
                log.info("%s of task %s: rolled back for a conflict in PostgreSQL, attempt %d", step.name, task_id,
                         attempt + 1)
                await asyncio.sleep(random.uniform(0.01, 0.05 * attempt))
        raise AssertionError("unreachable")

    async def _act_once(self, actor: Actor, task_id: str, step: _Step, remember: Remember | None, *,
                        retried: bool) -> dict:
        stale_instance = None
        idempotent = remember is not None or retried
        async with self.db.connect() as conn:
            async with conn.begin():
                row = await self._locked_visible(conn, actor.user_id, task_id)
                if idempotent and step.done and step.done(row):
                    return await self._already_done(conn, task_id, step, row, remember)
                if row["status"] not in step.allowed:
                    if step.name == "complete" and row["status"] == "DELEGATED" and row["assignee_id"] == actor.user_id:
                        raise WorkError(409, "the task is delegated to you: resolve it (POST .../resolve) to hand "
                                             "it back to its owner, who completes it")
                    raise WorkError(409, f"the task is {row['status']}; "
                                         f"{step.name} needs it {' or '.join(step.allowed)}")
                if step.mine and row["assignee_id"] != actor.user_id:
                    holder = f"held by {row['assignee_id']}" if row["assignee_id"] else "unclaimed"
                    raise WorkError(409, f"the task is not yours ({holder}); claim it first")
                try:
                    at = await step.engine(row) if step.engine else None
                except FlowableError as err:
                    if err.conflict:
                        raise _engine_conflict(err) from None
                    if err.status not in (404, 409):
                        raise _engine_refused(err) from None
                    # the mirror was stale: nothing is written here; the instance is re-read below
                    stale_instance = row["process_instance_id"]
                    refusal = (404, "the task no longer exists in the engine") if err.status == 404 else (
                        409, f"the engine refused: {err.message}")
                except EngineUnavailable as err:
                    raise _engine_down(err) from None
                else:
                    failpoint("action.after_engine")
                    await bridge_events.record(conn, step.event(row, at))
                    answer = {"taskId": task_id, "action": step.name, **step.answer(row)}
                    if remember:
                        await remember(conn, answer)
                    return answer
        await resync_instances(self.db, self.flowable, [stale_instance])
        if idempotent and step.done:
            async with self.db.connect() as conn:
                async with conn.begin():
                    row = await self._locked_visible(conn, actor.user_id, task_id)
                    if step.done(row):
                        return await self._already_done(conn, task_id, step, row, remember)
        raise WorkError(refusal[0], f"{refusal[1]}; the mirror has been brought up to date")

    async def _already_done(self, conn: AsyncConnection, task_id: str, step: _Step, row: dict,
                            remember: Remember | None) -> dict:
        """A retried request (same Idempotency-Key, no answer stored) whose action the engine had done: the
        first attempt died after the engine and before its commit. The answer it would have had."""
        log.info("%s of task %s: a retry finds it done (the first attempt's answer was lost); answered so",
                 step.name, task_id)
        answer = {"taskId": task_id, "action": step.name, **step.answer(row)}
        if remember:
            await remember(conn, answer)
        return answer

    async def _locked_visible(self, conn: AsyncConnection, user_id: str, task_id: str) -> dict:
        """The task's row, locked (with the locks pushes take), if the user may see it; else 404."""
        await conn.execute(SQL.act_as_user, {"user_id": user_id})
        visible = (await conn.execute(SQL.visible_task, {"task_id": task_id})).first()
        await conn.execute(SQL.act_as_bridge)
        if visible is None:  # unknown and invisible look the same: no probing for other queues' tasks
            raise WorkError(404, f"no task {task_id} that you may see")
        await lock_entities(conn, [task_id, visible.process_instance_id])
        return dict((await conn.execute(SQL.lock_task, {"task_id": task_id})).one()._mapping)


def _engine_refused(err: FlowableError) -> WorkError:
    return WorkError(422, f"the engine refused: {err.message}")


def _engine_conflict(err: FlowableError) -> WorkError:
    return WorkError(503, f"the engine kept rolling this back for concurrent changes; nothing was changed, "
                          f"try again ({err.message})", retry_after=1)


def _engine_down(err: EngineUnavailable) -> WorkError:
    return WorkError(503, f"the engine is unavailable, nothing was changed: {err}", retry_after=5)
