-- 0032: claim_next_task works out the user's side once per call, whatever the planner believes.
--
-- Found by bench/scale.py (2 bridges, 1 engine: 4.7 claims+completions/s beside 52.6 with one bridge; every
-- claim-next took 2-3 s on CPU). auto_explain showed the plan: workflow_tasks' statistics still described the
-- queue before a burst of 1,500 new cases (autovacuum had not analyzed it yet), the planner expected one OPEN
-- task, and put the user's CTEs (roles, queues, full queues) inside the nested loop over the tasks. Each of the
-- 1,642 OPEN tasks re-ran "how many tasks does this user hold in this queue", itself a scan of the queue:
-- 2.7 million heap fetches per claim, quadratic in the backlog.
--
-- Changed: the four CTEs that depend on the user alone are MATERIALIZED, so each runs once per call and the
-- tasks are filtered against its one row, whatever the estimates. The pick itself is the same (0019).

CREATE OR REPLACE FUNCTION flowable.claim_next_task(
    p_user_id     VARCHAR(50),
    p_queue_names TEXT[] DEFAULT NULL
) RETURNS TABLE (
    task_id             VARCHAR(64),
    task_name           VARCHAR(500),
    priority            INTEGER,
    queue_name          VARCHAR(100),
    process_instance_id VARCHAR(64),
    escalation_level    INTEGER
)
LANGUAGE sql VOLATILE AS $$
    WITH user_roles AS MATERIALIZED (
        SELECT coalesce(array_agg(g.role_code::text), '{}') AS codes
        FROM entitlements.v_active_role_grants g
        WHERE g.user_id = p_user_id
    ),
    user_is_enabled AS MATERIALIZED (
        -- a user the bridge knows and has deactivated takes no work, not even offered directly
        SELECT NOT EXISTS (SELECT 1 FROM entitlements.users u
                           WHERE u.user_id = p_user_id AND NOT u.is_active) AS ok
    ),
    user_queues AS MATERIALIZED (
        SELECT coalesce(array_agg(DISTINCT q.queue_name::text), '{}') AS names
        FROM flowable.queue_assignments qa
        JOIN flowable.workflow_queues q ON q.queue_id = qa.queue_id
        JOIN entitlements.v_active_role_grants g ON g.role_id = qa.role_id AND g.user_id = p_user_id
        WHERE qa.is_active
    ),
    full_queues AS MATERIALIZED (
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
                 AND h.status IN ('CLAIMED', 'DELEGATED')) >= l.allowed
    )
    SELECT t.task_id, t.task_name, t.priority, t.queue_name, t.process_instance_id, t.escalation_level
    FROM flowable.workflow_tasks t, user_roles r, user_is_enabled e, user_queues uq, full_queues f
    WHERE e.ok
      AND t.status = 'OPEN'
      AND (p_queue_names IS NULL OR t.queue_name = ANY (p_queue_names))
      AND NOT (t.queue_name = ANY (f.names))
      AND (t.candidate_groups && r.codes
           OR t.candidate_users @> ARRAY[p_user_id::text]
           OR t.queue_name = ANY (uq.names))
    ORDER BY t.escalation_level DESC, t.priority DESC, t.created_at, t.task_id
    LIMIT 1
    FOR UPDATE OF t SKIP LOCKED;
$$;
