"""BPMN 2.0 files -> the metadata the bridge needs (departments, roles, queues, SLAs), and their validation.

    result = parse_bpmn(data, filename="OneCMS_Nextgen_WF.bpmn20.xml")
    result.ok           # no error-level issue: deployable
    result.issues       # Issue(file, line, element_id, code, message, severity), in the order found
    result.processes    # Process(key, name, departments, user_tasks, queues, roles, assignments, ...)

Reads any Flowable BPMN file, not only ours: the `flowable` and legacy `activiti` attribute
namespaces, expressions (`${...}`, `#{...}`) kept as written. Who may work on a user task is read the way
Flowable's converter (UserTaskXMLConverter) reads it, so a task Flowable deploys with candidates or an
assignee is never refused as UNASSIGNED_USER_TASK:
  * attributes candidateGroups / candidateUsers / assignee (flowable, else activiti, else camunda namespace);
    owner is read but alone does not count: the engine makes it the task's owner, neither assignee nor candidate;
  * <potentialOwner> with resourceAssignmentExpression/formalExpression "user(a), group(b), c" (plain = group),
    or with <resourceRef>: the name of the <resource> of that id in the file, else the id itself;
  * <humanPerformer> with a formalExpression: the assignee (it replaces the assignee attribute);
  * <customResource name="candidate"> (flowable/activiti/camunda:name or plain name) with a formalExpression
    like potentialOwner's: custom identity links; only type "candidate" makes candidates, other types
    (participant, ...) give nobody a task to claim.
  These may be children of the userTask or of its extensionElements, in any namespace, as for Flowable.
Our own extension elements (namespace urn:onecms:bpmn:1.0) refine what is derived:

    <lane><extensionElements><onecms:department code="LEGAL" name="Legal"/>          lane -> department
    <userTask><extensionElements><onecms:queue name=".." type=".." slaMinutes=".." maxCapacity=".."/>
    <process><extensionElements><onecms:workflow businessApp=".." versionTag=".." processSlaMinutes=".."
                                                 retentionDays="..">
                                    <onecms:entryCriteria variable="caseType" values="A,B" required="true"/>
                                <onecms:role code=".." type="SYSTEM|DEPARTMENT|CUSTOM" name=".."/>

Without them (any third-party file) the defaults are:
  * department of a lane: code = the lane's name (or id) in UPPER_SNAKE, name = the lane's name.
  * queue of a user task: name = <BASE>_<GROUP>, where BASE is the task's department code (or the
    process key when the process has no lanes) and GROUP its first literal candidate group
    (DYNAMIC when the groups are expressions, DIRECT when the task names people, not groups);
    type STANDARD, capacity 100, SLA = the task's first SLA timer, else its due date when that is a
    duration, else 480 minutes.
  * role of a literal candidate group: code = the group; type DEPARTMENT with that department when all
    its tasks lie in one department, else CUSTOM without one; name = the code in words.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from lxml import etree

from bridge import queue_settings
from bridge.bpmn import policy
from bridge.bpmn.model import (
    ACTIVITI_NS,
    BPMN_NS,
    DEFAULT_QUEUE_CAPACITY,
    DEFAULT_QUEUE_SLA_MINUTES,
    ERROR,
    FLOWABLE_NS,
    MAX_RETENTION_DAYS,
    ONECMS_NS,
    QUEUE_TYPES,
    ROLE_TYPES,
    WARNING,
    BpmnError,
    BpmnMetadata,
    Department,
    Issue,
    Process,
    Queue,
    Role,
    Route,
    SlaTimer,
    StartVariable,
    UserTask,
)
from bridge.bpmn.safe_xml import read_xml

# Flow nodes: what sequence flows may connect and lanes may hold.
_ACTIVITIES = {"task", "userTask", "serviceTask", "scriptTask", "businessRuleTask", "manualTask", "receiveTask",
               "sendTask", "callActivity", "subProcess", "transaction", "adHocSubProcess"}
_EVENTS = {"startEvent", "endEvent", "intermediateCatchEvent", "intermediateThrowEvent", "boundaryEvent"}
_GATEWAYS = {"exclusiveGateway", "inclusiveGateway", "parallelGateway", "eventBasedGateway", "complexGateway"}
FLOW_NODES = _ACTIVITIES | _EVENTS | _GATEWAYS
_SCOPES = {"process", "subProcess", "transaction", "adHocSubProcess"}
# Everything else the BPMN 2.0 schema allows directly inside a process or sub-process.
_OTHER_PROCESS_CHILDREN = {
    "documentation", "extensionElements", "auditing", "monitoring", "property", "laneSet", "sequenceFlow",
    "dataObject", "dataObjectReference", "dataStoreReference", "textAnnotation", "association", "group",
    "ioSpecification", "ioBinding", "performer", "humanPerformer", "potentialOwner", "resourceRole",
    "correlationSubscription", "supports", "multiInstanceLoopCharacteristics", "standardLoopCharacteristics",
    "incoming", "outgoing", "dataInputAssociation", "dataOutputAssociation", "completionCondition",
}
# Attributes without a namespace that the BPMN 2.0 schema allows (engine attributes are namespaced).
_ACTIVITY_ATTRS = {"id", "name", "isForCompensation", "startQuantity", "completionQuantity", "default"}
_ALLOWED_ATTRIBUTES: dict[str, set[str]] = {
    "process": {"id", "name", "processType", "isClosed", "isExecutable", "definitionalCollaborationRef"},
    "sequenceFlow": {"id", "name", "sourceRef", "targetRef", "isImmediate"},
    **{name: _ACTIVITY_ATTRS for name in ("task", "manualTask")},
    **{name: _ACTIVITY_ATTRS | {"implementation"} for name in ("userTask", "businessRuleTask")},
    "serviceTask": _ACTIVITY_ATTRS | {"implementation", "operationRef"},
    "sendTask": _ACTIVITY_ATTRS | {"implementation", "messageRef", "operationRef"},
    "receiveTask": _ACTIVITY_ATTRS | {"implementation", "instantiate", "messageRef", "operationRef"},
    "scriptTask": _ACTIVITY_ATTRS | {"scriptFormat"},
    "callActivity": _ACTIVITY_ATTRS | {"calledElement"},
    "subProcess": _ACTIVITY_ATTRS | {"triggeredByEvent"},
    "transaction": _ACTIVITY_ATTRS | {"triggeredByEvent", "method"},
    "adHocSubProcess": _ACTIVITY_ATTRS | {"triggeredByEvent", "cancelRemainingInstances", "ordering"},
    "startEvent": {"id", "name", "parallelMultiple", "isInterrupting"},
    "intermediateCatchEvent": {"id", "name", "parallelMultiple"},
    "boundaryEvent": {"id", "name", "parallelMultiple", "cancelActivity", "attachedToRef"},
    **{name: {"id", "name"} for name in ("endEvent", "intermediateThrowEvent")},
    "parallelGateway": {"id", "name", "gatewayDirection"},
    **{name: {"id", "name", "gatewayDirection", "default"}
       for name in ("exclusiveGateway", "inclusiveGateway", "complexGateway")},
    "eventBasedGateway": {"id", "name", "gatewayDirection", "instantiate", "eventGatewayType"},
}
_ISO_DURATION = re.compile(
    r"^P(?!$)(?:(?P<y>\d+)Y)?(?:(?P<mo>\d+)M)?(?:(?P<w>\d+)W)?(?:(?P<d>\d+)D)?"
    r"(?:T(?=\d)(?:(?P<h>\d+)H)?(?:(?P<mi>\d+)M)?(?:(?P<s>\d+(?:\.\d+)?)S)?)?$")


# -- helpers -----------------------------------------------------------------------------------------

# Tags and attribute keys as lxml spells them (Clark names); plain string work on these is the cheap way
# to ask an element what it is.
_BPMN = f"{{{BPMN_NS}}}"
_FLOWABLE = f"{{{FLOWABLE_NS}}}"
_ACTIVITI = f"{{{ACTIVITI_NS}}}"
_ONECMS = f"{{{ONECMS_NS}}}"
_CAMUNDA = "{http://camunda.org/schema/1.0/bpmn}"  # Flowable reads task attributes from it too (BpmnXMLUtil)
_DEFINITIONS_TAG = _BPMN + "definitions"
_PROCESS_TAG = _BPMN + "process"
_EXTENSIONS_TAG = _BPMN + "extensionElements"
_LANE_TAG = _BPMN + "lane"
_TIMER_TAG = _BPMN + "timerEventDefinition"
_FLOW_NODE_REF_TAG = _BPMN + "flowNodeRef"
_CHILD_LANE_SET_TAG = _BPMN + "childLaneSet"
_EXPRESSION = re.compile(r"[$#]\{")
_NOT_UPPER_ALNUM = re.compile(r"[^A-Z0-9]+")
_UPPER_SNAKE = re.compile(r"[A-Z0-9]+(?:_[A-Z0-9]+)*")


def _local(element) -> str:
    return element.tag.rpartition("}")[2]  # every node is an element: the parser drops comments and PIs


def _engine_attr(attributes, name: str) -> str | None:
    """An attribute in the flowable namespace, else the legacy activiti one (from a dict or element.attrib)."""
    value = attributes.get(_FLOWABLE + name)
    return value if value is not None else attributes.get(_ACTIVITI + name)


def _assignment_attr(attributes: dict[str, str], name: str) -> str | None:
    """A user task's assignment attribute as Flowable's BpmnXMLUtil.getAttributeValue reads it: flowable, else
    activiti, else camunda namespace (the first present wins, even when empty)."""
    value = attributes.get(_FLOWABLE + name)
    if value is None:
        value = attributes.get(_ACTIVITI + name)
        if value is None:
            value = attributes.get(_CAMUNDA + name)
    return value


def _formal_expression_text(role) -> str | None:
    """The text of <role><resourceAssignmentExpression><formalExpression>, read as Flowable's child parsers read
    it: only the first child element of each counts, by local name in any namespace ("" when empty); None when
    the shape differs. (The XML parser drops comments and PIs, so element[0] is the first child element.)"""
    if not len(role):
        return None
    assignment = role[0]
    if _local(assignment) != "resourceAssignmentExpression" or not len(assignment):
        return None
    expression = assignment[0]
    return (expression.text or "") if _local(expression) == "formalExpression" else None


def _split_identities(text: str) -> list[tuple[bool, str]]:
    """'user(kermit), group(sales), ${x}' -> [(True, 'kermit'), (False, 'sales'), (False, '${x}')]: (is a user,
    id), as Flowable's PotentialOwnerParser reads a formalExpression. Its CommaSplitter splits on commas outside
    ${...} / #{...} and drops pieces of one character or less before trimming (so a lone one-letter group is
    no candidate in Flowable either); user(..) and group(..) lose the prefix and the last character; anything
    else is a group."""
    pieces: list[str] = []
    if "," not in text:
        if len(text) > 1:
            pieces.append(text)
    else:
        start, in_expression = 0, False
        for index, char in enumerate(text):
            if char == "," and not in_expression:
                if index - start > 1:
                    pieces.append(text[start:index])
                start = index + 1
            elif (char == "$" or char == "#") and text[index + 1:index + 2] == "{":
                in_expression = True
            elif char == "}":
                in_expression = False
        if len(text) - start > 1:
            pieces.append(text[start:])
    identities = []
    for piece in pieces:
        value = piece.strip()
        if value.startswith("user("):
            identities.append((True, value[5:-1].strip()))
        elif value.startswith("group("):
            identities.append((False, value[6:-1].strip()))
        elif value:
            identities.append((False, value))
    return identities


def _first_child(element, tag: str):
    """The first child with this Clark tag. A Python loop over the few children BPMN elements have beats
    iterchildren(tag), whose per-call setup costs more than the loop."""
    for child in element:
        if child.tag == tag:
            return child
    return None


def is_expression(value: str) -> bool:
    return "{" in value and _EXPRESSION.search(value) is not None


def split_candidates(value: str | None) -> tuple[str, ...]:
    """'a, b, ${svc.find(x, y)}' -> ('a', 'b', '${svc.find(x, y)}'): commas inside expressions stay."""
    if not value:
        return ()
    if "," not in value:  # one candidate, the usual case
        value = value.strip()
        return (value,) if value else ()
    if "{" not in value:  # no expression: a plain split will do
        return tuple(part.strip() for part in value.split(",") if part.strip())
    parts: list[str] = []
    current: list[str] = []
    depth, quote = 0, None
    for char in value:
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"" and depth:
            quote = char
        elif char == "{":
            depth += 1
        elif char == "}":
            depth = max(0, depth - 1)
        elif char == "," and depth == 0:
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    parts.append("".join(current))
    return tuple(p.strip() for p in parts if p.strip())


def upper_snake(text: str) -> str:
    upper = text.upper()
    if _UPPER_SNAKE.fullmatch(upper):  # already in shape, as most keys and group codes are
        return upper
    return _NOT_UPPER_ALNUM.sub("_", upper).strip("_") or "UNNAMED"


def default_queue_name(base: str, candidate_groups: Iterable[str]) -> str:
    """The documented default queue: <BASE>_<first literal group | DYNAMIC | DIRECT>, in UPPER_SNAKE.

    BASE is the task's department code, or the process key where there are no lanes."""
    qualifier = "DIRECT"
    for group in candidate_groups:
        if not is_expression(group):
            qualifier = group
            break
        qualifier = "DYNAMIC"
    return upper_snake(f"{base}_{qualifier}")[:100]


