"""Who may work on a user task, read as Flowable reads it (issue 16 item 3): every form Flowable's
UserTaskXMLConverter turns into candidates or an assignee, so that a file Flowable deploys with someone on every
user task is never refused as UNASSIGNED_USER_TASK, and a task with nobody on it still is."""

from __future__ import annotations

from pathlib import Path

import pytest
from lxml import etree

from bridge.bpmn.model import ACTIVITI_NS, BPMN_NS, FLOWABLE_NS
from bridge.bpmn.reader import parse_bpmn
from tests.conftest import PROJECT_ROOT

CORPUS = PROJECT_ROOT.parent / "shared" / "bpmn-corpus" / "flowable-engine"
CAMUNDA_NS = "http://camunda.org/schema/1.0/bpmn"
UNASSIGNED = "UNASSIGNED_USER_TASK"


def bpmn(task: str, *, before: str = "", after: str = "", executable: bool = True) -> bytes:
    """One process start -> {task} -> end; `before` / `after` go into <definitions> around the process."""
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<definitions xmlns="{BPMN_NS}" xmlns:flowable="{FLOWABLE_NS}" xmlns:activiti="{ACTIVITI_NS}"
             xmlns:camunda="{CAMUNDA_NS}" targetNamespace="assignment-tests">
  {before}
  <process id="p" isExecutable="{str(executable).lower()}">
    <startEvent id="start"/>
    <sequenceFlow id="f1" sourceRef="start" targetRef="t"/>
    {task}
    <sequenceFlow id="f2" sourceRef="t" targetRef="end"/>
    <endEvent id="end"/>
  </process>
  {after}
</definitions>""".encode()


def role(kind: str, text: str, *, prefix: str = "") -> str:
    return (f"<{prefix}{kind}><resourceAssignmentExpression><formalExpression>{text}</formalExpression>"
            f"</resourceAssignmentExpression></{prefix}{kind}>")


def read(data: bytes):
    """The only user task, and the codes of the file's errors (none expected but UNASSIGNED_USER_TASK)."""
    result = parse_bpmn(data, "assignment.bpmn20.xml")
    tasks = [t for p in result.processes for t in p.user_tasks]
    codes = [i.code for i in result.errors]
    assert set(codes) <= {UNASSIGNED}, result.errors
    return tasks[-1], codes


def who(data: bytes) -> tuple[tuple[str, ...], tuple[str, ...], str | None]:
    """(candidate groups, candidate users, assignee) of a task someone may work on."""
    task, codes = read(data)
    assert UNASSIGNED not in codes
    return task.candidate_groups, task.candidate_users, task.assignee


def refused(data: bytes) -> str:
    """The UNASSIGNED_USER_TASK message of a task nobody may work on."""
    result = parse_bpmn(data, "assignment.bpmn20.xml")
    [issue] = [i for i in result.errors if i.code == UNASSIGNED]
    assert issue.element_id == "t"
    [task] = result.processes[0].user_tasks
    assert (task.candidate_groups, task.candidate_users, task.assignee) == ((), (), None)
    return issue.message


# -- attributes -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("prefix", ["flowable", "activiti", "camunda"])
def test_assignment_attributes_in_each_namespace_flowable_reads(prefix: str):
    task = (f'<userTask id="t" {prefix}:candidateGroups="sales, management" {prefix}:candidateUsers="kermit"'
            f' {prefix}:assignee="${{initiator}}"/>')
    assert who(bpmn(task)) == (("sales", "management"), ("kermit",), "${initiator}")
    assert who(bpmn(f'<userTask id="t" {prefix}:assignee="fozzie"/>')) == ((), (), "fozzie")
    assert who(bpmn(f'<userTask id="t" {prefix}:candidateUsers="gonzo"/>')) == ((), ("gonzo",), None)


def test_the_first_namespace_present_wins_even_when_empty():
    # BpmnXMLUtil.getAttributeValue: flowable, else activiti, else camunda; an empty flowable value is still it.
    assert who(bpmn('<userTask id="t" flowable:assignee="kermit" activiti:assignee="fozzie"/>'))[2] == "kermit"
    assert who(bpmn('<userTask id="t" activiti:assignee="fozzie" camunda:assignee="gonzo"/>'))[2] == "fozzie"
    refused(bpmn('<userTask id="t" flowable:candidateGroups="" activiti:candidateGroups="sales"/>'))


