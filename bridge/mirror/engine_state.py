"""What the engine says is true now, read through its REST API, in the shapes the webhooks carry.

The reconciler and `bridge drift` compare this with the mirror. Rows are kept in the emitter's shapes
(engine/.../EventMapper.java: `processInstance`, `task`) so that repairs can go through the same apply
path as pushed events (bridge/mirror/apply.py), plus what only history knows (endTime, deleteReason).

Ways to read, by how much is asked for:
  * `read_everything`: every instance and task (a cold start's backfill, `bridge drift`);
  * `running_ids`: the ids of the instances still running (the periodic sweep reads them a chunk at a time);
  * `read_instances`: just the given instances (an incremental pass: those the task log or the process
    cursor named; a chunk of a sweep).
Candidate groups and users are read per open task (the REST task views do not carry them); for tasks
not asked about they are None, meaning "not read", and are not compared.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from bridge.flowable.client import FlowableClient, FlowableError

# Processes and tasks are read in pages of this many rows, and instances are asked for in chunks of it.
DEFAULT_PAGE_SIZE = 500
# Per-task and per-instance reads in flight at once: enough to hide latency, few enough for a small engine.
READ_CONCURRENCY = 8


@dataclass
class EngineState:
    """Engine rows by id, read at or after `read_at` (a lower bound: every change committed before it is in)."""

    read_at: datetime
    # when the first request went out, by the bridge's clock (read_at is this less the clock-skew allowance):
    # a change the mirror holds from after it is newer than the read, not something the mirror lacks
    started_at: datetime | None = None
    processes: dict[str, dict[str, Any]] = field(default_factory=dict)
    tasks: dict[str, dict[str, Any]] = field(default_factory=dict)
    # instance ids this state is complete for (every task of each is in `tasks`)
    covers: set[str] = field(default_factory=set)

    def tasks_of(self, process_instance_id: str) -> list[dict[str, Any]]:
        return [t for t in self.tasks.values() if t["processInstanceId"] == process_instance_id]


def process_view(row: dict[str, Any], suspended: bool = False) -> dict[str, Any]:
    """A historic process instance -> the emitter's `processInstance` shape (+ endTime, endActivityId)."""
    key, version = _definition_key_version(row["processDefinitionId"])
    return {
        "id": row["id"], "processDefinitionId": row["processDefinitionId"], "processDefinitionKey": key,
        "processDefinitionVersion": version, "processDefinitionName": row.get("processDefinitionName"),
        "businessKey": row.get("businessKey"), "startUserId": row.get("startUserId"),
        "superProcessInstanceId": row.get("superProcessInstanceId"), "startTime": row.get("startTime"),
        "endTime": row.get("endTime"), "deleteReason": row.get("deleteReason"),
        "endActivityId": row.get("endActivityId"), "suspended": suspended and row.get("endTime") is None,
        "variables": row.get("variables") or [],
    }


def task_view(row: dict[str, Any]) -> dict[str, Any]:
    """A historic task instance -> the emitter's `task` shape (+ endTime, deleteReason)."""
    return {
        "id": row["id"], "processInstanceId": row["processInstanceId"],
        "processDefinitionId": row.get("processDefinitionId"), "taskDefinitionKey": row["taskDefinitionKey"],
        "name": row.get("name"), "assignee": row.get("assignee"), "owner": row.get("owner"),
        "priority": row.get("priority"), "dueDate": row.get("dueDate"), "formKey": row.get("formKey"),
        "createTime": row.get("startTime"), "claimTime": row.get("claimTime"), "endTime": row.get("endTime"),
        "deleteReason": row.get("deleteReason"), "candidateGroups": None, "candidateUsers": None,
    }


def _definition_key_version(definition_id: str) -> tuple[str, int | None]:
    # "<key>:<version>:<uuid>"; a key may itself hold ':'
    parts = definition_id.rsplit(":", 2)
    if len(parts) == 3 and parts[1].isascii() and parts[1].isdigit():
        return parts[0], int(parts[1])
    return definition_id, None


