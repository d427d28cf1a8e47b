"""The one place the bridge talks to Flowable's REST API (paths relative to /process-api/).

Errors come in two kinds: FlowableError for an answer the engine gave (4xx/5xx with its message),
EngineUnavailable when it could not be reached after retries. Retries (tenacity, exponential
backoff with jitter) cover only what is safe to repeat: a connection that was never made, for
any method, 502/503/504 answers for reads, and an optimistic-locking conflict for any method (the engine
rolled the whole transaction back, e.g. two users completing the two branches of a join at once; our
engine answers it 409 naming FlowableOptimisticLockingException). A conflict still there after the
retries is a FlowableError whose `conflict` is true.

Task actions take `acting_user`: the engine records that user, not the bridge's REST login, as the one who
acted (header X-Acting-User, honoured by our engine for the bridge's credentials only), and they return the
engine's clock at the start of the request (header X-Engine-Time), in which the bridge orders its own
mirror events (bridge/mirror/bridge_events.py); None from an engine that does not send it.
"""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Protocol

import aiohttp
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_random_exponential

from bridge import logs, metrics
from bridge.errors import BridgeError

log = logging.getLogger(__name__)


class FlowableError(BridgeError, RuntimeError):
    """The engine answered with an error."""

    def __init__(self, status: int, method: str, path: str, message: str, exception: str | None = None):
        self.status, self.method, self.path = status, method, path
        self.message, self.exception = message, exception
        super().__init__(f"Flowable {method} {path} -> {status}: {message}")

    @property
    def conflict(self) -> bool:
        """The engine rolled the request back for a concurrent change: doing it again may succeed."""
        return self.status == 409 and (self.exception or "").endswith("OptimisticLockingException")


class EngineUnavailable(BridgeError, RuntimeError):
    """The engine could not be reached (after retries)."""


@dataclass(frozen=True)
class FlowableEndpoint:
    """Where the engine's REST API is and how to log in."""

    base_url: str  # http://host:port/process-api, or several nodes of one engine cluster comma-separated
    user: str
    password: str


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 4
    max_wait_s: float = 2.0


# A whole-number variable is a Java long in the engine.
LONG_MIN, LONG_MAX = -2**63, 2**63 - 1


