"""The bridge's Prometheus metrics, in one place; served at GET /metrics (bridge/web/app.py).

Names follow Prometheus conventions (`_total` counters, `_seconds` units). The data-availability gauges
answer "how far behind the engine can the mirror be": now minus the newest engine change the mirror holds
(pushed or reconciled), and now minus the reconciler's last completed read.
"""

from __future__ import annotations

import time
from datetime import datetime

from prometheus_client import Counter, Gauge, Histogram

WEBHOOK_BATCHES = Counter(
    "bridge_webhook_batches_total", "Webhook batches by outcome", ["outcome"])
# accepted | duplicate | parked | bad_signature | malformed | too_large | database_unavailable | conflict
EVENTS_RECEIVED = Counter("bridge_events_received_total", "Engine events in accepted webhook batches")
EVENTS_APPLIED = Counter("bridge_events_applied_total", "Engine events stored and applied to the mirror")
EVENTS_DEDUPLICATED = Counter("bridge_events_deduplicated_total", "Engine events already stored (redelivered)")
EVENTS_PARKED = Counter("bridge_events_parked_total", "Engine events stored but parked: applying them failed")
EVENTS_REJECTED = Counter("bridge_events_rejected_total",
                          "Webhook batches refused before storing (signature, shape, size): their events")
APPLY_SECONDS = Histogram("bridge_webhook_apply_seconds", "Time to store and apply one webhook batch",
                          buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5))

BACKGROUND_LEADER = Gauge("bridge_background_leader", "1 while this process holds the lease on the background jobs "
                          "(one replica at a time, bridge/leadership.py), else 0")
BACKGROUND_ROUNDS = Counter("bridge_background_rounds_total", "Rounds of a background job this process ran", ["job"])
RECONCILE_PASSES = Counter("bridge_reconciler_passes_total", "Reconciler passes by kind", ["kind"])
RECONCILE_FAILURES = Counter("bridge_reconciler_failures_total", "Reconciler passes that failed")
RECONCILE_DIFFERENCES = Counter("bridge_reconciler_differences_total", "Differences found", ["entity", "repaired"])
RECONCILE_SECONDS = Histogram("bridge_reconciler_pass_seconds", "Duration of a reconciler pass",
                              buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120))

CLAIM_NEXT_SECONDS = Histogram("bridge_claim_next_task_seconds", "Database time of one claim_next_task call",
                               buckets=(0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1))
WORK_ACTIONS = Counter("bridge_work_actions_total", "Queue work actions by action and HTTP status",
                       ["action", "status"])

HTTP_REQUESTS = Counter("bridge_http_requests_total", "HTTP requests by route, method and status",
                        ["route", "method", "status"])
HTTP_SECONDS = Histogram("bridge_http_request_seconds", "HTTP request time by route", ["route"],
                         buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))
ENGINE_REQUESTS = Counter("bridge_engine_requests_total", "Calls to the engine's REST API by method and outcome "
                          "(HTTP status, or unavailable)", ["method", "outcome"])
ENGINE_SECONDS = Histogram("bridge_engine_request_seconds", "Time of one call to the engine's REST API (with retries)",
                           ["method"], buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10))
QUEUE_OPEN = Gauge("bridge_queue_open_tasks", "Open tasks per queue (OPEN, CLAIMED, DELEGATED, ESCALATED)",
                   ["queue"])
QUEUE_OVERDUE = Gauge("bridge_queue_overdue_tasks", "Open tasks past their due date per queue (SLA breaches)",
                      ["queue"])

# Database health (bridge/db_health.py), read at each scrape.
DB_DEAD_TUPLES = Gauge("bridge_db_dead_tuples", "Dead row versions per hot table (vacuum removes them)", ["table"])
DB_VACUUM_AGE = Gauge("bridge_db_last_vacuum_age_seconds", "Seconds since a hot table was last (auto)vacuumed "
                      "(NaN: never)", ["table"])
DB_OLDEST_TRANSACTION = Gauge("bridge_db_oldest_transaction_seconds",
                              "Age of the oldest open transaction on the database (0: none)")
DB_XMIN_HORIZON_AGE = Gauge("bridge_db_xmin_horizon_age_xids", "Transaction ids the oldest snapshot, prepared "
                            "transaction or replication slot holds the xmin horizon back (vacuum cannot pass it)")
DB_UNUSED_INDEXES = Gauge("bridge_db_unused_indexes", "Indexes of our schemas never scanned that enforce nothing")
DB_INDEX_BLOAT_PAGES = Gauge("bridge_db_index_bloat_pages", "Estimated bloat of our B-tree indexes, in pages")

_newest_change: float | None = None  # epoch seconds of the newest engine change mirrored
_last_read: float | None = None      # epoch seconds of the reconciler's newest committed read


def mirrored_change_at(moment: datetime | str | None) -> None:
    """Record that the mirror now holds an engine change made at `moment`."""
    global _newest_change
    if moment is None:
        return
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment.replace("Z", "+00:00"))
    stamp = moment.timestamp()
    if _newest_change is None or stamp > _newest_change:
        _newest_change = stamp


def reconciler_read_at(moment: datetime) -> None:
    global _last_read
    _last_read = moment.timestamp()


Gauge("bridge_mirror_data_age_seconds",
      "Now minus the newest engine change the mirror holds (NaN before the first)").set_function(
    lambda: time.time() - _newest_change if _newest_change is not None else float("nan"))
Gauge("bridge_reconciler_cursor_age_seconds",
      "Now minus the reconciler's last committed read of the engine (NaN before the first)").set_function(
    lambda: time.time() - _last_read if _last_read is not None else float("nan"))
