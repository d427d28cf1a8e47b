"""Periodic jobs of the service (queue-load folding, SLA escalation, auto-assignment) as aiohttp cleanup
contexts: started with the app, cancelled with it, a failed round logged and the next one run anyway."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web

log = logging.getLogger(__name__)


async def every(interval_s: float, job: Callable[[], Awaitable[object]], what: str) -> None:
    failing = False
    while True:
        await asyncio.sleep(interval_s)
        try:
            await job()
            failing = False
        except Exception as err:  # the service stays up; the next round starts from the database's state
            # the traceback once per outage, then a line per round (a database that is down fails every second)
            log.warning("%s failed; next round in %ss: %s", what, interval_s, err, exc_info=not failing)
            failing = True


def periodic(what: str, interval_of: Callable[[web.Application], float],
             job_of: Callable[[web.Application], Callable[[], Awaitable[object]]]):
    """A cleanup context running job_of(app)() every interval_of(app) seconds; 0 or less: not at all."""
    async def context(app: web.Application) -> AsyncIterator[None]:
        interval = interval_of(app)
        if interval <= 0:
            yield
            return
        task = asyncio.create_task(every(interval, job_of(app), what), name=what)
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    return context
