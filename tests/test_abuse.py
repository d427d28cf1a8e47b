"""Hostile inputs against the real service and engine, kept as a suite (issue 14): each probe is refused with
a clear answer, never a 500, and nothing it asked for happens.

Code execution through BPMN: a designer's file is code the engine runs. The bridge refuses it before the
engine sees it (bridge/bpmn_policy.py), and the engine refuses the same expressions when a file reaches it by
another way (engine/.../ReflectionGuardELResolver.java), and has no script engine to run a scriptTask.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from bridge.flowable.client import FlowableError
from tests.test_api_deployments import api, bearer, people, upload  # noqa: F401 - fixtures

pytestmark = pytest.mark.slow


def probe_process(key: str, marker: Path) -> bytes:
    expression = (f"${{execution.setVariable('probe', ''.getClass().forName('java.io.File')"
                  f".getConstructor(''.getClass()).newInstance('{marker}').createNewFile())}}")
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<definitions xmlns="http://www.omg.org/spec/BPMN/20100524/MODEL" xmlns:flowable="http://flowable.org/bpmn"
             targetNamespace="abuse">
  <process id="{key}" isExecutable="true">
    <startEvent id="start"/>
    <sequenceFlow id="f1" sourceRef="start" targetRef="probe"/>
    <serviceTask id="probe" flowable:expression="{expression}"/>
    <sequenceFlow id="f2" sourceRef="probe" targetRef="end"/>
    <endEvent id="end"/>
  </process>
</definitions>""".encode()


def script_process(key: str, marker: Path, language: str) -> bytes:
    code = {"groovy": f"new File('{marker}').createNewFile()",
            "javascript": f"new java.io.File('{marker}').createNewFile()"}[language]
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<definitions xmlns="http://www.omg.org/spec/BPMN/20100524/MODEL" targetNamespace="abuse">
  <process id="{key}" isExecutable="true">
    <startEvent id="start"/>
    <sequenceFlow id="f1" sourceRef="start" targetRef="run"/>
    <scriptTask id="run" scriptFormat="{language}"><script>{code}</script></scriptTask>
    <sequenceFlow id="f2" sourceRef="run" targetRef="end"/>
    <endEvent id="end"/>
  </process>
</definitions>""".encode()


async def test_a_designer_cannot_deploy_an_expression_that_reaches_the_jvm(api, people, tmp_path):  # noqa: F811
    key = f"probe{uuid.uuid4().hex[:8]}"
    for query in ("?dryRun=true", ""):
        refused = await api.post(f"/api/deployments{query}", data=upload(probe_process(key, tmp_path / "x"),
                                                                         f"{key}.bpmn20.xml"),
                                 headers=bearer(people["designer"]))
        assert refused.status == 422, await refused.text()
        [issue] = (await refused.json())["issues"]
        assert (issue["code"], issue["elementId"], issue["line"]) == ("FORBIDDEN_EXPRESSION", "probe", 7)
        assert "execution.setVariable(): not an allowed method" in issue["message"]


async def test_the_engine_itself_refuses_the_probe_deployed_straight_to_it(flowable, tmp_path):
    marker = tmp_path / "probe-created"
    key = f"probe{uuid.uuid4().hex[:8]}"
    await flowable.deploy(f"{key}.bpmn20.xml", probe_process(key, marker))
    with pytest.raises(FlowableError) as refused:
        await flowable.start_process(key, business_key="probe")
    assert refused.value.status == 400 and "expression policy" in refused.value.message, refused.value.message
    assert not marker.exists()
    assert await flowable.process_instances(processDefinitionKey=key) == []  # rolled back


@pytest.mark.parametrize("language", ["groovy", "javascript"])
async def test_the_engine_has_no_script_engine_to_run_a_script_task(flowable, tmp_path, language):
    marker = tmp_path / f"script-{language}"
    key = f"script{uuid.uuid4().hex[:8]}"
    await flowable.deploy(f"{key}.bpmn20.xml", script_process(key, marker, language))
    with pytest.raises(FlowableError) as refused:
        await flowable.start_process(key, business_key="script")
    assert refused.value.status in (400, 500) and "script" in refused.value.message.lower(), refused.value.message
    assert not marker.exists()


async def test_expressions_that_only_read_still_run_in_the_engine(flowable):
    key = f"reads{uuid.uuid4().hex[:8]}"
    xml = f"""<?xml version="1.0" encoding="UTF-8"?>
<definitions xmlns="http://www.omg.org/spec/BPMN/20100524/MODEL" xmlns:flowable="http://flowable.org/bpmn"
             targetNamespace="abuse">
  <process id="{key}" isExecutable="true">
    <startEvent id="start"/>
    <sequenceFlow id="f1" sourceRef="start" targetRef="pick"/>
    <exclusiveGateway id="pick" default="low"/>
    <sequenceFlow id="high" sourceRef="pick" targetRef="big">
      <conditionExpression>${{claim.amount > 1000 &amp;&amp; variables:get(region) == 'EU'}}</conditionExpression>
    </sequenceFlow>
    <sequenceFlow id="low" sourceRef="pick" targetRef="small"/>
    <userTask id="big" flowable:candidateGroups="G" flowable:priority="${{claim.amount > 5000 ? 90 : 70}}"/>
    <userTask id="small" flowable:candidateGroups="G"/>
  </process>
</definitions>""".encode()
    await flowable.deploy(f"{key}.bpmn20.xml", xml)
    started = await flowable.start_process(key, business_key="r", variables={
        "claim": {"amount": 6000}, "region": "EU"})
    [task] = await flowable.tasks(processInstanceId=started["id"])
    assert (task["taskDefinitionKey"], task["priority"]) == ("big", 90)
