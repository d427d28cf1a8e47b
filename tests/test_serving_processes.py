"""Serving processes die with their parent, and a start refuses beside orphans of an earlier run (issue 14.6).

Real `bridge serve` processes (BRIDGE_WORKERS=2) on a real PostgreSQL; the engine is not needed to serve,
so FLOWABLE_URL points at a port nothing answers on. Processes are looked at through /proc (Linux).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from bridge.db.embedded import free_tcp_port
from bridge.flowable.local_engine import new_webhook_secret
from bridge.web.serving_records import record_path
from tests.conftest import PROJECT_ROOT
from tests.helpers import spawn_logged

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads processes from /proc")]

BRIDGE = [sys.executable, "-m", "bridge.cli"]


def start_bridge(db_url: str, data_dir: Path, port: int, log: Path, **extra_env: str) -> subprocess.Popen:
    env = {**os.environ, "DATABASE_URL": db_url, "BRIDGE_DATA_DIR": str(data_dir), "BRIDGE_PORT": str(port),
           "FLOWABLE_URL": f"http://127.0.0.1:{free_tcp_port()}/process-api", "WEBHOOK_SECRET": new_webhook_secret(),
           "BRIDGE_WORKERS": "2", "BRIDGE_RECONCILE_INTERVAL_S": "0", "BRIDGE_ESCALATE_INTERVAL_S": "0",
           "BRIDGE_AUTO_ASSIGN_INTERVAL_S": "0", **extra_env}
    return spawn_logged([*BRIDGE, "serve"], log, cwd=PROJECT_ROOT, env=env)


def healthz_pid(port: int) -> int | None:
    """The pid of the serving process that answered, or None if nothing answers on the port."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
            return json.loads(response.read())["pid"]
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return None


def wait_serving(port: int, process: subprocess.Popen, data_dir: Path) -> list[int]:
    """Waits until both serving processes answer; returns the worker pid(s) from the data folder's record."""
    answered: set[int] = set()
    for _ in range(600):
        assert process.poll() is None, "bridge serve exited"
        pid = healthz_pid(port)
        if pid is not None:
            answered.add(pid)
        if len(answered) == 2:
            break
        time.sleep(0.05)
    else:
        pytest.fail(f"bridge serve did not come up with two serving processes (answered: {answered})")
    record = json.loads(record_path(data_dir, port).read_text())
    assert record["parent"]["pid"] == process.pid and record["port"] == port
    workers = [w["pid"] for w in record["workers"]]
    assert answered == {process.pid, *workers}
    return workers


