"""The BPMN reader (bridge/bpmn/reader.py) and its safe XML loading: third-party files, every validator error,
hostile XML."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import pytest
from lxml import etree

from bridge.bpmn import model, safe_xml
from bridge.bpmn.model import ERROR, SlaTimer, StartVariable
from bridge.bpmn.reader import default_queue_name, duration_minutes, parse_bpmn, split_candidates
from tests.conftest import PROJECT_ROOT
from tests.helpers import ONECMS_FILE

CORPUS = PROJECT_ROOT.parent / "shared" / "bpmn-corpus" / "flowable-engine"
CORPUS_FILES = sorted(p for p in CORPUS.iterdir() if p.name != "LICENSE") if CORPUS.is_dir() else []
INVALID_MARKERS = ("Invalid", "invalid", "xsd_error", "multipleStartEvent", "EventInvalid", "ExternalEntity")
# Our deployment rules: a file Flowable accepts may still break them (and then the bridge refuses it).
POLICY_CODES = {"UNASSIGNED_USER_TASK", "OUTSIDE_LANES", "NO_EXECUTABLE_PROCESS", "FORBIDDEN_SCRIPT", "FORBIDDEN_CLASS",
                "FORBIDDEN_DELEGATE", "FORBIDDEN_SERVICE_TYPE", "FORBIDDEN_EXPRESSION"}
NS = {"b": model.BPMN_NS}


def corpus_path(name: str) -> Path:
    """A file of ../shared's corpus; the test skips, saying why, on a clone with nothing beside it."""
    if not CORPUS.is_dir():
        pytest.skip(f"the BPMN corpus is not beside the repo ({CORPUS})")
    return CORPUS / name


def is_invalid(path: Path) -> bool:
    return any(marker in path.name for marker in INVALID_MARKERS)


def corpus_files(invalid: bool) -> list:
    """The corpus's valid or invalid files as parameters; without the corpus, one skipped one saying why."""
    if not CORPUS.is_dir():
        return [pytest.param(None, id="no-corpus", marks=pytest.mark.skip(
            reason=f"the BPMN corpus is not beside the repo ({CORPUS})"))]
    return [pytest.param(p, id=p.name) for p in CORPUS_FILES if is_invalid(p) == invalid]


def test_the_corpus_is_there():
    corpus_path("")
    assert len(CORPUS_FILES) == 48, f"expected the 48 third-party BPMN files in {CORPUS}"
    assert sum(map(is_invalid, CORPUS_FILES)) == 7


@pytest.mark.parametrize("path", corpus_files(invalid=False))
def test_every_valid_third_party_file_parses_with_its_tasks_and_candidates(path: Path):
    result = parse_bpmn(path.read_bytes(), path.name)
    structural = [i for i in result.errors if i.code not in POLICY_CODES]
    assert structural == [], "\n".join(map(str, structural))
    assert result.processes

    # Cross-check against a plain XPath reading of the same file.
    tree = etree.parse(str(path), etree.XMLParser(resolve_entities=False, no_network=True))
    wanted = {t.get("id") for t in tree.iterfind(".//b:process//b:userTask", NS)}
    parsed = {t.id: t for p in result.processes for t in p.user_tasks}
    assert set(parsed) == wanted
    for element in tree.iterfind(".//b:process//b:userTask", NS):
        raw = (element.get(f"{{{model.FLOWABLE_NS}}}candidateGroups")
               or element.get(f"{{{model.ACTIVITI_NS}}}candidateGroups"))
        if raw and "{" not in raw:
            assert parsed[element.get("id")].candidate_groups == tuple(g.strip() for g in raw.split(","))


@pytest.mark.parametrize("path", corpus_files(invalid=True))
def test_every_invalid_third_party_file_is_reported_not_crashed_on(path: Path):
    result = parse_bpmn(path.read_bytes(), path.name)
    structural = [i for i in result.errors if i.code not in POLICY_CODES] or [
        i for i in result.errors if i.code == "NO_EXECUTABLE_PROCESS"]
    assert structural, f"{path.name} was not reported"
    for issue in structural:
        assert issue.file == path.name and issue.message and issue.line is not None


