"""The OpenAPI 3.1 document of the bridge's HTTP API, served at GET /api/openapi.json.

Written by hand beside the handlers; tests/test_openapi.py fails when a route is missing here or a path
here has no route, and schemathesis drives every operation from it against a real bridge.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

ERROR = {"$ref": "#/components/schemas/Error"}
BEARER: list[dict[str, list[str]]] = [{"bearer": []}]


def _json(schema: dict, description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict:
    text = {400: "the request is malformed (the message names the field)", 401: "no valid bearer token",
            403: "the user lacks the role", 404: "not found, or not visible to the user",
            409: "the task is not in a state, or not the user's, for this action",
            413: "the body is too large", 422: "the engine refused, or an Idempotency-Key was reused",
            503: "the engine or the database is unavailable; nothing was changed (see Retry-After)"}
    return {str(code): _json(ERROR, text[code]) for code in codes}


TASK_ID = {"name": "task_id", "in": "path", "required": True, "schema": {"type": "string"}}
QUEUE_NAME = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
CASE_ID = {"name": "case_id", "in": "path", "required": True,
           "schema": {"type": "integer", "minimum": 1, "maximum": 999_999_999_999_999_999},  # parse_case_id's range
           "description": "a positive whole number"}
IDEMPOTENCY_KEY = {"name": "Idempotency-Key", "in": "header", "required": False,
                   "schema": {"type": "string", "minLength": 1, "maxLength": 200},
                   "description": "a retry with the same key gets the first answer instead of a second action"}


def _action(summary: str, body: dict | None, *, ok: dict | None = None, codes=(400, 401, 404, 409, 422, 503)) -> dict:
    operation: dict[str, Any] = {
        "summary": summary, "security": BEARER, "parameters": [TASK_ID, IDEMPOTENCY_KEY],
        "responses": {"200": _json(ok or {"$ref": "#/components/schemas/ActionResult"}, "done"), **_errors(*codes)},
    }
    if body is not None:
        operation["requestBody"] = {"required": False, "content": {"application/json": {"schema": body}}}
    return {"post": operation}


def _object(properties: dict, required: list[str] | None = None) -> dict:
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = required
    return schema


STRING = {"type": "string"}
VERSION = {"type": "integer", "minimum": 1, "maximum": 2_147_483_647}
MIGRATION_ID = {"name": "migration_id", "in": "path", "required": True, "schema": {"type": "integer", "minimum": 1}}
MIGRATION_RUN = {"type": "object", "description": "migrationId, processKey, fromVersion, toVersion, activities, "
                 "businessKeys, mappings, dryRun, requestedBy, counts (outcome: instances); instances: "
                 "[{processInstanceId, businessKey, activities, outcome (MIGRATABLE, REFUSED, MIGRATED, FAILED), "
                 "messages}]"}
NULLABLE_STRING = {"type": ["string", "null"]}
VARIABLES = {"type": "object", "description": "process variables by name; values are typed from JSON",
             "additionalProperties": True}

DOCUMENT: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "OneCMS Flow Bridge", "version": "0.1.0",
             "description": "Flowable case workflows with a PostgreSQL mirror: webhook intake, deployments, "
                            "queue work. Every /api request carries `Authorization: Bearer <token>` "
                            "(bridge token create USER)."},
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                       "description": "an opaque API token (bridge token create USER)"}},
        "schemas": {
            "Error": _object({"error": STRING}, ["error"]),
            "Task": _object({
                "task_id": STRING, "process_instance_id": STRING, "task_definition_key": STRING,
                "task_name": STRING, "queue_name": STRING, "status": STRING, "assignee_id": NULLABLE_STRING,
                "candidate_groups": {"type": ["array", "null"], "items": STRING},
                "candidate_users": {"type": ["array", "null"], "items": STRING},
                "priority": {"type": "integer"}, "created_at": STRING, "due_date": NULLABLE_STRING,
                "escalation_level": {"type": "integer"}, "outcome": NULLABLE_STRING}),
            "ActionResult": _object({"taskId": STRING, "action": STRING, "status": STRING,
                                     "assignee": NULLABLE_STRING}),
            "QueueSettings": {"type": "object", "additionalProperties": False, "properties": {
                "slaMinutes": {"type": "integer", "minimum": 1, "maximum": 525600},
                "maxCapacity": {"type": "integer", "minimum": 1, "maximum": 1000000},
                "overflowQueue": NULLABLE_STRING,
                "escalation": {"type": "object", "additionalProperties": False, "properties": {
                    "raisePriorityBy": {"type": "integer", "minimum": 1, "maximum": 100},
                    "moveToQueue": STRING, "notifyRole": STRING,
                    "maxLevel": {"type": "integer", "minimum": 1, "maximum": 10}}},
                "autoAssign": {"type": "boolean"},
                "assignmentStrategy": {"type": "string", "enum": ["ROUND_ROBIN", "LEAST_LOADED"]},
                "maxTasksPerUser": {"type": "integer", "minimum": 1, "maximum": 10000}}},
            "Queue": _object({
                "name": STRING, "type": STRING, "department": NULLABLE_STRING, "active": {"type": "boolean"},
                "settings": {"$ref": "#/components/schemas/QueueSettings"},
                "roles": {"type": "array", "items": {"type": "object"}},
                "changes": {"type": "array", "items": _object({
                    "at": STRING, "by": STRING, "source": STRING, "before": {"type": "object"},
                    "after": {"type": "object"}})}}),
            "CaseWorkflow": _object({
                "caseId": {"type": "integer"}, "processInstanceId": STRING, "workflowType": STRING,
                "status": STRING, "currentDepartment": NULLABLE_STRING, "currentPhase": NULLABLE_STRING,
                "routingHistory": {"type": "array", "items": {"type": "object"}}, "initiatedBy": STRING,
                "initiatedAt": STRING, "expectedCompletion": NULLABLE_STRING, "actualCompletion": NULLABLE_STRING,
                "processVersion": {"type": "integer"},
                "archived": {"type": "boolean", "description": "moved to the archive past its retention"},
                "archivedAt": {"type": "string", "format": "date-time"},
                "outcome": {"type": ["object", "null"], "description": "how it ended, null while it runs",
                            "properties": {"status": STRING, "endActivityId": NULLABLE_STRING,
                                           "endActivityName": NULLABLE_STRING, "reason": NULLABLE_STRING}}}),
        },
    },
    "paths": {
        "/healthz": {"get": {"summary": "the process serves", "responses": {
            "200": _json(_object({"status": STRING, "pid": {"type": "integer"}}), "serving")}}},
        "/readyz": {"get": {"summary": "database, migrations and engine answer", "responses": {
            "200": _json({"type": "object"}, "ready"),
            "503": _json({"type": "object"}, "not ready (checks say why)")}}},
        "/metrics": {"get": {"summary": "Prometheus metrics", "responses": {
            "200": {"description": "text exposition format", "content": {"text/plain": {"schema": STRING}}}}}},
        "/webhooks/flowable": {"post": {
            "summary": "the engine's signed event batches (Standard Webhooks)",
            "parameters": [{"name": n, "in": "header", "required": True, "schema": STRING}
                           for n in ("webhook-id", "webhook-timestamp", "webhook-signature")],
            "requestBody": {"required": True, "content": {"application/json": {"schema": _object(
                {"events": {"type": "array", "items": {"type": "object"}}}, ["events"])}}},
            "responses": {"200": _json(_object({
                "webhookId": STRING, "events": {"type": "integer"}, "newEvents": {"type": "integer"},
                "duplicateDelivery": {"type": "boolean"}, "parked": {"type": "integer"}}), "stored"),
                **_errors(400, 413, 503), "401": _json(ERROR, "the signature check failed")}}},
        "/api/openapi.json": {"get": {"summary": "this document", "responses": {
            "200": _json({"type": "object"}, "the OpenAPI document")}}},
        "/api/deployments": {"post": {
            "summary": "deploy a BPMN file (WORKFLOW_DESIGNER)", "security": BEARER,
            "parameters": [{"name": "filename", "in": "query", "schema": STRING},
                           {"name": "dryRun", "in": "query", "schema": {"type": "boolean"}}],
            "requestBody": {"required": True, "content": {
                "multipart/form-data": {"schema": _object({"file": {"type": "string", "contentMediaType":
                                                                     "application/octet-stream"}}, ["file"])},
                "application/xml": {"schema": STRING}}},
            "responses": {"200": _json({"type": "object"}, "unchanged, repaired or planned; a dry run adds plan: "
                                       "per process key, fromVersion, toVersion and its changes (activities, "
                                       "queues, roles, slas, startVariables, escalation)"),
                          "201": _json({"type": "object"}, "deployed"),
                          **_errors(400, 401, 403, 413, 422, 503)}}},
        "/api/migrations": {
            "post": {
                "summary": "move running instances of a process to another version (WORKFLOW_DESIGNER): a dry "
                           "run answers per instance, migratable or why not; a real run starts in the background",
                "security": BEARER,
                "requestBody": {"required": True, "content": {"application/json": {"schema": _object({
                    "processKey": {"type": "string", "minLength": 1, "maxLength": 255},
                    "fromVersion": VERSION, "toVersion": VERSION,
                    "activities": {"type": "array", "items": STRING, "maxItems": 100,
                                   "description": "only instances waiting in one of these activities"},
                    "businessKeys": {"type": "array", "items": STRING, "maxItems": 100},
                    "mappings": {"type": "object", "additionalProperties": STRING,
                                 "description": "old activity id: new activity id; others keep their id"},
                    "dryRun": {"type": "boolean"}}, ["processKey", "fromVersion", "toVersion"])}}},
                "responses": {"200": _json(MIGRATION_RUN, "the dry run's report: every chosen instance"),
                              "202": _json(_object({"migrationId": {"type": "integer"}, "status": STRING,
                                                    "location": STRING}), "started; follow it at location"),
                              **_errors(400, 401, 403, 404, 409, 422, 503)}},
            "get": {"summary": "the newest migration runs (WORKFLOW_DESIGNER)", "security": BEARER,
                    "responses": {"200": _json(_object({"migrations": {"type": "array", "items": MIGRATION_RUN}}),
                                               "newest first"), **_errors(401, 403)}}},
        "/api/migrations/{migration_id}": {"get": {
            "summary": "a migration run and its per-instance results so far (WORKFLOW_DESIGNER)",
            "security": BEARER, "parameters": [MIGRATION_ID],
            "responses": {"200": _json(MIGRATION_RUN, "the run; finishedAt null while it runs"),
                          **_errors(401, 403, 404)}}},
        "/api/migrations/{migration_id}/resume": {"post": {
            "summary": "carry on a run that stopped (as it was asked; moves what is still on the old version)",
            "security": BEARER, "parameters": [MIGRATION_ID],
            "responses": {"202": _json(_object({"migrationId": {"type": "integer"}, "status": STRING,
                                                "location": STRING}), "carrying on"),
                          **_errors(401, 403, 404, 409, 422, 503)}}},
        "/api/tasks": {"get": {
            "summary": "tasks the user may see (row-level security), in claim order, keyset-paged",
            "security": BEARER,
            "parameters": [{"name": "queue", "in": "query", "schema": STRING},
                           {"name": "status", "in": "query", "schema": {"enum": [
                               "OPEN", "CLAIMED", "COMPLETED", "CANCELLED", "DELEGATED"]}},
                           {"name": "assignee", "in": "query", "schema": STRING},
                           {"name": "due_before", "in": "query", "schema": {"type": "string", "format": "date-time"}},
                           {"name": "limit", "in": "query",
                            "schema": {"type": "integer", "minimum": 1, "maximum": 200}},
                           {"name": "cursor", "in": "query", "schema": STRING}],
            "responses": {"200": _json(_object({"tasks": {"type": "array",
                                                          "items": {"$ref": "#/components/schemas/Task"}},
                                                "nextCursor": NULLABLE_STRING}), "a page"),
                          **_errors(400, 401)}}},
        "/api/tasks/{task_id}": {"get": {
            "summary": "one task with its history (an archived one too: archived, archivedAt)", "security": BEARER,
            "parameters": [TASK_ID],
            "responses": {"200": _json({"type": "object"}, "the task"), **_errors(401, 404)}}},
        "/api/work/next": {"post": {
            "summary": "claim the best open task the user may take", "security": BEARER,
            "parameters": [IDEMPOTENCY_KEY],
            "requestBody": {"required": False, "content": {"application/json": {"schema": _object(
                {"queues": {"type": "array", "items": STRING}})}}},
            "responses": {"200": _json({"type": "object"}, "the task claimed"),
                          "204": {"description": "nothing to take"},
                          **_errors(400, 401, 409, 422, 503)}}},
        "/api/tasks/{task_id}/claim": _action("claim an open task", _object({})),
        "/api/tasks/{task_id}/unclaim": _action("give a task back to its queue", _object({})),
        "/api/tasks/{task_id}/complete": _action("complete the user's task", _object({
            "outcome": {"type": "string", "minLength": 1, "maxLength": 100}, "variables": VARIABLES})),
        "/api/tasks/{task_id}/delegate": _action("delegate the user's task", _object(
            {"to": {"type": "string", "minLength": 1, "maxLength": 50}}, ["to"])),
        "/api/tasks/{task_id}/resolve": _action("hand a task delegated to the user back to its owner", _object({})),
        "/api/tasks/{task_id}/escalate": _action(
            "escalate a task one level (it stays takeable, offered first)",
            _object({"reason": {"type": "string", "minLength": 1, "maxLength": 2000}}, ["reason"])),
        "/api/tasks/{task_id}/comment": _action("comment on a task", _object(
            {"message": {"type": "string", "minLength": 1, "maxLength": 4000}}, ["message"])),
        "/api/queues": {"get": {
            "summary": "every queue with its settings as they take effect", "security": BEARER,
            "responses": {"200": _json(_object({"queues": {"type": "array", "items": {
                "$ref": "#/components/schemas/Queue"}}}), "the queues"), **_errors(401)}}},
        "/api/queues/{name}": {
            "get": {"summary": "a queue, its settings, its roles and its latest setting changes", "security": BEARER,
                    "parameters": [QUEUE_NAME],
                    "responses": {"200": _json({"$ref": "#/components/schemas/Queue"}, "the queue"),
                                  **_errors(401, 404)}},
            "put": {"summary": "change some of a queue's settings, all or nothing, recorded (QUEUE_ADMIN); "
                               "escalation is replaced whole", "security": BEARER, "parameters": [QUEUE_NAME],
                    "requestBody": {"required": True, "content": {"application/json": {
                        "schema": {"$ref": "#/components/schemas/QueueSettings"}}}},
                    "responses": {"200": _json({"$ref": "#/components/schemas/Queue"}, "changed (or already so)"),
                                  "422": _json(_object({"error": STRING,
                                                        "problems": {"type": "array", "items": STRING}}),
                                               "nothing changed: every problem listed"),
                                  **_errors(400, 401, 403, 404)}}},
        "/api/admin/entitlements": {"post": {
            "summary": "import departments, users and grants (ENTITLEMENTS_ADMIN), all or nothing",
            "security": BEARER,
            "requestBody": {"required": True, "content": {"application/yaml": {"schema": STRING},
                                                          "text/csv": {"schema": STRING}}},
            "responses": {"200": _json(_object({"departments": {"type": "integer"}, "users": {"type": "integer"},
                                                "grants": {"type": "integer"}}), "imported"),
                          "422": _json(_object({"error": STRING, "problems": {"type": "array", "items": STRING}}),
                                       "nothing imported: every problem listed"),
                          **_errors(400, 401, 403)}}},
        "/api/admin/users/{user_id}": {"get": {
            "summary": "a user and every grant they have or had, with whether it is in force (ENTITLEMENTS_ADMIN)",
            "security": BEARER, "parameters": [{"name": "user_id", "in": "path", "required": True, "schema": STRING}],
            "responses": {"200": _json(_object({"user_id": STRING, "is_active": {"type": "boolean"},
                                                "grants": {"type": "array", "items": {"type": "object"}}}), "the user"),
                          **_errors(400, 401, 403, 404)}}},
        "/api/admin/users/{user_id}/grants/{role_code}": {"delete": {
            "summary": "revoke a grant now: a grant in force ends now (kept as history), one not yet started is "
                       "removed; claims and row-level security stop honouring it at once (ENTITLEMENTS_ADMIN)",
            "security": BEARER,
            "parameters": [{"name": "user_id", "in": "path", "required": True, "schema": STRING},
                           {"name": "role_code", "in": "path", "required": True, "schema": STRING}],
            "responses": {"200": _json(_object({"userId": STRING, "revoked": {"type": "object"},
                                                "revokedBy": STRING}), "revoked"),
                          **_errors(400, 401, 403, 404)}}},
        "/api/cases/{case_id}/workflows": {"post": {
            "summary": "start a workflow for a case (business key = case id)", "security": BEARER,
            "parameters": [CASE_ID, IDEMPOTENCY_KEY],
            "requestBody": {"required": True, "content": {"application/json": {"schema": _object(
                {"process_key": STRING, "variables": VARIABLES}, ["process_key"])}}},
            "responses": {"201": _json({"$ref": "#/components/schemas/CaseWorkflow"}, "started"),
                          **_errors(400, 401, 404, 422, 503)}}},
        "/api/cases/{case_id}": {"get": {
            "summary": "every workflow of a case, where it stands", "security": BEARER, "parameters": [CASE_ID],
            "responses": {"200": _json(_object({"caseId": {"type": "integer"}, "workflows": {
                "type": "array", "items": {"$ref": "#/components/schemas/CaseWorkflow"}}}), "the case"),
                **_errors(400, 401, 404)}}},
    },
}


INTEGER = {"type": "integer"}
NUMBER = {"type": "number"}
CAPACITY_DAY = _object({
    "day": {"type": "string", "format": "date", "description": "a UTC day"},
    "start": {"type": "string", "format": "date-time"},
    "end": {"type": "string", "format": "date-time", "description": "the first and last day may be partial"},
    "arrivals": INTEGER, "completions": INTEGER, "cancellations": INTEGER,
    "net": {"type": "integer", "description": "arrivals - completions - cancellations"},
    "backlog": {"type": "integer", "description": "live tasks at the end of the day"}},
    ["day", "start", "end", "arrivals", "completions", "cancellations", "net", "backlog"])
CAPACITY_QUEUE = _object({
    "queueName": STRING, "departmentCode": NULLABLE_STRING, "departmentName": NULLABLE_STRING,
    "maxCapacity": INTEGER, "slaMinutes": INTEGER, "openNow": INTEGER,
    "utilisation": {"type": "number", "description": "openNow / maxCapacity"},
    "arrivals": INTEGER, "completions": INTEGER, "cancellations": INTEGER,
    "backlogStart": INTEGER, "backlogEnd": INTEGER, "backlogPeak": INTEGER,
    "backlogSlopePerDay": {"type": "number", "description": "least-squares slope of the backlog at the day boundaries"},
    "trend": {"enum": ["rising", "falling", "flat"]},
    "meanHandlingHours": {"type": ["number", "null"], "description": "created to completed, tasks completed in "
                                                                      "the range"},
    "suggestedCapacity": INTEGER, "suggestedFrom": {"enum": ["peak backlog", "open now", "minimum"]},
    "days": {"type": "array", "items": CAPACITY_DAY}},
    ["queueName", "maxCapacity", "openNow", "utilisation", "arrivals", "completions", "backlogStart", "backlogEnd",
     "backlogPeak", "backlogSlopePerDay", "trend", "suggestedCapacity", "days"])
REPORT_BODIES: dict[str, dict] = {
    "capacity": _object({"filter": {"type": "object"}, "rule": {"type": "string",
                                                               "description": "how suggestedCapacity is set"},
                         "headroom": NUMBER, "roundTo": INTEGER,
                         "queues": {"type": "array", "items": CAPACITY_QUEUE}},
                        ["filter", "rule", "queues"])}


def _ago(span: timedelta) -> str:
    days, rest = divmod(int(span.total_seconds()), 86400)
    return f"until - {days} days" if days > 1 and not rest else f"until - {int(span.total_seconds()) // 3600} hours"


def _report_operations() -> dict[str, Any]:
    """One GET per report of bridge/reports.py, described by the report's own docstring."""
    from bridge.reports import MAX_LIMIT, MAX_VERSION, PROCESS_MAP_ONLY, REPORTS, span_of

    moment = {"type": "string", "format": "date-time"}
    parameters = [
        {"name": "department", "in": "query", "schema": STRING, "description": "a department code"},
        {"name": "queue", "in": "query", "schema": STRING, "description": "a queue name"},
        {"name": "until", "in": "query", "schema": moment, "description": "default: now"},
        {"name": "at_risk_minutes", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 10080},
         "description": "a live task due within this many minutes is at risk (default 60)"},
        {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT},
         "description": "rows in lists (default 20)"}]
    per_process = [
        {"name": "process", "in": "query", "schema": STRING, "description": "a process key (default: every one)"},
        {"name": "version", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": MAX_VERSION},
         "description": "a version of that process (default: the active one, else the newest)"}]
    return {f"/api/reports/{name}": {"get": {
        "summary": " ".join((report.__doc__ or name).split()) + " (OPS_VIEWER)",
        "security": BEARER,
        "parameters": [*parameters[:2],
                       {"name": "since", "in": "query", "schema": moment,
                        "description": f"default: {_ago(span_of(name))}"},
                       *parameters[2:], *(per_process if name in PROCESS_MAP_ONLY else [])],
        "responses": {"200": _json(REPORT_BODIES.get(name, _object({"filter": {"type": "object"}}, ["filter"])),
                                   "the report"),
                      **_errors(400, 401, 403)}}} for name, report in REPORTS.items()}


