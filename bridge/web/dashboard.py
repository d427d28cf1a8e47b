"""/dashboard: the ops page, server-rendered from the same reports as /api/reports/... (bridge/reports.py).

No script and nothing fetched from elsewhere: HTML with inline SVG charts, a meta refresh, and a Content
Security Policy that forbids anything else. A browser signs in once with an API token of a user holding
OPS_VIEWER (POST /dashboard/login); the token is kept in an HttpOnly, SameSite=Strict cookie scoped to
/dashboard, so it never works for /api (which takes bearer headers only). A client that sends
`Authorization: Bearer` gets the page without the cookie.

/dashboard/processes/{key} is the live process map: the deployed diagram of a version of the process
(bridge/bpmn/diagram.py) with, on each activity, the activities report's figures (live, breached and at-risk
tasks now, mean time spent there over the window) and a heat colour; same sign-in, same policy, no script.

The "Database health" panel shows what `bridge status` and /metrics read (bridge/db_health.py): the oldest open
transaction and the xmin horizon, dead tuples and (auto)vacuum of the hot tables, never-used and bloated
indexes, the slowest statements when pg_stat_statements is installed, and the archive ledger's counts.
"""

from __future__ import annotations

import asyncio
import functools
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jinja2
from aiohttp import web
from lxml import etree

from bridge import db_health, reports
from bridge.auth import OPS_ROLE, holds_role, user_of_token
from bridge.bpmn.diagram import DiagramError, render_svg
from bridge.flowable.client import EngineUnavailable, FlowableError
from bridge.web.errors import body_deadline
from bridge.web.keys import DB, FLOWABLE, READ_DB

COOKIE = "bridge_dashboard"
COOKIE_MAX_AGE_S = 12 * 3600
REFRESH_S = 30
WINDOWS = (6, 24, 72, 168)  # hours the page offers
CSP = ("default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'self'; "
       "base-uri 'none'; frame-ancestors 'none'")

_templates = jinja2.Environment(loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
                                autoescape=True, undefined=jinja2.StrictUndefined)


def _duration(hours: float | None) -> str:
    """The reports give durations in hours; people read "12 min" or "3.5 h" or "2.1 days" more easily."""
    return "–" if hours is None else _span(hours * 3600)


_templates.filters["hours"] = _duration


def _page(template: str, status: int = 200, **context: Any) -> web.Response:
    response = web.Response(text=_templates.get_template(template).render(**context), status=status,
                            content_type="text/html")
    response.headers["Content-Security-Policy"] = CSP
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


async def check(app: web.Application, token: str) -> tuple[str | None, int, str | None]:
    """(user, 200, None) for a token of a user holding OPS_VIEWER, else (None, 401 or 403, why)."""
    if not token:
        return None, 401, None
    async with app[DB].connect() as conn:
        user = await user_of_token(conn, token)
        if user is None:
            return None, 401, "That token is unknown, revoked or expired, or its user is inactive."
        if not await holds_role(conn, user, OPS_ROLE):
            return None, 403, f"{user} does not hold the {OPS_ROLE} role."
    return user, 200, None


async def _viewer(request: web.Request) -> tuple[str | None, int, str | None]:
    """check() for the bearer header if one is sent, else for the dashboard's cookie."""
    scheme, _, given_token = request.headers.get("Authorization", "").partition(" ")
    token = given_token.strip() if scheme.lower() == "bearer" else request.cookies.get(COOKIE, "")
    return await check(request.app, token)


def _hours(request: web.Request) -> int:
    given = request.query.get("hours", "")
    return int(given) if given in map(str, WINDOWS) else 24


async def dashboard(request: web.Request) -> web.Response:
    user, status, why = await _viewer(request)
    if user is None:
        return _page("sign_in.html", status=status, message=why)
    hours = _hours(request)
    where = reports.ReportFilter.last(timedelta(hours=hours), department=request.query.get("department") or None,
                                      limit=15)
    figures = await reports.run_all(request.app[READ_DB], where)
    figures["mirror"]["emitter"] = await reports.emitter(request.app[FLOWABLE])
    figures["mirror"]["read_replica"] = await reports.read_replica(request.app[DB], request.app[READ_DB])
    departments = await reports.department_codes(request.app[READ_DB])
    async with request.app[DB].connect() as conn:
        health, archived = await db_health.read(conn), await db_health.archiving(conn)
    return _page("dashboard.html", **_context(figures, where, hours, user, departments),
                 health=_health_context(health, archived, where.until))