def test_the_external_entity_file_is_refused_and_never_resolved():
    path = corpus_path("DeployInvalidXmlTest.testExternalEntityResolvingTest.bpmn20.xml")
    result = parse_bpmn(path.read_bytes(), path.name)
    assert [(i.code, i.line) for i in result.issues] == [("DOCTYPE_FORBIDDEN", 2)]
    assert result.processes == []
    assert "root:" not in str(result.issues)


def corpus(name: str):
    return parse_bpmn(corpus_path(name).read_bytes(), name)


def only_process(result):
    [process] = result.processes
    return process


def test_potential_owner_and_human_performer():
    tasks = {t.id: t for t in only_process(corpus("FinancialReportProcess.bpmn20.xml")).user_tasks}
    assert tasks["writeReportTask"].candidate_groups == ("accountancy",)
    assert tasks["verifyReportTask"].candidate_groups == ("management",)
    vacation = {t.id: t for t in only_process(corpus("VacationRequest.bpmn20.xml")).user_tasks}
    assert vacation["handleRequest"].candidate_groups == ("management",)
    assert vacation["adjustVacationRequestTask"].assignee == "${employeeName}"
    history = only_process(corpus("FullHistoryTest.testDeleteHistoricProcessInstance.bpmn20.xml"))
    assert history.user_tasks[0].assignee == "kermit"


def test_expressions_stay_expressions_and_legacy_activiti_attributes_count():
    [task] = only_process(corpus("userTaskWithStringCommaSeparatedExpressionCandidates.bpmn")).user_tasks
    assert task.candidate_groups == ("${'management, sales'}",)
    assert task.candidate_users == ("${'kermit, fozzie'}",)
    assert task.queue.endswith("_DYNAMIC")
    [task] = only_process(corpus("CustomTaskAssignmentTest.testSetCandidateGroupsThroughSpringService.bpmn20.xml")
                          ).user_tasks
    assert task.candidate_groups == ("accountancy", "${fakeLdapService.findManagers(execution, emp)}")
    [process] = [p for p in corpus("ProcessInstanceResourceTest.process-one.bpmn20.xml").processes
                 if p.key == "processOne"]
    assert process.user_tasks[0].candidate_groups == ("sales",)  # activiti:candidateGroups
    assert process.user_tasks[0].candidate_users == ("kermit",)


def test_lanes_become_departments_and_timers_become_slas():
    process = only_process(corpus("LaneExtensionTest.testLaneExtensionElement.bpmn20.xml"))
    assert [(d.code, d.name) for d in process.departments] == [("LANE_1", "Lane 1"), ("LANE_2", "Lane 2")]
    assert {t.id: t.department for t in process.user_tasks} == {"usertask1": "LANE_1", "usertask2": "LANE_2"}
    timed = only_process(corpus("userTaskWithTimer.bpmn20.xml"))
    first = timed.user_tasks[0]
    assert first.sla_timers == (SlaTimer("timerBoundaryEvent", "timeDuration", "P1D", 1440, interrupting=True),)
    assert (first.priority, first.due_date) == ("60", "2020-01-04")
    assert next(q for q in timed.queues if q.name == first.queue).sla_minutes == 1440


def test_candidate_splitting_and_durations():
    assert split_candidates("a, b ,,c") == ("a", "b", "c")
    assert split_candidates("x, ${svc.find(a, b)}, #{y}") == ("x", "${svc.find(a, b)}", "#{y}")
    assert split_candidates("${'a, b'}") == ("${'a, b'}",)
    assert [duration_minutes(d) for d in ("PT4H", "P2D", "P1W", "PT90S", "P1DT30M", "P1M", "4H")] == [
        240, 2880, 10080, 1, 1470, None, None]


# -- each validator error, with the line it names ------------------------------------------------------

def doc(body: str, *, lanes: str = "", process_attrs: str = 'isExecutable="true"') -> bytes:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<definitions xmlns="http://www.omg.org/spec/BPMN/20100524/MODEL" xmlns:flowable="http://flowable.org/bpmn"
             xmlns:onecms="urn:onecms:bpmn:1.0" targetNamespace="t">
  <process id="p" {process_attrs}>{lanes}
    <startEvent id="start"/>
{body}
  </process>
