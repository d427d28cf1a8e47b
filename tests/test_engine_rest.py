"""Our engine's REST layer on top of Flowable's: error statuses and bodies, X-Engine-Time, X-Acting-User.

Every test talks to the session's real engine (tests/conftest.py `engine`) over plain HTTP, so what is checked is
the engine's answer itself, not the bridge client's reading of it (the client retries 409 conflicts on its own).
"""

from __future__ import annotations

import asyncio
import re
import uuid
from datetime import UTC, datetime

import aiohttp
import pytest

pytestmark = pytest.mark.slow

BPMN = "http://www.omg.org/spec/BPMN/20100524/MODEL"
ENGINE_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z")
OPTIMISTIC_LOCKING = "org.flowable.common.engine.api.FlowableOptimisticLockingException"


def process(key: str, body: str) -> bytes:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<definitions xmlns="{BPMN}" xmlns:flowable="http://flowable.org/bpmn" targetNamespace="onecms-tests">
  <process id="{key}" name="Test {key}" isExecutable="true">
    {body}
  </process>
</definitions>""".encode()


def join_process(key: str) -> bytes:
    """Two parallel user tasks joined by a parallel gateway."""
    return process(key, """
    <startEvent id="start"/>
    <sequenceFlow id="f0" sourceRef="start" targetRef="fork"/>
    <parallelGateway id="fork"/>
    <sequenceFlow id="fa" sourceRef="fork" targetRef="legal"/>
    <sequenceFlow id="fb" sourceRef="fork" targetRef="finance"/>
    <userTask id="legal" name="Legal review"/>
    <userTask id="finance" name="Finance review"/>
    <sequenceFlow id="fa2" sourceRef="legal" targetRef="join"/>
    <sequenceFlow id="fb2" sourceRef="finance" targetRef="join"/>
    <parallelGateway id="join"/>
    <sequenceFlow id="f9" sourceRef="join" targetRef="end"/>
    <endEvent id="end"/>""")


def one_task_process(key: str, task: str = '<userTask id="review" name="Review"/>') -> bytes:
    return process(key, f"""
    <startEvent id="start"/>
    <sequenceFlow id="f1" sourceRef="start" targetRef="review"/>
    {task}
    <sequenceFlow id="f2" sourceRef="review" targetRef="end"/>
    <endEvent id="end"/>""")


def new_key() -> str:
    return f"rest{uuid.uuid4().hex[:8]}"


class Rest:
    """Plain HTTP to the engine's REST API: every answer as (status, body, headers)."""

    def __init__(self, engine, session: aiohttp.ClientSession) -> None:
        self.engine, self.session = engine, session

    async def call(self, method: str, path: str, *, json=None, params=None, headers=None, auth=True,
                   root: bool = False) -> tuple[int, object, dict]:
        url = (self.engine.root_url if root else self.engine.base_url) + "/" + path.lstrip("/")
        all_headers = {**(self.engine.auth_header if auth else {}), **(headers or {})}
        async with self.session.request(method, url, json=json, params=params, headers=all_headers) as response:
            text = await response.text()
            try:
                body = await response.json(content_type=None) if text else None
            except ValueError:
                body = text
            return response.status, body, dict(response.headers)

    async def ok(self, method: str, path: str, **kwargs) -> object:
        status, body, _ = await self.call(method, path, **kwargs)
        assert status < 300, (method, path, status, body)
        return body

    async def start(self, key: str, **kwargs) -> dict:
        return await self.ok("POST", "runtime/process-instances", json={"processDefinitionKey": key}, **kwargs)

    async def tasks(self, instance_id: str) -> list[dict]:
        return (await self.ok("GET", "runtime/tasks", params={"processInstanceId": instance_id}))["data"]

    async def history(self, instance_id: str) -> dict:
        return await self.ok("GET", f"history/historic-process-instances/{instance_id}")


@pytest.fixture
async def rest(engine):
    # Enough connections for the concurrent completions to go out at once, each on its own.
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=20)) as session:
        yield Rest(engine, session)


def assert_engine_error(body, exception: str, *, message: str | None = None) -> None:
    assert isinstance(body, dict) and set(body) == {"message", "exception"}, body
    assert body["exception"] == exception
    assert body["message"] and body["message"] != "Internal server error"
    if message is not None:
        assert re.search(message, body["message"]), body["message"]


# -- statuses and bodies --------------------------------------------------------------------------------------------

