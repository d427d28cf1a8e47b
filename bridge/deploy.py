"""Deploying BPMN: validate -> skip what the engine already has -> deploy -> record and sync, atomically.

    outcome = await deploy_bpmn(data, "OneCMS_Nextgen_WF.bpmn20.xml", db=engine, flowable=client,
                                deployed_by="ops")

1. Parse and validate (bridge.bpmn.reader). Errors: BpmnError, nothing sent anywhere.
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
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bridge import retention
from bridge.bpmn.model import BpmnMetadata, Process
from bridge.bpmn.reader import load_bpmn, parse_bpmn
from bridge.db.queries import queries
from bridge.deploy_plan import ProcessPlan, plan_process
from bridge.errors import BridgeError
from bridge.flowable.client import FlowableClient, FlowableError
from bridge.work.queues import QueueSettingsError, change_queue, read_queue

log = logging.getLogger(__name__)

DEFAULT_BUSINESS_APP = "ONECMS"
SQL = queries("deploy")


class DeployError(BridgeError, RuntimeError):
    """The engine refused the file (its message is in the text), or the deploy could not complete."""


class OwnershipError(DeployError):
    """The file would change departments, queues or roles another process key owns; nothing was deployed."""

    def __init__(self, filename: str, problems: list[str]) -> None:
        super().__init__(f"{filename} would change what other workflows own; nothing was deployed: "
                         + "; ".join(problems))
        self.problems = problems


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
    plan: list[ProcessPlan] = field(default_factory=list)  # a dry run's: per process key, against the deployed

    def summary(self) -> str:
        if self.plan:
            versions = ", ".join(f"{p.process_key} v{p.to_version}" for p in self.plan)
        else:
            versions = ", ".join(f"{p.process_key} v{p.version}" for p in self.processes) or "no process"
        lines = [f"{self.filename}: {self.status} ({versions})"]
        lines += [f"  {line}" for plan in self.plan for line in plan.lines()]
        if self.plan and self.changes:
            lines.append("  entitlements and queues:")
        lines += [f"  {change}" for change in self.changes]
        return "\n".join(lines)


async def deploy_bpmn(data: bytes, filename: str, *, db: AsyncEngine, flowable: FlowableClient,
                      deployed_by: str, business_app: str | None = None, dry_run: bool = False,
                      allowed_delegates: Iterable[str] = (), adopt: Iterable[str] = ()) -> DeployOutcome:
    """Validate (deploy policy included: `allowed_delegates`), check ownership, deploy unless the engine has
    these bytes, record. `adopt` ("role:CODE", "queue:NAME", "department:CODE"): rows another process key
    owns that this file takes over (an ENTITLEMENTS_ADMIN's decision: the caller checks the role)."""
    metadata = load_bpmn(data, filename, allowed_delegates=allowed_delegates)
    adopted = frozenset(adopt)
    if dry_run:
        return await _plan(data, filename, metadata, db=db, flowable=flowable, adopt=adopted)
    # Two bridges deploying the same process at once (say, both starting with `bridge up`) would both find
    # the engine without these bytes and both deploy them. So one deploy per process key at a time: the
    # transaction that records the deploy takes transaction-level advisory locks on its keys (sorted, so two
    # files never deadlock) before it asks the engine, and holds them until it commits. One connection per
    # deploy: a waiting deploy never holds a second one the running deploy might need.
    async with db.begin() as conn:
        for key in sorted({p.key for p in metadata.executable_processes}):
            await conn.execute(SQL.lock_process_key, {"lock_id": _lock_id(key)})
        return await _deploy(data, filename, metadata, conn=conn, flowable=flowable, deployed_by=deployed_by,
                             business_app=business_app, adopt=adopted)


def _lock_id(process_key: str) -> int:
    return int.from_bytes(hashlib.sha256(f"bridge-deploy:{process_key}".encode()).digest()[:8], "big", signed=True)


async def _plan(data: bytes, filename: str, metadata: BpmnMetadata, *, db: AsyncEngine,
                flowable: FlowableClient, adopt: frozenset[str]) -> DeployOutcome:
    # What the engine runs now, per process key of the file: its latest definition and that file's bytes.
    deployed: dict[str, tuple[dict, bytes]] = {}
    for process in metadata.executable_processes:
        definitions = await flowable.process_definitions(key=process.key, latest="true")
        if definitions:
            deployed[process.key] = (definitions[0], await flowable.definition_resource(definitions[0]["id"]))
    unchanged = bool(deployed) and len(deployed) == len(metadata.executable_processes) \
        and all(bytes_ == data for _, bytes_ in deployed.values())
    latest = [ProcessOutcome(key, definition["version"], definition["deploymentId"])
              for key, (definition, _) in deployed.items()] if unchanged else None
    outcome = DeployOutcome(filename, "would-skip" if latest else "would-deploy", latest or [])
    for process in metadata.executable_processes:
        definition, old_bytes = deployed.get(process.key, (None, b""))
        version = definition["version"] if definition else None
        before = next((p for p in parse_bpmn(old_bytes, "deployed").processes if p.key == process.key), None) \
            if definition else None
        # Flowable numbers every process of a new deployment: each key's next version
        outcome.plan.append(plan_process(before, process, from_version=version,
                                         to_version=version if unchanged and version else (version or 0) + 1))
    async with db.connect() as conn:
        existing = await _existing(conn)
        writable = await _writable(conn, metadata, adopt, existing)
        outcome.changes = await _planned_changes(conn, metadata, settings=latest is None, writable=writable,
                                                 existing=existing)
    return outcome


async def _deploy(data: bytes, filename: str, metadata: BpmnMetadata, *, conn: AsyncConnection,
                  flowable: FlowableClient, deployed_by: str, business_app: str | None,
                  adopt: frozenset[str]) -> DeployOutcome:
    processes = metadata.executable_processes
    present = await _existing(conn)
    writable = await _writable(conn, metadata, adopt, present)  # before the engine: a refused file is not deployed
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

    changes = await _planned_changes(conn, metadata, settings=status == "deployed", writable=writable,
                                     existing=present)
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
    await _sync_metadata(conn, metadata, settings_by=deployed_by if status == "deployed" or repaired else None,
                         writable=writable)
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
        "deployed_at": datetime.now(UTC),
        "deployed_by": deployed_by,
        "entry_criteria": json.dumps({name: v.stored() for name, v in process.start_variables.items()}),
        "routing_rules": json.dumps(process.routing_rules()),
        "sla_config": json.dumps(process.sla_config()),
        "metadata": json.dumps({"file": metadata.filename, "versionTag": process.version_tag,
                                "userTasks": [t.id for t in process.user_tasks],
                                "endEvents": process.end_events}),
    })).one()
    await retention.record_from_bpmn(conn, outcome.process_key, process.retention_days, by=deployed_by)
    return row.workflow_id


