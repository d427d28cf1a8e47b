"""Deploying BPMN: validate -> skip what the engine already has -> deploy -> record and sync, atomically.

    outcome = await deploy_bpmn(data, "OneCMS_Nextgen_WF.bpmn20.xml", db=engine, flowable=client,
                                deployed_by="ops")

1. Parse and validate (bridge.bpmn_meta). Errors: BpmnError, nothing sent anywhere.
2. Flowable does not dedupe: when the latest definition of every executable process in the file
   already holds these exact bytes, nothing is deployed ("unchanged").
3. Otherwise POST the file; a rejection raises DeployError with Flowable's own message, and nothing
   is written.
4. In one database transaction: the workflow_definitions row of each process (version as Flowable
   numbered it, older versions of the key inactive) and the departments, queues, roles and
   role -> queue assignments of its metadata, all as idempotent upserts. That transaction holds an
   advisory lock on each process key from before step 2, so concurrent deploys of one process queue up.

If step 4 fails after Flowable accepted the file, the engine's latest definition holds these bytes,
so the next deploy of the same file skips step 3 and writes step 4 ("repaired"): a deployment never
stays without its definition row.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
import json
import logging
from dataclasses import dataclass, field
from datetime import datetime, timezone

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bridge.bpmn_meta import BpmnMetadata, Process, load_bpmn
from bridge.db.queries import queries
from bridge.flowable.client import FlowableClient, FlowableError
from bridge.work.queues import QueueSettingsError, change_queue, read_queue

log = logging.getLogger(__name__)

DEFAULT_BUSINESS_APP = "ONECMS"
SQL = queries("deploy")


class DeployError(RuntimeError):
    """The engine refused the file (its message is in the text), or the deploy could not complete."""


@dataclass
class ProcessOutcome:
    process_key: str
    version: int
    deployment_id: str
    workflow_id: int | None = None


@dataclass
class DeployOutcome:
    filename: str
    status: str  # deployed | unchanged | repaired | would-deploy | would-skip
    processes: list[ProcessOutcome] = field(default_factory=list)
    changes: list[str] = field(default_factory=list)  # what the metadata sync changed (or would)

    def summary(self) -> str:
        versions = ", ".join(f"{p.process_key} v{p.version}" for p in self.processes) or "no process"
        lines = [f"{self.filename}: {self.status} ({versions})"]
        lines += [f"  {change}" for change in self.changes]
        return "\n".join(lines)


async def deploy_bpmn(data: bytes, filename: str, *, db: AsyncEngine, flowable: FlowableClient,
                      deployed_by: str, business_app: str | None = None, dry_run: bool = False,
                      allowed_delegates: Iterable[str] = ()) -> DeployOutcome:
    """Validate (deploy policy included: `allowed_delegates`), deploy unless the engine has these bytes, record."""
    metadata = load_bpmn(data, filename, allowed_delegates=allowed_delegates)
    if dry_run:
        return await _plan(data, filename, metadata, db=db, flowable=flowable)
    # Two bridges deploying the same process at once (say, both starting with `bridge up`) would both find
    # the engine without these bytes and both deploy them. So one deploy per process key at a time: the
    # transaction that records the deploy takes transaction-level advisory locks on its keys (sorted, so two
    # files never deadlock) before it asks the engine, and holds them until it commits. One connection per
    # deploy: a waiting deploy never holds a second one the running deploy might need.
    async with db.begin() as conn:
        for key in sorted({p.key for p in metadata.executable_processes}):
            await conn.execute(SQL.lock_process_key, {"lock_id": _lock_id(key)})
        return await _deploy(data, filename, metadata, conn=conn, flowable=flowable, deployed_by=deployed_by,
                             business_app=business_app)


def _lock_id(process_key: str) -> int:
    return int.from_bytes(hashlib.sha256(f"bridge-deploy:{process_key}".encode()).digest()[:8], "big", signed=True)


async def _plan(data: bytes, filename: str, metadata: BpmnMetadata, *, db: AsyncEngine,
                flowable: FlowableClient) -> DeployOutcome:
    latest = await _latest_definitions_holding(flowable, metadata.executable_processes, data)
    outcome = DeployOutcome(filename, "would-skip" if latest else "would-deploy",
                            [ProcessOutcome(p.process_key, p.version, p.deployment_id) for p in latest or []])
    async with db.connect() as conn:
        outcome.changes = await _planned_changes(conn, metadata, settings=latest is None)
    return outcome


async def _deploy(data: bytes, filename: str, metadata: BpmnMetadata, *, conn: AsyncConnection,
                  flowable: FlowableClient, deployed_by: str, business_app: str | None) -> DeployOutcome:
    processes = metadata.executable_processes
    latest = await _latest_definitions_holding(flowable, processes, data)

    if latest is None:
        try:
            deployment = await flowable.deploy(filename, data, deployment_name=filename)
        except FlowableError as err:
            raise DeployError(f"Flowable rejected {filename}: {err.message}") from err
        definitions = await flowable.process_definitions(deploymentId=deployment["id"], size=100)
        latest = [ProcessOutcome(d["key"], d["version"], deployment["id"]) for d in definitions
                  if d["key"] in {p.key for p in processes}]
        status = "deployed"
        log.info("deployed %s to Flowable as deployment %s", filename, deployment["id"])
    else:
        status = "unchanged"

    changes = await _planned_changes(conn, metadata, settings=status == "deployed")
    repaired = False
    for outcome in latest:
        process = next(p for p in processes if p.key == outcome.process_key)
        existing = (await conn.execute(SQL.definition_by_key_version, {
            "process_key": outcome.process_key, "process_version": outcome.version})).first()
        if status == "unchanged" and existing is not None and existing.deployment_id == outcome.deployment_id \
                and existing.is_active:
            outcome.workflow_id = existing.workflow_id
            continue
        repaired = repaired or status == "unchanged"
        outcome.workflow_id = await _record_definition(conn, process, outcome, data, metadata, deployed_by,
                                                       business_app)
    # A file's queue settings are applied when a version of it is recorded, not when the same file is
    # deployed again (every `bridge up` does): an administrator's later change stands until the next version.
    await _sync_metadata(conn, metadata, settings_by=deployed_by if status == "deployed" or repaired else None)
    return DeployOutcome(filename, "repaired" if repaired else status, latest, changes)


async def _latest_definitions_holding(flowable: FlowableClient, processes: list[Process],
                                      data: bytes) -> list[ProcessOutcome] | None:
    """The latest definitions of the file's processes if every one of them holds exactly these bytes."""
    found = []
    for process in processes:
        definitions = await flowable.process_definitions(key=process.key, latest="true")
        if not definitions:
            return None
        definition = definitions[0]
        current = await flowable.definition_resource(definition["id"])
        if current != data:
            return None
        found.append(ProcessOutcome(process.key, definition["version"], definition["deploymentId"]))
    return found or None