async def sign_in(request: web.Request) -> web.Response:
    try:
        async with body_deadline():
            form = await request.post()
    except ValueError:  # a multipart type without its boundary, a body that is not in its charset, ...
        return _page("sign_in.html", status=400, message="The form could not be read; send it again.")
    token = str(form.get("token", "")).strip()
    after = str(form.get("next", ""))
    after = after if _BACK_TO.fullmatch(after) else "/dashboard"
    user, status, why = await check(request.app, token)
    if user is None:
        return _page("sign_in.html", status=status, message=why or "Give a token.", next=after)
    response = web.HTTPSeeOther(after)
    response.set_cookie(COOKIE, token, max_age=COOKIE_MAX_AGE_S, path="/dashboard", httponly=True,
                        samesite="Strict", secure=request.secure)
    raise response


async def sign_out(request: web.Request) -> web.Response:
    response = web.HTTPSeeOther("/dashboard")
    response.del_cookie(COOKIE, path="/dashboard")
    raise response


# Where sign-in may send the browser back to: a dashboard page of this site, as its percent-encoded path and
# query (nothing that could name another host).
_BACK_TO = re.compile(r"/dashboard(/processes/[A-Za-z0-9._~%-]+)?(\?[A-Za-z0-9._~%&=+-]*)?")
HEATS = {"live": "live tasks", "time": "mean time spent"}
ZOOMS = {"fit": "fit the width", "full": "actual size"}
ENGINE_WAIT_S = 5.0


async def process_map(request: web.Request) -> web.Response:
    """The live process map of one version of a process (the active one unless ?version=N)."""
    user, status, why = await _viewer(request)
    if user is None:
        return _page("sign_in.html", status=status, message=why, next=request.raw_path)
    key = request.match_info["key"]
    given_version = request.query.get("version", "")
    if given_version and not (given_version.isascii() and given_version.isdigit()
                              and 1 <= int(given_version) <= reports.MAX_VERSION):
        return _page("not_found.html", status=404, message=f"No version {given_version!r} of process {key!r}.")
    hours = _hours(request)
    heat = request.query.get("heat", "") if request.query.get("heat", "") in HEATS else "live"
    zoom = request.query.get("zoom", "") if request.query.get("zoom", "") in ZOOMS else "fit"
    where = reports.ReportFilter.last(timedelta(hours=hours), process=key,
                                      version=int(given_version) if given_version else None)
    try:
        body = await reports.run(request.app[READ_DB], "activities", where)
    except reports.UnknownProcess:
        message = (f"Process {key!r} has no version {given_version}." if given_version
                   else f"No process {key!r} is deployed.")
        return _page("not_found.html", status=404, message=message)
    process = body["process"]
    svg, drawn, problem = "", dict[str, str](), None
    try:
        svg, drawn = _overlay(_diagram(await _bpmn(request, process)), body["activities"], heat)
    except (DiagramError, LookupError, EngineUnavailable, FlowableError, TimeoutError) as err:
        problem = f"The diagram of version {process['process_version']} cannot be drawn: {str(err) or 'no answer'}"
    return _page("process_map.html", **_map_context(body, where, hours, heat, zoom, user, svg, drawn, problem))


routes = [web.get("/dashboard", dashboard), web.post("/dashboard/login", sign_in),
          web.post("/dashboard/logout", sign_out), web.get("/dashboard/processes/{key}", process_map)]


# -- the process map --------------------------------------------------------------------------------


async def _bpmn(request: web.Request, process: dict) -> bytes:
    """The BPMN the version was deployed from: as the bridge recorded it, else (a version the mirror
    registered, deployed some other way) from the engine."""
    async with request.app[DB].connect() as conn:
        stored = (await conn.execute(reports.SQL.definition_bpmn,
                                     {"workflow_id": process["workflow_id"]})).scalar_one_or_none()
    if stored:
        return stored.encode("utf-8")
    flowable = request.app[FLOWABLE]
    async with asyncio.timeout(ENGINE_WAIT_S):
        found = await flowable.process_definitions(key=process["process_key"], version=process["process_version"])
        if not found:
            raise LookupError("the engine has no such definition")
        return await flowable.definition_resource(found[0]["id"])