def _wanted(metadata: BpmnMetadata) -> tuple[dict, dict, dict, set]:
    """Departments, queues, roles (by key) and assignments the file's executable processes declare."""
    departments: dict[str, dict] = {}
    queues: dict[str, dict] = {}
    roles: dict[str, dict] = {}
    assignments: set[tuple[str, str]] = set()
    for process in metadata.executable_processes:
        owner = process.key
        for d in process.departments:
            departments.setdefault(d.code, {"code": d.code, "name": d.name, "owner": owner, "declared": d.declared})
        for q in process.queues:
            queues.setdefault(q.name, {"name": q.name, "type": q.type, "department": q.department,
                                       "sla_minutes": q.sla_minutes, "max_capacity": q.max_capacity,
                                       "settings": q.settings, "owner": owner, "declared": q.declared})
        for r in process.roles:
            roles.setdefault(r.code, {"code": r.code, "name": r.name, "type": r.type, "department": r.department,
                                      "home_queue": r.home_queue, "owner": owner, "declared": r.declared})
        assignments.update(process.assignments)
    return departments, queues, roles, assignments


async def _sync_metadata(conn: AsyncConnection, metadata: BpmnMetadata, *, settings_by: str | None,
                         writable: set[tuple[str, str]]) -> None:
    """The departments, queues and roles this file may write (`writable`: new ones, its own, adopted ones)
    made as it declares them, assignments made to exist; with settings_by, its queues' settings applied too
    (and recorded as that user's change). Others' rows it uses stay as they are."""
    departments, queues, roles, assignments = _wanted(metadata)
    source = json.dumps({"source": metadata.filename})
    # Order matters: queues name their department, roles their department and home queue; settings name
    # queues and roles, and set the assignments.
    for kind, rows, statement in (("department", departments, SQL.upsert_department),
                                  ("queue", queues, SQL.upsert_queue), ("role", roles, SQL.upsert_role)):
        for name, row in rows.items():
            if (kind, name) in writable:
                await conn.execute(statement, {**row, "metadata": source})
    for role, queue in sorted(assignments):
        await conn.execute(SQL.upsert_queue_assignment, {"role": role, "queue": queue})
    if settings_by is None:
        return
    for name, row in sorted(q for q in queues.items() if ("queue", q[0]) in writable):
        try:
            await change_queue(conn, name, _file_settings(row), by=settings_by, source=f"deploy {metadata.filename}")
        except QueueSettingsError as err:  # the parser checked values and references: a bug if it comes here
            raise DeployError(f"{metadata.filename}: queue {name}: {err}") from err