async def _record_definition(conn: AsyncConnection, process: Process, outcome: ProcessOutcome, data: bytes,
                             metadata: BpmnMetadata, deployed_by: str, business_app: str | None) -> int:
    params = {"process_key": outcome.process_key, "process_version": outcome.version}
    await conn.execute(SQL.deactivate_other_versions, params)
    row = (await conn.execute(SQL.upsert_workflow_definition, {
        **params,
        "process_name": process.name or process.key,
        "business_app": business_app or process.business_app or DEFAULT_BUSINESS_APP,
        "deployment_id": outcome.deployment_id,
        "bpmn_xml": data.decode("utf-8", errors="replace"),
        "deployed_at": datetime.now(timezone.utc),
        "deployed_by": deployed_by,
        "entry_criteria": json.dumps({name: v.stored() for name, v in process.start_variables.items()}),
        "routing_rules": json.dumps(process.routing_rules()),
        "sla_config": json.dumps(process.sla_config()),
        "metadata": json.dumps({"file": metadata.filename, "versionTag": process.version_tag,
                                "userTasks": [t.id for t in process.user_tasks],
                                "endEvents": process.end_events}),
    })).one()
    return row.workflow_id


def _wanted(metadata: BpmnMetadata) -> tuple[dict, dict, dict, set]:
    """Departments, queues, roles (by key) and assignments the file's executable processes declare."""
    departments, queues, roles, assignments = {}, {}, {}, set()
    for process in metadata.executable_processes:
        for d in process.departments:
            departments.setdefault(d.code, {"code": d.code, "name": d.name})
        for q in process.queues:
            queues.setdefault(q.name, {"name": q.name, "type": q.type, "department": q.department,
                                       "sla_minutes": q.sla_minutes, "max_capacity": q.max_capacity,
                                       "settings": q.settings})
        for r in process.roles:
            roles.setdefault(r.code, {"code": r.code, "name": r.name, "type": r.type, "department": r.department,
                                      "home_queue": r.home_queue})
        assignments.update(process.assignments)
    return departments, queues, roles, assignments


