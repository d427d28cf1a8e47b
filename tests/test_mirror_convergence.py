"""The mirror converges whatever order the engine's pushes arrive in, and however often.

Property-based (hypothesis): a random life of one task (assignments, delegation, priority, due date, name,
candidate changes, then maybe completion or cancellation) becomes the engine's per-transaction batches,
shaped exactly as the emitter (engine/.../EventMapper.java) sends them. The batches are delivered through
the real intake (bridge/mirror/intake.py) into a real PostgreSQL twice: once in order, once shuffled with
duplicates. Both mirrors must end in the same state, task_history must hold no action twice, and no task
may leave a terminal state on the way.

The bridge's own actions (claim, unclaim, delegate, resolve, comment, escalate, complete through the work
API) are interleaved: each is the engine transaction it causes plus the bridge event the work API applies
(bridge/mirror/bridge_events.py), stamped with the engine's time at the start of that request. In order, the
bridge event is applied just before its engine batch (the action commits before the push can apply); shuffled,
it lands anywhere among the deliveries, once. The mirror must end the same.

Reordered and repeated deliveries cannot be had from the real engine on demand, which is why the events
are generated here (fault injection); their shapes are the ones test_engine.py checks the engine sends.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from bridge.db.connections import open_database
from bridge.flowable.client import engine_time
from bridge.mirror import bridge_events
from bridge.mirror.intake import store_batch

USERS = ["ann", "bob", "cid"]
GROUPS = ["LEGAL", "COMPLIANCE", "QA"]
START = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
_runs = itertools.count()

operation = st.one_of(
    st.tuples(st.just("assign"), st.sampled_from([*USERS, None])),
    st.tuples(st.just("delegate"), st.sampled_from(USERS)),
    st.tuples(st.just("priority"), st.integers(0, 100)),
    st.tuples(st.just("due"), st.integers(1, 5000)),
    st.tuples(st.just("name"), st.sampled_from(["Review", "Review again", "Check"])),
    st.tuples(st.just("group"), st.sampled_from(GROUPS)),  # toggles the group as a candidate
    st.tuples(st.just("user"), st.sampled_from(USERS)),    # toggles the user as a candidate
    # the bridge's own actions through the work API
    st.tuples(st.just("bridge_claim"), st.sampled_from(USERS)),
    st.tuples(st.just("bridge_unclaim"), st.none()),
    st.tuples(st.just("bridge_delegate"), st.sampled_from(USERS)),
    st.tuples(st.just("bridge_resolve"), st.none()),
    st.tuples(st.just("bridge_comment"), st.sampled_from(["looked at it", "waiting for docs"])),
    st.tuples(st.just("bridge_escalate"), st.integers(0, 20)),  # raise_priority_by
)


def _iso(moment: datetime) -> str:
    return engine_time(moment)


def engine_batches(run: str, ops: list[tuple], ending: str | None) -> list[dict]:
    """The batches the engine would push for this task's life, one per transaction, in commit order."""
    pid, tid = f"p-{run}", f"t-{run}"
    clock = [0]  # the last engine event's tick
    ids = itertools.count()
    task = {"id": tid, "processInstanceId": pid, "processDefinitionId": "Convergence:1:def",
            "taskDefinitionKey": "review", "name": "Review", "assignee": None, "owner": None,
            "priority": 50, "dueDate": None, "formKey": None, "createTime": None, "claimTime": None,
            "delegationState": None, "candidateGroups": ["LEGAL"], "candidateUsers": []}

    def event(kind: str, entity: str, **payload) -> dict:
        clock[0] += 1
        at = _iso(START + timedelta(milliseconds=7 * clock[0]))
        return {"eventId": f"{run}-e{next(ids)}", "type": kind, "timestamp": at, "entityType": entity,
                "processInstanceId": pid, **payload}

    def bridge(make, **kwargs) -> dict:
        """The work API's event for an action whose engine transaction comes next (3 ms before its events)."""
        at = _iso(START + timedelta(milliseconds=7 * (clock[0] + 1) - 3))
        return {"bridge": make(tid, pid, at=at, client_info={"ip": "127.0.0.1"}, **kwargs)}

    def task_event(kind: str, **extra) -> dict:
        e = event(kind, "task", task={**task, **extra})
        e["task"]["candidateGroups"] = list(task["candidateGroups"])
        e["task"]["candidateUsers"] = list(task["candidateUsers"])
        return e

    process = {"id": pid, "processDefinitionId": "Convergence:1:def", "processDefinitionKey": "Convergence",
               "processDefinitionVersion": 1, "processDefinitionName": "Convergence", "businessKey": run,
               "startUserId": "starter", "superProcessInstanceId": None}
    started = event("PROCESS_STARTED", "processInstance", processInstance={**process, "startTime": None})
    started["processInstance"]["startTime"] = started["timestamp"]
    task["createTime"] = started["timestamp"]
    transactions: list = [[started, task_event("TASK_CREATED")]]
    level = 0
    for kind, value in ops:
        if kind == "bridge_claim":
            transactions.append(bridge(bridge_events.claimed, user=value, actor=value))
            task["assignee"], task["delegationState"] = value, None
            transactions.append([task_event("TASK_ASSIGNED")])
        elif kind == "bridge_unclaim":
            transactions.append(bridge(bridge_events.unclaimed, actor=task["assignee"] or "ann"))
            task["assignee"], task["delegationState"] = None, None
            transactions.append([task_event("TASK_ASSIGNED")])
        elif kind == "bridge_delegate":
            transactions.append(bridge(bridge_events.delegated, to=value, actor=task["assignee"] or "ann"))
            task["owner"] = task["owner"] or task["assignee"]
            task["assignee"], task["delegationState"] = value, "PENDING"
            transactions.append([task_event("TASK_ASSIGNED")])
        elif kind == "bridge_resolve":
            transactions.append(bridge(bridge_events.resolved, owner=task["owner"], actor=task["assignee"] or "ann"))
            task["assignee"], task["delegationState"] = task["owner"], "RESOLVED"
            transactions.append([task_event("TASK_ASSIGNED")])
        elif kind == "bridge_comment":
            transactions.append(bridge(bridge_events.commented, message=value, actor="ann"))
        elif kind == "bridge_escalate":
            level += 1
            task["priority"] = min(task["priority"] + value, 100)
            transactions.append(bridge(bridge_events.escalated, level=level, reason="SLA breach", actor="SYSTEM",
                                       priority=task["priority"], candidate_group="SUPERVISOR"))
            link = {"type": "candidate", "taskId": tid, "groupId": "SUPERVISOR"}
            if "SUPERVISOR" not in task["candidateGroups"]:
                task["candidateGroups"].append("SUPERVISOR")
            transactions.append([task_event("TASK_PRIORITY_CHANGED"),
                                 event("ENTITY_CREATED", "identityLink", identityLink=link)])
        elif kind in ("assign", "delegate"):
            task["delegationState"] = "PENDING" if kind == "delegate" else None
            if kind == "delegate":
                task["owner"] = task["owner"] or task["assignee"]
            task["assignee"] = value
            transactions.append([task_event("TASK_ASSIGNED")])
        elif kind == "priority":
            task["priority"] = value
            transactions.append([task_event("TASK_PRIORITY_CHANGED")])
        elif kind == "due":
            task["dueDate"] = _iso(START + timedelta(minutes=value))
            transactions.append([task_event("TASK_DUEDATE_CHANGED")])
        elif kind == "name":
            task["name"] = value
            transactions.append([task_event("TASK_NAME_CHANGED")])
        else:
            listed = task["candidateGroups" if kind == "group" else "candidateUsers"]
            added = value not in listed
            listed.append(value) if added else listed.remove(value)
            link = {"type": "candidate", "taskId": tid, "groupId" if kind == "group" else "userId": value}
            transactions.append([event("ENTITY_CREATED" if added else "ENTITY_DELETED", "identityLink",
                                       identityLink=link)])
    if ending == "bridge_complete":  # as the work API allows it: resolved if delegated, by its assignee
        if task["delegationState"] == "PENDING":
            transactions.append(bridge(bridge_events.resolved, owner=task["owner"], actor=task["assignee"]))
            task["assignee"], task["delegationState"] = task["owner"], "RESOLVED"
            transactions.append([task_event("TASK_ASSIGNED")])
        if task["assignee"] is None:
            transactions.append(bridge(bridge_events.claimed, user="ann", actor="ann"))
            task["assignee"], task["delegationState"] = "ann", None
            transactions.append([task_event("TASK_ASSIGNED")])
        transactions.append(bridge(bridge_events.completed, actor=task["assignee"], outcome="approved"))
        done = task_event("TASK_COMPLETED")
        transactions.append([done, task_event("ENTITY_DELETED", deleteReason=None, endTime=done["timestamp"]),
                             event("PROCESS_COMPLETED", "processInstance", processInstance={**process})])
    elif ending == "complete":
        done = task_event("TASK_COMPLETED")
        transactions.append([done, task_event("ENTITY_DELETED", deleteReason=None, endTime=done["timestamp"]),
                             event("PROCESS_COMPLETED", "processInstance", processInstance={**process})])
    elif ending == "cancel":
        gone = task_event("ENTITY_DELETED", deleteReason="withdrawn")
        transactions.append([gone, event("PROCESS_CANCELLED", "processInstance",
                                         processInstance={**process, "cause": "withdrawn"})])
    return [t if isinstance(t, dict) else {"engine": "convergence", "batchSeq": n, "events": t}
            for n, t in enumerate(transactions)]


