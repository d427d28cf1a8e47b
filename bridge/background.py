"""Periodic jobs of the service (the summaries' folds, SLA escalation, auto-assignment, archiving) as aiohttp
cleanup contexts: started with the app, cancelled with it, a failed round logged and the next one run anyway.
A round runs only while its gate says so: the replica holds the lease on the background jobs
(bridge/leadership.py)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web

from bridge import metrics

log = logging.getLogger(__name__)


async def every(interval_s: float, job: Callable[[], Awaitable[object]], what: str,
                gate: Callable[[], bool] = lambda: True) -> None:
    failing = False
    while True:
        await asyncio.sleep(interval_s)
        if not gate():
            continue
        try:
            metrics.BACKGROUND_ROUNDS.labels(what).inc()
            await job()
            failing = False
        except Exception as err:  # the service stays up; the next round starts from the database's state
            # the traceback once per outage, then a line per round (a database that is down fails every second)
            log.warning("%s failed; next round in %ss: %s", what, interval_s, err, exc_info=not failing)
            failing = True


def periodic(what: str, interval_of: Callable[[web.Application], float],
             job_of: Callable[[web.Application], Callable[[], Awaitable[object]]],
             gate_of: Callable[[web.Application], Callable[[], bool]] = lambda app: lambda: True):
    """A cleanup context running job_of(app)() every interval_of(app) seconds while gate_of(app)() is true; 0
    or less: not at all."""
    async def context(app: web.Application) -> AsyncIterator[None]:
        interval = interval_of(app)
        if interval <= 0:
            yield
            return
        task = asyncio.create_task(every(interval, job_of(app), what, gate_of(app)), name=what)
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    return context