@functools.lru_cache(maxsize=16)
def _diagram(bpmn: bytes) -> str:
    return render_svg(bpmn)


SVG = "http://www.w3.org/2000/svg"
HEAT_LOW, HEAT_HIGH = (255, 236, 179), (245, 124, 0)


def _heat(level: float) -> str:
    """A colour from pale amber (little) to deep orange (the most on the map)."""
    return "#" + "".join(f"{round(lo + (hi - lo) * level):02x}" for lo, hi in zip(HEAT_LOW, HEAT_HIGH, strict=True))


def _heat_value(row: dict, heat: str) -> float:
    return float(row["avg_completion_hours"] or 0) if heat == "time" else float(row["live_tasks"])


def _overlay(svg: str, rows: list[dict], heat: str) -> tuple[str, dict[str, str]]:
    """The diagram with each activity's figures drawn over its shape (a group per activity carrying them as
    data-* attributes) and its box tinted by heat; and the activities drawn, with their names on it."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    root = etree.fromstring(svg.encode("utf-8"), parser)
    shapes = {g.get("data-bpmn-id"): g for g in root.iter(f"{{{SVG}}}g") if g.get("data-bpmn-id")}
    layer = etree.SubElement(root, f"{{{SVG}}}g", {"class": "figures"})
    top = max([_heat_value(row, heat) for row in rows] + [0.0])
    drawn: dict[str, str] = {}

    def sub(parent, tag: str, text: str | None = None, **attributes: Any) -> Any:
        node = etree.SubElement(parent, f"{{{SVG}}}{tag}",
                                {k.rstrip("_").replace("_", "-"): str(v) for k, v in attributes.items()})
        node.text = text
        return node

    for row in rows:
        shape = shapes.get(row["activity_id"])
        box = shape.find(f"{{{SVG}}}rect") if shape is not None else None
        if shape is None or box is None:  # not drawn, or not a box (an activity is a task or a sub-process)
            continue
        title = shape.findtext(f"{{{SVG}}}title") or ""  # "Name (id)", or the id of a shape without a name
        name = drawn[row["activity_id"]] = title.removesuffix(f" ({row['activity_id']})")
        name = row["activity_name"] or name
        x, y, w, h = (float(box.get(a, "0")) for a in ("x", "y", "width", "height"))
        value = _heat_value(row, heat)
        if value > 0 and top > 0:
            box.set("fill", _heat(value / top))
        mean = row["avg_completion_hours"]
        g = sub(layer, "g", class_="activity", data_activity=row["activity_id"],
                data_live_tasks=row["live_tasks"], data_open_tasks=row["open_tasks"],
                data_claimed_tasks=row["claimed_tasks"], data_delegated_tasks=row["delegated_tasks"],
                data_breached_tasks=row["breached_tasks"], data_at_risk_tasks=row["at_risk_tasks"],
                data_completed_in_range=row["completed_in_range"],
                data_avg_completion_hours="" if mean is None else mean)
        sub(g, "title", f"{name}: {row['live_tasks']} live "
                        f"({row['open_tasks']} open, {row['claimed_tasks']} claimed, {row['delegated_tasks']} "
                        f"delegated), {row['breached_tasks']} breached, {row['at_risk_tasks']} at risk; "
                        f"{row['completed_in_range']} completed in the window, mean time there "
                        f"{_duration(mean)}")
        live = str(row["live_tasks"])
        r = 14 + 4 * max(len(live) - 2, 0)
        # the live count over the top right corner, then leftwards along the top edge at risk and breached
        right = x + w - 2 - r - 3
        for field, css in (("at_risk_tasks", "at-risk"), ("breached_tasks", "breached")):
            if row[field]:
                text = str(row[field])
                width = 14 + 9.5 * len(text)
                sub(g, "rect", x=right - width, y=y - 9, width=width, height=22, rx=5, class_=css)
                sub(g, "text", text, x=right - width / 2, y=y + 8, class_="sla", data_field=field)
                right -= width + 3
        sub(g, "circle", cx=x + w - 2, cy=y + 2, r=r, class_="live" if row["live_tasks"] else "live none")
        sub(g, "text", live, x=x + w - 2, y=y + 8, class_="count", data_field="live_tasks")
        if mean is not None:  # the mean time there over the bottom edge
            text = f"⌀ {_duration(mean)} ({row['completed_in_range']})"
            width = 12 + 7.2 * len(text)
            sub(g, "rect", x=x + w / 2 - width / 2, y=y + h - 10, width=width, height=20, rx=10, class_="mean")
            sub(g, "text", text, x=x + w / 2, y=y + h + 4.5, class_="pill mean", data_field="avg_completion_hours")
    return etree.tostring(root, encoding="unicode"), drawn


def _map_context(body: dict, where: reports.ReportFilter, hours: int, heat: str, zoom: str, user: str, svg: str,
                 drawn: dict[str, str], problem: str | None) -> dict:
    now = where.until
    rows = body["activities"]
    for row in rows:
        row["drawn"] = row["activity_id"] in drawn
        row["activity_name"] = row["activity_name"] or drawn.get(row["activity_id"])
        row["oldest_age"] = _age(now, row["oldest_created_at"])
    return {
        "process": body["process"], "versions": body["versions"], "activities": rows, "filter": where,
        "hours": hours, "windows": WINDOWS, "heat": heat, "heats": HEATS, "zoom": zoom, "zooms": ZOOMS,
        "viewer": user, "refresh_s": REFRESH_S, "as_of": now.isoformat(), "as_of_text": f"{now:%Y-%m-%d %H:%M:%S} UTC",
        "since": where.since.isoformat(), "until": where.until.isoformat(), "diagram": svg, "problem": problem,
        "totals": {key: sum(row[key] for row in rows)
                   for key in ("live_tasks", "breached_tasks", "at_risk_tasks", "completed_in_range")},
        "legend_low": _heat(0.0), "legend_high": _heat(1.0),
    }


# -- what the template shows ------------------------------------------------------------------------


def _context(figures: dict, where: reports.ReportFilter, hours: int, user: str, departments: list[str]) -> dict:
    now = where.until
    queues = figures["queues"]
    for row in queues["queues"] + queues["departments"]:
        row["live_tasks"] = sum(row[k] for k in ("open_tasks", "claimed_tasks", "delegated_tasks", "escalated_tasks"))
    for q in queues["queues"]:
        q["oldest_age"] = _age(now, q["oldest_created_at"])
        q["load_bar"] = _load_bar(q)
    for t in figures["oldest"]["tasks"]:
        t["due_text"] = _due(now, t["due_date"])
    for c in figures["capacity"]["queues"]:
        c["arrow"] = TREND_ARROWS[c["trend"]]
        c["sparkline"] = _backlog_sparkline(c)
    mirror = figures["mirror"]
    events = mirror["events"]
    mirror["latency_text"] = (" / ".join(f"{events[k]:,.0f} ms" for k in
                                         ("availability_p50_ms", "availability_p95_ms", "availability_max_ms"))
                              if events["availability_p50_ms"] is not None else "no pushes in this window")
    mirror["last_received_text"] = _ago(now, events["last_received_at"])
    for r in mirror["reconciler"]:
        r["last_pass_text"] = _ago(now, r["last_pass_at"])
    return {
        **figures, "filter": where, "hours": hours, "windows": WINDOWS, "viewer": user,
        "departments": departments, "refresh_s": REFRESH_S,
        "as_of": now.isoformat(), "as_of_text": f"{now:%Y-%m-%d %H:%M:%S} UTC",
        "totals": {"live": sum(q["live_tasks"] for q in queues["queues"]),
                   "breached": sum(q["breached_tasks"] for q in queues["queues"]),
                   "at_risk": sum(q["at_risk_tasks"] for q in queues["queues"])},
        "throughput_chart": _throughput_chart(figures["throughput"]["hours"]),
        "age_chart": _age_chart(figures["age"]["buckets"]),
        "capacity_days": reports.span_of("capacity").days,
    }


INDEXES_SHOWN = 5  # the biggest never-used indexes and the most bloated ones the panel lists


def _health_context(health: db_health.Health, archived: db_health.Archiving, now: datetime) -> dict:
    """The database health panel: bridge/db_health.py's figures with what a person reads ("12 min ago",
    "1.2 MB", dead share of the rows) and the long-transaction flag (db_health.LONG_TRANSACTION_S)."""
    oldest = None
    if health.oldest_transactions:
        t = health.oldest_transactions[0]
        oldest = {**t, "seconds": round(t["open_seconds"]), "open_text": _span(t["open_seconds"]),
                  "long": t["open_seconds"] >= db_health.LONG_TRANSACTION_S}
    tables = []
    for t in health.tables:
        rows = t["live_tuples"] + t["dead_tuples"]
        tables.append({**t, "dead_pct": f"{100 * t['dead_tuples'] / rows:.1f}%" if rows else "–",
                       "last_vacuum_text": _since(now, t["last_vacuum"]),
                       "last_autovacuum_text": _since(now, t["last_autovacuum"]),
                       "last_analyze_text": _since(now, t["last_analyze"])})
    bloated = [{**r, "size": _size(r["bytes"]),
                "bloat_size": _size(r["bytes"] * r["bloat_pages"] // r["pages"] if r["pages"] else 0),
                "bloat_pct": f"{100 * r['bloat_pages'] / r['pages']:.0f}%" if r["pages"] else "–"}
               for r in health.index_bloat[:INDEXES_SHOWN]]
    slow = None if health.slow_statements is None else [
        {**s, "mean_text": f"{s['mean_ms']:,.1f} ms", "total_text": f"{s['total_ms']:,.0f} ms"}
        for s in health.slow_statements]
    return {
        "oldest": oldest, "long_after": _span(db_health.LONG_TRANSACTION_S),
        "xmin_horizon_age": health.xmin_horizon_age, "tables": tables, "unused_count": len(health.unused_indexes),
        "unused_size": _size(sum(r["bytes"] for r in health.unused_indexes)),
        "unused": [{**r, "size": _size(r["bytes"])} for r in health.unused_indexes[:INDEXES_SHOWN]],
        "bloat_pages": sum(r["bloat_pages"] for r in health.index_bloat), "bloated": bloated, "slow": slow,
        "archived_instances": archived.archived_instances,
        "engine_history_pending": archived.engine_history_pending,
        "last_archived_text": _since(now, archived.last_archived_at),
    }


def _since(now: datetime, moment: datetime | None) -> str:
    return "never" if moment is None else f"{_span((now - moment).total_seconds())} ago"


def _size(n: int) -> str:
    """Bytes as pg_size_pretty writes them (1024 to a kB)."""
    size, unit = float(n), "bytes"
    for bigger in ("kB", "MB", "GB", "TB"):
        if size < 10 * 1024:
            break
        size, unit = size / 1024, bigger
    return f"{size:.0f} {unit}"


def _when(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _span(seconds: float) -> str:
    seconds = abs(seconds)
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def _age(now: datetime, value: str | None) -> str | None:
    moment = _when(value)
    return _span((now - moment).total_seconds()) if moment else None


def _ago(now: datetime, value: str | None) -> str:
    moment = _when(value)
    return f"{moment:%Y-%m-%d %H:%M:%S} UTC ({_span((now - moment).total_seconds())} ago)" if moment else "never"


def _due(now: datetime, value: str | None) -> str:
    moment = _when(value)
    if moment is None:
        return "no due date"
    seconds = (moment - now).total_seconds()
    return f"overdue {_span(seconds)}" if seconds < 0 else f"in {_span(seconds)}"


# Charts are built here as SVG text from numbers only; the template inserts them unescaped, so nothing
# user-supplied may go into them unescaped (queue names do not; labels are ours).


def _esc(text: str) -> str:
    return str(jinja2.utils.markupsafe.escape(text))


def _load_bar(q: dict) -> str:
    live = q["live_tasks"]
    scale = max(q["max_capacity"], live, 1)
    width = 160
    parts, x = [], 0.0
    for count, colour in ((q["breached_tasks"], "#c62828"), (q["at_risk_tasks"], "#ef8f00"),
                          (live - q["breached_tasks"] - q["at_risk_tasks"], "#8fa7bf")):
        w = width * max(count, 0) / scale
        if w > 0:
            parts.append(f'<rect x="{x:.1f}" y="2" width="{w:.1f}" height="10" fill="{colour}"/>')
        x += w
    title = _esc(f"{live} live of capacity {q['max_capacity']}")
    return (f'<svg width="{width + 2}" height="14" role="img" aria-label="{title}"><title>{title}</title>'
            f'<rect x="0" y="2" width="{width}" height="10" fill="#eef2f6"/>{"".join(parts)}</svg>')


def _throughput_chart(hours: list[dict]) -> str:
    width, height, left, bottom = 960, 200, 36, 22
    plot_h = height - bottom - 8
    top = max([h["created"] for h in hours] + [h["completed"] for h in hours] + [1])
    slot = (width - left) / max(len(hours), 1)
    bar = max(slot / 2 - 1, 1)
    parts = [f'<line x1="{left}" y1="{height - bottom}" x2="{width}" y2="{height - bottom}" stroke="#d9e0e7"/>',
             f'<text x="{left - 4}" y="14" text-anchor="end">{top}</text>',
             f'<text x="{left - 4}" y="{height - bottom}" text-anchor="end">0</text>']
    label_every = max(1, len(hours) // 12)
    for i, h in enumerate(hours):
        x = left + i * slot
        moment = datetime.fromisoformat(h["hour"]).astimezone(UTC)
        for offset, key, colour in ((0, "created", "#3f6fb5"), (bar, "completed", "#2e9d6a")):
            bh = plot_h * h[key] / top
            parts.append(f'<rect x="{x + offset:.1f}" y="{height - bottom - bh:.1f}" width="{bar:.1f}" '
                         f'height="{bh:.1f}" fill="{colour}"><title>{moment:%d %b %H}:00 UTC: {h[key]} {key}'
                         f'</title></rect>')
        if i % label_every == 0:
            parts.append(f'<text x="{x:.1f}" y="{height - 6}">{moment:%H}h</text>')
    return (f'<svg viewBox="0 0 {width} {height}" width="100%" height="{height}" role="img" '
            f'aria-label="tasks created and completed per hour">{"".join(parts)}</svg>')


def _age_chart(buckets: list[dict]) -> str:
    width, row, label_w = 460, 24, 90
    top = max([b["tasks"] for b in buckets] + [1])
    parts = []
    for i, b in enumerate(buckets):
        y = i * row
        w = (width - label_w - 50) * b["tasks"] / top
        parts.append(f'<text x="0" y="{y + 15}">{_esc(b["label"])}</text>'
                     f'<rect x="{label_w}" y="{y + 4}" width="{w:.1f}" height="14" fill="#8fa7bf"/>'
                     f'<text x="{label_w + w + 6:.1f}" y="{y + 15}" '
                     f'data-bucket="{_esc(b["label"])}">{b["tasks"]}</text>')
    return (f'<svg viewBox="0 0 {width} {row * len(buckets)}" width="100%" height="{row * len(buckets)}" '
            f'role="img" aria-label="live tasks by age">{"".join(parts)}</svg>')


TREND_ARROWS = {"rising": "▲", "falling": "▼", "flat": "▶"}
TREND_COLOURS = {"rising": "#c62828", "falling": "#2e7d32", "flat": "#5b6b7c"}


def _backlog_sparkline(q: dict) -> str:
    """The capacity report's backlog of one queue at the range's start and at the end of each day."""
    width, height = 120, 22
    values = [q["backlogStart"]] + [d["backlog"] for d in q["days"]]
    low, high = min([*values, 0]), max([*values, 1])
    step = width / max(len(values) - 1, 1)
    points = " ".join(f"{i * step:.1f},{height - 2 - (height - 4) * (v - low) / (high - low):.1f}"
                      for i, v in enumerate(values))
    title = _esc(f"backlog {values[0]} to {values[-1]}, peak {q['backlogPeak']}, "
                 f"{q['backlogSlopePerDay']:+.2f} a day")
    return (f'<svg width="{width}" height="{height}" role="img" aria-label="{title}" style="vertical-align:middle">'
            f'<title>{title}</title><polyline points="{points}" fill="none" stroke="{TREND_COLOURS[q["trend"]]}" '
            f'stroke-width="1.5"/></svg>')
