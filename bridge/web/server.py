"""Serving the app: one process, or several sharing the port (SO_REUSEPORT) when BRIDGE_WORKERS > 1.

The intake is CPU-bound Python (parse, verify, fold) beside a PostgreSQL doing the writes: measured on 2
cores (bench/webhook_ingest.py), two serving processes take about 20% more batches at the same p99 than
one. Only the first process runs the background jobs (reconciler, queue-load folding); the others serve.

Workers die with their parent. A worker whose parent was killed (SIGKILL, OOM killer) would otherwise keep
answering on the shared port, running no background jobs, and a restarted bridge would share the port
with it. So each worker asks the kernel for SIGTERM when its parent dies (prctl PR_SET_PDEATHSIG, Linux),
and watches its parent pid every second in any case (the portable fallback, and a hard exit should the
graceful stop hang).

Each run records its serving processes in the data folder, and a start refuses to serve beside orphans
of an earlier run or a live bridge on the same port: bridge/web/serving_records.py.
"""

from __future__ import annotations

import ctypes
import logging
import multiprocessing
import os
import signal
import sys
import threading
import time

from aiohttp import web

from bridge import logs
from bridge.config import Settings
from bridge.flowable.client import FlowableEndpoint
from bridge.web import serving_records
from bridge.web.app import create_app
from bridge.web.serving_records import ORPHAN_EXIT_S

log = logging.getLogger(__name__)

# Seconds between a worker's looks at its parent pid (the fallback where PR_SET_PDEATHSIG is not had).
PARENT_CHECK_S = 1.0
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _serve_one(settings: Settings, database_url: str, endpoint: FlowableEndpoint, background_jobs: bool) -> None:
    web.run_app(create_app(settings, database_url, endpoint, background_jobs=background_jobs),
                host=settings.http_host, port=settings.http_port, reuse_port=settings.workers > 1,
                print=None, access_log=None)


def _worker(settings: Settings, database_url: str, endpoint: FlowableEndpoint, parent_pid: int) -> None:
    die_with_parent(parent_pid)
    logs.configure(json_lines=os.environ.get("BRIDGE_LOG_FORMAT") == "json")
    _serve_one(settings, database_url, endpoint, background_jobs=False)


def _arm_parent_death_signal() -> bool:
    """SIGTERM from the kernel when the parent dies (Linux); False where that is not to be had.

    The kernel ties it to the parent *thread* that started this process: serve() starts the workers on
    the main thread, which lives as long as the parent does."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) == 0:
            return True
        log.warning("prctl(PR_SET_PDEATHSIG) failed: %s", os.strerror(ctypes.get_errno()))
    except (OSError, AttributeError) as err:
        log.warning("prctl(PR_SET_PDEATHSIG) not available: %s", err)
    return False


def die_with_parent(parent_pid: int, *, use_prctl: bool = True) -> None:
    """Make this process stop when parent_pid, its parent, dies: SIGTERM (graceful), then exit hard."""
    armed = use_prctl and _arm_parent_death_signal()
    if os.getppid() != parent_pid:  # the parent died before the signal was armed
        os._exit(1)
    threading.Thread(target=_watch_parent, args=(parent_pid, armed), name="parent-watch", daemon=True).start()


def _watch_parent(parent_pid: int, signalled: bool) -> None:
    while os.getppid() == parent_pid:  # reparented (to init or a subreaper) once the parent is gone
        time.sleep(PARENT_CHECK_S)
    log.warning("the serving parent (pid %d) is gone: this worker stops", parent_pid)
    if not signalled:  # else the kernel has sent SIGTERM already
        os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(ORPHAN_EXIT_S)
    os._exit(1)  # the graceful stop did not finish in time


def serve(settings: Settings, database_url: str, endpoint: FlowableEndpoint) -> None:
    """Serve until SIGINT/SIGTERM; extra workers are stopped with the first, and die if it is killed.

    Raises ServingConflict, serving nothing, beside orphans of an earlier run on this data folder or a
    live bridge of this folder on the same port (see the module's doc)."""
    data_dir = settings.data_dir
    created = not data_dir.exists()
    data_dir.mkdir(parents=True, exist_ok=True)
    record = serving_records.claim(data_dir, settings.http_port, settings.http_host)
    extra = [multiprocessing.get_context("spawn").Process(
        target=_worker, args=(settings, database_url, endpoint, os.getpid()), name=f"bridge-worker-{n}",
        daemon=True) for n in range(1, settings.workers)]
    try:
        for process in extra:
            process.start()
        if extra:
            serving_records.add_workers(record, [p.pid for p in extra if p.pid is not None])
            log.info("%d serving processes (pids %s and %d)", settings.workers,
                     ", ".join(str(p.pid) for p in extra), os.getpid())
        _serve_one(settings, database_url, endpoint, background_jobs=True)
    finally:
        for process in extra:
            if process.pid is not None:
                process.terminate()
        for process in extra:
            if process.pid is not None:
                process.join(timeout=10)
        if not any(p.is_alive() for p in extra if p.pid is not None):
            serving_records.release(record)  # else the record names them for the next start
        if created:
            try:
                data_dir.rmdir()  # only if nothing else was put there
            except OSError:
                pass