async def test_two_completions_racing_into_a_join_answer_200_or_409_and_a_retry_finishes(rest, flowable):
    key = new_key()
    await flowable.deploy(f"{key}.bpmn20.xml", join_process(key))
    rounds, conflicts = 20, []
    for _ in range(rounds):
        instance = await rest.start(key)
        tasks = await rest.tasks(instance["id"])
        assert len(tasks) == 2
        answers = await asyncio.gather(*(rest.call("POST", f"runtime/tasks/{t['id']}", json={"action": "complete"})
                                         for t in tasks))
        assert sorted(status for status, _, _ in answers) in ([200, 200], [200, 409]), answers
        for task, (status, body, _) in zip(tasks, answers, strict=True):
            if status == 409:
                assert_engine_error(body, OPTIMISTIC_LOCKING, message="updated by another transaction")
                conflicts.append(body["message"])
                # The conflict rolled the completion back: the task is still there, and completing it again works.
                assert [t["id"] for t in await rest.tasks(instance["id"])] == [task["id"]]
                await rest.ok("POST", f"runtime/tasks/{task['id']}", json={"action": "complete"})
        assert await rest.tasks(instance["id"]) == []
        assert (await rest.history(instance["id"]))["endTime"] is not None
    print(f"\n{len(conflicts)} of {rounds} racing pairs answered 409")
    assert conflicts, f"no optimistic-locking conflict in {rounds} racing pairs"


async def test_completing_a_delegated_task_is_refused_with_the_engines_reason_and_resolve_works(rest, flowable):
    key = new_key()
    await flowable.deploy(f"{key}.bpmn20.xml", one_task_process(key))
    instance = await rest.start(key)
    [task] = await rest.tasks(instance["id"])
    path = f"runtime/tasks/{task['id']}"
    await rest.ok("POST", path, json={"action": "claim", "assignee": "olive"})
    await rest.ok("POST", path, json={"action": "delegate", "assignee": "dan"})

    status, body, _ = await rest.call("POST", path, json={"action": "complete"})
    assert status == 400
    assert_engine_error(body, "org.flowable.common.engine.api.FlowableException",
                        message=r"A delegated .* cannot be completed, but should be resolved instead")

    await rest.ok("POST", path, json={"action": "resolve"}, headers={"X-Acting-User": "dan"})
    back = await rest.ok("GET", path)
    assert (back["assignee"], back["owner"], back["delegationState"]) == ("olive", "olive", "resolved")
    await rest.ok("POST", path, json={"action": "complete"})
    assert (await rest.history(instance["id"]))["endTime"] is not None


async def test_an_expression_the_engine_cannot_evaluate_is_400_with_its_message(rest, flowable):
    key = new_key()
    await flowable.deploy(f"{key}.bpmn20.xml",
                          one_task_process(key, '<userTask id="review" flowable:assignee="${nobodyKnowsMe}"/>'))
    status, body, _ = await rest.call("POST", "runtime/process-instances", json={"processDefinitionKey": key})
    assert status == 400
    assert_engine_error(body, "org.flowable.common.engine.api.FlowableException",
                        message=r"Unknown property used in expression: \$\{nobodyKnowsMe\}")


async def test_flowables_own_statuses_are_kept_with_the_message_and_class_name(rest, flowable):
    status, body, _ = await rest.call("GET", "runtime/tasks/no-such-task")
    assert status == 404
    assert_engine_error(body, "org.flowable.common.engine.api.FlowableObjectNotFoundException",
                        message="Could not find a task with id 'no-such-task'")

    status, body, _ = await rest.call("GET", "runtime/tasks", params={"sort": "bogus"})
    assert status == 400
    assert_engine_error(body, "org.flowable.common.engine.api.FlowableIllegalArgumentException", message="bogus")

    status, body, _ = await rest.call("POST", "runtime/process-instances",  # JSON without a body
                                      headers={"Content-Type": "application/json"})
    assert status == 400
    assert_engine_error(body, "org.springframework.http.converter.HttpMessageNotReadableException",
                        message="Required request body is missing")

    key = new_key()
    await flowable.deploy(f"{key}.bpmn20.xml", one_task_process(key))
    [task] = await rest.tasks((await rest.start(key))["id"])
    await rest.ok("POST", f"runtime/tasks/{task['id']}", json={"action": "claim", "assignee": "alice"})
    status, body, _ = await rest.call("POST", f"runtime/tasks/{task['id']}",
                                      json={"action": "claim", "assignee": "bob"})
    assert status == 409
    assert_engine_error(body, "org.flowable.common.engine.api.FlowableTaskAlreadyClaimedException",
                        message="is already claimed by someone else")

    # What Flowable answers 500 "Internal server error" stays 500, with the exception's own message.
    status, body, _ = await rest.call("GET", "runtime/no-such-resource")
    assert status == 500
    assert_engine_error(body, "org.springframework.web.servlet.NoHandlerFoundException",
                        message="No endpoint GET /process-api/runtime/no-such-resource")

    # Outside the Flowable REST API, Spring's own answers are untouched.
    status, body, _ = await rest.call("GET", "bridge-emitter/no-such-thing", root=True)
    assert status == 404 and body["error"] == "Not Found"
    status, body, _ = await rest.call("POST", "bridge-emitter/health", root=True)
    assert status == 405


