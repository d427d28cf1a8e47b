"""API token lifetimes, listing and revocation (issue 14, item 7): `bridge token create|list|revoke` run as the
operator runs them, against a real PostgreSQL, and the API's answer to what they did."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest

from bridge import auth
from bridge.db.connections import open_database
from tests.conftest import bridge_app
from tests.helpers import bearer

pytestmark = pytest.mark.slow  # each command is a process of its own


def bridge(db_url: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bridge.cli", *args], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "DATABASE_URL": db_url})


def created(db_url: str, *args: str) -> str:
    ran = bridge(db_url, "token", "create", *args)
    assert ran.returncode == 0, ran.stderr
    token = ran.stdout.strip()
    assert token.startswith(auth.TOKEN_PREFIX) and "\n" not in token  # alone on stdout, for $(...)
    return token


@pytest.fixture
async def users(conn, db_url):
    """alice and bob, holding no role (any authenticated user may GET /api/tasks), and no tokens yet."""
    db = open_database(db_url, pool_size=1)
    async with db.begin() as c:
        for user in ("alice", "bob"):
            await auth.add_user(c, user, roles=[], granted_by="test")
    await db.dispose()
    return conn


async def stored(conn) -> list[tuple]:
    """(token_id, user_id, label, expires_at, revoked_at) of every token, by id."""
    cursor = await conn.execute("SELECT token_id, user_id, label, expires_at, revoked_at "
                                "FROM entitlements.api_tokens ORDER BY token_id")
    return await cursor.fetchall()




async def test_days_below_one_or_beside_no_expiry_is_a_usage_error_and_makes_no_token(users, db_url):
    zero = "argument --days: at least 1 day, not 0 (a token that never expires: --no-expiry)"
    for args, says in ((["--days", "0"], zero),
                       (["--days", "-1"], "argument --days: at least 1 day, not -1"),
                       (["--days", "3", "--no-expiry"], "argument --no-expiry: not allowed with argument --days"),
                       (["--no-expiry", "--days", "3"], "argument --days: not allowed with argument --no-expiry"),
                       (["--days", "1.5"], "argument --days: a whole number of days, not '1.5'"),
                       (["--days", "99999999"], f"argument --days: at most {auth.MAX_TOKEN_DAYS} days")):
        ran = bridge(db_url, "token", "create", "alice", *args)
        assert ran.returncode == 2, (args, ran.stderr)
        assert says in ran.stderr and "Traceback" not in ran.stderr, (args, ran.stderr)
        assert ran.stdout == ""
    assert await stored(users) == []


async def test_a_token_lasts_the_default_90_days_or_its_days_and_never_expires_only_when_told(
        users, db_url, aiohttp_client):
    before = datetime.now(UTC)
    default, one_day, forever = (created(db_url, "alice"), created(db_url, "alice", "--days", "1", "--label", "ci"),
                                 created(db_url, "bob", "--no-expiry", "--label", "robot"))
    after = datetime.now(UTC)
    rows = await stored(users)
    assert [(user, label) for _, user, label, _, _ in rows] == [("alice", None), ("alice", "ci"), ("bob", "robot")]
    assert before + timedelta(days=90) <= rows[0][3] <= after + timedelta(days=90)
    assert auth.DEFAULT_TOKEN_DAYS == 90
    assert before + timedelta(days=1) <= rows[1][3] <= after + timedelta(days=1)
    assert rows[2][3] is None

    ran = bridge(db_url, "token", "create", "bob", "--no-expiry")  # says what it made, on stderr
    assert ran.returncode == 0 and "never expires (--no-expiry)" in ran.stderr
    ran = bridge(db_url, "token", "create", "bob", "--days", "7")
    assert ran.returncode == 0 and "expires " in ran.stderr and "shown only now" in ran.stderr
    ran = bridge(db_url, "token", "create", "nobody")
    assert ran.returncode == 2 and "no user 'nobody': add them first" in ran.stderr

    client = await aiohttp_client(bridge_app(db_url))
    for token in (default, one_day, forever):
        response = await client.get("/api/tasks", headers=bearer(token))
        assert response.status == 200, await response.text()


async def test_the_library_keeps_zero_and_negative_lifetimes_honest(users, db_url, aiohttp_client):
    """timedelta(0) is falsy: create_token once turned it into a token that never expired."""
    db = open_database(db_url, pool_size=1)
    async with db.begin() as c:
        zero = await auth.create_token(c, "alice", valid_for=timedelta(0))
        negative = await auth.create_token(c, "alice", valid_for=timedelta(days=-1))
        default = await auth.issue_token(c, "alice")
        forever = await auth.issue_token(c, "alice", valid_for=None)
    await db.dispose()
    now = datetime.now(UTC)
    assert forever.expires_at is None
    assert timedelta(days=89) < default.expires_at - now <= timedelta(days=90)
    assert all(expires is not None for _, _, _, expires, _ in (await stored(users))[:3])
    client = await aiohttp_client(bridge_app(db_url))
    for token, status in ((zero, 401), (negative, 401), (default.token, 200), (forever.token, 200)):
        assert (await client.get("/api/tasks", headers=bearer(token))).status == status


async def test_list_shows_every_token_and_its_state_but_never_a_secret(users, db_url, aiohttp_client):
    alice = created(db_url, "alice", "--label", "laptop")
    bob = created(db_url, "bob", "--no-expiry", "--label", "robot")
    old = created(db_url, "bob", "--days", "1", "--label", "old")
    await users.execute("UPDATE entitlements.api_tokens SET expires_at = now() - interval '1 hour' "
                        "WHERE label = 'old'")
    client = await aiohttp_client(bridge_app(db_url))
    assert (await client.get("/api/tasks", headers=bearer(alice))).status == 200  # recorded as its last use
    hashes = [bytes(h).hex() for (h,) in await (await users.execute(
        "SELECT token_hash FROM entitlements.api_tokens")).fetchall()]

    everyone = bridge(db_url, "token", "list")
    assert everyone.returncode == 0, everyone.stderr
    lines = everyone.stdout.splitlines()
    assert lines[0].split() == ["ID", "USER", "LABEL", "CREATED", "EXPIRES", "LAST", "USED", "STATE"]
    assert len(lines) == 4
    assert lines[1].split()[:3] == ["1", "alice", "laptop"] and lines[1].endswith("active")
    assert " never " not in lines[1]  # it expires, and it has been used
    assert lines[2].split()[:3] == ["2", "bob", "robot"] and lines[2].endswith("active")
    assert lines[2].count("never") == 2  # never expires, never used
    assert lines[3].split()[:3] == ["3", "bob", "old"] and lines[3].endswith("expired")
    for secret in (alice, bob, old, *hashes):
        assert secret not in everyone.stdout and secret[len(auth.TOKEN_PREFIX):] not in everyone.stdout
    assert auth.TOKEN_PREFIX not in everyone.stdout

    bobs = bridge(db_url, "token", "list", "bob", "--json")
    assert bobs.returncode == 0, bobs.stderr
    listed = json.loads(bobs.stdout)
    assert [(t["token_id"], t["user_id"], t["label"], t["state"]) for t in listed] == [
        (2, "bob", "robot", "active"), (3, "bob", "old", "expired")]
    assert set(listed[0]) == {"token_id", "user_id", "label", "created_at", "expires_at", "last_used_at",
                              "revoked_at", "state"}
    assert listed[0]["expires_at"] is None and listed[0]["last_used_at"] is None
    datetime.fromisoformat(listed[1]["expires_at"])
    for secret in (bob, old, *hashes):
        assert secret not in bobs.stdout

    await users.execute("UPDATE entitlements.users SET is_active = FALSE WHERE user_id = 'alice'")
    ran = bridge(db_url, "token", "list", "alice")
    assert ran.returncode == 0 and ran.stdout.splitlines()[1].endswith("user inactive")
    ran = bridge(db_url, "token", "list", "nobody")
    assert ran.returncode == 2 and "no user 'nobody'" in ran.stderr
    await users.execute("TRUNCATE entitlements.api_tokens")
    ran = bridge(db_url, "token", "list")
    assert ran.returncode == 0 and ran.stdout == "" and "no tokens" in ran.stderr


async def test_revoke_by_id_or_label_makes_the_api_refuse_that_token_at_once(users, db_url, aiohttp_client):
    client = await aiohttp_client(bridge_app(db_url))
    laptop = created(db_url, "alice", "--label", "laptop")
    phone = created(db_url, "alice", "--label", "phone")
    ci_alice = created(db_url, "alice", "--label", "ci")
    ci_bob = created(db_url, "bob", "--label", "ci", "--no-expiry")
    for token in (laptop, phone, ci_alice, ci_bob):
        assert (await client.get("/api/tasks", headers=bearer(token))).status == 200

    ran = bridge(db_url, "token", "revoke", "1")
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip() == "revoked token 1 of alice (laptop): the API refuses it from now on"
    refused = await client.get("/api/tasks", headers=bearer(laptop))
    assert refused.status == 401 and refused.headers["WWW-Authenticate"].startswith("Bearer")
    assert (await client.get("/api/tasks", headers=bearer(phone))).status == 200  # only that one

    ran = bridge(db_url, "token", "revoke", "1")  # again: nothing to do, and it says so
    assert ran.returncode == 0 and "token 1 of alice (laptop) was already revoked at" in ran.stdout

    ran = bridge(db_url, "token", "revoke", "--label", "ci")  # two live tokens carry it
    assert ran.returncode == 2
    assert "2 live tokens are labelled 'ci': 3 (alice), 4 (bob); revoke one by its id" in ran.stderr
    ran = bridge(db_url, "token", "revoke", "--label", "ci", "--user", "bob")
    assert ran.returncode == 0 and "revoked token 4 of bob (ci)" in ran.stdout
    assert (await client.get("/api/tasks", headers=bearer(ci_bob))).status == 401
    assert (await client.get("/api/tasks", headers=bearer(ci_alice))).status == 200
    ran = bridge(db_url, "token", "revoke", "--label", "ci")  # now only alice's is live
    assert ran.returncode == 0 and "revoked token 3 of alice (ci)" in ran.stdout
    assert (await client.get("/api/tasks", headers=bearer(ci_alice))).status == 401

    for args, says in ((["99"], "no token 99 (bridge token list shows them)"),
                       (["2", "--user", "bob"], "no token 2 of 'bob'"),
                       (["--label", "tablet"], "no token labelled 'tablet'")):
        ran = bridge(db_url, "token", "revoke", *args)
        assert ran.returncode == 2 and says in ran.stderr and "Traceback" not in ran.stderr, (args, ran.stderr)
    for args, says in (([], "one of the arguments TOKEN_ID --label is required"),
                       (["phone"], "not 'phone'; to revoke by label: --label LABEL"),
                       (["2", "--label", "phone"], "not allowed with argument TOKEN_ID")):
        ran = bridge(db_url, "token", "revoke", *args)
        assert ran.returncode == 2 and says in ran.stderr, (args, ran.stderr)
    assert (await client.get("/api/tasks", headers=bearer(phone))).status == 200  # none of those touched it

    ran = bridge(db_url, "token", "list", "--json")
    assert [(t["token_id"], t["state"]) for t in json.loads(ran.stdout)] == [
        (1, "revoked"), (2, "active"), (3, "revoked"), (4, "revoked")]
    assert [revoked is not None for *_, revoked in await stored(users)] == [True, False, True, True]
    listed = bridge(db_url, "token", "list", "alice").stdout.splitlines()
    assert "revoked 20" in listed[1]  # with when
