"""Moving running instances of a process from one version to another (`bridge instances migrate`,
`POST /api/migrations`), with Flowable's own process instance migration.

A run, as asked (process key, from and to version, optionally the current activities and business keys to
take, explicit activity mappings OLD=NEW; activities not mapped keep their id, as Flowable maps them):
  1. checks the request against both versions: both deployed in the engine, the target recorded by the bridge
     (its queues and roles are what the moved tasks will follow), every mapping's OLD an activity of the old
     version and NEW one of the new;
  2. chooses the instances from the engine (the source of truth for which version an instance is on): those
     running on the old version, at one of the activities, with one of the business keys;
  3. asks the engine to validate each (engine/.../migration/MigrationController.java) and records
     MIGRATABLE or REFUSED with the engine's reasons; a dry run stops here;
  4. migrates the migratable ones, `concurrency` at a time; each is one engine transaction (validation,
     migration, candidate groups re-mapped to the new version's) and then one mirror transaction: the
     instance's BRIDGE_MIGRATE and its live tasks' (new activity, name, queue, candidate groups, a MIGRATED
     history row by the acting user, case routing) through the mirror's one apply path, with the instance's
     result in the same transaction. An instance the engine refuses or fails is recorded and the run goes on.

Resumable: every answer is stored as it comes (flowable.instance_migration_results, migration 0026), and the
engine is asked to move an instance only while it is still on the old version (the migrate call names it),
so rerunning the same request, or `resume`, finishes what a killed run left and moves nothing twice. If the
engine moved an instance and the bridge died before the mirror followed, the reconciler and `bridge drift`
see the version and activities differ and repair the mirror the same way.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bridge.bpmn.diagram import DiagramError, flow_node_ids
from bridge.db.queries import queries
from bridge.errors import BridgeError
from bridge.failpoints import failpoint
from bridge.flowable.client import EngineUnavailable, FlowableClient, FlowableError
from bridge.mirror import bridge_events
from bridge.mirror.apply import lock_entities

SQL = queries("migration")
log = logging.getLogger(__name__)

OUTCOMES = ("MIGRATABLE", "REFUSED", "MIGRATED", "FAILED")
DEFAULT_CONCURRENCY = 4  # instances validated or migrated at once: enough to hide latency, easy on the engine
MAX_SELECTORS = 100  # activities, business keys or mappings in one request
MAX_VERSION = 2_147_483_647  # the engine's and the mirror's version is a 32-bit integer


class MigrationError(BridgeError):
    """A request that cannot run as asked; status is the HTTP status that says why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


@dataclass(frozen=True, kw_only=True)
class MigrationRequest:
    process_key: str
    from_version: int
    to_version: int
    activities: tuple[str, ...] = ()
    business_keys: tuple[str, ...] = ()
    mappings: Mapping[str, str] = field(default_factory=dict)
    dry_run: bool = False
    requested_by: str

    def __post_init__(self) -> None:
        problems = []
        if not self.process_key:
            problems.append("a process key is required")
        if not isinstance(self.process_key, str) or len(self.process_key) > 255:
            problems.append("process key: at most 255 characters")
        for name, version in (("from version", self.from_version), ("to version", self.to_version)):
            if not isinstance(version, int) or isinstance(version, bool) or not 1 <= version <= MAX_VERSION:
                problems.append(f"{name}: a version number (1 to {MAX_VERSION})")
        if not problems and self.from_version == self.to_version:
            problems.append("from and to version are the same")
        for name, values in (("activities", self.activities), ("business keys", self.business_keys)):
            if len(values) > MAX_SELECTORS:
                problems.append(f"{name}: at most {MAX_SELECTORS}")
            if any(not isinstance(v, str) or not v or len(v) > 255 for v in values):
                problems.append(f"{name}: non-empty strings of at most 255 characters")
        if len(self.mappings) > MAX_SELECTORS or any(
                not isinstance(k, str) or not isinstance(v, str) or not k or not v or len(k) > 255 or len(v) > 255
                for k, v in self.mappings.items()):
            problems.append(f"mappings: at most {MAX_SELECTORS} OLD=NEW pairs of activity ids")
        if problems:
            raise MigrationError(400, "; ".join(problems))


