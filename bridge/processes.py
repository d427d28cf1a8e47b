"""Telling whether a process recorded in a file is still the same process (a pid alone may be reused).

    entry = process_entry(os.getpid())   # {"pid": ..., "started": ...}, kept in a JSON record
    alive(entry)                         # later, from any process: still that very process?
"""

from __future__ import annotations

import os
from pathlib import Path


def identity(pid: int) -> str | None:
    """Something that tells this process from a later one with the same pid, or None if there is none.

    Linux: its start time (clock ticks since boot, /proc/<pid>/stat field 22); zombies count as gone.
    Elsewhere: "" while the pid exists (a reused pid cannot be told apart there)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return None
    except OSError:
        stat = None
    if stat is not None:
        fields = stat[stat.rindex(")") + 2:].split()  # the name in parentheses may hold spaces
        return None if fields[0] in ("Z", "X") else fields[19]
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass
    return ""


def process_entry(pid: int) -> dict:
    return {"pid": pid, "started": identity(pid)}


def alive(entry: dict | None) -> bool:
    if not entry or not isinstance(entry.get("pid"), int):
        return False
    started = identity(entry["pid"])
    return started is not None and started == entry.get("started")