</definitions>""".encode()


TASK = '    <userTask id="t1" name="T" flowable:candidateGroups="G"/>'


def issues_of(data: bytes) -> list[tuple[str, int | None, str | None]]:
    return [(i.code, i.line, i.element_id) for i in parse_bpmn(data, "f.bpmn20.xml").issues if i.severity == ERROR]


def test_a_valid_document_has_no_issue():
    assert issues_of(doc(TASK + '\n    <sequenceFlow id="s1" sourceRef="start" targetRef="t1"/>')) == []


@pytest.mark.parametrize("data, expected", [
    (b'<?xml version="1.0"?>\n<definitions>\n  <process id="p">\n</definitions>',
     [("XML_MALFORMED", 4, None)]),
    (b'<?xml version="1.0"?>\n<html xmlns="http://www.w3.org/1999/xhtml"/>', [("NOT_BPMN", 2, None)]),
    (doc(TASK, process_attrs='isExecutable="false"'), [("NO_EXECUTABLE_PROCESS", 4, "p")]),
    (doc('    <userTask id="lonely" name="Nobody"/>'), [("UNASSIGNED_USER_TASK", 6, "lonely")]),
    (doc(TASK + '\n    <userTask id="t2" flowable:assignee="ann"/>',
         lanes='\n    <laneSet id="ls"><lane id="l1" name="Desk"><flowNodeRef>t1</flowNodeRef></lane></laneSet>'),
     [("OUTSIDE_LANES", 8, "t2")]),
    (doc(TASK + '\n    <sequenceFlow id="s1" sourceRef="start" targetRef="ghost"/>'),
     [("MISSING_REFERENCE", 7, "s1")]),
    (doc(TASK + '\n    <endEvent id="t1"/>'), [("DUPLICATE_ID", 7, "t1")]),
    (doc('    <userTask id="t1" flowable:candidateGroups="G">\n'
         '      <extensionElements><onecms:queue name="Q" type="FAST"/></extensionElements>\n    </userTask>'),
     [("UNKNOWN_QUEUE_TYPE", 7, "t1")]),
    (doc('    <userTask id="t1" flowable:candidateGroups="G" flowable:dueDate="4 hours"/>'),
     [("BAD_DURATION", 6, "t1")]),
    (doc(TASK + '\n    <boundaryEvent id="b1" attachedToRef="t1" cancelActivity="false">\n'
         '      <timerEventDefinition><timeDuration>PT4X</timeDuration></timerEventDefinition>\n    </boundaryEvent>'),
     [("BAD_DURATION", 8, "b1")]),
], ids=["not-well-formed", "not-bpmn", "no-executable-process", "unassigned-task", "outside-lanes",
        "missing-flow-target", "duplicate-id", "unknown-queue-type", "bad-due-date", "bad-timer-duration"])
def test_each_validator_error_names_line_and_element(data: bytes, expected):
    assert issues_of(data) == expected


def test_entry_criteria_declare_start_variables_required_unless_said_otherwise():
    criteria = ('\n    <extensionElements><onecms:workflow>'
                '<onecms:entryCriteria variable="kind" values="A, B"/>'
                '<onecms:entryCriteria variable="note" required="false"/>'
                '<onecms:entryCriteria variable="region" values="EU" required="maybe"/>'
                '</onecms:workflow></extensionElements>')
    result = parse_bpmn(doc(TASK, lanes=criteria), "f.bpmn20.xml")
    [process] = result.processes
    assert process.start_variables == {"kind": StartVariable("kind", ("A", "B"), True),
                                       "note": StartVariable("note", (), False),
                                       "region": StartVariable("region", ("EU",), True)}
    assert [(i.code, i.line) for i in result.errors] == [("BAD_EXTENSION", 5)]
    kind, note, region = process.start_variables.values()
    assert [kind.problem({}), kind.problem({"kind": "C"}), kind.problem({"kind": "A"})] == [
        "kind: required", "kind: 'C' is not one of A, B", None]
    assert (note.problem({}), note.problem({"note": "anything"})) == (None, None)
    # a definition stored before starts were checked holds a bare list of values: allowed values, not required
    assert StartVariable.from_stored("kind", ["A"]) == StartVariable("kind", ("A",), False)


def test_queue_settings_are_read_checked_and_must_name_queues_and_roles_of_the_file():
    def queue(settings: str, attrs: str = "", task: str = "t1") -> str:
        return (f'    <userTask id="{task}" flowable:candidateGroups="G"><extensionElements>'
                f'<onecms:queue name="Q{task}"{attrs}>{settings}</onecms:queue></extensionElements></userTask>')

    good = parse_bpmn(doc(queue('<onecms:escalation raisePriorityBy="5" notifyRole="G" moveToQueue="Qt2"/>'
                                '<onecms:assignment autoAssign="false" maxTasksPerUser="3"/>', ' overflowQueue="Qt2"')
                          + "\n" + queue("", task="t2")), "f.bpmn20.xml")
    assert good.errors == []
    assert good.processes[0].queues[0].settings == {
        "overflowQueue": "Qt2", "escalation": {"raisePriorityBy": 5, "notifyRole": "G", "moveToQueue": "Qt2"},
        "autoAssign": False, "maxTasksPerUser": 3}

    bad = parse_bpmn(doc(queue('<onecms:escalation raisePriorityBy="500" notifyRole="BOSS" moveToQueue="Qt1"/>'
                               '<onecms:assignment assignmentStrategy="RANDOM" autoAssign="maybe"/>',
                               ' overflowQueue="ELSEWHERE"')), "f.bpmn20.xml")
    assert sorted((i.code, i.message) for i in bad.errors) == sorted([
        ("BAD_EXTENSION", "<onecms:queue> escalation: raisePriorityBy: a whole number from 1 to 100"),
        ("BAD_EXTENSION", "<onecms:queue> assignmentStrategy: one of ROUND_ROBIN, LEAST_LOADED"),
        ("BAD_EXTENSION", "<onecms:queue> autoAssign: true or false"),
        ("UNKNOWN_QUEUE", "queue Qt1: overflowQueue ELSEWHERE is not another queue of this file (declare it on a "
                          "task, or set it after deploying: PUT /api/queues/{name})")])
    assert all(i.element_id == "t1" and i.line == 6 for i in bad.errors)
    references = parse_bpmn(doc(queue('<onecms:escalation notifyRole="BOSS" moveToQueue="Qt1"/>')), "f.bpmn20.xml")
    assert sorted(i.code for i in references.errors) == ["UNKNOWN_QUEUE", "UNKNOWN_ROLE"]
    # auto-assignment on a queue whose tasks name people, not roles: the deploy could never apply it
    nobody = parse_bpmn(doc('    <userTask id="t1" flowable:candidateUsers="ann"><extensionElements>'
                            '<onecms:queue name="Q"><onecms:assignment autoAssign="true"/></onecms:queue>'
                            '</extensionElements></userTask>'), "f.bpmn20.xml")
    assert [(i.code, i.message) for i in nobody.errors] == [
        ("BAD_EXTENSION", "queue Q: autoAssign need roles to assign to, and no task of this queue names a "
                          "candidate group")]


def test_onecms_ships_queue_settings(onecms):
    settings = {q.name: q.settings for q in onecms.queues}
    assert settings["LEGAL_REVIEW"] == {
        "overflowQueue": "LEGAL_ESCALATION", "escalation": {"raisePriorityBy": 10, "notifyRole": "LEGAL_COUNSEL_LEAD"},
        "autoAssign": True, "assignmentStrategy": "LEAST_LOADED", "maxTasksPerUser": 8}
    assert settings["INTAKE_REGISTRATION"]["assignmentStrategy"] == "ROUND_ROBIN"
    assert all(s.get("escalation") for name, s in settings.items()
               if name not in ("CASE_CLOSURE", "INVESTIGATIONS_ESCALATION", "LEGAL_ESCALATION",
                               "SUPERVISOR_ESCALATION"))


def test_messages_say_what_to_do():
    [issue] = parse_bpmn(doc('    <userTask id="t1" flowable:candidateGroups="G">\n'
                             '      <extensionElements><onecms:queue name="Q" type="FAST"/></extensionElements>\n'
                             '    </userTask>'), "legal.bpmn20.xml").issues
    assert str(issue) == ('legal.bpmn20.xml:7 [t1]: error: queue type "FAST" is not one of STANDARD, PRIORITY, '
                          'SPECIALIZED, OVERFLOW (UNKNOWN_QUEUE_TYPE)')


# -- hostile XML ---------------------------------------------------------------------------------------

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<definitions xmlns="http://www.omg.org/spec/BPMN/20100524/MODEL"><process id="p"><documentation>&lol9;</documentation>
<startEvent id="s"/></process></definitions>"""