def test_an_owner_alone_is_nobody_to_work_on_the_task():
    # The engine makes the owner the task's owner: no assignee, no candidate link, in no candidate query.
    message = refused(bpmn('<userTask id="t" flowable:owner="${initiator}"/>'))
    assert 'owner "${initiator}"' in message
    refused(bpmn('<userTask id="t" activiti:owner="kermit"/>'))
    assert who(bpmn('<userTask id="t" flowable:owner="kermit" flowable:assignee="fozzie"/>')) == ((), (), "fozzie")


# -- potentialOwner --------------------------------------------------------------------------------------

def test_potential_owner_users_groups_and_plain_text():
    owners = role("potentialOwner", "user(kermit), group(sales), management, user( gonzo )")
    task = f'<userTask id="t">{owners}</userTask>'
    assert who(bpmn(task)) == (("sales", "management"), ("kermit", "gonzo"), None)
    # Commas inside an expression do not split it; plain text is groups.
    expression = "${execution.getVariable('a, b')}"
    task = f'<userTask id="t">{role("potentialOwner", expression + ", group(#{x, y})")}</userTask>'
    assert who(bpmn(task)) == ((expression, "#{x, y}"), (), None)
    # Several potentialOwner elements add up, after the attributes.
    task = (f'<userTask id="t" flowable:candidateGroups="first">{role("potentialOwner", "user(kermit)")}'
            f'{role("potentialOwner", "second")}</userTask>')
    assert who(bpmn(task)) == (("first", "second"), ("kermit",), None)


def test_potential_owner_keeps_flowables_comma_splitter_quirks():
    # CommaSplitter drops pieces of one character before trimming: a lone "a" is no candidate in Flowable.
    refused(bpmn(f'<userTask id="t">{role("potentialOwner", "a")}</userTask>'))
    assert who(bpmn(f'<userTask id="t">{role("potentialOwner", "a,bc, d")}</userTask>')) == (("bc", "d"), (), None)
    refused(bpmn(f'<userTask id="t">{role("potentialOwner", "user(), , ")}</userTask>'))


def test_potential_owner_in_extension_elements_or_another_namespace_counts_as_flowable_reads_local_names():
    task = (f'<userTask id="t"><extensionElements>{role("potentialOwner", "sales", prefix="flowable:")}'
            f'</extensionElements></userTask>')
    assert who(bpmn(task)) == (("sales",), (), None)


def test_potential_owner_of_another_shape_gives_nobody():
    # Flowable looks at the first child element only: resourceAssignmentExpression or resourceRef.
    task = ('<userTask id="t"><potentialOwner><documentation>d</documentation><resourceAssignmentExpression>'
            '<formalExpression>sales</formalExpression></resourceAssignmentExpression></potentialOwner></userTask>')
    refused(bpmn(task))
    refused(bpmn('<userTask id="t"><potentialOwner><resourceAssignmentExpression/></potentialOwner></userTask>'))
    refused(bpmn(f'<userTask id="t">{role("potentialOwner", "")}</userTask>'))


# -- potentialOwner resourceRef --------------------------------------------------------------------------

REF = '<userTask id="t"><potentialOwner><resourceRef>accountancy</resourceRef></potentialOwner></userTask>'


def test_resource_ref_takes_the_resources_name_or_else_the_id():
    resource = '<resource id="accountancy" name="Accountancy dept"/>'
    assert who(bpmn(REF, before=resource)) == (("Accountancy dept",), (), None)
    assert who(bpmn(REF)) == (("accountancy",), (), None)
    assert who(bpmn(REF, before='<resource id="other" name="Other"/>')) == (("accountancy",), (), None)