async def test_a_malformed_bpmn_file_is_still_400_with_the_parsers_message(engine, rest):
    form = aiohttp.FormData()
    form.add_field("file", b"<definitions><process id='x'>", filename="broken.bpmn20.xml", content_type="text/xml")
    async with rest.session.post(f"{engine.base_url}/repository/deployments", data=form,
                                 headers=engine.auth_header) as response:
        assert response.status == 400
        body = await response.json()
    assert body["message"] != "Internal server error" and "XML" in body["message"], body
    assert body["exception"].startswith("org.flowable.")


# -- X-Engine-Time --------------------------------------------------------------------------------------------------

def engine_time(headers: dict) -> datetime:
    value = headers.get("X-Engine-Time")
    assert value is not None and ENGINE_TIME.fullmatch(value), value
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def to_millis(moment: datetime) -> datetime:
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


@pytest.mark.parametrize("method, path, kwargs, expected", [
    ("GET", "management/engine", {}, 200),
    ("GET", "runtime/tasks/no-such-task", {}, 404),
    ("GET", "management/engine", {"auth": False}, 401),
    ("GET", "bridge-emitter/health", {"root": True, "auth": False}, 200),
])
async def test_every_response_carries_the_engine_clock_at_the_start_of_the_request(rest, method, path, kwargs,
                                                                                    expected):
    before = datetime.now(UTC)
    status, _, headers = await rest.call(method, path, **kwargs)
    after = datetime.now(UTC)
    assert status == expected
    # The header has milliseconds; the engine read its clock after `before` and before `after` (same machine).
    assert to_millis(before) <= engine_time(headers) <= after


async def test_the_engine_clock_of_a_request_is_not_after_the_events_it_fires(rest, flowable, webhook_receiver):
    key = new_key()
    await flowable.deploy(f"{key}.bpmn20.xml", one_task_process(key))
    status, instance, headers = await rest.call("POST", "runtime/process-instances", json={"processDefinitionKey": key})
    assert status == 201
    at = headers["X-Engine-Time"]
    await webhook_receiver.wait_for(lambda: any(e["type"] == "TASK_CREATED"
                                                for b in webhook_receiver.events_for(instance["id"]) for e in b))
    stamps = [e["timestamp"] for b in webhook_receiver.events_for(instance["id"]) for e in b]
    assert stamps and all(ENGINE_TIME.fullmatch(s) and s >= at for s in stamps), (at, stamps)


# -- X-Acting-User --------------------------------------------------------------------------------------------------

async def test_the_acting_user_is_who_the_engine_records(rest, flowable, engine):
    key = new_key()
    await flowable.deploy(f"{key}.bpmn20.xml", one_task_process(key))
    as_alice = {"X-Acting-User": "alice"}

    instance = await rest.start(key, headers=as_alice)
    assert instance["startUserId"] == "alice"
    assert (await rest.history(instance["id"]))["startUserId"] == "alice"
    links = await rest.ok("GET", f"history/historic-process-instances/{instance['id']}/identitylinks")
    assert {(link["type"], link["userId"]) for link in links} == {("starter", "alice")}

    [task] = await rest.tasks(instance["id"])
    comment = await rest.ok("POST", f"runtime/tasks/{task['id']}/comments", headers=as_alice,
                            json={"message": "looks fine", "saveProcessInstanceId": True})
    assert comment["author"] == "alice"
    [stored] = await rest.ok("GET", f"runtime/tasks/{task['id']}/comments")
    assert stored["author"] == "alice"

    # Without the header: the REST login, as before, also on the threads that just served alice.
    for _ in range(8):
        plain = await rest.start(key)
        assert plain["startUserId"] == engine.user
        assert (await rest.history(plain["id"]))["startUserId"] == engine.user
        assert (await rest.start(key, headers={"X-Acting-User": "bob.b-1@x_y"}))["startUserId"] == "bob.b-1@x_y"
    comment = await rest.ok("POST", f"runtime/tasks/{task['id']}/comments", json={"message": "by the login"})
    assert comment["author"] == engine.user


@pytest.mark.parametrize("value", ["", "a" * 51, "alice smith", "alice,bob", "a/b", "<alice>", "al\u00efce"])
async def test_a_bad_acting_user_is_400_and_nothing_happens(rest, flowable, value):
    before = await rest.ok("GET", "runtime/process-instances", params={"size": 0})
    status, body, _ = await rest.call("POST", "runtime/process-instances", headers={"X-Acting-User": value},
                                      json={"processDefinitionKey": "never-started"})
    assert status == 400
    assert "X-Acting-User" in body["message"] and "1 to 50" in body["message"]
    assert (await rest.ok("GET", "runtime/process-instances", params={"size": 0}))["total"] == before["total"]


async def test_only_the_rest_login_may_act_for_someone(rest):
    # Anonymous (the health probe needs no login) is not the REST user: refused, not ignored.
    status, body, _ = await rest.call("GET", "bridge-emitter/health", root=True, auth=False,
                                      headers={"X-Acting-User": "alice"})
    assert status == 403 and "only the REST user" in body["message"]
    status, _, _ = await rest.call("GET", "bridge-emitter/health", root=True, auth=False)
    assert status == 200
