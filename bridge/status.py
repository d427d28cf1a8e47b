"""`bridge status`: the bridge's state on one screen, for the on-call engineer: database and migrations,
engine and what its webhook emitter sent and dropped, how far behind the mirror is, what is parked, queue
depths and SLA breaches, and the bridges serving from the data folder. Starts nothing but the embedded
database it reads (as every command does); an engine that is not running is reported, not started."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from bridge import db_health
from bridge.db import migrate
from bridge.db.connections import libpq_url, open_database
from bridge.db.queries import queries
from bridge.flowable.client import EngineUnavailable, FlowableClient, FlowableEndpoint, FlowableError, RetryPolicy
from bridge.reports import emitter

SQL = queries("status")


def _pushes_line(pushes: dict) -> str:
    """The engine's own count of what its webhook emitter sent, dropped and still holds."""
    if not pushes["reachable"]:
        return f"pushes      engine emitter not readable: {pushes['error']}"
    dropped = pushes["droppedEvents"] or 0
    flag = "; DROPPED pushes: the reconciler brings what they held" if dropped else ""
    error = f"; last error {pushes['lastErrorAt']}: {pushes['lastError']}" if pushes.get("lastError") else ""
    return (f"pushes      {pushes['sentEvents']} event(s) sent in {pushes['sentPosts']} POST(s), {dropped} dropped, "
            f"{pushes['queueDepth']} waiting{' (PAUSED)' if pushes['paused'] else ''}{flag}{error}")


def _ago(moment: datetime | None) -> str:
    if moment is None:
        return "never"
    seconds = (datetime.now(UTC) - moment).total_seconds()
    return f"{moment:%Y-%m-%d %H:%M:%S}Z ({seconds:.0f} s ago)"


async def report(database_url: str, migrations_dir, endpoint: FlowableEndpoint | None, *,
                 bridges: Sequence[Mapping[str, Any]] = (), engine_note: str | None = None) -> tuple[bool, list[str]]:
    """(healthy, lines): healthy when the database answers with no migration pending and the engine answers.
    bridges: the bridges serving from the data folder (bridge/web/serving_records.py live_bridges); engine_note:
    why there is no endpoint, when something is known about it."""
    lines, healthy = [], True
    for bridge in bridges:
        workers = f", serving processes {', '.join(map(str, bridge['workers']))}" if bridge["workers"] else ""
        lines.append(f"bridge      serving at {bridge['url']} (pid {bridge['pid']}{workers})")
    if not bridges:
        lines.append("bridge      not serving from this data folder (bridge up starts it)")
    waiting = await migrate.pending(libpq_url(database_url), migrations_dir)
    lines.append(f"database    ok, {'migrations current' if not waiting else 'PENDING: ' + ', '.join(waiting)}")
    healthy &= not waiting
    if endpoint is None:
        lines.append(f"engine      NOT RUNNING {engine_note}" if engine_note else
                     "engine      NOT RUNNING (bridge up or bridge engine start starts it; or set FLOWABLE_URL)")
        healthy = False
    else:
        try:
            async with FlowableClient.of(endpoint, retry=RetryPolicy(attempts=1), timeout_s=5) as client:
                info = await client.engine_info()
                pushes = await emitter(client)
            lines.append(f"engine      ok, {endpoint.base_url} (Flowable {info.get('version', '?')})")
            lines.append(_pushes_line(pushes))
        except (EngineUnavailable, FlowableError, TimeoutError) as err:
            lines.append(f"engine      UNREACHABLE at {endpoint.base_url}: {err}")
            healthy = False
    db = open_database(database_url, pool_size=1)
    try:
        async with db.connect() as conn:
            inbox = (await conn.execute(SQL.inbox)).one()
            reconcilers = (await conn.execute(SQL.reconciler)).all()
            leases = (await conn.execute(SQL.leases)).all()
            queue_rows = (await conn.execute(SQL.queues)).all()
            health = await db_health.read(conn)
            archived = await db_health.archiving(conn)
    finally:
        await db.dispose()
    lines.append(f"webhooks    last batch {_ago(inbox.last_received)}, newest engine change pushed "
                 f"{_ago(inbox.newest_event)}, {inbox.parked} event(s) parked")
    for lease in leases:
        lines.append(f"jobs        run by {lease.holder} since {_ago(lease.acquired_at)} (term {lease.term}), renewed "
                     f"{_ago(lease.renewed_at)}" if lease.held else
                     f"jobs        NOBODY holds the lease (last {lease.holder}, renewed {_ago(lease.renewed_at)}): "
                     "no bridge is running the background jobs")
    if not leases:
        lines.append("jobs        no bridge has run the background jobs yet")
    if not reconcilers:
        lines.append("reconciler  has not run yet")
    for r in reconcilers:
        error = f"; LAST ERROR {_ago(r.last_error_at)}: {r.last_error}" if r.last_error else ""
        lines.append(f"reconciler  last pass {_ago(r.last_pass_at)}, "
                     f"newest change mirrored {_ago(r.newest_change_at)}, "
                     f"{r.passes} passes, {r.repairs} repairs{error}")
    lines += db_health.lines(health)
    lines.append(f"archive     {archived.archived_instances} instance(s) archived, the last "
                 f"{_ago(archived.last_archived_at)}; {archived.engine_history_pending} engine histories "
                 f"still to delete")
    lines.append("")
    lines.append(f"{'queue':<28} {'open':>6} {'overdue':>8} {'capacity':>9}")
    for q in queue_rows:
        flag = "  OVER CAPACITY" if q.open_tasks > q.max_capacity else ""
        lines.append(f"{q.queue_name:<28} {q.open_tasks:>6} {q.overdue_tasks:>8} {q.max_capacity:>9}{flag}")
    return healthy, lines
