"""Entitlements import: departments, users and role grants with validity windows, from YAML or CSV.

YAML (every key but the ids optional):

    departments:
      - {code: FRAUD_UNIT, name: Fraud unit, parent: INVESTIGATIONS}
    users:
      - id: alice
        email: alice@example.org
        first_name: Alice
        last_name: Smith
        department: FRAUD_UNIT
        active: true
        grants:
          - {role: INVESTIGATOR, valid_from: 2026-01-01T00:00:00Z, valid_until: 2026-12-31T23:59:59Z}

CSV: one grant per row, header `user_id,role,valid_from,valid_until,email,first_name,last_name,department,active`
(user_id and role required; a user with no grant: leave role empty).

A grant's bound is an ISO-8601 date-time or a date; one without a time zone is UTC.

The whole file is checked first, and every problem answered at once, each with its place, in the file's order:
what is wrong with the file itself (shape, dates, windows, duplicates; `read`) and what the database
refuses (a role or department that does not exist; `check`). Nothing is written unless all is well, and then
all of it in one transaction (`apply`). Grants take effect at once: claims and row-level security read the
grant tables directly.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import yaml
from sqlalchemy.ext.asyncio import AsyncConnection

from bridge.db.queries import queries
from bridge.errors import BridgeError
from bridge.json_limits import MAX_DEPTH, deeper_than

SQL = queries("entitlements")


class EntitlementsError(BridgeError, ValueError):
    """The file has problems; .problems lists each with its place."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


# A problem's place, to answer them in the file's order: (-1,) the file as a whole, (0, i) departments[i],
# (1, i) the i-th user (CSV: in order of first appearance), (1, i, g) that user's g-th grant.
Place = tuple[int, ...]
WHOLE_FILE: Place = (-1,)


@dataclass
class Entitlements:
    departments: list[dict] = field(default_factory=list)
    users: list[dict] = field(default_factory=list)
    # what is wrong with the file itself, each with its place in the file (problems: the texts)
    file_problems: list[tuple[Place, str]] = field(default_factory=list)

    @property
    def grants(self) -> int:
        return sum(len(u["grants"]) for u in self.users)

    @property
    def problems(self) -> list[str]:
        return [problem for _, problem in self.file_problems]


def parse(text: str, kind: str) -> Entitlements:
    """read(), raising EntitlementsError when the file itself has problems (the database is not asked)."""
    result = read(text, kind)
    if result.file_problems:
        raise EntitlementsError(result.problems)
    return result