def test_billion_laughs_is_refused_at_once_without_expansion():
    started = time.perf_counter()
    result = parse_bpmn(BILLION_LAUGHS, "lolz.bpmn20.xml")
    assert time.perf_counter() - started < 0.5
    assert [(i.code, i.line) for i in result.issues] == [("DOCTYPE_FORBIDDEN", 2)]


class _ConnectionRecorder:
    """A local TCP listener that records whether anyone connected (to prove nothing is fetched)."""

    def __init__(self) -> None:
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen()
        self.server.settimeout(0.2)
        self.port = self.server.getsockname()[1]
        self.connections = 0
        self._stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self._stop:
            try:
                conn, _ = self.server.accept()
                self.connections += 1
                conn.close()
            except OSError:
                continue

    def close(self) -> None:
        self._stop = True
        self.thread.join()
        self.server.close()


@pytest.mark.parametrize("doctype", [
    '<!DOCTYPE definitions [<!ENTITY xxe SYSTEM "http://127.0.0.1:{port}/secret">]>',
    '<!DOCTYPE definitions SYSTEM "http://127.0.0.1:{port}/bpmn.dtd">',
    '<!DOCTYPE definitions [<!ENTITY % remote SYSTEM "http://127.0.0.1:{port}/evil.dtd"> %remote;]>',
])
def test_external_entities_and_dtds_are_never_fetched(doctype: str):
    recorder = _ConnectionRecorder()
    try:
        data = (f'<?xml version="1.0"?>\n<!-- a comment first -->\n{doctype.format(port=recorder.port)}\n'
                '<definitions xmlns="http://www.omg.org/spec/BPMN/20100524/MODEL"><process id="p">'
                '<documentation>&xxe;</documentation></process></definitions>').encode()
        result = parse_bpmn(data, "xxe.bpmn20.xml")
        assert [(i.code, i.line) for i in result.issues] == [("DOCTYPE_FORBIDDEN", 3)]
        # The parser underneath is hardened too, should a DOCTYPE ever get past the first check.
        try:
            etree.fromstring(data, safe_xml.safe_parser())
        except etree.XMLSyntaxError:
            pass
        time.sleep(0.3)
        assert recorder.connections == 0
    finally:
        recorder.close()


