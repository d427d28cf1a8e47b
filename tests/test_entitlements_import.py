"""Entitlements import answers every problem of a file at once (issue 16, item 5): the file's own (windows, shapes,
duplicates) and the database's (unknown roles and departments), each with its place, in the file's order; and
writes nothing unless all is well. Through the library, `bridge users import` and POST /api/admin/entitlements."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text

from bridge import cli, entitlements
from tests.conftest import bridge_app
from tests.helpers import worker

# An unknown role, an inverted window, an unknown department, an unknown parent, a grant given twice.
BROKEN_YAML = """
departments:
  - {code: ANNEX, parent: NO_SUCH_PARENT}
users:
  - id: zed
    department: NO_SUCH_DEPT
    grants:
      - {role: NO_SUCH_ROLE}
      - {role: INTAKE_CLERK, valid_from: "2026-05-01T00:00:00Z", valid_until: "2026-04-01T00:00:00Z"}
  - id: amy
    grants:
      - {role: INTAKE_CLERK}
      - {role: INTAKE_CLERK, valid_until: "soon"}
"""
BROKEN_YAML_PROBLEMS = [
    "departments[0].parent: no department 'NO_SUCH_PARENT' in the file or the database",
    "users[0].department: no department 'NO_SUCH_DEPT' in the file or the database",
    "users[0].grants[0]: no role 'NO_SUCH_ROLE' (roles come from deployed BPMN)",
    "users[0].grants[1]: valid_until must be after valid_from",
    "users[1].grants[1]: INTAKE_CLERK granted to amy again (first at users[1].grants[0])",
    "users[1].grants[1].valid_until: not an ISO-8601 date-time: 'soon'",
]
# The same three problems the issue names, in CSV: each with its line.
BROKEN_CSV = ("user_id,role,valid_from,valid_until,department\n"
              "zed,NO_SUCH_ROLE,,,NO_SUCH_DEPT\n"
              "zed,INTAKE_CLERK,2026-05-01T00:00:00Z,2026-04-01T00:00:00Z,\n")
BROKEN_CSV_PROBLEMS = [
    "line 2.department: no department 'NO_SUCH_DEPT' in the file or the database",
    "line 2: no role 'NO_SUCH_ROLE' (roles come from deployed BPMN)",
    "line 3: valid_until must be after valid_from",
]


@pytest.fixture
async def clerk_role(db):
    async with db.begin() as conn:
        await conn.execute(text("INSERT INTO entitlements.workflow_roles (role_code, role_name, role_type) "
                                "VALUES ('INTAKE_CLERK', 'Intake clerk', 'DEPARTMENT')"))


async def written(db) -> dict[str, int]:
    async with db.connect() as conn:
        return {table: (await conn.execute(text(f"SELECT count(*) FROM entitlements.{table}"))).scalar_one()
                for table in ("departments", "users", "user_workflow_roles")}


def test_read_keeps_what_it_could_read_beside_every_problem_of_the_file():
    wanted = entitlements.read(BROKEN_YAML, "yaml")
    assert [u["id"] for u in wanted.users] == ["zed", "amy"] and wanted.grants == 4
    assert wanted.problems == ["users[0].grants[1]: valid_until must be after valid_from",
                               "users[1].grants[1]: INTAKE_CLERK granted to amy again (first at users[1].grants[0])",
                               "users[1].grants[1].valid_until: not an ISO-8601 date-time: 'soon'"]
    with pytest.raises(entitlements.EntitlementsError) as refused:  # parse: the file's own problems, no database
        entitlements.parse(BROKEN_YAML, "yaml")
    assert refused.value.problems == wanted.problems
    twice = entitlements.read("departments: [{code: A}, {code: A}]\nusers: [{id: u}, {id: u}]\n", "yaml")
    assert twice.problems == ["departments[1]: department 'A' again (first at departments[0])",
                              "users[1]: user 'u' again (first at users[0])"]
    csv_twice = entitlements.read("user_id,role\nu,R\nv,R\nu,R\n", "csv")
    assert csv_twice.problems == ["line 4: R granted to u again (first at line 2)"]


async def test_every_problem_of_the_file_and_the_database_in_one_answer_and_nothing_written(db, clerk_role):
    for body, kind, expected in ((BROKEN_YAML, "yaml", BROKEN_YAML_PROBLEMS), (BROKEN_CSV, "csv", BROKEN_CSV_PROBLEMS)):
        wanted = entitlements.read(body, kind)
        async with db.connect() as conn:
            assert await entitlements.check(conn, wanted) == expected
        with pytest.raises(entitlements.EntitlementsError) as refused:
            async with db.begin() as conn:
                await entitlements.apply(conn, wanted, by="test")
        assert refused.value.problems == expected
        assert await written(db) == {"departments": 0, "users": 0, "user_workflow_roles": 0}

    # only the database's problems (the file itself is right): still all of them, still nothing written
    only_db = "users:\n  - {id: zed, department: NOWHERE, grants: [{role: NOPE}, {role: NADA}]}\n"
    with pytest.raises(entitlements.EntitlementsError) as refused:
        async with db.begin() as conn:
            await entitlements.apply(conn, entitlements.read(only_db, "yaml"), by="test")
    assert refused.value.problems == [
        "users[0].department: no department 'NOWHERE' in the file or the database",
        "users[0].grants[0]: no role 'NOPE' (roles come from deployed BPMN)",
        "users[0].grants[1]: no role 'NADA' (roles come from deployed BPMN)"]
    assert await written(db) == {"departments": 0, "users": 0, "user_workflow_roles": 0}

    # a department the file itself defines, even after the user naming it, is known; a right file is written
    right = ("users:\n  - {id: zed, department: ANNEX, grants: [{role: INTAKE_CLERK}]}\n"
             "departments:\n  - {code: ANNEX, name: Annex}\n")
    wanted = entitlements.read(right, "yaml")
    async with db.begin() as conn:
        assert await entitlements.check(conn, wanted) == []
        await entitlements.apply(conn, wanted, by="test")
    assert await written(db) == {"departments": 1, "users": 1, "user_workflow_roles": 1}


async def test_bridge_users_import_lists_every_problem_and_exits_1(db, db_url, clerk_role, tmp_path, monkeypatch,
                                                                    capsys):
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setattr("bridge.logs.configure", lambda **_: None)  # leave pytest's log handlers alone
    broken = tmp_path / "grants.csv"
    broken.write_text(BROKEN_CSV)
    assert await asyncio.to_thread(cli.main, ["users", "import", str(broken)]) == 1  # asyncio.run: a thread
    out, err = capsys.readouterr()
    assert out == ""
    assert err == f"{broken}: nothing imported:\n" + "".join(f"  {p}\n" for p in BROKEN_CSV_PROBLEMS)
    assert await written(db) == {"departments": 0, "users": 0, "user_workflow_roles": 0}

    unreadable = tmp_path / "bad.yaml"  # a file that cannot be read at all: said without asking the database
    unreadable.write_text("users: [")
    assert await asyncio.to_thread(cli.main, ["users", "import", str(unreadable)]) == 1
    assert "nothing imported:\n  not YAML" in capsys.readouterr().err


async def test_the_api_answers_every_problem_in_one_422_and_writes_nothing(db, db_url, clerk_role, aiohttp_client):
    client = await aiohttp_client(bridge_app(db_url))
    admin = await worker(db, "root", "ENTITLEMENTS_ADMIN")
    before = await written(db)
    for body, content_type, expected in ((BROKEN_YAML, "application/yaml", BROKEN_YAML_PROBLEMS),
                                         (BROKEN_CSV, "text/csv", BROKEN_CSV_PROBLEMS)):
        refused = await client.post("/api/admin/entitlements", data=body.encode(),
                                    headers={**admin, "Content-Type": content_type})
        assert refused.status == 422, await refused.text()
        assert await refused.json() == {"error": "nothing imported", "problems": expected}
    assert await written(db) == before
    # text the database cannot hold: the file's own problems and that one, the database not asked
    nul = await client.post("/api/admin/entitlements", data=BROKEN_CSV.replace("SUCH_DEPT", "SUCH\x00DEPT").encode(),
                            headers={**admin, "Content-Type": "text/csv"})
    assert nul.status == 422
    assert (await nul.json())["problems"] == ["line 3: valid_until must be after valid_from",
                                              "the file holds a NUL character or invalid text"]
    assert await written(db) == before
