"""The settings of a queue, declared once: their names (the same in the API, the CLI and the BPMN extension),
what values each takes, and how each is stored. Pure: no database; bridge/work/queues.py reads and writes
them, bridge/bpmn/reader.py reads them from <onecms:queue>.

    slaMinutes          whole minutes a task may wait (workflow_queues.sla_minutes): SLA breach, escalation steps
    maxCapacity         live tasks the queue holds before auto-assignment sends new ones to the overflow queue
    overflowQueue       that overflow queue (routing_rules.overflowQueue), or null for none
    escalation          what one escalation level does (escalation_config, bridge/work/escalation.py), an object
                        of raisePriorityBy (1-100), moveToQueue, notifyRole, maxLevel (1-10); {} for nothing
    autoAssign          true: the bridge assigns the queue's open tasks to the people of its roles
    assignmentStrategy  ROUND_ROBIN or LEAST_LOADED
    maxTasksPerUser     tasks of this queue one person may hold (claim-next and auto-assignment stop there)

The last three are stored on each of the queue's role assignments (flowable.queue_assignments) and set on
all of them together.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bridge.errors import BridgeError

STRATEGIES = ("ROUND_ROBIN", "LEAST_LOADED")
# escalation's keys: the API's name -> the key escalation_config stores (bridge/work/escalation.py reads it)
ESCALATION_KEYS = {"raisePriorityBy": "raise_priority_by", "moveToQueue": "move_to_queue",
                   "notifyRole": "notify_role", "maxLevel": "max_level"}
ASSIGNMENT_SETTINGS = ("autoAssign", "assignmentStrategy", "maxTasksPerUser")


class Invalid(BridgeError, ValueError):
    """A value a setting does not take; the message says which values it takes."""


def _whole(low: int, high: int) -> Callable[[Any], int]:
    def check(value: Any) -> int:
        if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
            value = int(value)  # from an XML attribute or the command line
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise Invalid(f"a whole number from {low} to {high}")
        return value
    return check


def _name(value: Any) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > 100:
        raise Invalid("a name (1 to 100 characters)")
    return value.strip()


def _optional_name(value: Any) -> str | None:
    return None if value is None or value == "" else _name(value)


def _flag(value: Any) -> bool:
    if value in ("true", "false"):
        return value == "true"
    if not isinstance(value, bool):
        raise Invalid("true or false")
    return value


def _strategy(value: Any) -> str:
    if value not in STRATEGIES:
        raise Invalid(f"one of {', '.join(STRATEGIES)}")
    return value


_ESCALATION_CHECKS: dict[str, Callable[[Any], Any]] = {
    "raisePriorityBy": _whole(1, 100), "moveToQueue": _name, "notifyRole": _name, "maxLevel": _whole(1, 10)}


def _escalation(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise Invalid("an object of " + ", ".join(ESCALATION_KEYS) + " ({} for none)")
    unknown = sorted(set(value) - set(ESCALATION_KEYS))
    if unknown:
        raise Invalid(f"{', '.join(map(str, unknown))} not known; it takes " + ", ".join(ESCALATION_KEYS))
    checked = {}
    for key, raw in value.items():
        try:
            checked[key] = _ESCALATION_CHECKS[key](raw)
        except Invalid as err:
            raise Invalid(f"{key}: {err}") from None
    return checked


@dataclass(frozen=True)
class Setting:
    name: str
    check: Callable[[Any], Any]


SETTINGS: dict[str, Setting] = {s.name: s for s in (
    Setting("slaMinutes", _whole(1, 525_600)),
    Setting("maxCapacity", _whole(1, 1_000_000)),
    Setting("overflowQueue", _optional_name),
    Setting("escalation", _escalation),
    Setting("autoAssign", _flag),
    Setting("assignmentStrategy", _strategy),
    Setting("maxTasksPerUser", _whole(1, 10_000)),
)}


def check(changes: Any) -> tuple[dict[str, Any], list[str]]:
    """`changes` (setting name -> value) checked one by one: the values as stored, and a problem for each
    unknown setting or value a setting does not take."""
    if not isinstance(changes, dict):
        return {}, ["settings: an object of " + ", ".join(SETTINGS)]
    checked, problems = {}, []
    for name, value in changes.items():
        setting = SETTINGS.get(name)
        if setting is None:
            problems.append(f"{name}: not a queue setting (the settings are {', '.join(SETTINGS)})")
            continue
        try:
            checked[name] = setting.check(value)
        except Invalid as err:
            problems.append(f"{name}: {err}")
    return checked, problems


def escalation_stored(escalation: dict[str, Any]) -> dict[str, Any]:
    return {ESCALATION_KEYS[k]: v for k, v in escalation.items()}


def escalation_shown(config: dict[str, Any]) -> dict[str, Any]:
    """escalation_config -> the API's form; keys the bridge does not know (written by hand) are left out."""
    shown = {v: k for k, v in ESCALATION_KEYS.items()}
    return {shown[k]: v for k, v in (config or {}).items() if k in shown}
