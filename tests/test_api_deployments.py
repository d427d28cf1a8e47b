"""POST /api/deployments: bearer tokens, the designer role, and the deploy pipeline over HTTP."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import text

from bridge.db.connections import open_database
from tests.helpers import bearer, upload, workflow

pytestmark = pytest.mark.slow


async def test_no_token_a_bad_token_or_an_expired_one_get_401(api, people):
    for headers in ({}, bearer("ocb_not-a-real-token"), {"Authorization": "Basic eDp5"}, bearer(people["expired"])):
        response = await api.post("/api/deployments", data=b"<x/>", headers=headers)
        assert response.status == 401
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        assert "error" in await response.json()


async def test_a_user_without_the_designer_role_gets_403(api, people):
    response = await api.post("/api/deployments", data=b"<x/>", headers=bearer(people["clerk"]))
    assert response.status == 403
    assert "WORKFLOW_DESIGNER" in (await response.json())["error"]


async def test_a_designer_deploys_then_deploys_again_unchanged(api, people, engine):
    key = f"api{uuid.uuid4().hex[:8]}"
    first = await api.post("/api/deployments", data=upload(workflow(key), f"{key}.bpmn20.xml"),
                           headers=bearer(people["designer"]))
    assert first.status == 201, await first.text()
    body = await first.json()
    assert (body["status"], body["processes"][0]["processKey"], body["processes"][0]["version"]) == (
        "deployed", key, 1)

    again = await api.post(f"/api/deployments?filename={key}.bpmn20.xml", data=workflow(key),
                           headers=bearer(people["designer"]))
    assert again.status == 200 and (await again.json())["status"] == "unchanged"

    db = open_database(engine.database_url, pool_size=1)
    async with db.connect() as conn:
        deployed_by = (await conn.execute(text(
            "SELECT deployed_by FROM flowable.workflow_definitions WHERE process_key = :k"), {"k": key})).scalar()
    await db.dispose()
    assert deployed_by == people["designer_id"]  # from the token, not from anything the client sent


async def test_a_file_with_errors_answers_422_with_each_issue(api, people):
    bad = b'<?xml version="1.0"?>\n<definitions xmlns="http://www.omg.org/spec/BPMN/20100524/MODEL">\n' \
          b'  <process id="p"><startEvent id="s"/>\n    <userTask id="lonely"/>\n  </process>\n</definitions>'
    response = await api.post("/api/deployments", data=upload(bad, "bad.bpmn20.xml"),
                              headers=bearer(people["designer"]))
    assert response.status == 422
    body = await response.json()
    assert body["issues"] == [{"file": "bad.bpmn20.xml", "line": 4, "elementId": "lonely",
                               "code": "UNASSIGNED_USER_TASK", "severity": "error",
                               "message": "user task has no candidate group, candidate user or assignee: "
                                          "nobody could ever claim it from a queue"}]


async def test_dry_run_over_http_changes_nothing(api, people, flowable):
    key = f"api{uuid.uuid4().hex[:8]}"
    response = await api.post("/api/deployments?dryRun=true", data=upload(workflow(key), "d.bpmn20.xml"),
                              headers=bearer(people["designer"]))
    assert response.status == 200
    body = await response.json()
    assert body["status"] == "would-deploy"
    assert any(c.startswith(f"+ queue Q_{key.upper()}:") for c in body["changes"])
    [plan] = body["plan"]  # the CLI's plan, in the same structure
    assert (plan["processKey"], plan["fromVersion"], plan["toVersion"]) == (key, None, 1)
    assert {c["id"]: c["change"] for c in plan["changes"]["activities"]} == {"review": "added"}
    assert [c["id"] for c in plan["changes"]["roles"]] == [f"REVIEWER_{key.upper()}"]
    assert await flowable.process_definitions(key=key) == []


async def test_a_token_records_its_use_at_most_once_a_minute(api, people, engine):
    db = open_database(engine.database_url, pool_size=1)

    async def last_used():
        async with db.connect() as conn:
            return (await conn.execute(text(
                "SELECT last_used_at FROM entitlements.api_tokens t JOIN entitlements.users u USING (user_id) "
                "WHERE u.user_id LIKE 'clerk_%' ORDER BY t.token_id DESC LIMIT 1"))).scalar()

    try:
        assert await last_used() is None
        await api.post("/api/deployments", data=b"<x/>", headers=bearer(people["clerk"]))
        first = await last_used()
        assert first is not None
        await api.post("/api/deployments", data=b"<x/>", headers=bearer(people["clerk"]))
        assert await last_used() == first
    finally:
        await db.dispose()


async def test_taking_over_another_workflows_role_is_422_and_adopting_needs_entitlements_admin(api, people, engine):
    first, second = f"own{uuid.uuid4().hex[:8]}", f"own{uuid.uuid4().hex[:8]}"

    def declaring(key: str, name: str) -> bytes:
        return f"""<?xml version="1.0" encoding="UTF-8"?>
<definitions xmlns="http://www.omg.org/spec/BPMN/20100524/MODEL" xmlns:flowable="http://flowable.org/bpmn"
             xmlns:onecms="urn:onecms:bpmn:1.0" targetNamespace="tests">
  <process id="{key}" isExecutable="true">
    <extensionElements><onecms:role code="ROLE_{first.upper()}" type="CUSTOM" name="{name}"/></extensionElements>
    <startEvent id="start"/>
    <sequenceFlow id="f1" sourceRef="start" targetRef="t"/>
    <userTask id="t" flowable:candidateGroups="ROLE_{first.upper()}"/>
  </process>
</definitions>""".encode()

    designer = bearer(people["designer"])
    made = await api.post("/api/deployments", data=upload(declaring(first, "Reviewers"), "a.bpmn20.xml"),
                          headers=designer)
    assert made.status == 201, await made.text()
    refused = await api.post("/api/deployments", data=upload(declaring(second, "Mine"), "b.bpmn20.xml"),
                             headers=designer)
    assert refused.status == 422
    [problem] = (await refused.json())["problems"]
    assert problem.startswith(f"role ROLE_{first.upper()} belongs to {first}: this file would change name "
                              "'Reviewers' -> 'Mine'")
    adopting = await api.post(f"/api/deployments?adopt=role:ROLE_{first.upper()}",
                              data=upload(declaring(second, "Mine"), "b.bpmn20.xml"), headers=designer)
    assert adopting.status == 403 and "ENTITLEMENTS_ADMIN" in (await adopting.json())["error"]