# UTF-16 little-endian without a byte order mark starts with an ASCII '<': the byte scan must not be fooled.
@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be", "utf-32"])
def test_a_doctype_the_prolog_scan_cannot_see_is_still_refused(encoding: str):
    data = (f'<?xml version="1.0" encoding="{encoding.upper()[:6]}"?>\n<!DOCTYPE definitions [<!ENTITY e "x">]>\n'
            '<definitions xmlns="http://www.omg.org/spec/BPMN/20100524/MODEL"/>').encode(encoding)
    assert [i.code for i in parse_bpmn(data, "wide.bpmn20.xml").issues] == ["DOCTYPE_FORBIDDEN"]


def test_size_depth_and_element_limits(monkeypatch):
    too_big = doc(TASK + "\n<!-- " + "x" * safe_xml.MAX_BYTES + " -->")
    assert [i.code for i in parse_bpmn(too_big, "big.bpmn20.xml").issues] == ["TOO_LARGE"]

    def nested(depth: int) -> bytes:  # definitions/process/userTask/extensionElements, then `depth` more
        inner = depth - 4
        return doc('    <userTask id="t1" flowable:candidateGroups="G"><extensionElements>'
                   + "<onecms:x>" * inner + "</onecms:x>" * inner + "</extensionElements></userTask>")

    assert parse_bpmn(nested(safe_xml.MAX_DEPTH), "fits.bpmn20.xml").ok
    too_deep = parse_bpmn(nested(safe_xml.MAX_DEPTH + 1), "deep.bpmn20.xml").issues
    assert [(i.code, i.line) for i in too_deep] == [("TOO_DEEP", 6)]

    monkeypatch.setattr(safe_xml, "MAX_ELEMENTS", 50)
    many = doc("\n".join(f'    <endEvent id="e{i}"/>' for i in range(60)))
    assert [i.code for i in parse_bpmn(many, "many.bpmn20.xml").issues] == ["TOO_MANY_ELEMENTS"]


