-- The lease on the background jobs (bridge/leadership.py, migration 0030). Times are the database's alone: the
-- replicas' clocks never meet.

-- name: take_or_renew
-- Renews the lease for its holder, or takes it when it expired; no row: another replica holds it.
INSERT INTO flowable.service_leases AS l (name, holder, term, acquired_at, renewed_at, expires_at)
VALUES (:name, :holder, 1, now(), now(), now() + make_interval(secs => :ttl_s))
ON CONFLICT (name) DO UPDATE
SET holder      = excluded.holder,
    term        = CASE WHEN l.holder = excluded.holder THEN l.term ELSE l.term + 1 END,
    acquired_at = CASE WHEN l.holder = excluded.holder THEN l.acquired_at ELSE now() END,
    renewed_at  = now(),
    expires_at  = excluded.expires_at
WHERE l.holder = excluded.holder OR l.expires_at < now()
RETURNING term;

-- name: release
-- A replica stopping lets the next take over at once instead of after the lease runs out.
UPDATE flowable.service_leases SET expires_at = now() WHERE name = :name AND holder = :holder;

