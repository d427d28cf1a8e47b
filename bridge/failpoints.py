"""Failpoints: named places where this process can be made to die on purpose, for crash tests.

    BRIDGE_FAILPOINTS=action.after_engine,action.after_commit bridge serve

Read once at start-up; unset (always, outside tests) every failpoint is a no-op. An armed failpoint kills
the process with SIGKILL, as an OOM killer or a lost machine would: no finally blocks, no rollback sent,
no answer. The names, where they are and what they test:

  action.after_engine   a work action: the engine has done it, the mirror write and the stored answer are
                        not committed yet (the retry must find the action done, not refuse it)
  action.after_commit   a work action: committed with its stored answer, the HTTP answer not yet sent (the
                        retry must get the stored answer)
  archive.mid_run       an archiving run: one batch committed, the next moved and counted but not committed
                        (the rerun must archive every instance once, nothing lost or doubled)
  migration.after_engine  a migration run: the engine has moved an instance, the mirror has not followed
                        (a resumed run must move the rest once; drift and the reconciler repair that one)
"""

from __future__ import annotations

import logging
import os
import signal

log = logging.getLogger(__name__)
KNOWN = frozenset({"action.after_engine", "action.after_commit", "archive.mid_run", "migration.after_engine"})
ARMED = frozenset(name.strip() for name in os.environ.get("BRIDGE_FAILPOINTS", "").split(",") if name.strip())
if ARMED - KNOWN:
    raise RuntimeError(f"BRIDGE_FAILPOINTS: unknown {', '.join(sorted(ARMED - KNOWN))} "
                       f"(known: {', '.join(sorted(KNOWN))})")


def failpoint(name: str) -> None:
    if name in ARMED:
        log.critical("failpoint %s: killing this process (SIGKILL)", name)
        os.kill(os.getpid(), signal.SIGKILL)
