"""Serving the app: one process, or several sharing the port (SO_REUSEPORT) when BRIDGE_WORKERS > 1.

The intake is CPU-bound Python (parse, verify, fold) beside a PostgreSQL doing the writes: measured on 2
cores (bench/webhook_ingest.py), two serving processes take about 20% more batches at the same p99 than
one. Only the first process runs the background jobs (reconciler, queue-load folding); the others serve.
"""

from __future__ import annotations

import logging
import multiprocessing
import os

from aiohttp import web

from bridge import logs
from bridge.config import Settings
from bridge.flowable.client import EngineEndpoint
from bridge.web.app import create_app

log = logging.getLogger(__name__)


def _serve_one(settings: Settings, database_url: str, engine: EngineEndpoint, background_jobs: bool) -> None:
    web.run_app(create_app(settings, database_url, engine, background_jobs=background_jobs),
                host=settings.http_host, port=settings.http_port, reuse_port=settings.workers > 1,
                print=None, access_log=None)


def _worker(settings: Settings, database_url: str, engine: EngineEndpoint) -> None:
    logs.configure(json_lines=os.environ.get("BRIDGE_LOG_FORMAT") == "json")
    _serve_one(settings, database_url, engine, background_jobs=False)


def serve(settings: Settings, database_url: str, engine: EngineEndpoint) -> None:
    """Serve until SIGINT/SIGTERM; extra workers are stopped with the first."""
    extra = [multiprocessing.get_context("spawn").Process(
        target=_worker, args=(settings, database_url, engine), name=f"bridge-worker-{n}", daemon=True)
        for n in range(1, settings.workers)]
    for process in extra:
        process.start()
    if extra:
        log.info("%d serving processes (pids %s and %d)", settings.workers,
                 ", ".join(str(p.pid) for p in extra), os.getpid())
    try:
        _serve_one(settings, database_url, engine, background_jobs=True)
    finally:
        for process in extra:
            process.terminate()
        for process in extra:
            process.join(timeout=10)
