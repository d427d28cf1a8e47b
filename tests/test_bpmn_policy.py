"""The deploy policy (bridge/bpmn/policy.py): what a BPMN file may make the engine run."""

from __future__ import annotations

import pytest

from bridge.bpmn.policy import expression_problem, expressions
from bridge.bpmn.reader import parse_bpmn

PROBE = ("execution.setVariable('probe', ''.getClass().forName('java.io.File')"
         ".getConstructor(''.getClass()).newInstance('/tmp/x').createNewFile())")


@pytest.mark.parametrize("expression", [
    "caseType == 'FRAUD'", "severity == 'CRITICAL' ? 90 : 60",
    "caseType == 'LEGAL_CLAIM' || (severity == 'CRITICAL' && caseType != 'FRAUD')",
    "amount > 1000 and not empty approver", "claim.amount * 2 >= limit['eu']", "variables:get(amount) > 100",
    "vars:getOrDefault(priority, 50)", "execution.getVariable('caseType') == 'FRAUD'", "'a}b' == x",
])
def test_reading_comparing_and_the_variable_functions_are_allowed(expression):
    assert expression_problem(expression) is None


@pytest.mark.parametrize("expression, problem", [
    (PROBE, "execution.setVariable(): not an allowed method"),
    ("''.getClass()", "getClass: reflection is not allowed"),
    ("x.class.classLoader", "class: reflection is not allowed"),
    ("x['class']", "['class']: reflection is not allowed"),
    ("'abc'.length()", "calling a method on a value or a result is not allowed"),
    ("a.b.c()", "calling a method on a value or a result is not allowed"),
    ("f(x)(y)", "f(): not an allowed function"),
    ("x.toString()", "x.toString(): not an allowed method"),
    ("runtimeService.deleteProcessInstance(id, 'x')", "runtimeService.deleteProcessInstance(): not an allowed method"),
    ("system:run('id')", "system:run(): not an allowed function"),
    ("x = 1", "'=': lambdas, assignments and statement chains are not allowed"),
    ("(x -> x)(1)", "'->': lambdas"),
    ("a; b", "';'"),
])
def test_calls_reflection_and_assignments_are_refused(expression, problem):
    assert problem in (expression_problem(expression) or "")


def test_a_sites_own_beans_may_be_called_when_listed():
    assert expression_problem("ledger.total(caseId)", allowed_beans=frozenset({"ledger"})) is None
    assert "not an allowed method" in expression_problem("ledger.total(caseId)")


def test_expressions_are_found_with_braces_inside_strings():
    assert list(expressions("a ${x == '}'} b #{y}c ${")) == ["x == '}'", "y", ""]


def doc(body: str) -> bytes:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<definitions xmlns="http://www.omg.org/spec/BPMN/20100524/MODEL" xmlns:flowable="http://flowable.org/bpmn"
             xmlns:activiti="http://activiti.org/bpmn" targetNamespace="t">
  <process id="p" isExecutable="true">
    <startEvent id="start"/>
{body}
  </process>
</definitions>""".encode()


def policy_issues(data: bytes, **kwargs) -> list[tuple[str, int | None, str | None]]:
    return [(i.code, i.line, i.element_id) for i in parse_bpmn(data, "f.bpmn20.xml", **kwargs).errors
            if i.code.startswith("FORBIDDEN")]


def test_every_way_a_file_runs_code_is_refused_with_line_and_element():
    data = doc(f"""    <scriptTask id="s1" scriptFormat="groovy"><script>new File('/tmp/x').createNewFile()</script></scriptTask>
    <serviceTask id="s2" flowable:class="com.example.Evil"/>
    <serviceTask id="s3" flowable:delegateExpression="${{someBean.method()}}"/>
    <serviceTask id="s4" flowable:type="shell"/>
    <serviceTask id="s5" flowable:expression="${{{PROBE}}}"/>
    <serviceTask id="s6" activiti:class="com.example.Old"/>
    <userTask id="u1" flowable:candidateGroups="G" flowable:dueDate="${{x.toString()}}">
      <extensionElements>
        <flowable:taskListener event="create" class="com.example.Listener"/>
        <flowable:executionListener event="start" type="script"><flowable:script language="js">1</flowable:script></flowable:executionListener>
      </extensionElements>
    </userTask>
    <sequenceFlow id="f1" sourceRef="start" targetRef="u1">
      <conditionExpression>${{''.getClass() != null}}</conditionExpression>
    </sequenceFlow>""")  # noqa: E501 (one element per line: the line numbers below are what is asserted)
    assert policy_issues(data) == [
        ("FORBIDDEN_SCRIPT", 6, "s1"), ("FORBIDDEN_CLASS", 7, "s2"), ("FORBIDDEN_DELEGATE", 8, "s3"),
        ("FORBIDDEN_SERVICE_TYPE", 9, "s4"), ("FORBIDDEN_EXPRESSION", 10, "s5"), ("FORBIDDEN_CLASS", 11, "s6"),
        ("FORBIDDEN_EXPRESSION", 12, "u1"), ("FORBIDDEN_CLASS", 14, "u1"), ("FORBIDDEN_SCRIPT", 15, "u1"),
        ("FORBIDDEN_SCRIPT", 15, "u1"), ("FORBIDDEN_EXPRESSION", 19, "f1")]


def test_a_sites_listed_delegates_are_allowed():
    data = doc("""    <serviceTask id="s2" flowable:class="com.example.Ledger"/>
    <serviceTask id="s3" flowable:delegateExpression="${ledger}"/>
    <serviceTask id="s4" flowable:expression="${ledger.post(caseId)}"/>""")
    assert policy_issues(data, allowed_delegates=["com.example.Ledger", "ledger"]) == []
    assert [code for code, _, _ in policy_issues(data)] == [
        "FORBIDDEN_CLASS", "FORBIDDEN_DELEGATE", "FORBIDDEN_EXPRESSION"]


def test_the_onecms_workflow_passes_the_policy():
    from tests.helpers import ONECMS_FILE

    assert policy_issues(ONECMS_FILE.read_bytes()) == []
