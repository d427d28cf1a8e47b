"""/dashboard: the ops page, server-rendered from the same reports as /api/reports/... (bridge/reports.py).

No script and nothing fetched from elsewhere: HTML with inline SVG charts, a meta refresh, and a Content
Security Policy that forbids anything else. A browser signs in once with an API token of a user holding
OPS_VIEWER (POST /dashboard/login); the token is kept in an HttpOnly, SameSite=Strict cookie scoped to
/dashboard, so it never works for /api (which takes bearer headers only). A client that sends
`Authorization: Bearer` gets the page without the cookie.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jinja2
from aiohttp import web

from bridge import reports
from bridge.auth import OPS_ROLE, holds_role, user_of_token
from bridge.web.errors import body_deadline
from bridge.web.keys import DB, FLOWABLE

COOKIE = "bridge_dashboard"
COOKIE_MAX_AGE_S = 12 * 3600
REFRESH_S = 30
WINDOWS = (6, 24, 72, 168)  # hours the page offers
CSP = ("default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'self'; "
       "base-uri 'none'; frame-ancestors 'none'")

_templates = jinja2.Environment(loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
                                autoescape=True, undefined=jinja2.StrictUndefined)
# the reports give durations in hours; people read "12 min" or "3.5 h" or "2.1 days" more easily
_templates.filters["hours"] = lambda value: "–" if value is None else _span(value * 3600)


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


async def dashboard(request: web.Request) -> web.Response:
    scheme, _, given_token = request.headers.get("Authorization", "").partition(" ")
    token = given_token.strip() if scheme.lower() == "bearer" else request.cookies.get(COOKIE, "")
    user, status, why = await check(request.app, token)
    if user is None:
        return _page("sign_in.html", status=status, message=why)
    given = request.query.get("hours", "")
    hours = int(given) if given in map(str, WINDOWS) else 24
    where = reports.ReportFilter.last(timedelta(hours=hours), department=request.query.get("department") or None,
                                      limit=15)
    figures = await reports.run_all(request.app[DB], where)
    figures["mirror"]["emitter"] = await reports.emitter(request.app[FLOWABLE])
    departments = await reports.department_codes(request.app[DB])
    return _page("dashboard.html", **_context(figures, where, hours, user, departments))


async def sign_in(request: web.Request) -> web.Response:
    try:
        async with body_deadline():
            form = await request.post()
    except ValueError:  # a multipart type without its boundary, a body that is not in its charset, ...
        return _page("sign_in.html", status=400, message="The form could not be read; send it again.")
    token = str(form.get("token", "")).strip()
    user, status, why = await check(request.app, token)
    if user is None:
        return _page("sign_in.html", status=status, message=why or "Give a token.")
    response = web.HTTPSeeOther("/dashboard")
    response.set_cookie(COOKIE, token, max_age=COOKIE_MAX_AGE_S, path="/dashboard", httponly=True,
                        samesite="Strict", secure=request.secure)
    raise response


async def sign_out(request: web.Request) -> web.Response:
    response = web.HTTPSeeOther("/dashboard")
    response.del_cookie(COOKIE, path="/dashboard")
    raise response


routes = [web.get("/dashboard", dashboard), web.post("/dashboard/login", sign_in),
          web.post("/dashboard/logout", sign_out)]


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
    }


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
