-- `bridge status`: one screen of the bridge's state.

-- name: reconciler
SELECT name, newest_change_at, last_pass_at, last_full_sweep_at, passes, repairs, last_error, last_error_at
FROM flowable.reconciler_state ORDER BY name;

-- name: inbox
SELECT count(*) FILTER (WHERE applied_at IS NULL) AS parked, max(received_at) AS last_received,
       max(occurred_at) AS newest_event
FROM flowable.engine_events;

-- name: queues
SELECT v.queue_name, v.current_load AS open_tasks, v.max_capacity,
       (SELECT count(*) FROM flowable.workflow_tasks t
        WHERE t.queue_name = v.queue_name AND t.due_date < now()
          AND t.status IN ('OPEN', 'CLAIMED', 'DELEGATED', 'ESCALATED')) AS overdue_tasks
FROM flowable.v_queue_load v
ORDER BY v.queue_name;

-- name: leases
-- Who runs the background jobs (bridge/leadership.py, migration 0030).
SELECT name, holder, term, acquired_at, renewed_at, expires_at > now() AS held FROM flowable.service_leases
ORDER BY name;
