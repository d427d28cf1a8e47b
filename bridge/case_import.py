"""Cases half way through in the system OneCMS replaces, started in OneCMS where they stand (`bridge cases
import FILE`; the seed design's "import existing workflow data from legacy systems").

The file, CSV or YAML, holds one case per row (README, "Importing cases from a legacy system"):

  legacy_id         required; the case's id in the old system (with the process key: the import's idempotency key)
  activity          required; the user task the case is at, in the process's active version
  process           the process key (default: --process, else OneCMS_Nextgen_WF)
  business_key      default: the legacy id
  assignee          who holds the task now (none: it waits in its queue)
  candidate_groups  the roles it is offered to (CSV: separated by ';' or spaces); none: the BPMN's
  created_at        when the case was opened in the old system (ISO-8601; no zone is UTC): the instance's start
  due_date          when it is due: the task's due date and the instance's SLA due date
  variables         (YAML) a mapping of name: text, number or true/false; (CSV) one column per variable named
                    var.NAME, or var.NAME:integer, var.NAME:number, var.NAME:boolean for typed values

Everything is checked before anything is written: the file (required fields, dates, variable names and values,
a case twice), then the mirror (the process deployed through the bridge, the activity one of its user tasks,
the candidate groups known roles). Every problem is listed with its line, and a file with any problem imports
nothing. Then each case becomes one engine transaction (engine/.../imports/ImportController.java: start on the
active version under an instance id derived from the legacy id, move to the activity, assignee, candidate
groups, due date) and then the mirror: the instance read in through the reconciler's path, a BRIDGE_IMPORT
event with the legacy dates, and the ledger row (flowable.legacy_case_imports, migration 0027) in one
transaction. A case already in the ledger is skipped, and one whose engine instance exists (an import killed
between the engine and the ledger) is completed, not started again: a rerun imports nothing twice.
"""

from __future__ import annotations

import asyncio
import csv
import io
import logging
import re
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from bridge.db.queries import queries
from bridge.errors import BridgeError
from bridge.flowable.client import LONG_MAX, LONG_MIN, EngineUnavailable, FlowableClient, FlowableError, engine_time
from bridge.json_limits import MAX_DEPTH, deeper_than
from bridge.mirror import bridge_events
from bridge.mirror.apply import lock_entities
from bridge.mirror.reconcile import resync_instances

SQL = queries("case_import")
log = logging.getLogger(__name__)

DEFAULT_PROCESS = "OneCMS_Nextgen_WF"
MAX_CASES = 100_000
CONCURRENCY = 4
FIELDS = {"legacy_id", "activity", "process", "business_key", "assignee", "candidate_groups", "created_at",
          "due_date", "variables"}
VARIABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,254}$")
VARIABLE_TYPES = ("string", "integer", "number", "boolean")
# Instance ids of imported cases: the same legacy case always gets the same id.
ID_NAMESPACE = uuid.UUID("6f1c2a0e-4b7d-4c58-9a53-0d1e7f3b9c21")