def read(text: str, kind: str) -> Entitlements:
    """kind: 'yaml' or 'csv'. What the file holds, with every problem of the file itself in .file_problems
    (check() adds the database's); raises EntitlementsError only when the file cannot be read at all."""
    found: list[tuple[Place, str]] = []
    result = Entitlements(file_problems=found)
    if kind == "csv":
        # newline="": the csv module reads line ends itself, so CRLF files and quoted line breaks work
        reader = csv.DictReader(io.StringIO(text, newline=""))
        try:
            raw_users = _csv_users(reader)
        except csv.Error as err:
            raise EntitlementsError([f"line {reader.line_num + 1}: not CSV: {err}"]) from None  # the line it failed on
        documents = {"users": list(raw_users.values())}
    else:
        try:
            documents = yaml.safe_load(text) or {}
        except yaml.YAMLError as err:
            raise EntitlementsError([f"not YAML: {err}"]) from None
        except RecursionError:  # PyYAML builds nested collections recursively
            raise EntitlementsError([f"the file nests deeper than {MAX_DEPTH} levels"]) from None
        if deeper_than(documents):
            raise EntitlementsError([f"the file nests deeper than {MAX_DEPTH} levels"])
        if not isinstance(documents, dict):
            raise EntitlementsError(["the file must be a mapping with departments and/or users"])
    problems: list[str] = []
    departments = _list(documents, "departments", "departments", problems)
    users = _list(documents, "users", "users", problems)
    found += [(WHOLE_FILE, p) for p in problems]
    first_department: dict[str, str] = {}
    for index, department in enumerate(departments):
        where, problems = f"departments[{index}]", []
        if not isinstance(department, dict) or not _text(department.get("code"), 50):
            problems.append(f"{where}: needs a code (up to 50 characters)")
        else:
            code = department["code"]
            if code in first_department:
                problems.append(f"{where}: department {code!r} again (first at {first_department[code]})")
            first_department.setdefault(code, where)
            result.departments.append({
                "code": code, "name": _optional_text(department, "name", 100, where, problems) or code,
                "parent": _optional_text(department, "parent", 50, where, problems), "_where": where,
                "_place": (0, index)})
        found += [((0, index), p) for p in problems]
    first_user: dict[str, str] = {}
    for index, user in enumerate(users):
        where = str(user["_where"]) if isinstance(user, dict) and user.get("_where") else f"users[{index}]"
        problems = []
        if not isinstance(user, dict) or not _text(user.get("id"), 50):
            found.append(((1, index), f"{where}: needs an id (up to 50 characters)"))
            continue
        if user["id"] in first_user:
            problems.append(f"{where}: user {user['id']!r} again (first at {first_user[user['id']]})")
        first_user.setdefault(user["id"], where)
        grants: list[dict] = []
        first_grant: dict[str, str] = {}
        for g_index, grant in enumerate(_list(user, "grants", f"{where}.grants", problems)):
            g_problems: list[str] = []
            g_where = (str(grant["_where"]) if isinstance(grant, dict) and grant.get("_where")
                       else f"{where}.grants[{g_index}]")
            if not isinstance(grant, dict) or not _text(grant.get("role"), 50):
                found.append(((1, index, g_index), f"{g_where}: needs a role code"))
                continue
            if grant["role"] in first_grant:
                g_problems.append(f"{g_where}: {grant['role']} granted to {user['id']} again "
                                  f"(first at {first_grant[grant['role']]})")
            first_grant.setdefault(grant["role"], g_where)
            window = []
            for key in ("valid_from", "valid_until"):
                value = grant.get(key)
                try:
                    window.append(_when(value))
                except ValueError:
                    g_problems.append(f"{g_where}.{key}: not an ISO-8601 date-time: {value!r}")
                    window.append(None)
            if window[0] and window[1] and window[1] <= window[0]:
                g_problems.append(f"{g_where}: valid_until must be after valid_from")
            grants.append({"role": grant["role"], "valid_from": window[0], "valid_until": window[1], "_where": g_where,
                           "_place": (1, index, g_index)})
            found += [((1, index, g_index), p) for p in g_problems]
        active = user.get("active", True)
        if active is not None and not isinstance(active, bool):
            problems.append(f"{where}.active: true or false, not {active!r}")
        result.users.append({"id": user["id"], "email": _optional_text(user, "email", 255, where, problems),
                             "first_name": _optional_text(user, "first_name", 100, where, problems),
                             "last_name": _optional_text(user, "last_name", 100, where, problems),
                             "department": _optional_text(user, "department", 50, where, problems),
                             "active": active is not False, "grants": grants, "_where": where,
                             "_place": (1, index)})
        found += [((1, index), p) for p in problems]
    return result


async def check(conn: AsyncConnection, entitlements: Entitlements) -> list[str]:
    """Every problem of the file: its own (read) and the database's (a role or department that does not exist),
    in the file's order, each with its place; empty when the file can be imported."""
    refused: list[tuple[Place, str]] = []
    roles = sorted({g["role"] for u in entitlements.users for g in u["grants"]})
    known_roles = {r.role_code for r in await conn.execute(SQL.known_roles, {"codes": roles})}
    wanted = sorted({u["department"] for u in entitlements.users if u["department"]}
                    | {d["parent"] for d in entitlements.departments if d["parent"]})
    known_departments = ({r.department_code for r in await conn.execute(SQL.known_departments, {"codes": wanted})}
                         | {d["code"] for d in entitlements.departments})
    for department in entitlements.departments:
        if department["parent"] and department["parent"] not in known_departments:
            refused.append((department["_place"], f"{department['_where']}.parent: no department "
                                                  f"{department['parent']!r} in the file or the database"))
    for user in entitlements.users:
        if user["department"] and user["department"] not in known_departments:
            refused.append((user["_place"], f"{user['_where']}.department: no department {user['department']!r} "
                                            "in the file or the database"))
        for grant in user["grants"]:
            if grant["role"] not in known_roles:
                refused.append((grant["_place"],
                                f"{grant['_where']}: no role {grant['role']!r} (roles come from deployed BPMN)"))
    # stable: within one place, the file's own problems first, then the database's
    return [problem for _, problem in sorted(entitlements.file_problems + refused, key=lambda found: found[0])]


