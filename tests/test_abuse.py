"""Hostile inputs against the real service and engine, kept as a suite (issue 14): each probe is refused with
a clear answer, never a 500, and nothing it asked for happens.

Code execution through BPMN: a designer's file is code the engine runs. The bridge refuses it before the
engine sees it (bridge/bpmn/policy.py), and the engine refuses the same expressions when a file reaches it by
another way (engine/.../ReflectionGuardELResolver.java), and has no script engine to run a scriptTask.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from bridge.flowable.client import FlowableError
from tests.helpers import bearer, upload

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


async def test_a_designer_cannot_deploy_an_expression_that_reaches_the_jvm(api, people, tmp_path):
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


# -- webhook bodies: signed, but framed or shaped to hurt ---------------------------------------------------

@pytest.fixture
async def intake(engine, db_url, aiohttp_client):
    from tests.conftest import bridge_app

    return await aiohttp_client(bridge_app(db_url, engine))


def _batch(*, variable_value=None) -> bytes:
    import json

    event = {"eventId": str(uuid.uuid4()), "type": "VARIABLE_CREATED", "entityType": "variable",
             "timestamp": "2026-05-01T10:00:00.000Z",
             "variable": {"name": "x", "type": "json", "value": variable_value, "processInstanceId": "nowhere"}}
    return json.dumps({"events": [event]}).encode()


async def _chunks(body: bytes, size: int, pause: float = 0.05):
    import asyncio

    for start in range(0, len(body), size):
        yield body[start:start + size]
        await asyncio.sleep(pause)  # each chunk its own write: the server sees them arrive apart


async def test_a_signed_chunked_batch_is_read_whole_and_stored(intake, engine):
    from tests.helpers import signed

    body = _batch(variable_value={"note": "x" * 3000})
    response = await intake.post("/webhooks/flowable", data=_chunks(body, len(body) // 2 + 1),
                                 headers=signed(body, engine.webhook_secret))
    assert response.request_info.headers.get("Transfer-Encoding") == "chunked"
    assert response.status == 200, await response.text()
    assert (await response.json())["newEvents"] == 1


async def test_an_oversized_chunked_batch_is_413_not_401(intake, engine):
    from tests.helpers import signed

    body = _batch(variable_value="y" * (5 * 1024 * 1024))
    response = await intake.post("/webhooks/flowable", data=_chunks(body, 256 * 1024, pause=0),
                                 headers=signed(body, engine.webhook_secret))
    assert response.status == 413, await response.text()


@pytest.mark.parametrize("depth", [101, 1000, 5000])
async def test_deeply_nested_json_is_400_not_500(intake, engine, depth, db_url, aiohttp_client):
    from tests.helpers import signed

    nested: object = 1
    for _ in range(depth):
        nested = [nested]
    body = _batch(variable_value=nested) if depth < 1000 else (
        b'{"events": [{"eventId": "e", "type": "VARIABLE_CREATED", "variable": {"value": '
        + b"[" * depth + b"1" + b"]" * depth + b"}}]}")
    response = await intake.post("/webhooks/flowable", data=body, headers=signed(body, engine.webhook_secret))
    assert response.status == 400, await response.text()
    assert "nests deeper" in (await response.json())["error"] or "depth" in (await response.json())["error"]
    # and the work API's JSON bodies
    work = await intake.post("/api/tasks/t/complete", data=b'{"variables": {"v": ' + b"[" * depth + b"]" * depth
                             + b"}}", headers={"Authorization": "Bearer x", "Content-Type": "application/json"})
    assert work.status in (400, 401)  # no valid token here: refused before reading, or the body refused


# -- slow bodies, header floods, ways around the token ------------------------------------------------------

async def _raw(client, request: bytes, *, then: bytes = b"", wait: float = 0.0) -> bytes:
    """Bytes written straight to the test server's socket; what it answered (until it closes or 5 s)."""
    import asyncio

    reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
    writer.write(request)
    await writer.drain()
    if wait:
        await asyncio.sleep(wait)
    if then:
        writer.write(then)
        await writer.drain()
    try:
        return await asyncio.wait_for(reader.read(65536), 5)
    finally:
        writer.close()