class CaseImportError(BridgeError):
    """The file cannot be imported; problems: every one found, each with its line."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__(f"{len(problems)} problem(s); nothing was imported:\n  " + "\n  ".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class LegacyCase:
    line: int
    legacy_id: str
    process_key: str
    activity: str
    business_key: str
    assignee: str | None = None
    candidate_groups: tuple[str, ...] | None = None
    created_at: datetime | None = None
    due_date: datetime | None = None
    variables: dict[str, Any] = field(default_factory=dict)

    @property
    def instance_id(self) -> str:
        name = self.process_key + "\0" + self.legacy_id
        return f"legacy-{uuid.uuid5(ID_NAMESPACE, name)}"


@dataclass(frozen=True)
class CaseResult:
    legacy_id: str
    line: int
    process_instance_id: str
    outcome: str  # IMPORTED, ALREADY_IMPORTED, FAILED
    message: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {"legacyId": self.legacy_id, "line": self.line, "processInstanceId": self.process_instance_id,
                "outcome": self.outcome, "message": self.message}


@dataclass
class ImportReport:
    source: str
    dry_run: bool
    cases: int
    results: list[CaseResult] = field(default_factory=list)
    seconds: float = 0.0
    stopped: str | None = None  # the engine or the database went away: the rest is left for a rerun

    @property
    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for result in self.results:
            counts[result.outcome] = counts.get(result.outcome, 0) + 1
        return counts

    def as_json(self) -> dict[str, Any]:
        return {"source": self.source, "dryRun": self.dry_run, "cases": self.cases, "counts": self.counts,
                "seconds": round(self.seconds, 3), "stopped": self.stopped,
                "results": [r.as_json() for r in self.results]}


# -- reading the file ------------------------------------------------------------------------------------

def read_file(path: Path, *, default_process: str = DEFAULT_PROCESS) -> list[LegacyCase]:
    kind = "csv" if path.suffix.lower() == ".csv" else "yaml"
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as err:
        raise CaseImportError([f"{path}: cannot be read: {err}"]) from None
    return parse(text, kind, default_process=default_process)


def parse(text: str, kind: str, *, default_process: str = DEFAULT_PROCESS) -> list[LegacyCase]:
    """kind 'csv' or 'yaml' -> the cases, or CaseImportError with every problem of the file, by line."""
    rows = _csv_rows(text) if kind == "csv" else _yaml_rows(text)
    if len(rows) > MAX_CASES:
        raise CaseImportError([f"the file holds {len(rows)} cases; at most {MAX_CASES} per import"])
    problems: list[str] = []
    cases: list[LegacyCase] = []
    first: dict[tuple[str, str], int] = {}
    for line, row in rows:
        found: list[str] = []
        case = _case(line, row, default_process, found)
        if case is not None:
            key = (case.process_key, case.legacy_id)
            if key in first:
                found.append(f"legacy_id {case.legacy_id!r} again (first at line {first[key]})")
            first.setdefault(key, line)
        problems += [f"line {line}: {p}" for p in found]
        if case is not None and not found:
            cases.append(case)
    if not rows:
        problems.append("the file holds no cases")
    if problems:
        raise CaseImportError(problems)
    return cases


def _csv_rows(text: str) -> list[tuple[int, dict[str, Any]]]:
    reader = csv.DictReader(io.StringIO(text, newline=""))
    rows = []
    try:
        header = reader.fieldnames or []
        missing = {"legacy_id", "activity"} - set(header)
        if missing:
            raise CaseImportError([f"line 1: the header must name {', '.join(sorted(missing))} "
                                   "(and process, business_key, assignee, candidate_groups, created_at, due_date, "
                                   "var.NAME, ...)"])
        unknown = [h for h in header if h not in FIELDS - {"variables"} and not (h or "").startswith("var.")]
        if unknown:
            raise CaseImportError([f"line 1: unknown column(s) {', '.join(map(repr, unknown))}"])
        for raw in reader:
            line = reader.line_num  # the row's last physical line: a quoted field may span several
            if None in raw:
                rows.append((line, {"_problem": "more cells than the header has columns"}))
                continue
            row: dict[str, Any] = {k: v for k, v in raw.items() if not k.startswith("var.") and v not in ("", None)}
            variables, problems = {}, []
            for column, value in raw.items():
                if column.startswith("var.") and value not in ("", None):
                    name, _, kind = column[4:].partition(":")
                    try:
                        variables[name] = _typed(value, kind or "string")
                    except ValueError as err:
                        problems.append(f"{column}: {err}")
            if problems:
                row["_problem"] = "; ".join(problems)
            if isinstance(row.get("candidate_groups"), str):
                row["candidate_groups"] = [g for g in re.split(r"[;\s]+", row["candidate_groups"]) if g]
            row["variables"] = variables
            rows.append((line, row))
    except csv.Error as err:
        raise CaseImportError([f"line {reader.line_num + 1}: not CSV: {err}"]) from None
    return rows


def _typed(value: str, kind: str) -> Any:
    if kind == "string":
        return value
    if kind == "integer":
        if not re.fullmatch(r"[+-]?\d{1,19}", value.strip()):
            raise ValueError(f"{value!r} is not a whole number")
        return int(value)
    if kind == "number":
        try:
            number = float(value)
        except ValueError:
            raise ValueError(f"{value!r} is not a number") from None
        if number != number or number in (float("inf"), float("-inf")):
            raise ValueError(f"{value!r} is not a finite number")
        return number
    if kind == "boolean":
        if value.strip().lower() not in ("true", "false"):
            raise ValueError(f"{value!r} is not true or false")
        return value.strip().lower() == "true"
    raise ValueError(f"unknown type {kind!r} (string, integer, number, boolean)")


def _yaml_rows(text: str) -> list[tuple[int, dict[str, Any]]]:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        document = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise CaseImportError([f"not YAML: {err}"]) from None
    except RecursionError:
        raise CaseImportError([f"the file nests deeper than {MAX_DEPTH} levels"]) from None
    if deeper_than(document):
        raise CaseImportError([f"the file nests deeper than {MAX_DEPTH} levels"])
    if isinstance(document, dict) and set(document) == {"cases"}:
        document = document["cases"]
        node = node.value[0][1] if isinstance(node, yaml.MappingNode) else node
    if not isinstance(document, list) or not isinstance(node, yaml.SequenceNode):
        raise CaseImportError(["line 1: the file must be a list of cases (or a mapping with `cases:`, a list)"])
    rows = []
    for item, item_node in zip(document, node.value, strict=True):
        line = item_node.start_mark.line + 1
        rows.append((line, item if isinstance(item, dict) else {"_problem": "a case is a mapping of field: value"}))
    return rows


def _case(line: int, row: dict[str, Any], default_process: str, problems: list[str]) -> LegacyCase | None:
    if "_problem" in row:
        problems.append(row["_problem"])
        if set(row) == {"_problem"}:
            return None
    unknown = sorted(str(k) for k in set(row) - FIELDS - {"_problem"})
    if unknown:
        problems.append(f"unknown field(s) {', '.join(unknown)}")
    legacy_id = _text(row, "legacy_id", problems, required=True)
    activity = _text(row, "activity", problems, required=True)
    process = _text(row, "process", problems) or default_process
    business_key = _text(row, "business_key", problems) or legacy_id
    assignee = _text(row, "assignee", problems)
    groups = row.get("candidate_groups")
    if isinstance(groups, str):
        groups = [groups]
    if groups is not None and (not isinstance(groups, list)
                               or not all(isinstance(g, str) and 0 < len(g) <= 100 for g in groups)):
        problems.append("candidate_groups: role codes (up to 100 characters each)")
        groups = None
    created, due = _moment(row, "created_at", problems), _moment(row, "due_date", problems)
    if created is not None and created > datetime.now(UTC):
        problems.append(f"created_at: {engine_time(created)} is in the future")
    variables = row.get("variables") or {}
    if not isinstance(variables, dict):
        problems.append("variables: a mapping of name: value")
        variables = {}
    for name, value in variables.items():
        if not isinstance(name, str) or not VARIABLE_NAME.match(name):
            problems.append(f"variables: {name!r} is not a variable name (a letter or _, then letters, digits, _)")
        elif isinstance(value, bool) or value is None or isinstance(value, str) and len(value) <= 4000:
            pass
        elif isinstance(value, int):
            if not LONG_MIN <= value <= LONG_MAX:
                problems.append(f"variables.{name}: {value} does not fit the engine's long")
        elif isinstance(value, float):
            pass
        else:
            problems.append(f"variables.{name}: text (up to 4000 characters), a number or true/false")
    if legacy_id is None or activity is None:
        return None
    return LegacyCase(line=line, legacy_id=legacy_id, process_key=process, activity=activity,
                      business_key=business_key or legacy_id, assignee=assignee,
                      candidate_groups=tuple(groups) if groups is not None else None,
                      created_at=created, due_date=due, variables=dict(variables))


def _text(row: dict[str, Any], name: str, problems: list[str], *, required: bool = False) -> str | None:
    value = row.get(name)
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)  # a YAML legacy id of digits
    if value is None or value == "":
        if required:
            problems.append(f"{name} is required")
        return None
    if not isinstance(value, str) or len(value.strip()) == 0 or len(value) > 255 or "\0" in value:
        problems.append(f"{name}: text of 1 to 255 characters")
        return None
    return value.strip()


def _moment(row: dict[str, Any], name: str, problems: list[str]) -> datetime | None:
    value = row.get(name)
    if value is None or value == "":
        return None
    try:
        if isinstance(value, datetime):
            moment = value
        elif isinstance(value, date):
            moment = datetime(value.year, value.month, value.day)
        elif isinstance(value, str):
            moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        else:
            raise ValueError
    except ValueError:
        problems.append(f"{name}: an ISO-8601 date or date-time, not {value!r}"[:200])
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


# -- checking against the mirror, then importing ---------------------------------------------------------------

async def _mirror_facts(db: AsyncEngine, cases: list[LegacyCase]) -> tuple[dict[str, Any], set[str]]:
    """The active version (with its user tasks) of each process key the cases name, and which of their
    candidate groups are roles."""
    keys = sorted({c.process_key for c in cases})
    groups = sorted({g for c in cases for g in c.candidate_groups or ()})
    async with db.connect() as conn:
        versions = {r.process_key: r for r in await conn.execute(SQL.active_versions, {"keys": keys})}
        roles = {r.role_code for r in await conn.execute(SQL.known_roles, {"codes": groups})}
    return versions, roles


def _problems(cases: list[LegacyCase], versions: dict[str, Any], roles: set[str]) -> list[str]:
    """What the mirror says against the cases: each problem with its line (empty: importable)."""
    problems = []
    for case in cases:
        version = versions.get(case.process_key)
        if version is None:
            problems.append(f"line {case.line}: process {case.process_key!r} has no active version deployed "
                            "through the bridge (bridge deploy)")
        elif case.activity not in (version.user_tasks or []):
            problems.append(f"line {case.line}: {case.activity!r} is not a user task of {case.process_key} "
                            f"version {version.process_version}")
        unknown = sorted(set(case.candidate_groups or ()) - roles)
        if unknown:
            problems.append(f"line {case.line}: candidate group(s) {', '.join(unknown)} are not roles "
                            "(bridge users import, or the BPMN's roles)")
    return problems


async def run(db: AsyncEngine, flowable: FlowableClient, cases: list[LegacyCase], *, source: str, by: str,
              dry_run: bool = False, progress=None) -> ImportReport:
    """Check every case, then (unless dry_run) import those not imported yet; CaseImportError when any case has
    a problem (nothing imported)."""
    began = time.perf_counter()
    versions, roles = await _mirror_facts(db, cases)
    problems = _problems(cases, versions, roles)
    if problems:
        raise CaseImportError(problems)
    definitions = await _definition_ids(flowable, {key: v.process_version for key, v in versions.items()})
    report = ImportReport(source=source, dry_run=dry_run, cases=len(cases))
    async with db.connect() as conn:
        done = {(r.process_key, r.legacy_id): r.process_instance_id for r in await conn.execute(SQL.imported, {
            "keys": [c.process_key for c in cases], "ids": [c.legacy_id for c in cases]})}
    for case in cases:
        if (case.process_key, case.legacy_id) in done:
            report.results.append(CaseResult(case.legacy_id, case.line, done[(case.process_key, case.legacy_id)],
                                             "ALREADY_IMPORTED"))
    if dry_run:
        report.seconds = time.perf_counter() - began
        return report
    gate = asyncio.Semaphore(CONCURRENCY)
    stopped = asyncio.Event()

    async def one(case: LegacyCase) -> None:
        async with gate:
            if stopped.is_set():
                return
            try:
                result = await _import(db, flowable, case, definitions[case.process_key], source=source, by=by)
            except (EngineUnavailable, DBAPIError) as err:
                if not stopped.is_set():
                    stopped.set()
                    report.stopped = str(err).splitlines()[0]
                    log.error("import of %s stopped, the rest is left for a rerun: %s", source, err)
                return
            report.results.append(result)
            if progress:
                progress("imported", 1)

    await asyncio.gather(*(one(c) for c in cases if (c.process_key, c.legacy_id) not in done))
    report.results.sort(key=lambda r: r.line)
    report.seconds = time.perf_counter() - began
    log.info("import of %s: %s in %.1fs", source, report.counts, report.seconds)
    return report


async def _definition_ids(flowable: FlowableClient, versions: dict[str, int]) -> dict[str, str]:
    """process key -> the engine's definition id of its active version (versions: key -> version number)."""
    ids = {}
    for key, version in versions.items():
        found = await flowable.process_definitions(key=key, version=version)
        if not found:
            raise CaseImportError([f"the engine has no version {version} of {key}, the active one in the mirror"])
        ids[key] = found[0]["id"]
    return ids