# -- our own workflow ----------------------------------------------------------------------------------


# task: (department, candidate group, queue, queue type, SLA minutes, max capacity, priority, due date)
ONECMS_TASKS = {
    "registerCase": ("INTAKE", "INTAKE_CLERK", "INTAKE_REGISTRATION", "STANDARD", 60, 500, "50", "PT1H"),
    "triageCase": ("INTAKE", "INTAKE_TRIAGE_OFFICER", "INTAKE_TRIAGE", "PRIORITY", 120, 300,
                   "${severity == 'CRITICAL' ? 90 : 60}", "PT2H"),
    "gatherEvidence": ("INVESTIGATIONS", "INVESTIGATOR", "INVESTIGATIONS", "STANDARD", 2880, 400, "50", "P2D"),
    "writeInvestigationReport": ("INVESTIGATIONS", "INVESTIGATOR", "INVESTIGATIONS", "STANDARD", 2880, 400, "50",
                                 "P1D"),
    "legalReview": ("LEGAL", "LEGAL_REVIEWER", "LEGAL_REVIEW", "SPECIALIZED", 480, 200, "70", "PT8H"),
    "complianceAssessment": ("COMPLIANCE", "COMPLIANCE_OFFICER", "COMPLIANCE_REVIEW", "SPECIALIZED", 720, 200, "60",
                             "PT12H"),
    "qualityReview": ("QUALITY_ASSURANCE", "QA_ANALYST", "QA_REVIEW", "STANDARD", 1440, 300, "50", "P1D"),
    "legalSignOff": ("LEGAL", "LEGAL_REVIEWER", "LEGAL_SIGNOFF", "SPECIALIZED", 480, 200, "60", "PT8H"),
    "complianceSignOff": ("COMPLIANCE", "COMPLIANCE_OFFICER", "COMPLIANCE_SIGNOFF", "SPECIALIZED", 480, 200, "60",
                          "PT8H"),
    "supervisorApproval": ("CASE_MANAGEMENT", "CASE_SUPERVISOR", "SUPERVISOR_APPROVAL", "PRIORITY", 240, 100, "80",
                           "PT4H"),
    "closeCase": ("CASE_MANAGEMENT", "CASE_ADMIN", "CASE_CLOSURE", "STANDARD", 1440, 500, "40", "P1D"),
    "escalateInvestigation": ("INVESTIGATIONS", "INVESTIGATIONS_LEAD", "INVESTIGATIONS_ESCALATION", "OVERFLOW", 240,
                              100, "90", "PT4H"),
    "escalateLegalReview": ("LEGAL", "LEGAL_COUNSEL_LEAD", "LEGAL_ESCALATION", "OVERFLOW", 240, 100, "90", "PT4H"),
    "escalateApproval": ("CASE_MANAGEMENT", "CASE_MANAGER", "SUPERVISOR_ESCALATION", "OVERFLOW", 120, 50, "95",
                         "PT2H"),
}


@pytest.fixture(scope="module")
def onecms():
    result = parse_bpmn(ONECMS_FILE.read_bytes(), ONECMS_FILE.name)
    assert result.issues == []
    [process] = result.processes
    return process


def test_onecms_process_and_departments(onecms):
    assert (onecms.key, onecms.name, onecms.version_tag, onecms.business_app, onecms.process_sla_minutes) == (
        "OneCMS_Nextgen_WF", "OneCMS Unified Workflow", "1.0.0", "ONECMS", 14400)
    assert onecms.start_variables == {
        "caseType": StartVariable("caseType", ("FRAUD", "LEGAL_CLAIM", "REGULATORY", "QUALITY", "GENERAL"), True),
        "severity": StartVariable("severity", ("LOW", "MEDIUM", "HIGH", "CRITICAL"), True)}
    assert {(d.code, d.name) for d in onecms.departments} == {
        ("INTAKE", "Case Intake"), ("INVESTIGATIONS", "Investigations"), ("LEGAL", "Legal"),
        ("COMPLIANCE", "Compliance"), ("QUALITY_ASSURANCE", "Quality Assurance"),
        ("CASE_MANAGEMENT", "Case Management")}