def test_a_resource_declared_after_the_process_renames_the_group_of_its_top_level_tasks_only():
    # Flowable's ResourceParser renames the group in process.getFlowElements(): not inside sub-processes.
    resource = '<resource id="accountancy" name="Accountancy dept"/>'
    assert who(bpmn(REF, after=resource)) == (("Accountancy dept",), (), None)
    in_sub = '<subProcess id="t"><userTask id="inner"><potentialOwner><resourceRef>accountancy</resourceRef>' \
             '</potentialOwner></userTask></subProcess>'
    result = parse_bpmn(bpmn(in_sub, after=resource), "sub.bpmn20.xml")
    [inner] = result.processes[0].user_tasks
    assert inner.candidate_groups == ("accountancy",)
    assert not [i for i in result.errors if i.code == UNASSIGNED]
    [inner] = parse_bpmn(bpmn(in_sub, before=resource), "sub.bpmn20.xml").processes[0].user_tasks
    assert inner.candidate_groups == ("Accountancy dept",)
    # The rename looks at every candidate group of the name, the attribute's too.
    attribute = '<userTask id="t" flowable:candidateGroups="accountancy, sales"/>'
    assert who(bpmn(attribute, after=resource)) == (("sales", "Accountancy dept"), (), None)


def test_a_nameless_resource_gives_a_null_group_that_is_nobody():
    refused(bpmn(REF, before='<resource id="accountancy"/>'))
    refused(bpmn(REF, after='<resource id="accountancy"/>'))


# -- humanPerformer --------------------------------------------------------------------------------------

def test_human_performer_is_the_assignee_as_written():
    assert who(bpmn(f'<userTask id="t">{role("humanPerformer", " kermit ")}</userTask>')) == ((), (), "kermit")
    # No splitting: the whole text is the assignee expression.
    assert who(bpmn(f'<userTask id="t">{role("humanPerformer", "${a}, b")}</userTask>'))[2] == "${a}, b"
    task = (f'<userTask id="t"><extensionElements>{role("humanPerformer", "gonzo", prefix="activiti:")}'
            f'</extensionElements></userTask>')
    assert who(bpmn(task)) == ((), (), "gonzo")


def test_human_performer_replaces_the_assignee_attribute_even_with_nothing():
    task = f'<userTask id="t" flowable:assignee="fozzie">{role("humanPerformer", "kermit")}</userTask>'
    assert who(bpmn(task))[2] == "kermit"
    refused(bpmn(f'<userTask id="t" flowable:assignee="fozzie">{role("humanPerformer", "")}</userTask>'))
    # Another shape is skipped: the attribute stays.
    task = '<userTask id="t" flowable:assignee="fozzie"><humanPerformer><resourceRef>x</resourceRef></humanPerformer>' \
           '</userTask>'
    assert who(bpmn(task))[2] == "fozzie"


# -- customResource (custom identity links) --------------------------------------------------------------

def custom(name_attribute: str, text: str, prefix: str = "flowable:") -> str:
    return (f'<userTask id="t"><extensionElements><{prefix}customResource {name_attribute}>'
            f'<resourceAssignmentExpression><formalExpression>{text}</formalExpression>'
            f'</resourceAssignmentExpression></{prefix}customResource></extensionElements></userTask>')


@pytest.mark.parametrize("name_attribute", ['flowable:name="candidate"', 'activiti:name="candidate"',
                                            'camunda:name="candidate"', 'name="candidate"'])
def test_custom_candidate_identity_links_are_candidates(name_attribute: str):
    data = bpmn(custom(name_attribute, "user(kermit), group(sales), management, user(kermit)"))
    assert who(data) == (("sales", "management"), ("kermit",), None)


def test_custom_identity_links_of_other_types_are_nobody_to_claim():
    refused(bpmn(custom('flowable:name="participant"', "user(kermit), group(sales)")))
    refused(bpmn(custom("", "user(kermit)")))  # no type: Flowable skips the element
    refused(bpmn(custom('flowable:name="" name="candidate"', "user(kermit)")))  # the empty flowable:name wins


def test_custom_candidate_links_come_after_the_other_candidates_and_a_direct_child_counts_too():
    task = (f'<userTask id="t" flowable:candidateGroups="sales"><activiti:customResource activiti:name="candidate">'
            f'<resourceAssignmentExpression><formalExpression>group(sales), group(legal)</formalExpression>'
            f'</resourceAssignmentExpression></activiti:customResource>{role("potentialOwner", "hr")}</userTask>')
    assert who(bpmn(task)) == (("sales", "hr", "legal"), (), None)


# -- nobody ----------------------------------------------------------------------------------------------

