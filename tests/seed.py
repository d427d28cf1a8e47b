"""Small builders for test data in the extension tables (plain SQL, real constraints)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import psycopg

_ids = itertools.count(1)


def now() -> datetime:
    return datetime.now(UTC)


def hours(n: float) -> timedelta:
    return timedelta(hours=n)


async def department(conn: psycopg.AsyncConnection, code: str, name: str | None = None) -> int:
    cur = await conn.execute(
        "INSERT INTO entitlements.departments (department_code, department_name) VALUES (%s, %s) "
        "RETURNING department_id", [code, name or code.title()])
    return (await cur.fetchone())[0]


async def queue(conn, name: str, *, department_id: int | None = None, is_active: bool = True,
                sla_minutes: int = 480, escalation_config: str = "{}") -> int:
    cur = await conn.execute(
        "INSERT INTO flowable.workflow_queues (queue_name, department_id, is_active, sla_minutes, escalation_config) "
        "VALUES (%s, %s, %s, %s, %s) RETURNING queue_id",
        [name, department_id, is_active, sla_minutes, escalation_config])
    return (await cur.fetchone())[0]


async def role(conn, code: str, *, queue_name: str | None = None, department_id: int | None = None,
               is_active: bool = True, role_type: str = "DEPARTMENT") -> int:
    cur = await conn.execute(
        "INSERT INTO entitlements.workflow_roles "
        "(role_code, role_name, role_type, department_id, queue_name, is_active) "
        "VALUES (%s, %s, %s, %s, %s, %s) RETURNING role_id",
        [code, code.replace("_", " ").title(), role_type, department_id, queue_name, is_active])
    return (await cur.fetchone())[0]


async def user(conn, user_id: str, *, is_active: bool = True, first: str | None = None,
               last: str | None = None) -> str:
    await conn.execute(
        "INSERT INTO entitlements.users (user_id, username, first_name, last_name, is_active) "
        "VALUES (%s, %s, %s, %s, %s)", [user_id, user_id, first, last, is_active])
    return user_id


async def grant(conn, user_id: str, role_id: int, *, valid_from: datetime | None = None,
                valid_until: datetime | None = None) -> None:
    await conn.execute(
        "INSERT INTO entitlements.user_workflow_roles (user_id, role_id, assigned_by, valid_from, valid_until) "
        "VALUES (%s, %s, 'test', coalesce(%s, now() - interval '1 day'), %s)",
        [user_id, role_id, valid_from, valid_until])


async def assign_queue(conn, queue_id: int, role_id: int) -> None:
    await conn.execute("INSERT INTO flowable.queue_assignments (queue_id, role_id) VALUES (%s, %s)",
                       [queue_id, role_id])


async def definition(conn, key: str = "onecms", *, version: int = 1, is_active: bool = True,
                     name: str | None = None) -> int:
    cur = await conn.execute(
        "INSERT INTO flowable.workflow_definitions "
        "(process_key, process_name, process_version, business_app, is_active) "
        "VALUES (%s, %s, %s, 'onecms', %s) RETURNING workflow_id",
        [key, name or f"{key} v{version}", version, is_active])
    return (await cur.fetchone())[0]


async def instance(conn, workflow_id: int, *, status: str = "ACTIVE", started_at: datetime | None = None,
                   completed_at: datetime | None = None) -> str:
    pid = f"pi-{next(_ids)}"
    await conn.execute(
        "INSERT INTO flowable.process_instances "
        "(process_instance_id, workflow_id, started_by, status, started_at, completed_at) "
        "VALUES (%s, %s, 'test', %s, coalesce(%s, now()), %s)",
        [pid, workflow_id, status, started_at, completed_at])
    return pid


async def task(conn, process_instance_id: str, queue_name: str, *, status: str = "OPEN", priority: int = 50,
               candidate_groups: list[str] | None = None, candidate_users: list[str] | None = None,
               assignee: str | None = None, created_at: datetime | None = None,
               claimed_at: datetime | None = None, completed_at: datetime | None = None,
               due_date: datetime | None = None, escalation_level: int = 0, task_id: str | None = None,
               completed_by: str | None = None) -> str:
    task_id = task_id or f"task-{next(_ids)}"
    await conn.execute(
        "INSERT INTO flowable.workflow_tasks (task_id, process_instance_id, task_definition_key, task_name, "
        " queue_name, status, priority, candidate_groups, candidate_users, assignee_id, created_at, claimed_at, "
        " completed_at, due_date, escalation_level, completed_by) "
        "VALUES (%s, %s, 'review', 'Review', %s, %s, %s, %s, %s, %s, coalesce(%s, now()), %s, %s, %s, %s, %s)",
        [task_id, process_instance_id, queue_name, status, priority, candidate_groups, candidate_users,
         assignee, created_at, claimed_at, completed_at, due_date, escalation_level, completed_by])
    return task_id