async def _deliver(db, run: str, batches: list[dict], order: list[int]) -> dict:
    terminal_seen = False
    for n in order:
        async with db.begin() as conn:
            if "bridge" in batches[n]:  # the work API's own event, applied in its action's transaction
                await bridge_events.record(conn, json.loads(json.dumps(batches[n]["bridge"])))
            else:
                await store_batch(conn, f"{run}-b{batches[n]['batchSeq']}", json.loads(json.dumps(batches[n])))
        async with db.connect() as conn:
            status = (await conn.execute(text("SELECT status FROM flowable.workflow_tasks WHERE task_id = :t"),
                                         {"t": f"t-{run}"})).scalar()
        if terminal_seen:
            assert status in ("COMPLETED", "CANCELLED"), f"task left a terminal state: {status}"
        terminal_seen = status in ("COMPLETED", "CANCELLED")
    async with db.connect() as conn:
        task = (await conn.execute(text("""
            SELECT status, assignee_id, claimed_by, priority, due_date, task_name, completed_by, outcome_reason,
                   candidate_groups, candidate_users, escalation_level, queue_name
            FROM flowable.workflow_tasks WHERE task_id = :t"""), {"t": f"t-{run}"})).mappings().first()
        process = (await conn.execute(text("SELECT status FROM flowable.process_instances "
                                           "WHERE process_instance_id = :p"), {"p": f"p-{run}"})).scalar()
        actions = [r.event_id for r in await conn.execute(text(
            "SELECT action_data ->> 'eventId' AS event_id FROM flowable.task_history WHERE task_id = :t"),
            {"t": f"t-{run}"})]
    assert len(actions) == len(set(actions)), "an action was recorded twice"
    state = dict(task) if task else None
    if state:
        state["candidate_groups"] = sorted(state["candidate_groups"] or [])
        state["candidate_users"] = sorted(state["candidate_users"] or [])
    return {"task": state, "process": process}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=st.lists(operation, max_size=8), ending=st.sampled_from([None, "complete", "cancel", "bridge_complete"]),
       data=st.data())
