-- 0030: the service's background jobs (reconciler, SLA escalation, auto-assignment, the summaries' folds,
-- archiving) run on one replica at a time, the holder of a lease kept here (bridge/leadership.py).
--
-- A lease, not a session advisory lock: a replica cut from PostgreSQL by the network keeps its session, and
-- its advisory locks, until the server's TCP keepalive gives up on it (two hours by default), and nobody else
-- would run the jobs meanwhile. A lease runs out after BRIDGE_LEASE_TTL_S whatever happened to its holder: the
-- holder renews it every third of that, stops its jobs itself once its own deadline (measured from before its
-- last successful renewal) passes, and another replica takes the lease once the database says it expired.
-- term grows by one with each new holder. The jobs' own locks and per-item checks (each task escalated or
-- assigned in its own transaction, after checking it still needs it) stay: a round cut short on one replica is
-- not done twice by the next.

CREATE TABLE flowable.service_leases (
    name        VARCHAR(100) PRIMARY KEY,
    holder      VARCHAR(200) NOT NULL,
    term        BIGINT       NOT NULL,
    acquired_at TIMESTAMPTZ  NOT NULL,
    renewed_at  TIMESTAMPTZ  NOT NULL,
    expires_at  TIMESTAMPTZ  NOT NULL
);
