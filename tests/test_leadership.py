"""One replica at a time runs the background jobs: the holder of the lease (bridge/leadership.py, migration 0030).

The lease's rules on a real PostgreSQL, then two real `bridge serve` replicas (separate process trees, two ports)
on one database: one runs the jobs, the other waits; SIGKILL the one running them and the other takes over within
the lease's bound."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from bridge.db.connections import open_database
from bridge.db.embedded import free_tcp_port
from bridge.flowable.local_engine import new_webhook_secret
from bridge.leadership import Leadership
from tests.conftest import PROJECT_ROOT
from tests.helpers import leads_background_jobs, spawn_logged


async def _lease(conn) -> tuple:
    return await (await conn.execute(
        "SELECT holder, term, expires_at > now() FROM flowable.service_leases")).fetchone()


async def test_one_holder_until_it_stops_renewing_then_the_next_with_a_new_term(conn, db):
    a = Leadership(db, ttl_s=1.2, holder="replica-a")
    b = Leadership(db, ttl_s=1.2, holder="replica-b")
    assert await a.renew() and not await b.renew()
    assert await a.renew() and a.term == 1  # renewing keeps the term
    assert not await b.renew()
    assert await _lease(conn) == ("replica-a", 1, True)

    await asyncio.sleep(0.97)  # a stops renewing (as if killed): its own deadline (80% of the lease) passes first
    assert not a.leading
    assert not await b.renew()  # the database's lease has not run out yet
    await asyncio.sleep(0.3)
    assert await b.renew() and b.term == 2
    assert not await a.renew() and not a.leading  # it comes back: b holds it now
    assert await _lease(conn) == ("replica-b", 2, True)

    await b.release()  # a clean stop hands over at once
    assert not b.leading and await a.renew() and a.term == 3


async def test_a_holder_cut_from_the_database_stops_by_its_own_deadline(conn, db, db_url):
    a = Leadership(db, ttl_s=1.5, holder="replica-a")
    assert await a.renew()
    a.database = open_database(f"postgresql://postgres@127.0.0.1:{free_tcp_port()}/nothing", pool_timeout=1)
    try:
        assert await a.renew()  # the renewal fails; the deadline still runs
        await asyncio.sleep(1.25)
        assert not await a.renew() and not a.leading
    finally:
        await a.database.dispose()
    b = Leadership(db, ttl_s=1.5, holder="replica-b")
    await asyncio.sleep(0.3)
    assert await b.renew() and b.term == 2


# -- two replicas, separate process trees -------------------------------------------------------------------

TTL_S = 3


def _start(db_url: str, port: int, log: Path) -> subprocess.Popen:
    env = {**os.environ, "DATABASE_URL": db_url, "BRIDGE_DATA_DIR": str(log.parent / f"data-{port}"),
           "BRIDGE_PORT": str(port), "BRIDGE_WORKERS": "1", "BRIDGE_LEASE_TTL_S": str(TTL_S),
           "FLOWABLE_URL": f"http://127.0.0.1:{free_tcp_port()}/process-api", "WEBHOOK_SECRET": new_webhook_secret(),
           # rounds that need no engine when there is nothing to do: each round is counted in /metrics
           "BRIDGE_RECONCILE_INTERVAL_S": "0", "BRIDGE_ESCALATE_INTERVAL_S": "1", "BRIDGE_AUTO_ASSIGN_INTERVAL_S": "1"}
    return spawn_logged([sys.executable, "-m", "bridge.cli", "serve"], log, cwd=PROJECT_ROOT, env=env)


def _metrics(port: int) -> dict[str, float] | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
            text = response.read().decode()
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return None
    rounds = re.search(r'^bridge_background_rounds_total\{job="SLA escalation"\} (\S+)$', text, re.M)
    return {"leader": 1.0 if leads_background_jobs(text) else 0.0,
            "rounds": float(rounds.group(1)) if rounds else 0.0}


def _wait(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.1)
    pytest.fail(what)


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="signals as on Linux")
def test_the_jobs_run_on_one_replica_and_move_when_it_is_killed(db_url: str, tmp_path: Path):
    ports = [free_tcp_port(), free_tcp_port()]
    replicas = [_start(db_url, port, tmp_path / f"bridge-{port}.log") for port in ports]
    try:
        def one_leading() -> list[dict] | None:
            seen = [_metrics(p) for p in ports]
            return seen if all(seen) and sum(m["leader"] for m in seen) == 1 else None  # type: ignore[index]

        figures = _wait(one_leading, 60, "two replicas serving, one of them leading")
        leader = max((0, 1), key=lambda i: figures[i]["leader"])
        standby = 1 - leader
        time.sleep(3)  # rounds run on the leader only
        again = [_metrics(p) for p in ports]
        assert again[leader]["rounds"] >= figures[leader]["rounds"] + 2
        assert again[standby]["rounds"] == 0 and again[standby]["leader"] == 0

        replicas[leader].send_signal(signal.SIGKILL)  # no release: the lease has to run out
        replicas[leader].wait(timeout=10)
        killed_at = time.monotonic()
        def taken_over() -> bool:
            seen = _metrics(ports[standby])
            return seen is not None and seen["leader"] == 1 and seen["rounds"] >= 1

        _wait(taken_over, TTL_S + TTL_S / 3 + 5, "the other replica took over the jobs")
        took = time.monotonic() - killed_at
        print(f"background jobs moved {took:.1f} s after the SIGKILL (lease {TTL_S} s)")
        assert took <= TTL_S + TTL_S / 3 + 2
        status = subprocess.run([sys.executable, "-m", "bridge.cli", "status"], cwd=PROJECT_ROOT, text=True,
                                capture_output=True, timeout=60,
                                env={**os.environ, "DATABASE_URL": db_url, "BRIDGE_DATA_DIR": str(tmp_path / "s")})
        [jobs] = [line for line in status.stdout.splitlines() if line.startswith("jobs")]
        assert f":{replicas[standby].pid}:" in jobs, status.stdout
    finally:
        for replica in replicas:
            if replica.poll() is None:
                replica.send_signal(signal.SIGTERM)
                replica.wait(timeout=30)