DOCUMENT["paths"].update(_report_operations())

_HTML = {"text/html": {"schema": STRING}}
DOCUMENT["paths"].update({
    "/dashboard": {"get": {
        "summary": "the ops dashboard (HTML; OPS_VIEWER): a bearer token, or the cookie /dashboard/login sets",
        "parameters": [{"name": "department", "in": "query", "schema": STRING},
                       {"name": "hours", "in": "query", "schema": {"enum": ["6", "24", "72", "168"]}}],
        "responses": {"200": {"description": "the page", "content": _HTML},
                      "400": _json(ERROR, "a query value holds a NUL character or a lone surrogate"),
                      "401": {"description": "the sign-in page", "content": _HTML},
                      "403": {"description": "the sign-in page: the user lacks OPS_VIEWER", "content": _HTML}}}},
    "/dashboard/processes/{key}": {"get": {
        "summary": "the live process map (HTML; OPS_VIEWER): the deployed diagram of a version of the process with "
                   "live, breached and at-risk tasks and the mean time spent at each activity",
        "parameters": [{"name": "key", "in": "path", "required": True, "schema": STRING,
                        "description": "the process key"},
                       {"name": "version", "in": "query", "schema": STRING,
                        "description": "a version number (default: the active one, else the newest)"},
                       {"name": "hours", "in": "query", "schema": {"enum": ["6", "24", "72", "168"]}},
                       {"name": "heat", "in": "query", "schema": {"enum": ["live", "time"]}},
                       {"name": "zoom", "in": "query", "schema": {"enum": ["fit", "full"]}}],
        "responses": {"200": {"description": "the page", "content": _HTML},
                      "400": _json(ERROR, "a query value holds a NUL character or a lone surrogate"),
                      "401": {"description": "the sign-in page", "content": _HTML},
                      "403": {"description": "the sign-in page: the user lacks OPS_VIEWER", "content": _HTML},
                      "404": {"description": "no such process, or no such version of it", "content": _HTML}}}},
    "/dashboard/login": {"post": {
        "summary": "sign in to the dashboard with an API token; sets an HttpOnly cookie scoped to /dashboard",
        "requestBody": {"required": True, "content": {"application/x-www-form-urlencoded": {
            "schema": _object({"token": STRING, "next": STRING}, ["token"])}}},
        "responses": {"303": {"description": "signed in: to /dashboard (or the dashboard page given as next)"},
                      "400": {"description": "the sign-in page: the form could not be read", "content": _HTML},
                      "401": {"description": "the sign-in page with the reason", "content": _HTML},
                      "403": {"description": "the sign-in page: the user lacks OPS_VIEWER", "content": _HTML}}}},
    "/dashboard/logout": {"post": {
        "summary": "sign out of the dashboard (drops the cookie)",
        "responses": {"303": {"description": "to /dashboard"}}}},
})


def _operation_ids_and_links() -> None:
    """An operationId on every operation, and links from the operations that hand out task ids (the task list,
    claim-next) to every operation on one task: schemathesis's stateful phase follows them to chain real
    calls (list, then claim, complete, ...) against a real bridge."""
    for path, operations in DOCUMENT["paths"].items():
        for method, operation in operations.items():
            name = "_".join(part.strip("{}") for part in path.strip("/").split("/"))
            operation.setdefault("operationId", f"{method}_{name}")
    on_task = {operations["post" if "post" in operations else "get"]["operationId"]: path
               for path, operations in DOCUMENT["paths"].items() if path.startswith("/api/tasks/{task_id}")}
    for source, expression in (("/api/tasks", "$response.body#/tasks/0/task_id"),
                               ("/api/work/next", "$response.body#/task_id")):
        operation = DOCUMENT["paths"][source]["get" if source == "/api/tasks" else "post"]
        operation["responses"]["200"]["links"] = {
            operation_id: {"operationId": operation_id, "parameters": {"task_id": expression}}
            for operation_id in on_task}


_operation_ids_and_links()