def test_any_delivery_order_with_duplicates_ends_in_the_in_order_state(db_url, ops, ending, data):
    run = f"c{next(_runs)}"
    in_order = engine_batches(f"{run}a", ops, ending)
    shuffled = engine_batches(f"{run}b", ops, ending)
    order = data.draw(st.permutations(range(len(shuffled))), label="delivery order")
    pushes = [n for n, b in enumerate(shuffled) if "bridge" not in b]  # only pushes are delivered again
    repeats = data.draw(st.lists(st.sampled_from(pushes), max_size=4), label="delivered again")
    positions = data.draw(st.lists(st.integers(0, len(order)), min_size=len(repeats), max_size=len(repeats)))
    delivery = list(order)
    for batch, position in zip(repeats, positions, strict=True):
        delivery.insert(position, batch)
    # A bridge action needs the task's row: none can happen before the batch that creates it is applied.
    early = [n for n in delivery[:delivery.index(0)] if n not in pushes]
    delivery = [n for n in delivery if n not in early]
    delivery[delivery.index(0) + 1:delivery.index(0) + 1] = early

    async def check() -> None:
        db = open_database(db_url, pool_size=1)
        try:
            expected = await _deliver(db, f"{run}a", in_order, list(range(len(in_order))))
            got = await _deliver(db, f"{run}b", shuffled, delivery)
        finally:
            await db.dispose()
        assert expected["task"] is not None
        assert got["process"] == expected["process"]
        assert {k: (v, got["task"][k]) for k, v in expected["task"].items() if got["task"][k] != v} == {}, (
            ops, ending, delivery)

    asyncio.run(check())
