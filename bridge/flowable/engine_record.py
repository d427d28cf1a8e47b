"""One engine per database: what a command that starts the engine records, so that no other command starts a
second one (bridge/runtime.py asks here before it starts anything).

Two records, for two ways of running beside each other:
  - `engine.json` in the data folder: the engine's REST URL, its pid and the pid of the command that started
    it (each with its start time, bridge/processes.py), and the database it runs on. Written before the
    engine answers, so that a command started meanwhile waits for it instead of starting another; removed
    when the engine stops. Every command of the same data folder finds the engine here, whatever its port.
  - an advisory lock on the database itself, held by the starting command for the engine's life, its
    connection named after it (application_name): a command from another data folder or host, on the same
    database, learns that an engine runs there and who started it, and refuses instead of starting one.
Engines that tests or a cluster start on purpose (LocalEngine directly) take neither.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
from sqlalchemy.engine import make_url

from bridge.db.connections import libpq_url
from bridge.errors import BridgeError
from bridge.flowable.local_engine import engine_answers
from bridge.processes import alive, process_entry

log = logging.getLogger(__name__)

RECORD_NAME = "engine.json"
# pg_try_advisory_lock(int4, int4) keys: "ONEC", "ENGN". Advisory locks are per database.
LOCK_KEYS = (0x4F4E4543, 0x454E474E)


class EngineAlreadyRunning(BridgeError, RuntimeError):
    """An engine already runs on this database, and this command will not start a second one."""


@dataclass(frozen=True)
class RecordedEngine:
    """The engine a command of this data folder started (and still runs, or is starting)."""

    base_url: str
    database: str
    engine: dict | None  # {"pid", "started"}; None until spawned
    owner: dict  # the command that started it: {"pid", "started", "command"}

    @property
    def engine_pid(self) -> int | None:
        return self.engine["pid"] if self.engine else None

    def describe(self) -> str:
        owner = f"`{self.owner.get('command', 'bridge')}` (pid {self.owner['pid']})"
        engine = f"engine pid {self.engine_pid}" if self.engine else "engine starting"
        return f"{self.base_url}, started by {owner}, {engine}"

    def alive(self) -> bool:
        return alive(self.owner) or alive(self.engine)

    def wait_until_answering(self, user: str, password: str, *, timeout_s: float) -> str:
        """The REST base URL once the engine answers; EngineAlreadyRunning when it stops or stays silent."""
        deadline = time.monotonic() + timeout_s
        said = False
        while not engine_answers(self.base_url, user, password):
            if not self.alive():
                raise EngineAlreadyRunning(f"the engine at {self.base_url} stopped while this command waited for "
                                           "it to start; run the command again")
            if time.monotonic() > deadline:
                raise EngineAlreadyRunning(
                    f"an engine runs on this database ({self.describe()}) but does not answer at {self.base_url} "
                    f"within {timeout_s:.0f}s; not starting a second one. Wait for it, or stop it "
                    f"(kill {self.engine_pid or self.owner['pid']})")
            if not said:
                said = True
                log.info("waiting for the engine %s to answer", self.describe())
            time.sleep(0.5)
        return self.base_url


def database_identity(database_url: str) -> str:
    """host:port/database, what tells two URLs of the same database from two databases."""
    url = make_url(database_url)
    host = url.host or urllib.parse.unquote(str(url.query.get("host", "")))
    return f"{host}:{url.port or 5432}/{url.database}"


def read(data_dir: Path, database_url: str) -> RecordedEngine | None:
    """The engine recorded in this data folder for this database, if its engine or its owner still runs; a
    record whose processes are all gone is removed."""
    path = data_dir / RECORD_NAME
    try:
        raw = json.loads(path.read_text())
        recorded = RecordedEngine(base_url=str(raw["base_url"]), database=str(raw["database"]),
                                  engine=raw.get("engine"), owner=dict(raw["owner"]))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError):
        log.warning("ignoring (and removing) an unreadable engine record: %s", path)
        path.unlink(missing_ok=True)
        return None
    if not recorded.alive():
        log.info("removing the record of an engine whose processes are all gone: %s", path)
        path.unlink(missing_ok=True)
        return None
    if recorded.database != database_identity(database_url):
        return None  # an engine of this folder on another database: the advisory lock speaks for this one
    return recorded


@contextmanager
def recording(data_dir: Path, *, base_url: str, database_url: str, command: str) -> Iterator[Callable[[int], None]]:
    """Record the engine this process is about to start; yields the function that records its pid once
    spawned. The record goes when the block ends (the engine stopped)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / RECORD_NAME
    record = {"base_url": base_url, "database": database_identity(database_url), "engine": None,
              "owner": {**process_entry(os.getpid()), "command": command}}

    def spawned(pid: int) -> None:
        record["engine"] = process_entry(pid)
        _write(path, record)

    _write(path, record)
    try:
        yield spawned
    finally:
        try:
            if json.loads(path.read_text())["owner"]["pid"] == os.getpid():
                path.unlink()
        except (OSError, ValueError, KeyError, TypeError):
            pass


def _write(path: Path, record: dict) -> None:
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    partial.write_text(json.dumps(record, indent=2) + "\n")
    partial.replace(path)  # whole or not at all, for a reader in another command


_HOLDER = """
SELECT a.pid, a.application_name, host(a.client_addr) AS client, a.backend_start
  FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
 WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2
   AND l.classid::bigint = %s AND l.objid::bigint = %s
   AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
"""


def holder(database_url: str) -> str | None:
    """Who holds this database's engine lock (an engine started by a command runs on it), or None."""
    with psycopg.connect(libpq_url(database_url), autocommit=True) as conn:
        row = conn.execute(_HOLDER, LOCK_KEYS).fetchone()
    if row is None:
        return None
    pid, name, client, since = row
    return f"{name or 'a session'} (from {client or 'a local socket'}, since {since:%Y-%m-%d %H:%M:%S %Z})"


@contextmanager
def holding_the_database(database_url: str, *, engine_port: int) -> Iterator[None]:
    """Hold this database's engine lock for the block, or refuse (EngineAlreadyRunning) naming who holds it."""
    name = f"bridge engine pid={os.getpid()} port={engine_port} host={socket.gethostname()}"[:63]
    conn = psycopg.connect(libpq_url(database_url), autocommit=True, application_name=name)
    try:
        row = conn.execute("SELECT pg_try_advisory_lock(%s, %s)", LOCK_KEYS).fetchone()
        if not (row and row[0]):
            running = holder(database_url) or "another session (it just let go: try again)"
            raise EngineAlreadyRunning(
                f"an engine already runs on this database, started by {running}; not starting a second one. "
                "Run this command where that engine was started (same BRIDGE_DATA_DIR), or set FLOWABLE_URL "
                "to its REST API")
        yield
    finally:
        conn.close()  # the session ends, and the lock with it