class EngineReader:
    def __init__(self, client: FlowableClient, *, page_size: int = DEFAULT_PAGE_SIZE,
                 clock_skew: timedelta = timedelta(seconds=5),
                 progress: Callable[[str], None] = lambda what: None) -> None:
        self.client = client
        self.page_size = page_size
        self.progress = progress  # called once per instance or task read by read_everything (progress bars)
        # read_at is taken this much before the first request: a bridge clock ahead of the engine's must
        # not make a stale read look newer than a pushed event.
        self.clock_skew = clock_skew

    def _start(self) -> EngineState:
        now = datetime.now(UTC)
        return EngineState(read_at=now - self.clock_skew, started_at=now)

    async def read_everything(self) -> EngineState:
        state = self._start()
        suspended = await self._suspended_ids()
        async for row in self.client.historic_process_pages(page_size=self.page_size, includeProcessVariables=True):
            state.processes[row["id"]] = process_view(row, row["id"] in suspended)
            self.progress("instances")
        async for row in self.client.historic_task_pages(page_size=self.page_size):
            if row.get("processInstanceId"):
                state.tasks[row["id"]] = task_view(row)
            self.progress("tasks")
        state.covers = set(state.processes)
        await self._read_candidates(state, [t for t in state.tasks.values() if t["endTime"] is None])
        return state

    async def running_ids(self) -> set[str]:
        return {row["id"] async for row in self.client.process_instance_pages(page_size=self.page_size)}

    async def read_instances(self, ids: Iterable[str], *, candidates_for: Iterable[str] | None = None) -> EngineState:
        """The given instances whole. Candidates are read for the open tasks in `candidates_for` (None: all)."""
        state = self._start()
        ids = sorted(set(ids))
        if ids:
            await self._read_instances_into(state, ids, await self._suspended_ids(), candidates_for)
        return state

    async def _read_instances_into(self, state: EngineState, ids: list[str], suspended: set[str],
                                   candidates_for: Iterable[str] | None = None) -> None:
        for chunk in chunks(ids, self.page_size):
            for row in await self.client.historic_processes_by_ids(chunk, include_variables=True):
                state.processes[row["id"]] = process_view(row, row["id"] in suspended)
        gate = asyncio.Semaphore(READ_CONCURRENCY)

        async def tasks_of(instance_id: str) -> list[dict]:
            async with gate:
                return [row async for row in self.client.historic_task_pages(
                    page_size=self.page_size, processInstanceId=instance_id)]

        known = [i for i in ids if i in state.processes]
        for rows in await asyncio.gather(*(tasks_of(i) for i in known)):
            for row in rows:
                state.tasks[row["id"]] = task_view(row)
        state.covers |= set(known)
        wanted = None if candidates_for is None else set(candidates_for)
        await self._read_candidates(state, [t for t in state.tasks.values() if t["endTime"] is None
                                            and t["processInstanceId"] in known
                                            and (wanted is None or t["id"] in wanted)])

    async def _suspended_ids(self) -> set[str]:
        return {row["id"] async for row in self.client.process_instance_pages(page_size=self.page_size,
                                                                             suspended=True)}

    async def _read_candidates(self, state: EngineState, open_tasks: list[dict]) -> None:
        gate = asyncio.Semaphore(READ_CONCURRENCY)

        async def links(task: dict) -> None:
            async with gate:
                try:
                    rows = await self.client.task_identity_links(task["id"])
                except FlowableError as err:
                    if err.status == 404:  # ended since it was listed: its candidates no longer matter
                        return
                    raise
            candidates = [r for r in rows if r.get("type") == "candidate"]
            task["candidateGroups"] = sorted(r["group"] for r in candidates if r.get("group"))
            task["candidateUsers"] = sorted(r["user"] for r in candidates if r.get("user"))

        await asyncio.gather(*(links(t) for t in open_tasks))


def chunks(items: list[str], size: int):
    for i in range(0, len(items), size):
        yield items[i:i + size]