@dataclass(frozen=True)
class InstanceResult:
    process_instance_id: str
    business_key: str | None
    activities: tuple[str, ...]
    outcome: str  # one of OUTCOMES
    messages: tuple[str, ...] = ()

    def as_json(self) -> dict[str, Any]:
        return {"processInstanceId": self.process_instance_id, "businessKey": self.business_key,
                "activities": list(self.activities), "outcome": self.outcome, "messages": list(self.messages)}


@dataclass
class MigrationReport:
    migration_id: int
    request: MigrationRequest
    results: list[InstanceResult] = field(default_factory=list)
    seconds: float = 0.0
    engine_error: str | None = None  # the engine or the database went away midway: the rest is left for a rerun

    @property
    def counts(self) -> dict[str, int]:
        return {o: n for o in OUTCOMES if (n := sum(r.outcome == o for r in self.results))}

    def as_json(self) -> dict[str, Any]:
        r = self.request
        return {"migrationId": self.migration_id, "processKey": r.process_key, "fromVersion": r.from_version,
                "toVersion": r.to_version, "activities": list(r.activities), "businessKeys": list(r.business_keys),
                "mappings": dict(r.mappings), "dryRun": r.dry_run, "requestedBy": r.requested_by,
                "counts": self.counts, "seconds": round(self.seconds, 3), "engineError": self.engine_error,
                "instances": [x.as_json() for x in self.results]}


@dataclass(frozen=True)
class _Plan:
    from_definition_id: str
    to_definition_id: str
    document: dict[str, Any]


async def run(db: AsyncEngine, flowable: FlowableClient, request: MigrationRequest, *,
              resume: int | None = None, concurrency: int = DEFAULT_CONCURRENCY,
              progress: Callable[[str, int], None] | None = None, client_info: dict[str, Any] | None = None,
              on_start: Callable[[int], None] | None = None) -> MigrationReport:
    """One migration run (resume: a run's id, to carry it on under the same id). progress(phase, n) counts
    instances validated and migrated; on_start(migration_id) is called once the run is recorded."""
    began = time.perf_counter()
    try:
        plan = await _plan(db, flowable, request)
        instances = await _choose(flowable, plan, request)
    except FlowableError as err:  # the engine's own reason reaches the caller
        raise MigrationError(422, f"the engine refused: {err.message}") from None
    async with db.begin() as conn:
        if resume is None:
            migration_id = (await conn.execute(SQL.start_run, {
                "process_key": request.process_key, "from_version": request.from_version,
                "to_version": request.to_version, "activities": list(request.activities),
                "business_keys": list(request.business_keys), "mappings": json.dumps(dict(request.mappings)),
                "dry_run": request.dry_run, "requested_by": request.requested_by})).one().migration_id
        else:
            migration_id = resume
            await conn.execute(SQL.reopen_run, {"migration_id": resume})
        where = {r.process_instance_id: tuple(r.activities) for r in await conn.execute(
            SQL.live_activities, {"ids": sorted(instances)})}
    if on_start is not None:
        on_start(migration_id)
    report = MigrationReport(migration_id, request)
    gate = asyncio.Semaphore(max(1, concurrency))
    stopped = asyncio.Event()  # the engine or the database went away: the rest is left for a rerun

    async def one(pid: str) -> None:
        async with gate:
            if stopped.is_set():
                return
            chosen = InstanceResult(pid, instances[pid], where.get(pid, ()), "MIGRATABLE")
            try:
                result = await _validate(flowable, plan, chosen)
                if progress:
                    progress("validated", 1)
                if result.outcome == "MIGRATABLE" and not request.dry_run:
                    result = await _migrate(db, flowable, plan, request, chosen, migration_id, client_info)
                    if progress:
                        progress("migrated", 1)
                else:
                    await _record(db, migration_id, result)
            except (EngineUnavailable, DBAPIError) as err:
                if not stopped.is_set():
                    stopped.set()
                    report.engine_error = str(err).splitlines()[0]
                    log.error("migration %s stopped, the rest is left for a rerun: %s", migration_id, err)
                return
            report.results.append(result)

    await asyncio.gather(*(one(pid) for pid in sorted(instances)))
    async with db.begin() as conn:
        await conn.execute(SQL.finish_run, {"migration_id": migration_id})
    report.results.sort(key=lambda r: r.process_instance_id)
    report.seconds = time.perf_counter() - began
    log.info("migration %s of %s v%s -> v%s%s: %s in %.1fs", migration_id, request.process_key,
             request.from_version, request.to_version, " (dry run)" if request.dry_run else "",
             report.counts or "no instances", report.seconds)
    return report