def _file_settings(queue: dict) -> dict:
    return {"slaMinutes": queue["sla_minutes"], "maxCapacity": queue["max_capacity"], **queue["settings"]}


_SHOWN = ("owner", "declared", "settings")  # not values of the row: who declares it, and settings (below)


@dataclass
class _Existing:
    """The departments, queues and roles already there, read once per deploy: their owners (migration 0022)
    and their values by kind and name."""
    owners: dict[tuple[str, str], str | None]
    rows: dict[str, dict[str, dict]]


async def _existing(conn: AsyncConnection) -> _Existing:
    owners = {(r.kind, r.name): r.owner for r in await conn.execute(SQL.entitlement_owners)}
    rows = {kind: {row[key]: dict(row) for row in (await conn.execute(query)).mappings()}
            for kind, query, key in (("department", SQL.current_departments, "code"),
                                     ("queue", SQL.current_queues, "name"), ("role", SQL.current_roles, "code"))}
    return _Existing(owners, rows)


async def _writable(conn: AsyncConnection, metadata: BpmnMetadata, adopt: frozenset[str],
                    existing: _Existing) -> set[tuple[str, str]]:
    """The departments, queues and roles this file may write: new ones, those its process keys own (or that
    predate ownership), and adopted ones. Another key's row it only uses (a candidate group, a queue its tasks
    name) stays as it is; one it declares differently (<onecms:role>, <onecms:queue>, <onecms:department>) is
    refused, every such row named (OwnershipError)."""
    owners, current = existing.owners, existing.rows
    departments, queues, roles, _ = _wanted(metadata)
    writable, problems = set(), []
    for kind, rows in (("department", departments), ("queue", queues), ("role", roles)):
        for name, want in sorted(rows.items()):
            owner = owners.get((kind, name))
            if (kind, name) not in owners or owner in (None, want["owner"]) or f"{kind}:{name}" in adopt:
                writable.add((kind, name))
                continue
            if not want["declared"]:
                continue  # used as it is
            have = current[kind][name]
            diff = [f"{k} {have.get(k)!r} -> {v!r}" for k, v in want.items()
                    if k not in _SHOWN and k in have and have.get(k) != v]
            if kind == "queue":
                shown = (await read_queue(conn, name) or {"settings": {}})["settings"]
                diff += [f"{k} {shown.get(k)!r} -> {v!r}" for k, v in want["settings"].items() if shown.get(k) != v]
            if diff:
                problems.append(f"{kind} {name} belongs to {owner}: this file would change {', '.join(diff)} "
                                f"(deploy it from {owner}, or have an ENTITLEMENTS_ADMIN adopt it: {kind}:{name})")
    if problems:
        raise OwnershipError(metadata.filename, problems)
    return writable


async def _planned_changes(conn: AsyncConnection, metadata: BpmnMetadata, *, settings: bool,
                           writable: set[tuple[str, str]], existing: _Existing) -> list[str]:
    """What syncing this file's metadata changes, one line per department, queue, role or assignment, and
    with `settings` (a new version) per queue whose settings it changes; another workflow's rows it uses
    are listed as used."""
    departments, queues, roles, assignments = _wanted(metadata)
    changes: list[str] = []
    for kind, wanted, key in (("department", departments, "code"), ("queue", queues, "name"), ("role", roles, "code")):
        current = existing.rows[kind]
        for name, want in sorted(wanted.items()):
            have = current.get(name)
            if (kind, name) not in writable:
                changes.append(f"= {kind} {name}: belongs to {existing.owners[(kind, name)]}, used as it is")
                continue
            want = {k: v for k, v in want.items() if k not in ("owner", "declared")}
            if have is None:
                changes.append(f"+ {kind} {name}: " + ", ".join(f"{k}={v}" for k, v in want.items()
                                                                if k != key and v != {}))
            else:
                # a queue's settings, SLA and capacity included, are compared below as settings
                diff = [f"{k} {have.get(k)!r} -> {v!r}" for k, v in want.items()
                        if have.get(k) != v
                        and not (kind == "queue" and k in ("settings", "sla_minutes", "max_capacity"))]
                if diff:
                    changes.append(f"~ {kind} {name}: " + ", ".join(diff))
    for name, want in sorted(queues.items()) if settings else ():
        if ("queue", name) not in writable:
            continue
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
