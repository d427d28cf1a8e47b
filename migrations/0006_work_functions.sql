-- 0006: the queue work functions: claim_next_task and escalate_overdue_tasks.
--
-- Changes from the seed design:
--   * claim_next_task was PL/pgSQL with RETURNS TABLE (task_id, task_name, priority): those output
--     columns are variables inside the body, so the unqualified `task_id` in its UPDATE ... WHERE
--     and INSERT ... SELECT is ambiguous and PostgreSQL raises at the first call. It is now one SQL
--     statement (data-modifying CTEs) in which every column is qualified: the pick, the lock, the
--     claim and its CLAIM history row happen together or not at all.
--   * claim_next_task honours a grant's valid_from (the seed checked valid_until only), an
--     inactive role or user claims nothing (entitlements.v_active_role_grants), and
--     p_queue_names NULL means "any queue the user may take work from".
--   * Ties in priority and age are broken by task_id, so two runs over the same data pick the same
--     task, and it returns the task's queue and process instance too (callers need both to claim it
--     in the engine).
--   * escalate_overdue_tasks wrote its history row after the UPDATE and read `status` back, so
--     old_status was always 'ESCALATED'. The old status is now captured while the row is locked and
--     written with the new one.
--   * escalate_overdue_tasks locks the tasks it escalates with FOR UPDATE SKIP LOCKED and re-checks
--     status and level in the same statement, so two bridges running it at once never escalate a
--     task twice for one level; levels stop at 3 (p_max_level).
--   * It is a FUNCTION returning what it escalated (the seed's PROCEDURE returned nothing): the
--     escalation job applies each queue's escalation_config in the engine from that list.

CREATE FUNCTION flowable.claim_next_task(
    p_user_id     VARCHAR(50),
    p_queue_names TEXT[] DEFAULT NULL
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
    next_task AS (
        SELECT t.task_id
        FROM flowable.workflow_tasks t, user_role_codes r, user_is_enabled e
        WHERE e.ok
          AND t.status = 'OPEN'
          AND (p_queue_names IS NULL OR t.queue_name = ANY (p_queue_names))
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
            (task_id, process_instance_id, action_type, action_by, old_status, new_status, new_assignee)
        SELECT c.task_id, c.process_instance_id, 'CLAIM', p_user_id, 'OPEN', 'CLAIMED', p_user_id
        FROM claimed c
    )
    SELECT c.task_id, c.task_name, c.priority, c.queue_name, c.process_instance_id
    FROM claimed c;
$$;

COMMENT ON FUNCTION flowable.claim_next_task(VARCHAR, TEXT[]) IS
    'Claims the best OPEN task (priority, then age) the user may take, skipping tasks other '
    'sessions hold locked; returns no row when there is none.';

CREATE FUNCTION flowable.escalate_overdue_tasks(p_max_level INTEGER DEFAULT 3)
RETURNS TABLE (
    task_id             VARCHAR(64),
    process_instance_id VARCHAR(64),
    queue_name          VARCHAR(100),
    old_status          VARCHAR(50),
    escalation_level    INTEGER,
    assignee_id         VARCHAR(50),
    escalation_config   JSONB
)
LANGUAGE sql VOLATILE AS $$
    WITH overdue AS (
        SELECT t.task_id, t.status AS old_status
        FROM flowable.workflow_tasks t
        WHERE t.status IN ('OPEN', 'CLAIMED')
          AND t.due_date < now()
          AND t.escalation_level < p_max_level
        ORDER BY t.due_date, t.task_id
        FOR UPDATE OF t SKIP LOCKED
    ),
    escalated AS (
        UPDATE flowable.workflow_tasks t
        SET escalation_level = t.escalation_level + 1,
            escalated_at     = now(),
            status           = 'ESCALATED'
        FROM overdue o
        WHERE t.task_id = o.task_id
        RETURNING t.task_id, t.process_instance_id, t.queue_name, o.old_status,
                  t.escalation_level, t.assignee_id
    ),
    history AS (
        INSERT INTO flowable.task_history
            (task_id, process_instance_id, action_type, action_by, old_status, new_status,
             old_assignee, new_assignee, comments, action_data)
        SELECT e.task_id, e.process_instance_id, 'ESCALATE', 'SYSTEM', e.old_status, 'ESCALATED',
               e.assignee_id, e.assignee_id, 'Auto-escalated due to SLA breach',
               jsonb_build_object('escalation_level', e.escalation_level)
        FROM escalated e
    )
    SELECT e.task_id, e.process_instance_id, e.queue_name, e.old_status, e.escalation_level,
           e.assignee_id, q.escalation_config
    FROM escalated e
    LEFT JOIN flowable.workflow_queues q ON q.queue_name = e.queue_name;
$$;

COMMENT ON FUNCTION flowable.escalate_overdue_tasks(INTEGER) IS
    'Raises every overdue OPEN/CLAIMED task below p_max_level one escalation level; safe to run '
    'from several sessions at once; returns what it escalated with the queue''s escalation_config.';