def test_a_task_with_nobody_is_still_refused():
    refused(bpmn('<userTask id="t"/>'))
    refused(bpmn('<userTask id="t" flowable:formKey="f"><extensionElements><flowable:formProperty id="x"/>'
                 '</extensionElements></userTask>'))
    refused(bpmn('<userTask id="t"><performer><resourceAssignmentExpression><formalExpression>kermit'
                 '</formalExpression></resourceAssignmentExpression></performer></userTask>'))  # not read by Flowable
    result = parse_bpmn(bpmn('<userTask id="t"/>', executable=False), "draft.bpmn20.xml")
    assert UNASSIGNED not in [i.code for i in result.issues]


# -- the third-party corpus --------------------------------------------------------------------------------

def corpus_file(name: str) -> Path:
    """A file of ../shared's corpus; the test skips, saying why, on a clone with nothing beside it."""
    if not CORPUS.is_dir():
        pytest.skip(f"the BPMN corpus is not beside the repo ({CORPUS})")
    return CORPUS / name


# What Flowable's converter makes of the corpus files that use potentialOwner, humanPerformer or owner:
# {file: {task id: (candidate groups, candidate users, assignee)}}.
CORPUS_PEOPLE = {
    "TaskCandidateTest.testSingleCandidateGroup.bpmn20.xml": {"theTask": (("accountancy",), (), None)},
    "FinancialReportProcess.bpmn20.xml": {"writeReportTask": (("accountancy",), (), None),
                                          "verifyReportTask": (("management",), (), None)},
    "VacationRequest.bpmn20.xml": {"handleRequest": (("management",), (), None),
                                   "adjustVacationRequestTask": ((), (), "${employeeName}")},
    "HistoricTaskInstanceTest.testHistoricTaskInstanceOrQuery.bpmn20.xml": {"task": ((), (), "kermit")},
    "FullHistoryTest.testDeleteHistoricProcessInstance.bpmn20.xml": {"task": ((), (), "kermit")},
    # activiti:assignee beside activiti:owner; flowable:assignee beside flowable:owner.
    "oneTaskWithFormKeyProcess.bpmn20.xml": {"theTask": ((), (), "myAssignee")},
    "BoundaryTimerEventTest.testNullDueDateWithWrongRepetition.bpmn20.xml": {"review-document": ((), (), "#{userId}")},
}


@pytest.mark.parametrize("name", sorted(CORPUS_PEOPLE))
def test_corpus_files_name_the_people_flowable_finds(name: str):
    path = corpus_file(name)
    result = parse_bpmn(path.read_bytes(), name)
    tasks = {t.id: (t.candidate_groups, t.candidate_users, t.assignee) for p in result.processes for t in p.user_tasks}
    assert tasks == CORPUS_PEOPLE[name]
    assert UNASSIGNED not in [i.code for i in result.issues]


ASSIGNMENT_ATTRIBUTES = [f"{{{ns}}}{name}" for ns in (FLOWABLE_NS, ACTIVITI_NS, CAMUNDA_NS)
                         for name in ("candidateGroups", "candidateUsers", "assignee")]
ASSIGNMENT_ELEMENTS = ("potentialOwner", "humanPerformer", "customResource")


def test_no_corpus_task_that_names_anyone_is_refused_as_unassigned():
    corpus_file("")
    files = sorted(p for p in CORPUS.iterdir() if p.name != "LICENSE")
    refused_tasks, named = [], 0
    for path in files:
        result = parse_bpmn(path.read_bytes(), path.name)
        unassigned = {i.element_id for i in result.issues if i.code == UNASSIGNED}
        if not result.processes:
            continue
        tree = etree.fromstring(path.read_bytes(), etree.XMLParser(resolve_entities=False, no_network=True,
                                                                    remove_comments=True, remove_pis=True))
        for element in tree.iter(f"{{{BPMN_NS}}}userTask"):
            names_someone = any(element.get(a) for a in ASSIGNMENT_ATTRIBUTES) or any(
                etree.QName(d).localname in ASSIGNMENT_ELEMENTS for d in element.iterdescendants())
            named += names_someone
            if names_someone and element.get("id") in unassigned:
                refused_tasks.append(f"{path.name}: {element.get('id')}")
    assert refused_tasks == []
    assert named >= 20  # the corpus does exercise the forms