def duration_minutes(value: str) -> int | None:
    """Minutes of an ISO-8601 duration without years or months (their length varies); else None."""
    match = _ISO_DURATION.match(value.strip())
    if not match or match["y"] or match["mo"]:
        return None
    seconds = (int(match["w"] or 0) * 7 * 86400 + int(match["d"] or 0) * 86400 + int(match["h"] or 0) * 3600
               + int(match["mi"] or 0) * 60 + float(match["s"] or 0))
    return int(seconds // 60)


def is_iso_duration(value: str) -> bool:
    return bool(_ISO_DURATION.match(value.strip()))


def is_iso_datetime(value: str) -> bool:
    try:
        datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        return True
    except ValueError:
        return False


# Every BPMN id as a plain string, collected inside libxml2 (for the duplicate-id check).
_BPMN_IDS = etree.XPath("//b:*/@id", namespaces={"b": BPMN_NS}, smart_strings=False, regexp=False)


def parse_bpmn(data: bytes, filename: str = "<bpmn>", *, allowed_delegates: Iterable[str] = ()) -> BpmnMetadata:
    """Parse and validate, the deploy policy included (bridge/bpmn/policy.py: what the file may make the engine
    run; `allowed_delegates` are the site's own Java classes and beans); never raises on bad input (the issues
    say what is wrong)."""
    result = BpmnMetadata(filename)
    root, issues = read_xml(data, filename)
    result.issues.extend(issues)
    if root is None:
        return result
    if root.tag != _DEFINITIONS_TAG:
        qname = etree.QName(root.tag)
        result.issues.append(Issue(filename, root.sourceline, None, "NOT_BPMN",
                                   f"root element is <{qname.localname}> in namespace '{qname.namespace or ''}'; "
                                   f"a BPMN file starts with <definitions xmlns=\"{BPMN_NS}\">"))
        return result
    _Reader(filename, root, result, _BPMN_IDS(root)).read()
    for violation in policy.violations(root, allowed_delegates=allowed_delegates):
        owner = next((e for e in violation.element.iterancestors() if e.get("id")), None) \
            if violation.element.get("id") is None else violation.element
        result.issues.append(Issue(filename, violation.element.sourceline, owner.get("id") if owner is not None
                                   else None, violation.code, violation.message))
    return result


def load_bpmn(data: bytes, filename: str = "<bpmn>", *, allowed_delegates: Iterable[str] = ()) -> BpmnMetadata:
    """parse_bpmn, raising BpmnError when the file has errors (for deploying)."""
    result = parse_bpmn(data, filename, allowed_delegates=allowed_delegates)
    if not result.ok:
        raise BpmnError(filename, result.errors)
    return result


class _Node:
    """A flow node or sequence flow met in the scan, its attributes read out of lxml once (as a dict):
    every element.get() with a namespaced key parses that key again, and a user task is asked for seven."""

    __slots__ = ("element", "kind", "attrs", "id", "scope", "event_definition")

    def __init__(self, element, kind: str, attrs: dict[str, str], scope: _Node | None) -> None:
        self.element, self.kind, self.attrs, self.scope = element, kind, attrs, scope
        self.id = attrs.get("id")
        self.event_definition: Any = None  # events: their first <...EventDefinition> child (lxml, untyped)


class _Scan:
    """What one pass over a process and its sub-processes found."""

    __slots__ = ("nodes", "in_order", "by_kind", "flows", "outgoing", "timer_events", "lane_sets", "extensions")

    def __init__(self) -> None:
        self.nodes: dict[str, _Node] = {}  # flow nodes by id
        self.in_order: list[_Node] = []  # every flow node, scopes in walk order
        self.by_kind: dict[str, list[_Node]] = {}
        self.flows: list[_Node] = []
        self.outgoing: dict[str | None, list[_Node]] = {}  # flows by sourceRef
        self.timer_events: list[_Node] = []  # start, catch and boundary events with a timer definition
        self.lane_sets: list = []
        self.extensions: list = []  # the process's own <extensionElements>


# User task children that name who may work on it (any namespace, as Flowable's parsers match local names).
_ASSIGNMENT_ELEMENTS = ("potentialOwner", "humanPerformer", "customResource")
# A scope's children by Clark tag: those the scan records as nodes and flows, and the rest it accepts.
_SCANNED = {_BPMN + name: name for name in FLOW_NODES | {"sequenceFlow"}}
_SCOPE_CONTENT = {_BPMN + name: name for name in _OTHER_PROCESS_CHILDREN}
_EVENTS_WITH_TIMERS = {"startEvent", "intermediateCatchEvent", "boundaryEvent"}
_TIME_KINDS = ("timeDuration", "timeDate", "timeCycle")


class _Reader:
    def __init__(self, filename: str, root, result: BpmnMetadata, ids: list[str]) -> None:
        self.filename, self.root, self.result, self.ids = filename, root, result, ids
        # <resource id name> of the file, as Flowable sees them from the process being read: by id, those
        # declared before it (what a <potentialOwner><resourceRef> finds), and those declared after it.
        self.resources_before: dict[str, str | None] = {}
        self.resources_after: list[tuple[str, str | None]] = []

    def issue(self, element, code: str, message: str, severity: str = ERROR, element_id: str | None = None) -> None:
        self.result.issues.append(Issue(self.filename, getattr(element, "sourceline", None),
                                        element_id if element_id is not None else element.get("id"),
                                        code, message, severity))

    def issue_at(self, line: int | None, code: str, message: str, element_id: str | None) -> None:
        self.result.issues.append(Issue(self.filename, line, element_id, code, message, ERROR))

    def read(self) -> None:
        self._check_ids()
        processes: list[tuple[int, Any]] = []
        resources: list[tuple[int, str, str | None]] = []  # (position, id, name), read once per file
        for position, child in enumerate(self.root):
            if child.tag == _PROCESS_TAG:
                processes.append((position, child))
            elif child.tag.endswith("resource") and _local(child) == "resource" and child.get("id") is not None:
                resources.append((position, child.get("id"), child.get("name")))  # any namespace, as Flowable
        if not processes:
            self.issue(self.root, "NO_PROCESS", "the file defines no <process>")
            return
        for position, element in processes:
            if resources:
                self.resources_before = {rid: name for at, rid, name in resources if at < position}
                self.resources_after = [(rid, name) for at, rid, name in resources if at > position]
            self.result.processes.append(self._process(element))
        if not any(p.executable for p in self.result.processes):
            first = processes[0][1]
            self.issue(first, "NO_EXECUTABLE_PROCESS", "no executable process: every <process> has "
                       "isExecutable=\"false\"", element_id=first.get("id"))

    # -- whole-document checks --

    def _check_ids(self) -> None:
        if len(set(self.ids)) == len(self.ids):  # the common case: no element walk needed
            return
        seen: dict[str, int | None] = {}
        for element in self.root.iter(_BPMN + "*"):
            ident = element.get("id")
            if ident is None:
                continue
            if ident in seen:
                self.issue(element, "DUPLICATE_ID",
                           f"id '{ident}' is already used by the element on line {seen[ident]}")
            else:
                seen[ident] = element.sourceline

    # -- one process --

    def _process(self, element) -> Process:
        attrs = dict(element.items())
        key = attrs.get("id")
        if not key:
            self.issue(element, "MISSING_ID", "<process> has no id (the id is the process key)")
        process = Process(key=key or "", name=attrs.get("name"), line=element.sourceline,
                          executable=attrs.get("isExecutable", "true").strip().lower() != "false")
        self._check_attributes(element, "process", attrs)
        scan = self._scan(element, process.executable)
        for extensions in scan.extensions:  # third-party files rarely have ours
            self._process_extensions(extensions, process)
        process.version_tag = process.version_tag or _engine_attr(attrs, "versionTag")
        lane_of, departments = self._lanes(scan.lane_sets)
        process.departments = departments
        department_of_lane = {d.lane_id: d.code for d in departments}

        outgoing = scan.outgoing
        self._check_event_gateways(scan, outgoing)
        if process.executable and lane_of:
            for node in scan.in_order:
                if node.kind in _ACTIVITIES and _lane_of(node, lane_of, scan.nodes) is None:
                    self.issue(node.element, "OUTSIDE_LANES", f"<{node.kind}> is in no lane, but this process uses "
                               "lanes: add it to a lane's flowNodeRef")
        timers = self._sla_timers(scan)
        declared_roles = self._declared_roles(element, scan.extensions)
        queues: dict[str, Queue] = {}
        for node in scan.by_kind.get("userTask", ()):
            process.user_tasks.append(
                self._user_task(node, process, lane_of, department_of_lane, scan.nodes, timers, queues))
        process.queues = list(queues.values())
        process.roles, process.assignments = _roles(process, declared_roles)
        self._check_queue_references(process)
        process.routes = _routes(scan, outgoing, lane_of, department_of_lane)
        process.end_events = {n.id: n.attrs.get("name") for n in scan.by_kind.get("endEvent", ()) if n.id}
        process.activities = {n.id: (n.kind, n.attrs.get("name")) for n in scan.in_order
                              if n.kind in _ACTIVITIES and n.id}
        return process

    def _scan(self, process, executable: bool) -> _Scan:
        """One pass over the direct children of the process and of its sub-processes, checking each
        element on the way: the reader touches nothing else of a scope's content but what it needs."""
        scan = _Scan()
        stack: list[tuple[Any, _Node | None]] = [(process, None)]  # lxml elements (untyped)
        while stack:
            scope, scope_node = stack.pop()
            none_starts, has_start = [], False
            for child in scope:  # elements only: the parser drops comments and PIs
                tag = child.tag
                name = _SCANNED.get(tag)
                if name is None:
                    other = _SCOPE_CONTENT.get(tag)
                    if other == "laneSet":
                        scan.lane_sets.append(child)
                    elif other == "extensionElements" and scope_node is None:
                        scan.extensions.append(child)
                    elif other is None and tag.startswith(_BPMN):
                        self.issue(child, "UNKNOWN_ELEMENT", f"<{tag[len(_BPMN):]}> is not a BPMN process element")
                    elif other is None and tag[0] != "{":
                        self.issue(child, "UNKNOWN_ELEMENT", f"<{tag}> is not a BPMN element (no namespace)")
                    continue
                node = _Node(child, name, dict(child.items()), scope_node)
                self._check_attributes(child, name, node.attrs)
                if not node.id:
                    # The engine invents ids for these; a user task needs a stable one (its queue, its mirror rows).
                    self.issue(child, "MISSING_ID", f"<{name}> has no id", ERROR if name == "userTask" else WARNING,
                               element_id="")
                if name == "sequenceFlow":
                    scan.flows.append(node)
                    scan.outgoing.setdefault(node.attrs.get("sourceRef"), []).append(node)
                    continue
                if node.id:
                    scan.nodes.setdefault(node.id, node)
                scan.in_order.append(node)
                scan.by_kind.setdefault(name, []).append(node)
                if name in _EVENTS and len(child):
                    for grandchild in child:
                        if grandchild.tag.endswith("EventDefinition"):
                            node.event_definition = grandchild
                            if grandchild.tag == _TIMER_TAG and name in _EVENTS_WITH_TIMERS:
                                scan.timer_events.append(node)
                            break
                if name == "startEvent":
                    has_start = True
                    if node.event_definition is None:
                        none_starts.append(child)
                elif name in _ACTIVITIES:
                    if len(child):
                        self._check_multi_instance(child)
                    if name in _SCOPES:
                        stack.append((child, node))
            if scope is process and executable and not has_start:
                self.issue(scope, "NO_START_EVENT", "the process has no start event: it can only be started by "
                           "other means (e.g. as a called process)", WARNING)
            if len(none_starts) > 1:
                ids = ", ".join(s.get("id") or "?" for s in none_starts)
                self.issue(none_starts[1], "MULTIPLE_NONE_START",
                           f"more than one start event without an event definition in one scope ({ids}): "
                           "the engine could not tell which to start")
        for flow in scan.flows:
            self._check_flow(flow, scan.nodes)
        return scan

    def _process_extensions(self, extensions, process: Process) -> None:
        for ext in extensions.iterchildren(_ONECMS + "workflow"):
            process.business_app = ext.get("businessApp") or process.business_app
            process.version_tag = ext.get("versionTag") or process.version_tag
            if ext.get("processSlaMinutes"):
                process.process_sla_minutes = self._positive_int(ext, "processSlaMinutes")
            if ext.get("retentionDays"):
                days = self._positive_int(ext, "retentionDays", process.key)
                if days is not None and days > MAX_RETENTION_DAYS:
                    self.issue(ext, "BAD_EXTENSION", f'retentionDays="{days}" is more than {MAX_RETENTION_DAYS}',
                               element_id=process.key)
                    days = None
                process.retention_days = days
            for criterion in ext.iterchildren(_ONECMS + "entryCriteria"):
                variable = criterion.get("variable")
                if not variable:
                    self.issue(criterion, "BAD_EXTENSION", "<onecms:entryCriteria> needs a variable attribute",
                               element_id=process.key)
                    continue
                required = criterion.get("required", "true").strip()
                if required not in ("true", "false"):
                    self.issue(criterion, "BAD_EXTENSION", f'required="{required}" must be true or false',
                               element_id=process.key)
                values = tuple(v.strip() for v in criterion.get("values", "").split(",") if v.strip())
                process.start_variables[variable] = StartVariable(variable, values, required != "false")

    def _positive_int(self, element, attribute: str, owner_id: str | None = None) -> int | None:
        raw = element.get(attribute)
        if raw is not None and raw.strip().isascii() and raw.strip().isdigit() and int(raw) > 0:
            return int(raw)
        self.issue(element, "BAD_EXTENSION", f"{attribute}=\"{raw}\" must be a positive whole number",
                   element_id=owner_id)
        return None

    def _lanes(self, lane_sets: list) -> tuple[dict[str, str], list[Department]]:
        """Node id -> lane id, and the departments: one per leaf lane (a parent lane's child lanes are the
        departments), in document order."""
        lane_of: dict[str, str] = {}
        departments: dict[str, Department] = {}
        if not lane_sets:
            return lane_of, []
        pending = [lane for lane_set in reversed(lane_sets) for lane in reversed(lane_set)]
        while pending:
            lane = pending.pop()
            if lane.tag != _LANE_TAG:
                continue
            refs, child_lanes, declared = [], None, None
            for child in lane:  # one pass: a lane's children are mostly its flowNodeRefs
                tag = child.tag
                if tag == _FLOW_NODE_REF_TAG:
                    if child.text and child.text.strip():
                        refs.append(child.text.strip())
                elif tag == _CHILD_LANE_SET_TAG:
                    child_lanes = child
                elif tag == _EXTENSIONS_TAG and declared is None:
                    declared = _first_child(child, _ONECMS + "department")
            if child_lanes is not None:
                pending.extend(reversed(child_lanes))
                continue
            lane_id = lane.get("id") or ""
            code = (declared.get("code") if declared is not None else None) or upper_snake(
                lane.get("name") or lane_id)
            name = (declared.get("name") if declared is not None else None) or lane.get("name") or code
            departments.setdefault(code, Department(code, name, lane_id, declared is not None))
            for ref in refs:
                lane_of[ref] = lane_id
        return lane_of, list(departments.values())

    def _check_attributes(self, element, name: str, attrs: dict[str, str]) -> None:
        allowed = _ALLOWED_ATTRIBUTES[name]
        if allowed.issuperset(attrs):  # the usual case (no engine attributes either), settled in one C call
            return
        for attribute in attrs:
            if attribute[0] != "{" and attribute not in allowed:
                self.issue(element, "UNKNOWN_ATTRIBUTE",
                           f"attribute {attribute}=\"{attrs[attribute]}\" is not allowed on <{name}> "
                           "(BPMN 2.0 schema); engine attributes need the flowable: prefix")

    def _check_event_gateways(self, scan: _Scan, outgoing: dict) -> None:
        gateways = scan.by_kind.get("eventBasedGateway")
        if not gateways:
            return
        incoming: dict[str | None, list[_Node]] = {}
        for flow in scan.flows:
            incoming.setdefault(flow.attrs.get("targetRef"), []).append(flow)
        for gateway in gateways:
            for flow in outgoing.get(gateway.id, ()):
                target = scan.nodes.get(flow.attrs.get("targetRef"))
                if target is None:
                    continue
                if target.kind not in ("intermediateCatchEvent", "receiveTask"):
                    self.issue(flow.element, "EVENT_GATEWAY_TARGET", f"an event-based gateway may only lead to an "
                               f"intermediate catch event or receive task, not <{target.kind}>")
                elif len(incoming.get(target.id, [])) > 1:
                    other = next(f for f in incoming[target.id] if f is not flow)
                    self.issue(other.element, "EVENT_GATEWAY_TARGET",
                               f"'{target.id}' waits for event-based gateway '{gateway.id}' and may "
                               "have no other incoming sequence flow", element_id=other.id or "")

    def _check_flow(self, flow: _Node, nodes: dict[str, _Node]) -> None:
        for end in ("sourceRef", "targetRef"):
            ref = flow.attrs.get(end)
            if not ref:
                self.issue(flow.element, "MISSING_REFERENCE", f"sequenceFlow has no {end}")
            elif ref not in nodes:
                self.issue(flow.element, "MISSING_REFERENCE",
                           f"sequenceFlow {end}=\"{ref}\" names no flow node of this process")

    def _check_multi_instance(self, activity) -> None:
        loop = _first_child(activity, _BPMN + "multiInstanceLoopCharacteristics")
        if loop is None:
            return
        has_cardinality = _first_child(loop, _BPMN + "loopCardinality") is not None
        has_collection = (_engine_attr(loop.attrib, "collection")
                          or _first_child(loop, _BPMN + "loopDataInputRef") is not None
                          or any(_local(c) == "collection" for c in loop.iter()))
        if not has_cardinality and not has_collection:
            self.issue(loop, "BAD_MULTI_INSTANCE",
                       "multi-instance needs a loopCardinality or a collection to iterate",
                       element_id=activity.get("id"))

    def _sla_timers(self, scan: _Scan) -> dict[str, list[SlaTimer]]:
        """Timer boundary events by the task they watch; every timer event's time is checked."""
        timers: dict[str, list[SlaTimer]] = {}
        for node in scan.timer_events:
            specs: dict[str, Any] = {}
            for child in node.event_definition if node.event_definition is not None else ():
                kind = _local(child)
                if kind in _TIME_KINDS:
                    specs.setdefault(kind, child)
            for kind in _TIME_KINDS:
                spec = specs.get(kind)
                if spec is None:
                    continue
                value = (spec.text or "").strip()
                minutes = self._check_time(spec, kind, value, node.id)
                attached_to = node.attrs.get("attachedToRef")
                if node.kind == "boundaryEvent" and attached_to:
                    timers.setdefault(attached_to, []).append(SlaTimer(
                        node.id or "", kind, value, minutes,
                        interrupting=node.attrs.get("cancelActivity", "true").strip().lower() != "false"))
        return timers

    def _check_time(self, spec, kind: str, value: str, owner: str | None) -> int | None:
        if not value:
            self.issue(spec, "BAD_DURATION", f"<{kind}> is empty", element_id=owner)
            return None
        if is_expression(value):
            return None
        if kind == "timeDuration":
            if not is_iso_duration(value):
                self.issue(spec, "BAD_DURATION", f"timeDuration \"{value}\" is not an ISO-8601 duration "
                           "(e.g. PT4H, P2D)", element_id=owner)
                return None
            return duration_minutes(value)
        if kind == "timeDate" and not is_iso_datetime(value):
            self.issue(spec, "BAD_DURATION", f"timeDate \"{value}\" is not an ISO-8601 date-time",
                       element_id=owner)
        return None

    def _user_task(self, node: _Node, process: Process, lane_of, department_of_lane, nodes, timers,
                   queues: dict[str, Queue]) -> UserTask:
        element, attrs = node.element, node.attrs
        task_id = node.id or ""
        groups = list(split_candidates(_assignment_attr(attrs, "candidateGroups")))
        users = list(split_candidates(_assignment_attr(attrs, "candidateUsers")))
        assignee = _assignment_attr(attrs, "assignee") or None
        custom: list[tuple[bool, str]] = []  # custom identity links of type "candidate": (is a user, id)
        declared_queue = None
        for child in (element if len(element) else ()):  # most tasks have no children
            if child.tag == _EXTENSIONS_TAG:
                # Flowable's child parsers match by local name, inside extensionElements too.
                for extension in child:
                    if extension.tag == _ONECMS + "queue":
                        declared_queue = extension if declared_queue is None else declared_queue
                    elif extension.tag.endswith(_ASSIGNMENT_ELEMENTS):
                        assignee = self._assignment_element(extension, groups, users, custom, assignee)
            elif child.tag.endswith(_ASSIGNMENT_ELEMENTS):
                assignee = self._assignment_element(child, groups, users, custom, assignee)
        if node.scope is None and self.resources_after:
            # A <resource> declared after the process renames the candidate group named by its id, in the
            # process's own tasks only (Flowable's ResourceParser walks process.getFlowElements()).
            for rid, name in self.resources_after:
                if rid in groups:
                    groups.remove(rid)
                    if name and name.strip():  # a nameless resource leaves a null group: nobody
                        groups.append(name.strip())
        for is_user, ident in custom:
            into = users if is_user else groups
            if ident not in into:
                into.append(ident)
        if process.executable and not (groups or users or assignee):
            # flowable:owner alone does not make the task workable: the engine sets it as the task's owner, and
            # no candidate query (candidateUser, candidateGroup, candidateOrAssigned) looks at the owner.
            owner = _assignment_attr(attrs, "owner")
            self.issue(element, "UNASSIGNED_USER_TASK", "user task has no candidate group, candidate user or "
                       "assignee: nobody could ever claim it from a queue"
                       + (f" (owner \"{owner}\" only owns it: an owner is no candidate)" if owner else ""))

        due_date = _engine_attr(attrs, "dueDate")
        if due_date and not is_expression(due_date) and not (is_iso_duration(due_date) or is_iso_datetime(due_date)):
            self.issue(element, "BAD_DURATION", f"dueDate \"{due_date}\" is neither an ISO-8601 duration nor a date")

        lane_id = _lane_of(node, lane_of, nodes) if lane_of else None
        department = department_of_lane.get(lane_id) if lane_id else None
        task_timers = tuple(timers.get(task_id, ()))
        if declared_queue is not None:
            queue = self._declared_queue(declared_queue, task_id, department, queues)
        else:
            queue = _default_queue(process, department, groups, due_date, task_timers, queues)
        return UserTask(
            id=task_id, name=attrs.get("name"), line=element.sourceline, lane_id=lane_id, department=department,
            candidate_groups=tuple(groups), candidate_users=tuple(users), assignee=assignee,
            form_key=_engine_attr(attrs, "formKey"), priority=_engine_attr(attrs, "priority"), due_date=due_date,
            queue=queue, sla_timers=task_timers)

    def _assignment_element(self, element, groups: list[str], users: list[str], custom: list[tuple[bool, str]],
                            assignee: str | None) -> str | None:
        """Read one <potentialOwner>, <humanPerformer> or <customResource> of a user task into the lists, as
        Flowable's UserTaskXMLConverter child parsers do; returns the assignee (humanPerformer replaces it)."""
        kind = _local(element)  # the tag ends with one of _ASSIGNMENT_ELEMENTS; another local name is nothing
        if kind == "humanPerformer":
            text = _formal_expression_text(element)
            # Flowable sets the text as the assignee (empty: none, the attribute's is gone too).
            return assignee if text is None else (text.strip() or None)
        if kind == "potentialOwner":
            first = element[0] if len(element) else None
            if first is not None and _local(first) == "resourceRef":
                ref = first.text or ""  # the resource's name, else the id itself
                name = (self.resources_before[ref] if ref in self.resources_before else ref) or ""
                if name.strip():  # a nameless resource leaves a null group: nobody
                    groups.append(name.strip())
                return assignee
            for is_user, ident in _split_identities(_formal_expression_text(element) or ""):
                if ident:
                    (users if is_user else groups).append(ident)
            return assignee
        if kind != "customResource":
            return assignee
        # customResource: identity links of the type its name says; only "candidate" ones are candidates.
        link_type = _assignment_attr(element.attrib, "name")
        if link_type is None:
            link_type = element.get("name")
        if link_type == "candidate":
            custom.extend(i for i in _split_identities(_formal_expression_text(element) or "") if i[1])
        return assignee

    def _declared_queue(self, declared, task_id: str, department: str | None, queues: dict[str, Queue]) -> str:
        name = declared.get("name")
        kind = (declared.get("type") or "STANDARD").strip()
        if not name:
            self.issue(declared, "BAD_EXTENSION", "<onecms:queue> needs a name", element_id=task_id)
        if kind not in QUEUE_TYPES:
            self.issue(declared, "UNKNOWN_QUEUE_TYPE",
                       f"queue type \"{kind}\" is not one of {', '.join(QUEUE_TYPES)}", element_id=task_id)
        sla = (self._positive_int(declared, "slaMinutes", task_id) if declared.get("slaMinutes")
               else None) or DEFAULT_QUEUE_SLA_MINUTES
        capacity = (self._positive_int(declared, "maxCapacity", task_id)
                    if declared.get("maxCapacity") else None) or DEFAULT_QUEUE_CAPACITY
        queue = Queue(name or "", kind, sla, capacity, department, declared=True,
                      settings=self._queue_settings(declared, task_id))
        if name and name in queues and queues[name] != queue:
            self.issue(declared, "QUEUE_CONFLICT",
                       f"queue {name} is declared again with other settings than before", WARNING,
                       element_id=task_id)
        queues.setdefault(queue.name, queue)
        return queue.name

    def _queue_settings(self, declared, task_id: str) -> dict:
        """overflowQueue="..." and the <onecms:escalation .../> and <onecms:assignment .../> children, as
        bridge/queue_settings.py checks them (attribute names are the settings' names)."""
        wanted: dict = {}
        if declared.get("overflowQueue") is not None:
            wanted["overflowQueue"] = declared.get("overflowQueue")
        for child in declared.iterchildren(_ONECMS + "escalation", _ONECMS + "assignment"):
            attributes = dict(child.items())
            if child.tag == _ONECMS + "escalation":
                wanted["escalation"] = attributes
            else:
                wanted.update(attributes)
        checked, problems = queue_settings.check(wanted)
        for problem in problems:
            self.issue(declared, "BAD_EXTENSION", f"<onecms:queue> {problem}", element_id=task_id)
        return checked

    def _check_queue_references(self, process: Process) -> None:
        """Queues and roles a queue's settings name must be this file's: a deploy applies the settings
        after the engine took the file, too late to refuse them."""
        queues = {q.name for q in process.queues}
        roles = {r.code for r in process.roles}
        for queue in process.queues:
            escalation = queue.settings.get("escalation", {})
            task = next((t for t in process.user_tasks if t.queue == queue.name), None)
            for setting, other in (("overflowQueue", queue.settings.get("overflowQueue")),
                                   ("escalation moveToQueue", escalation.get("moveToQueue"))):
                if other is not None and (other not in queues or other == queue.name):
                    self.issue_at(task.line if task else None, "UNKNOWN_QUEUE",
                                  f"queue {queue.name}: {setting} {other} is not another queue of this file (declare "
                                  "it on a task, or set it after deploying: PUT /api/queues/{name})",
                                  task.id if task else None)
            role = escalation.get("notifyRole")
            if role is not None and role not in roles:
                self.issue_at(task.line if task else None, "UNKNOWN_ROLE",
                              f"queue {queue.name}: escalation notifyRole {role} is not a role of this file (a "
                              "candidate group or an <onecms:role>)", task.id if task else None)
            assigning = [k for k in queue_settings.ASSIGNMENT_SETTINGS if k in queue.settings]
            if assigning and not any(q == queue.name for _, q in process.assignments):
                self.issue_at(task.line if task else None, "BAD_EXTENSION",
                              f"queue {queue.name}: {', '.join(assigning)} need roles to assign to, and no task of "
                              "this queue names a candidate group", task.id if task else None)

    def _declared_roles(self, process, extensions: list) -> dict[str, tuple[str | None, str | None]]:
        declared: dict[str, tuple[str | None, str | None]] = {}
        if not extensions:
            return declared
        for role in (r for ext in extensions for r in ext.iterchildren(_ONECMS + "role")):
            code, kind = role.get("code"), role.get("type")
            if not code:
                self.issue(role, "BAD_EXTENSION", "<onecms:role> needs a code", element_id=process.get("id"))
                continue
            if kind and kind not in ROLE_TYPES:
                self.issue(role, "BAD_EXTENSION", f"role type \"{kind}\" is not one of {', '.join(ROLE_TYPES)}",
                           element_id=process.get("id"))
                kind = None
            declared[code] = (kind, role.get("name"))
        return declared


# -- what follows from the scan, without touching the XML again ---------------------------------------

def _lane_of(node: _Node, lane_of: dict[str, str], nodes: dict[str, _Node]) -> str | None:
    """A node's lane; a boundary event is in its task's lane, a sub-process's nodes in the sub-process's."""
    current: _Node | None = node
    while current is not None:
        lane = lane_of.get(current.id) if current.id else None
        if lane is not None:
            return lane
        attached = nodes.get(current.attrs.get("attachedToRef") or "") if current.kind == "boundaryEvent" else None
        current = attached if attached is not None else current.scope
    return None


def _default_queue(process: Process, department, groups, due_date, timers, queues: dict[str, Queue]) -> str:
    name = default_queue_name(department or process.key, groups)
    if name not in queues:
        sla = next((t.minutes for t in timers if t.minutes), None) if timers else None
        if sla is None and due_date and not is_expression(due_date):
            sla = duration_minutes(due_date)
        queues[name] = Queue(name, "STANDARD", sla or DEFAULT_QUEUE_SLA_MINUTES, DEFAULT_QUEUE_CAPACITY,
                             department, declared=False)
    return name


def _roles(process: Process, declared) -> tuple[list[Role], list[tuple[str, str]]]:
    departments: dict[str, set] = {}
    home: dict[str, str] = {}
    assignments: list[tuple[str, str]] = []
    for task in process.user_tasks:
        for group in task.candidate_groups:
            if is_expression(group):
                continue
            departments.setdefault(group, set()).add(task.department)
            home.setdefault(group, task.queue)
            if (group, task.queue) not in assignments:
                assignments.append((group, task.queue))
    for code in declared:
        departments.setdefault(code, set())
    roles = []
    for code, seen in departments.items():
        kind, name = declared.get(code, (None, None))
        single = next(iter(seen)) if len(seen) == 1 else None
        kind = kind or ("DEPARTMENT" if single else "CUSTOM")
        roles.append(Role(code, name or _role_name(code), kind,
                          single if kind == "DEPARTMENT" else None, home.get(code), declared=code in declared))
    return roles, assignments


def _routes(scan: _Scan, outgoing, lane_of, department_of_lane) -> list[Route]:
    routes = []
    gateways = scan.by_kind.get("exclusiveGateway", []) + scan.by_kind.get("inclusiveGateway", [])
    for gateway in gateways:
        default = gateway.attrs.get("default")
        for flow in outgoing.get(gateway.id, ()):
            condition = _first_child(flow.element, _BPMN + "conditionExpression")
            target_ref = flow.attrs.get("targetRef")
            target = scan.nodes.get(target_ref)
            target_lane = _lane_of(target, lane_of, scan.nodes) if target is not None and lane_of else None
            routes.append(Route(
                gateway_id=gateway.id or "", flow_id=flow.id or "", name=flow.attrs.get("name"),
                condition=(condition.text or "").strip() if condition is not None else None,
                is_default=flow.id == default, target_id=target_ref or "",
                target_department=department_of_lane.get(target_lane) if target_lane else None))
    return routes


def _role_name(code: str) -> str:
    """INTAKE_CLERK -> 'Intake clerk'; short words stay acronyms: QA_ANALYST -> 'QA analyst'."""
    words = [w if len(w) <= 2 else w.lower() for w in code.split("_") if w]
    return " ".join(words)[:1].upper() + " ".join(words)[1:] if words else code
