"""What deploying a file changes, per process key, against the version the engine runs now: the plan that
`bridge deploy --dry-run` prints and `POST /api/deployments?dryRun=true` answers.

    plan = plan_process(deployed, wanted, from_version=1, to_version=2)
    plan.lines()      # ["OneCMS_Nextgen_WF v1 -> v2", "  activities: + userTask reviewX 'Review X'", ...]
    plan.as_json()    # {"processKey", "fromVersion", "toVersion", "changes": {"activities": [...], ...}}

Each change is {"change": added | removed | renamed | changed, "id", "from", "to"}, in six groups: activities
(any activity, by id; a new name is a rename), queues (type, department, SLA, capacity and the settings a file
sets, escalation apart), roles, SLAs (per user task: its queue's SLA, due date, timers; the process SLA), start
variables (<onecms:entryCriteria>) and escalation (each queue's escalation settings). Pure: the caller reads
the deployed file (bridge/deploy.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bridge.bpmn.model import Process

GROUPS = ("activities", "queues", "roles", "slas", "startVariables", "escalation")
_SIGN = {"added": "+", "removed": "-", "renamed": "~", "changed": "~"}


@dataclass
class ProcessPlan:
    process_key: str
    from_version: int | None  # None: a process the engine does not have yet
    to_version: int
    changes: dict[str, list[dict]] = field(default_factory=lambda: {group: [] for group in GROUPS})

    @property
    def unchanged(self) -> bool:
        return self.from_version == self.to_version

    def as_json(self) -> dict:
        return {"processKey": self.process_key, "fromVersion": self.from_version, "toVersion": self.to_version,
                "changes": self.changes}

    def lines(self) -> list[str]:
        if self.unchanged:
            return [f"{self.process_key} v{self.to_version}: unchanged"]
        head = (f"{self.process_key}: new process, v{self.to_version}" if self.from_version is None
                else f"{self.process_key} v{self.from_version} -> v{self.to_version}")
        body = [f"  {group}: {_text(change)}" for group in GROUPS for change in self.changes[group]]
        return [head, *(body or ["  no change of activities, queues, roles, SLAs, start variables or escalation"])]


def plan_process(deployed: Process | None, wanted: Process, *, from_version: int | None,
                 to_version: int) -> ProcessPlan:
    plan = ProcessPlan(wanted.key, from_version, to_version)
    if from_version == to_version:
        return plan
    before = deployed or Process(wanted.key, None, True, None)
    changes = plan.changes
    changes["activities"] = _activities(before.activities, wanted.activities)
    old_queues, new_queues = _queues(before), _queues(wanted)
    changes["queues"] = _compare({k: _without(v, "escalation") for k, v in old_queues.items()},
                                 {k: _without(v, "escalation") for k, v in new_queues.items()})
    changes["escalation"] = _compare({k: v["escalation"] for k, v in old_queues.items() if v.get("escalation")},
                                     {k: v["escalation"] for k, v in new_queues.items() if v.get("escalation")})
    changes["roles"] = _compare(*({r.code: {"name": r.name, "type": r.type, "department": r.department,
                                             "homeQueue": r.home_queue} for r in p.roles} for p in (before, wanted)))
    changes["slas"] = _compare(_slas(before), _slas(wanted))
    changes["startVariables"] = _compare(*({name: v.stored() for name, v in p.start_variables.items()}
                                           for p in (before, wanted)))
    return plan


def _activities(before: dict[str, tuple[str, str | None]], after: dict[str, tuple[str, str | None]]) -> list[dict]:
    found = []
    for node_id in sorted(before.keys() | after.keys()):
        old, new = before.get(node_id), after.get(node_id)
        if old is None and new is not None:
            found.append({"change": "added", "id": node_id, "from": None, "to": _activity(new)})
        elif new is None and old is not None:
            found.append({"change": "removed", "id": node_id, "from": _activity(old), "to": None})
        elif old != new and old is not None and new is not None:
            kind = "renamed" if old[0] == new[0] else "changed"
            found.append({"change": kind, "id": node_id, "from": _activity(old), "to": _activity(new)})
    return found


def _activity(node: tuple[str, str | None]) -> dict:
    return {"kind": node[0], "name": node[1]}


def _queues(process: Process) -> dict[str, dict]:
    return {q.name: {"type": q.type, "department": q.department, "slaMinutes": q.sla_minutes,
                     "maxCapacity": q.max_capacity, **q.settings} for q in process.queues}


def _slas(process: Process) -> dict[str, Any]:
    queue_sla = {q.name: q.sla_minutes for q in process.queues}
    slas: dict[str, Any] = {f"task {t.id}": {"queue": t.queue, "queueSlaMinutes": queue_sla.get(t.queue),
                                             "dueDate": t.due_date,
                                             "timers": [f"{s.kind} {s.value}" for s in t.sla_timers]}
                            for t in process.user_tasks}
    if process.process_sla_minutes is not None:
        slas["process"] = {"minutes": process.process_sla_minutes}
    return slas


def _without(values: dict, key: str) -> dict:
    return {k: v for k, v in values.items() if k != key}


def _compare(before: dict[str, Any], after: dict[str, Any]) -> list[dict]:
    """Added, removed and changed entries by name; a changed one carries only the fields that differ."""
    found = []
    for name in sorted(before.keys() | after.keys()):
        if name not in before:
            found.append({"change": "added", "id": name, "from": None, "to": after[name]})
        elif name not in after:
            found.append({"change": "removed", "id": name, "from": before[name], "to": None})
        elif before[name] != after[name]:
            old, new = before[name], after[name]
            if isinstance(old, dict) and isinstance(new, dict):
                keys = [k for k in sorted(old.keys() | new.keys()) if old.get(k) != new.get(k)]
                old, new = {k: old.get(k) for k in keys}, {k: new.get(k) for k in keys}
            found.append({"change": "changed", "id": name, "from": old, "to": new})
    return found


def _text(change: dict) -> str:
    sign, name, old, new = _SIGN[change["change"]], change["id"], change["from"], change["to"]
    if change["change"] == "added":
        return f"{sign} {name} {_value(new)}"
    if change["change"] == "removed":
        return f"{sign} {name}"
    if change["change"] == "renamed":
        return f"{sign} {name}: renamed {_value(old['name'])} -> {_value(new['name'])}"
    if isinstance(old, dict) and isinstance(new, dict):
        return f"{sign} {name}: " + ", ".join(f"{k} {_value(old.get(k))} -> {_value(new.get(k))}"
                                              for k in sorted(old.keys() | new.keys()))
    return f"{sign} {name}: {_value(old)} -> {_value(new)}"


def _value(value: Any) -> str:
    if isinstance(value, dict):
        if set(value) == {"kind", "name"}:
            return f"({value['kind']} {value['name']!r})" if value["name"] else f"({value['kind']})"
        return "(" + ", ".join(f"{k} {_value(v)}" for k, v in value.items()) + ")"
    if isinstance(value, list):
        return "[" + ", ".join(map(_value, value)) + "]"
    return "none" if value is None else repr(value) if isinstance(value, str) else str(value)
