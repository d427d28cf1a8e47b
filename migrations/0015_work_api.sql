-- 0015: what the queue work API needs (bridge/work/, bridge/web/work.py).
--
--   * claim_next_task respects queue_assignments.max_tasks_per_user: a queue where the user already holds
--     as many tasks (CLAIMED, DELEGATED or ESCALATED and assigned to them) as the most generous of their
--     roles' assignments to it allows offers them nothing more; queues without an assignment for the
--     user's roles have no limit. It also takes the caller's client info for the CLAIM history row.
--     (Same name, a third parameter with a default: existing two-argument calls keep working.)
--   * flowable.api_idempotency: the answer to each (user, Idempotency-Key) request, so a retried action is
--     answered, not repeated; a key reused for a different request is refused.

DROP FUNCTION flowable.claim_next_task(VARCHAR, TEXT[]);

CREATE FUNCTION flowable.claim_next_task(
    p_user_id     VARCHAR(50),
    p_queue_names TEXT[] DEFAULT NULL,
    p_client_info JSONB DEFAULT '{}'::jsonb
) RETURNS TABLE (
    task_id             VARCHAR(64),
    task_name           VARCHAR(500),
    priority            INTEGER,
    queue_name          VARCHAR(100),
    process_instance_id VARCHAR(64)
)
LANGUAGE sql VOLATILE AS $$
    WITH user_role_codes AS (
        SELECT coalesce(array_agg(g.role_code::text), '{}') AS codes
        FROM entitlements.v_active_role_grants g
        WHERE g.user_id = p_user_id
    ),
    user_is_enabled AS (
        -- a user the bridge knows and has deactivated takes no work, not even offered directly
        SELECT NOT EXISTS (SELECT 1 FROM entitlements.users u
                           WHERE u.user_id = p_user_id AND NOT u.is_active) AS ok
    ),
    full_queues AS (
        SELECT coalesce(array_agg(l.queue_name::text), '{}') AS names
        FROM (
            SELECT q.queue_name, max(qa.max_tasks_per_user) AS allowed
            FROM flowable.workflow_queues q
            JOIN flowable.queue_assignments qa ON qa.queue_id = q.queue_id AND qa.is_active
            JOIN entitlements.v_active_role_grants g ON g.role_id = qa.role_id AND g.user_id = p_user_id
            GROUP BY q.queue_name
        ) l
        WHERE (SELECT count(*) FROM flowable.workflow_tasks h
               WHERE h.queue_name = l.queue_name AND h.assignee_id = p_user_id
                 AND h.status IN ('CLAIMED', 'DELEGATED', 'ESCALATED')) >= l.allowed
    ),
    next_task AS (
        SELECT t.task_id
        FROM flowable.workflow_tasks t, user_role_codes r, user_is_enabled e, full_queues f
        WHERE e.ok
          AND t.status = 'OPEN'
          AND (p_queue_names IS NULL OR t.queue_name = ANY (p_queue_names))
          AND NOT (t.queue_name = ANY (f.names))
          AND (t.candidate_groups && r.codes
               OR t.candidate_users @> ARRAY[p_user_id::text])
        ORDER BY t.priority DESC, t.created_at, t.task_id
        LIMIT 1
        FOR UPDATE OF t SKIP LOCKED
    ),
    claimed AS (
        UPDATE flowable.workflow_tasks t
        SET status      = 'CLAIMED',
            assignee_id = p_user_id,
            claimed_at  = now(),
            claimed_by  = p_user_id
        FROM next_task n
        WHERE t.task_id = n.task_id
        RETURNING t.task_id, t.task_name, t.priority, t.queue_name, t.process_instance_id
    ),
    history AS (
        INSERT INTO flowable.task_history
            (task_id, process_instance_id, action_type, action_by, old_status, new_status, new_assignee,
             client_info)
        SELECT c.task_id, c.process_instance_id, 'CLAIM', p_user_id, 'OPEN', 'CLAIMED', p_user_id, p_client_info
        FROM claimed c
    )
    SELECT c.task_id, c.task_name, c.priority, c.queue_name, c.process_instance_id
    FROM claimed c;
$$;

COMMENT ON FUNCTION flowable.claim_next_task(VARCHAR, TEXT[], JSONB) IS
    'Claims the best OPEN task (priority, then age) the user may take, skipping tasks other sessions hold '
    'locked and queues where the user holds max_tasks_per_user already; returns no row when there is none.';

CREATE TABLE flowable.api_idempotency (
    user_id         VARCHAR(50)  NOT NULL,
    idempotency_key VARCHAR(200) NOT NULL,
    request_hash    CHAR(64)     NOT NULL,
    response_status INTEGER      NOT NULL,
    response_body   JSONB        NOT NULL,
    created_at      TIMESTAMPTZ  NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, idempotency_key)
);

CREATE INDEX idx_api_idempotency_created ON flowable.api_idempotency (created_at);