async def stored_request(db: AsyncEngine, migration_id: int, *, requested_by: str) -> MigrationRequest:
    """The request a recorded run was made with (to resume it), as a real run by `requested_by`."""
    async with db.connect() as conn:
        row = (await conn.execute(SQL.run, {"migration_id": migration_id})).one_or_none()
    if row is None:
        raise MigrationError(404, f"no migration run {migration_id}")
    return MigrationRequest(process_key=row.process_key, from_version=row.from_version, to_version=row.to_version,
                            activities=tuple(row.activities), business_keys=tuple(row.business_keys),
                            mappings=dict(row.mappings), dry_run=False, requested_by=requested_by)


async def read_run(conn: AsyncConnection, migration_id: int) -> dict[str, Any] | None:
    """A recorded run and its per-instance results (GET /api/migrations/{id})."""
    row = (await conn.execute(SQL.run, {"migration_id": migration_id})).one_or_none()
    if row is None:
        return None
    results = [InstanceResult(r.process_instance_id, r.business_key, tuple(r.activities), r.outcome,
                              tuple(r.messages)).as_json()
               for r in await conn.execute(SQL.results, {"migration_id": migration_id})]
    return {**_run_json(row), "instances": results}


async def recent_runs(conn: AsyncConnection, *, limit: int = 20) -> list[dict[str, Any]]:
    return [_run_json(r) for r in await conn.execute(SQL.recent_runs, {"limit": limit})]


def _run_json(row) -> dict[str, Any]:
    return {"migrationId": row.migration_id, "processKey": row.process_key, "fromVersion": row.from_version,
            "toVersion": row.to_version, "activities": list(row.activities), "businessKeys": list(row.business_keys),
            "mappings": row.mappings, "dryRun": row.dry_run, "requestedBy": row.requested_by,
            "startedAt": _iso(row.started_at), "finishedAt": _iso(row.finished_at), "counts": row.counts}


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


# -- the steps -----------------------------------------------------------------------------------------

async def _plan(db: AsyncEngine, flowable: FlowableClient, request: MigrationRequest) -> _Plan:
    key = request.process_key
    definitions = {}
    for version in (request.from_version, request.to_version):
        found = await flowable.process_definitions(key=key, version=version)
        if not found:
            raise MigrationError(404, f"the engine has no version {version} of process {key}")
        definitions[version] = found[0]["id"]
    async with db.connect() as conn:
        target = (await conn.execute(SQL.definition_version, {"process_key": key,
                                                              "process_version": request.to_version})).one_or_none()
    if target is None or not target.deployed_by_bridge:
        raise MigrationError(409, f"version {request.to_version} of {key} was not deployed through the bridge "
                                  "(bridge deploy): its queues and roles, which moved tasks follow, are unknown")
    ids = {}
    for version in (request.from_version, request.to_version):
        try:
            ids[version] = set(flow_node_ids(await flowable.definition_resource(definitions[version])))
        except DiagramError as err:
            raise MigrationError(409, f"version {version} of {key}: its BPMN cannot be read: {err}") from None
    problems = [f"{old}: not an activity of version {request.from_version}"
                for old in request.mappings if old not in ids[request.from_version]]
    problems += [f"{new}: not an activity of version {request.to_version}"
                 for new in request.mappings.values() if new not in ids[request.to_version]]
    problems += [f"{a}: not an activity of version {request.from_version}"
                 for a in request.activities if a not in ids[request.from_version]]
    if problems:
        raise MigrationError(400, "; ".join(problems))
    document = {"fromProcessDefinitionId": definitions[request.from_version],
                "toProcessDefinitionId": definitions[request.to_version],
                "activityMappings": [{"fromActivityId": old, "toActivityId": new}
                                     for old, new in sorted(request.mappings.items())]}
    return _Plan(definitions[request.from_version], definitions[request.to_version], document)