def test_onecms_tasks_queues_and_slas(onecms):
    tasks = {t.id: t for t in onecms.user_tasks}
    queues = {q.name: q for q in onecms.queues}
    assert set(tasks) == set(ONECMS_TASKS)
    for task_id, (department, group, queue, kind, sla, capacity, priority, due) in ONECMS_TASKS.items():
        task = tasks[task_id]
        assert (task.department, task.candidate_groups, task.queue, task.priority, task.due_date) == (
            department, (group,), queue, priority, due), task_id
        assert task.form_key and task.form_key.startswith("onecms/")
        assert (queues[queue].type, queues[queue].sla_minutes, queues[queue].max_capacity,
                queues[queue].department, queues[queue].declared) == (kind, sla, capacity, department, True)
    assert len(queues) == 13
    timers = {t.id: [(s.boundary_id, s.value, s.minutes, s.interrupting) for s in t.sla_timers]
              for t in onecms.user_tasks if t.sla_timers}
    assert timers == {"gatherEvidence": [("slaGatherEvidence", "P2D", 2880, False)],
                      "legalReview": [("slaLegalReview", "PT8H", 480, False)],
                      "supervisorApproval": [("slaSupervisorApproval", "PT4H", 240, False)]}


def test_onecms_roles_and_assignments(onecms):
    roles = {r.code: (r.type, r.department, r.home_queue) for r in onecms.roles}
    assert roles == {
        "INTAKE_CLERK": ("DEPARTMENT", "INTAKE", "INTAKE_REGISTRATION"),
        "INTAKE_TRIAGE_OFFICER": ("DEPARTMENT", "INTAKE", "INTAKE_TRIAGE"),
        "INVESTIGATOR": ("DEPARTMENT", "INVESTIGATIONS", "INVESTIGATIONS"),
        "INVESTIGATIONS_LEAD": ("DEPARTMENT", "INVESTIGATIONS", "INVESTIGATIONS_ESCALATION"),
        "LEGAL_REVIEWER": ("DEPARTMENT", "LEGAL", "LEGAL_REVIEW"),
        "LEGAL_COUNSEL_LEAD": ("DEPARTMENT", "LEGAL", "LEGAL_ESCALATION"),
        "COMPLIANCE_OFFICER": ("DEPARTMENT", "COMPLIANCE", "COMPLIANCE_REVIEW"),
        "QA_ANALYST": ("DEPARTMENT", "QUALITY_ASSURANCE", "QA_REVIEW"),
        "CASE_SUPERVISOR": ("DEPARTMENT", "CASE_MANAGEMENT", "SUPERVISOR_APPROVAL"),
        "CASE_MANAGER": ("CUSTOM", None, "SUPERVISOR_ESCALATION"),
        "CASE_ADMIN": ("SYSTEM", None, "CASE_CLOSURE"),
    }
    assert {r.code: r.name for r in onecms.roles}["QA_ANALYST"] == "QA analyst"
    assert sorted(onecms.assignments) == sorted({(group, queue) for _, group, queue, *_ in ONECMS_TASKS.values()})


def test_onecms_routing_by_case_type(onecms):
    routes = {(r.gateway_id, r.name): (r.target_id, r.target_department, r.is_default) for r in onecms.routes}
    by_type = {name: target for (gateway, name), target in routes.items() if gateway == "routeByType"}
    assert {target[1] for target in by_type.values()} == {"INVESTIGATIONS", "LEGAL", "COMPLIANCE",
                                                          "QUALITY_ASSURANCE"}
    assert [t for t in by_type.values() if t[2]] == [("investigation", "INVESTIGATIONS", True)]
    assert routes[("approvalDecision", "Rework")][0] == "routeByType"


def test_the_default_queue_rule_the_parser_and_the_mirror_share():
    assert default_queue_name("Legal", ["${a}", "LEGAL_REVIEWER"]) == "LEGAL_LEGAL_REVIEWER"
    assert default_queue_name("claims", ["${svc.groups()}"]) == "CLAIMS_DYNAMIC"
    assert default_queue_name("claims", []) == "CLAIMS_DIRECT"