async def _sync_metadata(conn: AsyncConnection, metadata: BpmnMetadata, *, settings_by: str | None) -> None:
    """Departments, queues, roles and assignments made to exist; with settings_by, the file's queue settings
    applied too (and recorded as that user's change)."""
    departments, queues, roles, assignments = _wanted(metadata)
    source = json.dumps({"source": metadata.filename})
    # Order matters: queues name their department, roles their department and home queue; settings name
    # queues and roles, and set the assignments.
    for row in departments.values():
        await conn.execute(SQL.upsert_department, {**row, "metadata": source})
    for row in queues.values():
        await conn.execute(SQL.upsert_queue, {**row, "metadata": source})
    for row in roles.values():
        await conn.execute(SQL.upsert_role, {**row, "metadata": source})
    for role, queue in sorted(assignments):
        await conn.execute(SQL.upsert_queue_assignment, {"role": role, "queue": queue})
    if settings_by is None:
        return
    for name, row in sorted(queues.items()):
        try:
            await change_queue(conn, name, _file_settings(row), by=settings_by, source=f"deploy {metadata.filename}")
        except QueueSettingsError as err:  # the parser checked values and references: a bug if it comes here
            raise DeployError(f"{metadata.filename}: queue {name}: {err}") from err


def _file_settings(queue: dict) -> dict:
    return {"slaMinutes": queue["sla_minutes"], "maxCapacity": queue["max_capacity"], **queue["settings"]}


async def _planned_changes(conn: AsyncConnection, metadata: BpmnMetadata, *, settings: bool) -> list[str]:
    """What syncing this file's metadata changes, one line per department, queue, role or assignment, and
    with `settings` (a new version) per queue whose settings it changes."""
    departments, queues, roles, assignments = _wanted(metadata)
    changes: list[str] = []
    for kind, wanted, query, key in (("department", departments, SQL.current_departments, "code"),
                                     ("queue", queues, SQL.current_queues, "name"),
                                     ("role", roles, SQL.current_roles, "code")):
        current = {row[key]: dict(row) for row in (await conn.execute(query)).mappings()}
        for name, want in sorted(wanted.items()):
            have = current.get(name)
            if have is None:
                changes.append(f"+ {kind} {name}: " + ", ".join(f"{k}={v}" for k, v in want.items()
                                                                if k != key and v != {}))
            else:
                # a queue's settings, SLA and capacity included, are compared below as settings
                diff = [f"{k} {have.get(k)!r} -> {v!r}" for k, v in want.items()
                        if have.get(k) != v and not (kind == "queue" and k in ("settings", "sla_minutes", "max_capacity"))]
                if diff:
                    changes.append(f"~ {kind} {name}: " + ", ".join(diff))
    for name, want in sorted(queues.items()) if settings else ():
        have = await read_queue(conn, name)
        if have is not None:
            diff = [f"{k} {json.dumps(have['settings'].get(k), sort_keys=True)} -> {json.dumps(v, sort_keys=True)}"
                    for k, v in _file_settings(want).items()
                    if have["settings"].get(k) != v]
            if diff:
                changes.append(f"~ queue {name} settings: " + ", ".join(diff))
    current_assignments = {(r.role, r.queue) for r in await conn.execute(SQL.current_assignments)}
    for role, queue in sorted(assignments - current_assignments):
        changes.append(f"+ assignment {role} -> {queue}")
    return changes