async def apply(conn: AsyncConnection, entitlements: Entitlements, *, by: str,
                progress: Callable[[str], None] = lambda what: None) -> None:
    """Write everything, in the caller's transaction, when check() finds nothing wrong; else raise
    EntitlementsError with every problem and write nothing. progress("users") after each user written
    (bridge users import shows a bar)."""
    problems = await check(conn, entitlements)
    if problems:
        raise EntitlementsError(problems)
    for department in entitlements.departments:  # parents first when the file lists them first
        await conn.execute(SQL.upsert_department, {key: department[key] for key in ("code", "name", "parent")})
    for user in entitlements.users:
        await conn.execute(SQL.upsert_user, {"user_id": user["id"], "email": user["email"],
                                             "first_name": user["first_name"], "last_name": user["last_name"],
                                             "department": user["department"], "active": user["active"]})
        for grant in user["grants"]:
            await conn.execute(SQL.upsert_grant, {"user_id": user["id"], "role": grant["role"], "assigned_by": by,
                                                  "valid_from": grant["valid_from"],
                                                  "valid_until": grant["valid_until"]})
        progress("users")


async def user_grants(conn: AsyncConnection, user_id: str) -> dict[str, Any] | None:
    """The user and every grant they have or had (`current`: in force now); None for an unknown user."""
    profile = (await conn.execute(SQL.user_profile, {"user_id": user_id})).mappings().first()
    if profile is None:
        return None
    grants = [dict(g) for g in (await conn.execute(SQL.grants_of_user, {"user_id": user_id})).mappings()]
    return {**profile, "grants": grants}


async def revoke_grant(conn: AsyncConnection, user_id: str, role: str) -> dict[str, Any] | None:
    """End the user's grant of the role now (it stays, with its window, as history), or remove it if it has
    not started yet; claims and row-level security stop honouring it with this transaction. None when the
    user holds no current or future grant of that role."""
    for statement in (SQL.end_current_grant, SQL.drop_future_grant):
        revoked = (await conn.execute(statement, {"user_id": user_id, "role": role})).mappings().first()
        if revoked is not None:
            return dict(revoked)
    return None



def _csv_users(reader: csv.DictReader) -> dict[str, dict]:
    """One CSV row per grant -> users with their grants, in the shape the YAML file has."""
    if not reader.fieldnames or "user_id" not in reader.fieldnames:
        raise EntitlementsError(["line 1: the header must name user_id (and role, valid_from, valid_until, ...)"])
    raw_users: dict[str, dict] = {}
    for row in reader:
        line = reader.line_num  # the row's last physical line: a quoted field may span several
        user = raw_users.setdefault(row.get("user_id") or f"<line {line}>", {
            "id": row.get("user_id"), "email": row.get("email") or None, "first_name": row.get("first_name") or None,
            "last_name": row.get("last_name") or None, "department": row.get("department") or None,
            "active": (row.get("active") or "true").strip().lower() not in ("false", "0", "no"), "grants": [],
            "_where": f"line {line}"})
        if row.get("role"):
            user["grants"].append({"role": row["role"], "valid_from": row.get("valid_from") or None,
                                   "valid_until": row.get("valid_until") or None, "_where": f"line {line}"})
    return raw_users


def _text(value: Any, limit: int) -> bool:
    return isinstance(value, str) and 0 < len(value) <= limit


def _list(owner: dict, key: str, where: str, problems: list[str]) -> list:
    value = owner.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        problems.append(f"{where}: a list, not {type(value).__name__}")
        return []
    return value


def _optional_text(owner: dict, key: str, limit: int, where: str, problems: list[str]) -> str | None:
    value = owner.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > limit:
        problems.append(f"{where}.{key}: text of up to {limit} characters, not {value!r}"[:300])
        return None
    return value


def _when(value: Any) -> datetime | None:
    """A grant's bound: ISO-8601 text, or a YAML date or date-time; one without a zone is UTC."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, (date, str)):
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    else:
        raise ValueError(value)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