def proc_state(pid: int) -> tuple[str, int] | None:
    """(state, parent pid) from /proc/<pid>/stat, or None when the process is gone (zombies count as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()
    return None if fields[0] in ("Z", "X") else (fields[0], int(fields[1]))


def wait_gone(pids: list[int], timeout: float) -> list[int]:
    """The pids still alive after up to timeout seconds."""
    deadline = time.monotonic() + timeout
    while (alive := [p for p in pids if proc_state(p) is not None]) and time.monotonic() < deadline:
        time.sleep(0.05)
    return alive


def kill_parent(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGKILL)  # no shutdown, no cleanup
    process.wait(timeout=10)


def stop(process: subprocess.Popen) -> int:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    return process.wait(timeout=30)


def test_workers_exit_when_the_parent_is_killed_and_the_next_start_replaces_the_stale_record(
        db_url: str, tmp_path: Path):
    data_dir, port, log = tmp_path / "data", free_tcp_port(), tmp_path / "bridge.log"
    first = start_bridge(db_url, data_dir, port, log)
    try:
        workers = wait_serving(port, first, data_dir)
        assert len(workers) == 1 and proc_state(workers[0])[1] == first.pid  # the parent's own child
        kill_parent(first)
        started = time.monotonic()
        assert wait_gone(workers, timeout=5) == [], f"workers outlived their parent: {log.read_text()}"
        assert healthz_pid(port) is None, "something still answers on the port"
        print(f"workers gone {time.monotonic() - started:.2f} s after the parent's SIGKILL")
    finally:
        stop(first)
    assert record_path(data_dir, port).exists()  # nobody removed it: a SIGKILL leaves it behind

    # The record names only dead processes now: the next start replaces it without waiting.
    started = time.monotonic()
    second = start_bridge(db_url, data_dir, port, log)
    try:
        workers = wait_serving(port, second, data_dir)
        assert time.monotonic() - started < 30
        assert "whose processes are all gone" in log.read_text()
    finally:
        assert stop(second) == 0
    assert wait_gone(workers, timeout=5) == []
    assert not record_path(data_dir, port).exists()  # a clean stop removes its record


def test_a_start_beside_an_orphan_of_an_earlier_run_refuses_and_names_it(db_url: str, tmp_path: Path):
    """A real orphan: the worker is stopped (SIGSTOP) before its parent is killed, so it cannot act on the
    parent's death (the kernel's SIGTERM stays pending) and keeps the port's socket open, as a worker that
    did not die with its parent would."""
    data_dir, port, log = tmp_path / "data", free_tcp_port(), tmp_path / "bridge.log"
    first = start_bridge(db_url, data_dir, port, log)
    orphan = None
    try:
        [orphan] = wait_serving(port, first, data_dir)
        os.kill(orphan, signal.SIGSTOP)
        kill_parent(first)
        assert proc_state(orphan) is not None and proc_state(orphan)[0] == "T"

        refused = subprocess.run([*BRIDGE, "serve"], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60,
                                 check=False,
                                 env={**os.environ, "DATABASE_URL": db_url, "BRIDGE_DATA_DIR": str(data_dir),
                                      "BRIDGE_PORT": str(port), "WEBHOOK_SECRET": new_webhook_secret(),
                                      "FLOWABLE_URL": f"http://127.0.0.1:{free_tcp_port()}/process-api"})
        assert refused.returncode == 2, refused.stderr
        assert f"still run without their parent (port {port}: pid(s) {orphan}, whose parent {first.pid} is gone)" \
            in refused.stderr
        assert f"Stop them first: kill {orphan}" in refused.stderr
        assert "Traceback" not in refused.stderr
        assert record_path(data_dir, port).exists()  # still names the orphan

        # Let it go on: the pending SIGTERM from the kernel stops it, and the next start serves.
        os.kill(orphan, signal.SIGCONT)
        assert wait_gone([orphan], timeout=ORPHAN_GRACE) == []
        orphan = None
        second = start_bridge(db_url, data_dir, port, log)
        try:
            wait_serving(port, second, data_dir)
        finally:
            assert stop(second) == 0
    finally:
        stop(first)
        if orphan is not None and proc_state(orphan) is not None:
            os.kill(orphan, signal.SIGKILL)
            os.kill(orphan, signal.SIGCONT)


ORPHAN_GRACE = 10  # seconds; the worker exits hard 5 s after noticing its parent is gone (server.ORPHAN_EXIT_S)


def test_a_live_bridge_on_the_same_port_refuses_a_second_start_on_another_port_is_fine(db_url: str, tmp_path: Path):
    data_dir, port, log = tmp_path / "data", free_tcp_port(), tmp_path / "bridge.log"
    first = start_bridge(db_url, data_dir, port, log)
    try:
        workers = wait_serving(port, first, data_dir)
        same = subprocess.run([*BRIDGE, "serve"], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60,
                              check=False,
                              env={**os.environ, "DATABASE_URL": db_url, "BRIDGE_DATA_DIR": str(data_dir),
                                   "BRIDGE_PORT": str(port), "WEBHOOK_SECRET": new_webhook_secret(),
                                   "FLOWABLE_URL": f"http://127.0.0.1:{free_tcp_port()}/process-api"})
        assert same.returncode == 2, same.stderr
        assert f"already serves port {port} (pid {first.pid}, serving processes {first.pid}, {workers[0]})" \
            in same.stderr
        assert f"Stop it first (kill {first.pid}) or serve on another BRIDGE_PORT" in same.stderr

        # Several bridges of one data folder on different ports (as the tests run them) are no conflict.
        other_port = free_tcp_port()
        other = start_bridge(db_url, data_dir, other_port, log)
        try:
            wait_serving(other_port, other, data_dir)
            assert json.loads(record_path(data_dir, port).read_text())["parent"]["pid"] == first.pid
        finally:
            assert stop(other) == 0
    finally:
        assert stop(first) == 0
    assert sorted(data_dir.glob("serving-*.json")) == []


CHILD = """
import sys, time
from bridge.web.server import die_with_parent
die_with_parent(int(sys.argv[1]), use_prctl=False)
print("watching", flush=True)
time.sleep(120)
"""

MIDDLE = """
import os, subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", sys.argv[1], str(os.getpid())])
print(child.pid, flush=True)
time.sleep(120)
"""


def test_without_the_parent_death_signal_the_watch_on_the_parent_pid_stops_a_worker(tmp_path: Path):
    """The portable fallback alone (no prctl): a process whose parent is SIGKILLed stops within seconds."""
    middle = subprocess.Popen([sys.executable, "-c", MIDDLE, CHILD], cwd=PROJECT_ROOT, stdout=subprocess.PIPE,
                              text=True)
    child = None
    try:
        child = int(middle.stdout.readline())
        assert middle.stdout.readline().strip() == "watching"
        assert proc_state(child)[1] == middle.pid
        kill_parent(middle)
        assert wait_gone([child], timeout=4) == []
        child = None
    finally:
        if middle.poll() is None:
            kill_parent(middle)
        if child is not None and proc_state(child) is not None:
            os.kill(child, signal.SIGKILL)
        middle.stdout.close()