async def _import(db: AsyncEngine, flowable: FlowableClient, case: LegacyCase, definition_id: str, *,
                  source: str, by: str) -> CaseResult:
    pid = case.instance_id
    body: dict[str, Any] = {"processInstanceId": pid, "processDefinitionId": definition_id,
                            "businessKey": case.business_key, "activityId": case.activity,
                            "variables": case.variables}
    if case.assignee:
        body["assignee"] = case.assignee
    if case.candidate_groups is not None:
        body["candidateGroups"] = list(case.candidate_groups)
    if case.due_date:
        body["dueDate"] = engine_time(case.due_date)
    try:
        answer, at = await flowable.import_case(body, acting_user=by)
    except FlowableError as err:
        return CaseResult(case.legacy_id, case.line, pid, "FAILED", err.message)
    if answer.get("ended"):
        return CaseResult(case.legacy_id, case.line, pid, "FAILED",
                          "its instance was imported before and has ended since; the ledger lacks it")
    await resync_instances(db, flowable, [pid])  # the instance and its tasks, as the reconciler reads them
    legacy = {"legacyId": case.legacy_id, "source": f"{source}:{case.line}",
              "createdAt": engine_time(case.created_at) if case.created_at else None,
              "dueDate": engine_time(case.due_date) if case.due_date else None}
    async with db.begin() as conn:
        await lock_entities(conn, [pid])
        await bridge_events.record(conn, bridge_events.imported_process(pid, legacy, actor=by, at=at))
        await conn.execute(SQL.record_import, {
            "process_key": case.process_key, "legacy_id": case.legacy_id, "process_instance_id": pid,
            "activity_id": case.activity, "source": f"{source}:{case.line}", "legacy_created_at": case.created_at,
            "legacy_due_date": case.due_date, "imported_by": by})
    return CaseResult(case.legacy_id, case.line, pid, "IMPORTED")
