"""What a BPMN file means to the bridge: processes, departments, user tasks, queues, roles, routes and start
variables, and the issues found reading it (bridge/bpmn/reader.py builds these)."""

from __future__ import annotations

from dataclasses import dataclass, field

from bridge.errors import BridgeError

BPMN_NS = "http://www.omg.org/spec/BPMN/20100524/MODEL"
FLOWABLE_NS = "http://flowable.org/bpmn"
ACTIVITI_NS = "http://activiti.org/bpmn"
ONECMS_NS = "urn:onecms:bpmn:1.0"

QUEUE_TYPES = ("STANDARD", "PRIORITY", "SPECIALIZED", "OVERFLOW")
ROLE_TYPES = ("SYSTEM", "DEPARTMENT", "CUSTOM")
DEFAULT_QUEUE_SLA_MINUTES = 480
DEFAULT_QUEUE_CAPACITY = 100

ERROR, WARNING = "error", "warning"

# -- the model ---------------------------------------------------------------------------------------
# Plain slotted records, not frozen ones: a frozen dataclass's __init__ costs three times as much, and
# the reader makes one per task, queue, role, route and timer. Nothing mutates them after the read.

MAX_RETENTION_DAYS = 36500  # a hundred years: migration 0023's check


@dataclass(frozen=True)
class Issue:
    file: str
    line: int | None
    element_id: str | None
    code: str
    message: str
    severity: str = ERROR

    def as_json(self) -> dict:
        """The API's and `bridge lint --format json`'s form."""
        return {"file": self.file, "line": self.line, "elementId": self.element_id, "code": self.code,
                "message": self.message, "severity": self.severity}

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        element = f" [{self.element_id}]" if self.element_id else ""
        return f"{where}{element}: {self.severity}: {self.message} ({self.code})"


@dataclass(slots=True)
class Department:
    code: str
    name: str
    lane_id: str
    declared: bool = False  # from <onecms:department>, not derived from the lane's name


@dataclass(slots=True)
class SlaTimer:
    boundary_id: str
    kind: str  # timeDuration | timeDate | timeCycle
    value: str
    minutes: int | None  # None for expressions, dates and cycles
    interrupting: bool


@dataclass(slots=True)
class UserTask:
    id: str
    name: str | None
    line: int | None
    lane_id: str | None
    department: str | None
    candidate_groups: tuple[str, ...]
    candidate_users: tuple[str, ...]
    assignee: str | None
    form_key: str | None
    priority: str | None  # as written: a number or an expression
    due_date: str | None  # as written: ISO date/duration or an expression
    queue: str
    sla_timers: tuple[SlaTimer, ...] = ()


@dataclass(slots=True)
class Queue:
    name: str
    type: str
    sla_minutes: int
    max_capacity: int
    department: str | None
    declared: bool  # from <onecms:queue>, not derived
    # what the file sets beyond SLA and capacity (bridge/queue_settings.py names), applied on deploy
    settings: dict = field(default_factory=dict)


@dataclass(slots=True)
class Role:
    code: str
    name: str
    type: str
    department: str | None
    home_queue: str | None
    declared: bool = False  # from <onecms:role>, not derived from a candidate group


@dataclass(slots=True)
class Route:
    gateway_id: str
    flow_id: str
    name: str | None
    condition: str | None
    is_default: bool
    target_id: str
    target_department: str | None


@dataclass(slots=True, frozen=True)
class StartVariable:
    """A variable a start must (or may) carry, from <onecms:entryCriteria>; values empty: any value."""
    name: str
    values: tuple[str, ...]
    required: bool

    def problem(self, variables: dict) -> str | None:
        """Why `variables` do not satisfy this criterion, or None."""
        if self.name not in variables or variables[self.name] is None:
            return f"{self.name}: required" if self.required else None
        value = variables[self.name]
        if self.values and value not in self.values:
            return f"{self.name}: {value!r} is not one of {', '.join(self.values)}"
        return None

    def stored(self) -> dict:
        return {"values": list(self.values), "required": self.required}

    @classmethod
    def from_stored(cls, name: str, stored) -> StartVariable:
        # definitions deployed before start variables were checked hold a bare list of values: not required
        if isinstance(stored, list):
            return cls(name, tuple(stored), False)
        return cls(name, tuple(stored.get("values") or ()), bool(stored.get("required")))


@dataclass(slots=True)
class Process:
    key: str
    name: str | None
    executable: bool
    line: int | None
    version_tag: str | None = None
    business_app: str | None = None
    process_sla_minutes: int | None = None
    retention_days: int | None = None  # <onecms:workflow retentionDays>: bridge/retention.py
    start_variables: dict[str, StartVariable] = field(default_factory=dict)
    departments: list[Department] = field(default_factory=list)
    user_tasks: list[UserTask] = field(default_factory=list)
    queues: list[Queue] = field(default_factory=list)
    roles: list[Role] = field(default_factory=list)
    assignments: list[tuple[str, str]] = field(default_factory=list)  # (role code, queue name)
    routes: list[Route] = field(default_factory=list)
    end_events: dict[str, str | None] = field(default_factory=dict)  # id -> name, sub-processes' too
    # activity id -> (kind, name), sub-processes' too
    activities: dict[str, tuple[str, str | None]] = field(default_factory=dict)

    def sla_config(self) -> dict:
        return {
            "processSlaMinutes": self.process_sla_minutes,
            "tasks": {t.id: {"queue": t.queue, "dueDate": t.due_date,
                             "timers": [{"id": s.boundary_id, s.kind: s.value, "minutes": s.minutes,
                                         "interrupting": s.interrupting} for s in t.sla_timers]}
                      for t in self.user_tasks},
            "queues": {q.name: q.sla_minutes for q in self.queues},
        }

    def routing_rules(self) -> dict:
        rules: dict[str, list[dict]] = {}
        for r in self.routes:
            rules.setdefault(r.gateway_id, []).append({
                "flow": r.flow_id, "name": r.name, "condition": r.condition, "default": r.is_default,
                "target": r.target_id, "targetDepartment": r.target_department})
        return rules


@dataclass(slots=True)
class BpmnMetadata:
    filename: str
    processes: list[Process] = field(default_factory=list)
    issues: list[Issue] = field(default_factory=list)

    @property
    def errors(self) -> list[Issue]:
        return [i for i in self.issues if i.severity == ERROR]

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def executable_processes(self) -> list[Process]:
        return [p for p in self.processes if p.executable]


class BpmnError(BridgeError, ValueError):
    """A BPMN file that must not be deployed; `issues` says where and why."""

    def __init__(self, filename: str, issues: list[Issue]) -> None:
        self.filename, self.issues = filename, issues
        super().__init__("\n".join(str(i) for i in issues))