async def test_a_stalled_body_is_408_and_starves_nobody(intake, engine, monkeypatch):
    import asyncio

    from bridge.web import errors

    monkeypatch.setattr(errors, "BODY_READ_TIMEOUT_S", 0.5)
    stalled = [asyncio.ensure_future(_raw(intake, (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n"
        "Authorization: Bearer ocb_x\r\n\r\n{\"events\": [").encode())) for path in ("/webhooks/flowable",) * 20]
    await asyncio.sleep(0.1)
    health = await intake.get("/healthz")  # twenty stalled clients, and the service still answers at once
    assert health.status == 200
    answers = await asyncio.gather(*stalled)
    assert all(a.startswith(b"HTTP/1.1 408") for a in answers), answers[0][:200]


async def test_a_flood_of_headers_or_a_huge_one_is_refused_not_a_500(intake):
    many = "".join(f"X-Flood-{n}: {'v' * 50}\r\n" for n in range(500))
    answer = await _raw(intake, f"GET /healthz HTTP/1.1\r\nHost: x\r\n{many}\r\n".encode())
    assert answer.split(b" ")[1] in (b"400", b"431"), answer[:200]
    huge = await _raw(intake, f"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {'v' * 100_000}\r\n\r\n".encode())
    assert huge.split(b" ")[1] in (b"400", b"431"), huge[:200]
    assert (await intake.get("/healthz")).status == 200


@pytest.mark.parametrize("headers, query", [
    ({}, "?access_token=anything"),                                   # a token in the query string is no token
    ({"Authorization": "Bearer "}, ""),
    ({"Authorization": "Bearer ocb_' OR '1'='1"}, ""),
    ({"Authorization": "Basic cmVzdC1hZG1pbjp0ZXN0"}, ""),            # the engine's credentials are not the API's
    ({"Authorization": "Token ocb_abc"}, ""),
    ({"X-Acting-User": "root", "X-User-Id": "root"}, ""),             # the engine's header means nothing here
    ({"Cookie": "onecms_dashboard=ocb_abc"}, ""),                     # the dashboard cookie opens only /dashboard
])
async def test_ways_around_the_token_get_401(intake, headers, query):
    for method, path in (("GET", "/api/tasks"), ("POST", "/api/work/next"), ("GET", "/api/queues"),
                         ("PUT", "/api/queues/INTAKE_REGISTRATION")):
        response = await intake.request(method, path + query, headers=headers, json={})
        assert response.status == 401, (method, path, headers, response.status)


def test_an_entitlements_file_nesting_without_end_is_refused_not_a_crash():
    from bridge import entitlements

    for text in ("users: " + "[" * 3000 + "]" * 3000, "users: " + "[" * 150 + "]" * 150):
        with pytest.raises(entitlements.EntitlementsError, match="nests deeper than 100 levels"):
            entitlements.parse(text, "yaml")


async def test_a_deployment_whose_multipart_part_is_itself_multipart_is_400_not_500(api, people):
    """Found by the type gate: a nested multipart part has no name, and reading one was an AttributeError."""
    body = (b"--outer\r\nContent-Type: multipart/mixed; boundary=inner\r\n\r\n"
            b"--inner\r\nContent-Disposition: form-data; name=\"file\"; filename=\"x.bpmn20.xml\"\r\n\r\n<x/>\r\n"
            b"--inner--\r\n--outer--\r\n")
    response = await api.post("/api/deployments", data=body, headers={
        **bearer(people["designer"]), "Content-Type": "multipart/form-data; boundary=outer"})
    assert response.status == 400, await response.text()
    assert "no part named file" in (await response.json())["error"]
