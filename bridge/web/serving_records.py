"""The record of serving processes in the data folder, so that a start never serves beside what an earlier
run left behind (bridge/web/server.py serves; this says whether it may).

The serving processes of a run are recorded in the data folder (serving-<port>.json: pids, each with its
start time, so a reused pid is not taken for ours), and removed on a clean stop. A start refuses to serve
(ServingConflict; `bridge` exits 2 naming the pids) when that folder's records show
  - orphans: serving processes alive whose parent is gone, on any port (they outlive the run that made
    them: nothing in this bridge stops them), after giving them ORPHAN_EXIT_S + a little to stop on their
    own, as server.py makes them do;
  - a live bridge on the same port: with SO_REUSEPORT the second bind would succeed and the two runs would
    silently split the traffic.
A live bridge of the same folder on another port is no conflict (the tests run several `bridge serve` on
different databases and ports beside one default data folder). Records whose processes are all gone
(the parent killed, its workers gone after it) are stale and removed.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from bridge.config import ConfigError
from bridge.processes import alive, process_entry

log = logging.getLogger(__name__)

# Seconds a worker whose parent died is given to stop gracefully before it exits hard (server.py).
ORPHAN_EXIT_S = 5.0
RECORD_GLOB = "serving-*.json"


class ServingConflict(ConfigError):
    """Serving processes of an earlier run on this data folder still run (orphans, or a bridge on this port).

    A ConfigError, so `bridge up`/`serve` log its one-line message and exit 2 (bridge/cli.py main)."""


def record_path(data_dir: Path, port: int) -> Path:
    return data_dir / f"serving-{port}.json"


@contextmanager
def _folder_lock(data_dir: Path) -> Iterator[None]:
    """Serialises look-and-record between bridges starting on one data folder (flock on the folder)."""
    try:
        import fcntl
    except ImportError:  # not POSIX: unserialised
        yield
        return
    fd = os.open(data_dir, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _read_records(data_dir: Path) -> list[tuple[Path, dict]]:
    records = []
    for path in sorted(data_dir.glob(RECORD_GLOB)):
        try:
            record = json.loads(path.read_text())
            if not (isinstance(record["parent"]["pid"], int) and isinstance(record["port"], int)):
                raise TypeError("pids and port are integers")
        except FileNotFoundError:
            continue
        except (OSError, ValueError, KeyError, TypeError):
            log.warning("ignoring (and replacing) an unreadable record of serving processes: %s", path)
            path.unlink(missing_ok=True)
            continue
        records.append((path, record))
    return records


def _conflicts(data_dir: Path, port: int) -> tuple[list[dict], list[dict]]:
    """(records with orphans, records of a live bridge on this port); stale records are removed."""
    orphaned, same_port = [], []
    for path, record in _read_records(data_dir):
        parent_alive = record["parent"]["pid"] != os.getpid() and alive(record["parent"])
        workers = [w for w in record.get("workers", []) if alive(w)]
        if parent_alive:
            if record["port"] == port:
                same_port.append({**record, "workers": workers})
        elif workers:
            orphaned.append({**record, "workers": workers})
        else:
            log.info("removing the record of an earlier run whose processes are all gone: %s", path)
            path.unlink(missing_ok=True)
    return orphaned, same_port


def _refusal(data_dir: Path, port: int, orphaned: list[dict], same_port: list[dict]) -> str:
    if orphaned:
        pids = [w["pid"] for record in orphaned for w in record["workers"]]
        where = "; ".join(f"port {r['port']}: pid(s) {', '.join(str(w['pid']) for w in r['workers'])}, "
                          f"whose parent {r['parent']['pid']} is gone" for r in orphaned)
        return (f"not serving: serving processes of an earlier run on this data folder ({data_dir}) still run "
                f"without their parent ({where}); they would share the port and run no background jobs. "
                f"Stop them first: kill {' '.join(map(str, pids))} (kill -9 if they stay)")
    record = same_port[0]
    pids = [record["parent"]["pid"], *(w["pid"] for w in record["workers"])]
    return (f"not serving: a bridge of this data folder ({data_dir}) already serves port {port} "
            f"(pid {record['parent']['pid']}, serving processes {', '.join(map(str, pids))}). "
            f"Stop it first (kill {record['parent']['pid']}) or serve on another BRIDGE_PORT")


def claim(data_dir: Path, port: int, host: str) -> Path:
    """Refuse beside orphans or a live bridge on this port; else record this process as serving `port`."""
    deadline = time.monotonic() + ORPHAN_EXIT_S + 3
    waiting = False
    while True:
        with _folder_lock(data_dir):
            orphaned, same_port = _conflicts(data_dir, port)
            if same_port or (orphaned and time.monotonic() >= deadline):
                raise ServingConflict(_refusal(data_dir, port, orphaned, same_port))
            if not orphaned:
                path = record_path(data_dir, port)
                _write_record(path, {"port": port, "host": host, "parent": process_entry(os.getpid()), "workers": [],
                                     "since": datetime.now(UTC).isoformat(timespec="seconds")})
                return path
        if not waiting:
            waiting = True
            log.info("serving processes of an earlier run on %s still run without their parent; "
                     "waiting up to %.0f s for them to stop", data_dir, deadline - time.monotonic())
        time.sleep(0.2)


def _write_record(path: Path, record: dict) -> None:
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    partial.write_text(json.dumps(record, indent=2) + "\n")
    partial.replace(path)  # whole or not at all, for a reader in another bridge


def release(path: Path) -> None:
    try:
        if json.loads(path.read_text())["parent"]["pid"] == os.getpid():
            path.unlink()
    except (OSError, ValueError, KeyError, TypeError):
        pass


def check(data_dir: Path, port: int) -> None:
    """Raise ServingConflict now if serving `port` from this folder would be refused (before `bridge up`
    spends time starting PostgreSQL and the engine); nothing is recorded."""
    if not data_dir.exists():
        return
    with _folder_lock(data_dir):
        orphaned, same_port = _conflicts(data_dir, port)
    if same_port:
        raise ServingConflict(_refusal(data_dir, port, orphaned, same_port))


def add_workers(path: Path, pids: list[int]) -> None:
    with _folder_lock(path.parent):
        state = json.loads(path.read_text())
        state["workers"] = [process_entry(pid) for pid in pids]
        _write_record(path, state)


def live_bridges(data_dir: Path) -> list[dict]:
    """The bridges serving from this data folder now: {"url", "pid", "workers"} each (for `bridge status` and
    the commands that reach a running service)."""
    if not data_dir.exists():
        return []
    bridges = []
    for _path, record in _read_records(data_dir):
        if alive(record["parent"]):
            host = record.get("host") or "127.0.0.1"
            host = "127.0.0.1" if host in ("0.0.0.0", "::") else host
            bridges.append({"url": f"http://{host}:{record['port']}", "pid": record["parent"]["pid"],
                            "workers": [w["pid"] for w in record.get("workers", []) if alive(w)]})
    return bridges