def to_rest_variables(variables: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """Python values -> Flowable's typed REST variables (always with a type, objects as json)."""
    result = []
    for name, value in (variables or {}).items():
        if isinstance(value, bool):
            kind = "boolean"
        elif isinstance(value, int):
            if not LONG_MIN <= value <= LONG_MAX:  # the engine would store 0 or the limit instead
                raise ValueError(f"variable {name}: {value} does not fit in the engine's long")
            kind = "long"
        elif isinstance(value, float):
            kind = "double"
        elif isinstance(value, datetime):
            kind, value = "date", value.isoformat()
        elif isinstance(value, date):
            kind, value = "localDate", value.isoformat()
        elif isinstance(value, (dict, list)):
            kind = "json"
        else:
            kind = "string"
            value = None if value is None else str(value)
        result.append({"name": name, "type": kind, "value": value})
    return result


def _retryable(err: BaseException) -> bool:
    return isinstance(err, _Retry) or (isinstance(err, FlowableError) and err.conflict)


class _Retry(Exception):
    def __init__(self, cause: BaseException | str):
        self.cause = cause
        super().__init__(str(cause))


class Endpoint(Protocol):
    """Where an engine's REST API is and how to log in: a FlowableEndpoint, or a LocalEngine the bridge runs."""
    @property
    def base_url(self) -> str: ...
    @property
    def user(self) -> str: ...
    @property
    def password(self) -> str: ...


class FlowableClient:
    """The one place that knows Flowable's REST paths. Build it with FlowableClient.of(endpoint).

    The endpoint may name several nodes of one engine cluster (one database behind them: any node answers for
    any instance). Requests go to the node that answered last; one that cannot be reached, or a GET it answers
    502/503/504 or not in time, sends the retry to the next node. A write that reached a node and got no answer
    is not repeated anywhere (it may have been applied)."""

    @classmethod
    def of(cls, endpoint: Endpoint, *, session: aiohttp.ClientSession | None = None,
           retry: RetryPolicy | None = None, timeout_s: float = 30) -> FlowableClient:
        return cls(endpoint.base_url, endpoint.user, endpoint.password, session=session,
                   retry=retry or RetryPolicy(), timeout_s=timeout_s)

    def __init__(self, base_url: str, user: str, password: str, *,
                 session: aiohttp.ClientSession | None = None,
                 retry: RetryPolicy = RetryPolicy(), timeout_s: float = 30) -> None:
        self.base_urls = [u.strip().rstrip("/") for u in base_url.split(",") if u.strip()]
        if not self.base_urls:
            raise ValueError(f"no engine URL in {base_url!r}")
        self._node = 0  # index of the node requests go to
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        self._headers = {"Authorization": f"Basic {token}"}
        self._own_session = session is None
        self._session = session or aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_s))
        self._retry = retry

    @property
    def base_url(self) -> str:
        """The node requests go to now."""
        return self.base_urls[self._node]

    def _pass_over(self, node: int, why: object) -> None:
        """The next node takes the retries, unless a concurrent request moved on already."""
        if len(self.base_urls) > 1 and self._node == node:
            self._node = (node + 1) % len(self.base_urls)
            log.warning("engine node %s failed (%s); requests go to %s", self.base_urls[node], why, self.base_url)

    async def close(self) -> None:
        if self._own_session:
            await self._session.close()

    async def __aenter__(self) -> FlowableClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- transport ---------------------------------------------------------------------------------

    async def request(self, method: str, path: str, *, params: Mapping[str, Any] | None = None,
                      json_body: Any = None, data: Any = None, raw: bool = False,
                      retry: RetryPolicy | None = None, acting_user: str | None = None) -> Any:
        return (await self._request(method, path, params=params, json_body=json_body, data=data, raw=raw,
                                    retry=retry, acting_user=acting_user))[0]

    async def act(self, method: str, path: str, *, json_body: Any = None, acting_user: str | None) -> str | None:
        """A task action as `acting_user`; returns the engine's clock at the start of the request."""
        return (await self._request(method, path, json_body=json_body, acting_user=acting_user))[1]

    async def _request(self, method: str, path: str, *, params: Mapping[str, Any] | None = None,
                       json_body: Any = None, data: Any = None, raw: bool = False,
                       retry: RetryPolicy | None = None, acting_user: str | None = None) -> tuple[Any, str | None]:
        query = {k: _query_value(v) for k, v in (params or {}).items() if v is not None}
        policy = retry or self._retry
        outcome = "200"
        began = time.perf_counter()
        try:
            async for attempt in AsyncRetrying(
                    retry=retry_if_exception(_retryable), stop=stop_after_attempt(policy.attempts),
                    wait=wait_random_exponential(multiplier=0.1, max=policy.max_wait_s), reraise=True):
                with attempt:
                    return await self._once(method, path, query, json_body, data, raw, acting_user)
            raise AssertionError("unreachable: the last attempt returns or raises")
        except _Retry as err:
            outcome = "unavailable"
            raise EngineUnavailable(f"Flowable {method} {path}: {err.cause}") from None
        except FlowableError as err:
            outcome = str(err.status)
            raise
        except EngineUnavailable:
            outcome = "unavailable"
            raise
        finally:
            metrics.ENGINE_REQUESTS.labels(method, outcome).inc()
            metrics.ENGINE_SECONDS.labels(method).observe(time.perf_counter() - began)

    async def _once(self, method, path, query, json_body, data, raw, acting_user=None):
        node = self._node
        url = f"{self.base_urls[node]}/{path.lstrip('/')}"
        try:
            rid = logs.REQUEST_ID.get()
            headers = {**self._headers, "X-Request-Id": rid} if rid else self._headers
            if acting_user:
                headers = {**headers, "X-Acting-User": acting_user}
            log.debug("engine %s %s", method, path)
            async with self._session.request(method, url, params=query, json=json_body, data=data,
                                             headers=headers) as response:
                body = await response.read()
                if response.status >= 400:
                    if response.status in (502, 503, 504) and method == "GET":
                        self._pass_over(node, f"HTTP {response.status}")
                        raise _Retry(f"HTTP {response.status}")
                    raise _error(response.status, method, path, body)
                engine_at = response.headers.get("X-Engine-Time")
                if raw:
                    return body, engine_at
                return (json.loads(body) if body else None), engine_at
        except aiohttp.ClientConnectorError as err:  # never connected: safe to repeat any method
            self._pass_over(node, err)
            raise _Retry(err) from err
        except (aiohttp.ServerDisconnectedError, TimeoutError) as err:
            if method == "GET":
                self._pass_over(node, repr(err))
                raise _Retry(err) from err
            # the write may have been applied there; the caller learns so, and the next request goes elsewhere
            self._pass_over(node, repr(err))
            raise EngineUnavailable(f"Flowable {method} {path}: {err!r} (not retried: may have been applied)") from err

    # -- management --------------------------------------------------------------------------------

    async def engine_info(self, *, retry: RetryPolicy | None = None) -> dict:
        return await self.request("GET", "management/engine", retry=retry)

    # -- repository --------------------------------------------------------------------------------

    async def deploy(self, filename: str, content: bytes, *, deployment_name: str | None = None,
                     tenant_id: str | None = None) -> dict:
        form = aiohttp.FormData()
        form.add_field("file", content, filename=filename, content_type="text/xml")
        if tenant_id:
            form.add_field("tenantId", tenant_id)
        return await self.request("POST", "repository/deployments",
                                  params={"deploymentName": deployment_name or filename}, data=form)

    async def process_definitions(self, **filters: Any) -> list[dict]:
        return (await self.request("GET", "repository/process-definitions", params=filters))["data"]

    async def definition_resource(self, definition_id: str) -> bytes:
        """The BPMN bytes a process definition was deployed from."""
        return await self.request("GET", f"repository/process-definitions/{definition_id}/resourcedata", raw=True)

    # -- runtime -----------------------------------------------------------------------------------

    async def start_process(self, process_key: str, *, business_key: str | None = None,
                            variables: Mapping[str, Any] | None = None, acting_user: str | None = None) -> dict:
        body: dict[str, Any] = {"processDefinitionKey": process_key, "returnVariables": True,
                                "variables": to_rest_variables(variables)}
        if business_key is not None:
            body["businessKey"] = business_key
        return await self.request("POST", "runtime/process-instances", json_body=body, acting_user=acting_user)

    async def process_instances(self, **filters: Any) -> list[dict]:
        """Running instances (runtime/process-instances filters: businessKey, processDefinitionKey, ...)."""
        filters.setdefault("size", 1000)
        return (await self.request("GET", "runtime/process-instances", params=filters))["data"]

    async def process_instance(self, instance_id: str) -> dict:
        return await self.request("GET", f"runtime/process-instances/{instance_id}")

    async def cancel_process(self, instance_id: str, reason: str = "cancelled") -> None:
        await self.request("DELETE", f"runtime/process-instances/{instance_id}", params={"deleteReason": reason})

    async def tasks(self, **filters: Any) -> list[dict]:
        filters.setdefault("size", 1000)
        return (await self.request("GET", "runtime/tasks", params=filters))["data"]

    async def task(self, task_id: str) -> dict:
        return await self.request("GET", f"runtime/tasks/{task_id}")

    async def claim_task(self, task_id: str, assignee: str | None, *, acting_user: str | None = None) -> str | None:
        """Claim for `assignee`, or unclaim with None."""
        return await self.act("POST", f"runtime/tasks/{task_id}", acting_user=acting_user,
                              json_body={"action": "claim", "assignee": assignee})

    async def complete_task(self, task_id: str, variables: Mapping[str, Any] | None = None, *,
                            acting_user: str | None = None) -> str | None:
        return await self.act("POST", f"runtime/tasks/{task_id}", acting_user=acting_user,
                              json_body={"action": "complete", "variables": to_rest_variables(variables)})

    async def delegate_task(self, task_id: str, assignee: str, *, acting_user: str | None = None) -> str | None:
        return await self.act("POST", f"runtime/tasks/{task_id}", acting_user=acting_user,
                              json_body={"action": "delegate", "assignee": assignee})

    async def resolve_task(self, task_id: str, *, acting_user: str | None = None) -> str | None:
        """A delegate hands the task back: it returns to its owner (Flowable's delegation)."""
        return await self.act("POST", f"runtime/tasks/{task_id}", acting_user=acting_user,
                              json_body={"action": "resolve"})

    async def comment_task(self, task_id: str, message: str, *, acting_user: str | None = None) -> str | None:
        return await self.act("POST", f"runtime/tasks/{task_id}/comments", acting_user=acting_user,
                              json_body={"message": message, "saveProcessInstanceId": True})

    async def add_candidate_group(self, task_id: str, group: str, *, acting_user: str | None = None) -> str | None:
        """Offer the task to a group too; an engine that has it already (409) changes nothing and says so."""
        return await self.act("POST", f"runtime/tasks/{task_id}/identitylinks", acting_user=acting_user,
                              json_body={"group": group, "type": "candidate"})

    async def set_task_priority(self, task_id: str, priority: int, *, acting_user: str | None = None) -> str | None:
        return await self.act("PUT", f"runtime/tasks/{task_id}", acting_user=acting_user,
                              json_body={"priority": priority})

    async def update_task(self, task_id: str, **fields: Any) -> dict:
        return await self.request("PUT", f"runtime/tasks/{task_id}", json_body=fields)

    # -- our webhook emitter (engine/, beside the REST API) ------------------------------------------

    async def emitter_stats(self) -> dict:
        """The engine's own count of webhook batches and events sent, dropped and queued
        (EmitterController /bridge-emitter/stats); FlowableError 404 from an engine without our emitter."""
        return await self.request("GET", "../bridge-emitter/stats", retry=RetryPolicy(attempts=1))

    # -- instance migration (engine/.../migration/MigrationController.java) -------------------------------

    async def validate_migration(self, instance_id: str, document: dict[str, Any]) -> list[str]:
        """Why the instance cannot move as the document says (empty: it can); changes nothing."""
        answer = await self.request("POST", f"../bridge-migration/process-instances/{instance_id}/validate",
                                    json_body=document)
        return list(answer["validationMessages"])

    async def migrate_instance(self, instance_id: str, document: dict[str, Any], *,
                               acting_user: str | None) -> tuple[dict[str, Any], str | None]:
        """Validate and migrate in one engine transaction, re-mapping candidate groups: (the instance's definition
        and open tasks after it, the engine's clock at the start). FlowableError 409 with exception
        MigrationRefused when validation refuses it (nothing changed)."""
        answer, at = await self._request("POST", f"../bridge-migration/process-instances/{instance_id}/migrate",
                                         json_body=document, acting_user=acting_user)
        return answer, at

    async def import_case(self, body: dict[str, Any], *, acting_user: str | None) -> tuple[dict[str, Any], str | None]:
        """Start a legacy case at its activity (engine/.../imports/ImportController.java): (the instance, created
        or found already there, with its open tasks; the engine's clock at the start)."""
        answer, at = await self._request("POST", "../bridge-import/process-instances", json_body=body,
                                         acting_user=acting_user)
        return answer, at

    # -- history -----------------------------------------------------------------------------------

    async def historic_process_instances(self, **filters: Any) -> list[dict]:
        return (await self.request("GET", "history/historic-process-instances", params=filters))["data"]

    async def historic_task_log(self, from_log_number: int = 0, size: int = 500) -> list[dict]:
        return (await self.request("GET", "history/historic-task-log-entries",
                                   params={"fromLogNumber": from_log_number, "sort": "logNumber",
                                           "order": "asc", "size": size}))["data"]

    async def newest_task_log_number(self) -> int:
        rows = (await self.request("GET", "history/historic-task-log-entries",
                                   params={"sort": "logNumber", "order": "desc", "size": 1}))["data"]
        return rows[0]["logNumber"] if rows else 0

    async def historic_processes_by_ids(self, ids: list[str], *, include_variables: bool = False) -> list[dict]:
        body = {"processInstanceIds": ids, "includeProcessVariables": include_variables, "size": len(ids)}
        return (await self.request("POST", "query/historic-process-instances", json_body=body))["data"]

    async def delete_historic_processes(self, ids: list[str]) -> None:
        """Delete the engine's history of these ended instances in one engine transaction (keep `ids` short).
        FlowableError 404 when any of them is not there: delete_historic_process then tells which."""
        await self.request("POST", "history/historic-process-instances/delete",
                           json_body={"action": "delete", "instanceIds": ids})

    async def delete_historic_process(self, instance_id: str) -> bool:
        """Delete one ended instance's history; False when the engine has none (already deleted)."""
        try:
            await self.request("DELETE", f"history/historic-process-instances/{instance_id}")
        except FlowableError as err:
            if err.status == 404:
                return False
            raise
        return True

    async def task_identity_links(self, task_id: str) -> list[dict]:
        return await self.request("GET", f"runtime/tasks/{task_id}/identitylinks")

    def historic_process_pages(self, *, page_size: int = 500, **filters: Any) -> AsyncIterator[dict]:
        """Every historic process instance the filters select (finished=, startedAfter=, ...), by id."""
        return self.pages("history/historic-process-instances", sort="processInstanceId", page_size=page_size,
                          **filters)

    def historic_task_pages(self, *, page_size: int = 500, **filters: Any) -> AsyncIterator[dict]:
        """Every historic task instance the filters select (processInstanceId=, processFinished=, ...), by id."""
        return self.pages("history/historic-task-instances", sort="taskInstanceId", page_size=page_size, **filters)

    def process_instance_pages(self, *, page_size: int = 500, **filters: Any) -> AsyncIterator[dict]:
        """Every running process instance the filters select (suspended=, ...), by id."""
        return self.pages("runtime/process-instances", sort="id", page_size=page_size, **filters)

    async def pages(self, path: str, *, sort: str, page_size: int = 500, **filters: Any) -> AsyncIterator[dict]:
        """Every row of a list resource, a page at a time, in `sort` order (offset paging: rows inserted
        meanwhile may shift a page; the reconciler's overlap window catches what that skips)."""
        start = 0
        while True:
            page = await self.request("GET", path, params={**filters, "sort": sort, "order": "asc",
                                                           "start": start, "size": page_size})
            for row in page["data"]:
                yield row
            start += len(page["data"])
            if not page["data"] or start >= page["total"]:
                return


def engine_time(value: datetime) -> str:
    """A moment as the engine writes and reads it: UTC, milliseconds, Z (2024-05-01T10:17:43.902Z). The
    mirror's lastEventAt compares these as text, so every writer of one must use this form."""
    value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def _query_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):  # Flowable parses milliseconds and a Z, nothing finer (500 otherwise)
        return engine_time(value)
    return str(value)


def _error(status: int, method: str, path: str, body: bytes) -> FlowableError:
    try:
        payload = json.loads(body)
        return FlowableError(status, method, path, payload.get("message") or body.decode(errors="replace"),
                             payload.get("exception"))
    except (ValueError, AttributeError):
        return FlowableError(status, method, path, body.decode(errors="replace")[:500] or f"HTTP {status}")