async def _choose(flowable: FlowableClient, plan: _Plan, request: MigrationRequest) -> dict[str, str | None]:
    """instance id -> business key, of the instances running on the old version that the request selects."""
    chosen: dict[str, str | None] = {}
    for activity in request.activities or (None,):
        for business_key in request.business_keys or (None,):
            async for row in flowable.process_instance_pages(processDefinitionId=plan.from_definition_id,
                                                             activeActivityId=activity, businessKey=business_key):
                chosen[row["id"]] = row.get("businessKey")
    return chosen


async def _validate(flowable: FlowableClient, plan: _Plan, chosen: InstanceResult) -> InstanceResult:
    try:
        messages = await flowable.validate_migration(chosen.process_instance_id, plan.document)
    except FlowableError as err:  # gone meanwhile (404), or no longer on the old version (409)
        return _with(chosen, "REFUSED", [err.message])
    return _with(chosen, "REFUSED" if messages else "MIGRATABLE", messages)


async def _migrate(db: AsyncEngine, flowable: FlowableClient, plan: _Plan, request: MigrationRequest,
                   chosen: InstanceResult, migration_id: int, client_info: dict[str, Any] | None) -> InstanceResult:
    pid = chosen.process_instance_id
    try:
        answer, at = await flowable.migrate_instance(pid, plan.document, acting_user=request.requested_by)
    except FlowableError as err:
        outcome = "REFUSED" if err.status in (404, 409) and not err.conflict else "FAILED"
        result = _with(chosen, outcome, [err.message])
        await _record(db, migration_id, result)
        return result
    failpoint("migration.after_engine")
    tasks = [{**task, "processInstanceId": pid} for task in answer.get("tasks") or []]
    process = {"id": pid, "processDefinitionId": plan.to_definition_id,
               "processDefinitionKey": request.process_key, "processDefinitionVersion": request.to_version,
               "activityId": tasks[-1]["taskDefinitionKey"] if tasks else None}
    events = [bridge_events.migrated_process(process, actor=request.requested_by, at=at, client_info=client_info)]
    events += [bridge_events.migrated_task(task, from_version=request.from_version, to_version=request.to_version,
                                           actor=request.requested_by, at=at, client_info=client_info)
               for task in tasks]
    result = _with(chosen, "MIGRATED", [])
    try:
        async with db.begin() as conn:
            await lock_entities(conn, [pid, *(t["id"] for t in tasks)])
            await bridge_events.record(conn, *events)
            await _store(conn, migration_id, result)
    except DBAPIError:
        # the engine moved it: the reconciler sees the version differ and repairs the mirror as this would have
        log.error("migration %s: %s moved in the engine, the mirror did not follow (the reconciler will)",
                  migration_id, pid)
        raise
    return result


def _with(chosen: InstanceResult, outcome: str, messages: Sequence[str]) -> InstanceResult:
    return InstanceResult(chosen.process_instance_id, chosen.business_key, chosen.activities, outcome,
                          tuple(messages))


async def _record(db: AsyncEngine, migration_id: int, result: InstanceResult) -> None:
    async with db.begin() as conn:
        await _store(conn, migration_id, result)


async def _store(conn: AsyncConnection, migration_id: int, result: InstanceResult) -> None:
    await conn.execute(SQL.record_result, {
        "migration_id": migration_id, "process_instance_id": result.process_instance_id,
        "business_key": result.business_key, "activities": list(result.activities), "outcome": result.outcome,
        "messages": list(result.messages)})
