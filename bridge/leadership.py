"""Which replica runs the background jobs: the holder of a lease in PostgreSQL (migration 0030).

Every replica's service renews or tries to take the lease every third of BRIDGE_LEASE_TTL_S. The holder runs
the jobs while its own deadline lasts: the lease's length counted from before the renewal that granted it,
less a margin, so it stops before the database would let another replica take over, whatever its clock says.
A replica that dies (SIGKILL, its machine gone, cut from the database) stops renewing; another takes the lease
once it expires, within BRIDGE_LEASE_TTL_S plus one renewal interval. A replica that stops cleanly releases it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from bridge import metrics
from bridge.db.queries import queries

SQL = queries("leadership")
log = logging.getLogger(__name__)
BACKGROUND = "background-jobs"
# The holder stops this much before its lease runs out in the database (a renewal's own time, scheduling).
SAFETY_MARGIN = 0.2


def replica_id() -> str:
    """This process among the replicas: host, pid and a random part (pids repeat across containers)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass
class Leadership:
    database: AsyncEngine
    ttl_s: float
    holder: str
    name: str = BACKGROUND
    term: int | None = None
    _until: float | None = None  # time.monotonic() when this replica must stop; None: not leading

    @property
    def leading(self) -> bool:
        return self._until is not None and time.monotonic() < self._until

    @property
    def renew_every_s(self) -> float:
        return self.ttl_s / 3

    async def renew(self) -> bool:
        """Renews or takes the lease; whether this replica leads now. A failure (the database unreachable)
        changes nothing: the deadline runs out by itself."""
        asked_at = time.monotonic()
        was_leading = self.leading
        try:
            async with self.database.begin() as conn:
                term = (await conn.execute(SQL.take_or_renew, {"name": self.name, "holder": self.holder,
                                                               "ttl_s": float(self.ttl_s)})).scalar()
        except Exception as err:  # noqa: BLE001 - the next renewal tries again; the deadline decides meanwhile
            if was_leading:
                log.warning("lease %s not renewed (%s); this replica stops its background jobs in %.1fs unless "
                            "a renewal succeeds", self.name, err, max(0.0, (self._until or 0) - time.monotonic()))
            return self._report()
        if term is None:
            if was_leading or self.term is not None:
                log.info("lease %s: another replica holds it now; this one's background jobs stop", self.name)
            self._until, self.term = None, None
        else:
            if not was_leading or term != self.term:
                log.info("lease %s: this replica (%s) runs the background jobs (term %d)", self.name, self.holder,
                         term)
            self.term = term
            self._until = asked_at + self.ttl_s * (1 - SAFETY_MARGIN)
        return self._report()

    async def release(self) -> None:
        if self.term is None:
            return
        self._until, self.term = None, None
        metrics.BACKGROUND_LEADER.set(0)
        try:
            async with self.database.begin() as conn:
                await conn.execute(SQL.release, {"name": self.name, "holder": self.holder})
        except Exception as err:  # noqa: BLE001 - it runs out by itself
            log.warning("lease %s not released (%s): it runs out in at most %ss", self.name, err, self.ttl_s)

    async def run_forever(self) -> None:
        while True:
            await self.renew()
            await asyncio.sleep(self.renew_every_s)

    def _report(self) -> bool:
        leading = self.leading
        metrics.BACKGROUND_LEADER.set(1 if leading else 0)
        return leading
