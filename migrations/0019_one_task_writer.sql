-- 0019: one writer of the mirror's task state; escalation is a level, not a status.
--
-- Before this, the task lifecycle was written twice: by the state machines of bridge/mirror/fold.py for
-- engine events, and by SQL for the bridge's own actions (claim_next_task's UPDATE and history INSERT,
-- escalate_overdue_tasks, and statements in bridge/db/queries/work.sql). Every bridge action is now an
-- event applied by bridge/mirror/apply.py (bridge/mirror/bridge_events.py), so the database functions
-- only pick and lock.
--
--   * claim_next_task(user, queues) picks the best OPEN task the user may take and locks it
--     (FOR UPDATE SKIP LOCKED); it writes nothing. The caller claims it in the engine and applies the
--     claim through the mirror in the same transaction. The client-info parameter of 0015 is gone (the
--     event carries it).
--     Changed: escalated tasks come first (escalation_level, then priority, age, id), and a user may take a
--     task of a queue one of their current roles is assigned to (queue_assignments), not only a task that
--     names one of their roles or them as a candidate: a task an escalation moved to a supervisors' queue
--     is theirs to take. max_tasks_per_user counts CLAIMED and DELEGATED tasks.
--   * escalate_overdue_tasks is dropped: the escalation job (bridge/work/escalation.py) selects what is due
--     and applies each escalation as an event. It also set status ESCALATED, which took a task out of
--     claim-next, auto-assignment and claims for ever (0006's design); a level climbs instead, one per
--     SLA interval past the due date, and the task keeps its OPEN/CLAIMED/DELEGATED state.
--   * Tasks left ESCALATED become what the engine has: CLAIMED with an assignee, OPEN without; the status
--     check no longer admits ESCALATED.
--   * task_history admits RESOLVE (a delegate hands a task back to its owner, Flowable's delegation).
--   * The claim-order index follows the new order; the overdue index covers DELEGATED tasks too.

UPDATE flowable.workflow_tasks
SET status = CASE WHEN assignee_id IS NULL THEN 'OPEN' ELSE 'CLAIMED' END
WHERE status = 'ESCALATED';

ALTER TABLE flowable.workflow_tasks DROP CONSTRAINT chk_task_status;
ALTER TABLE flowable.workflow_tasks ADD CONSTRAINT chk_task_status
    CHECK (status IN ('OPEN', 'CLAIMED', 'COMPLETED', 'CANCELLED', 'DELEGATED'));

ALTER TABLE flowable.task_history DROP CONSTRAINT chk_action_type;
ALTER TABLE flowable.task_history ADD CONSTRAINT chk_action_type
    CHECK (action_type IN ('CREATE', 'CLAIM', 'UNCLAIM', 'COMPLETE', 'DELEGATE', 'RESOLVE', 'ESCALATE', 'UPDATE',
                           'CANCEL', 'REASSIGN', 'COMMENT'));

DROP INDEX flowable.idx_workflow_tasks_claim_order;
CREATE INDEX idx_workflow_tasks_claim_order
    ON flowable.workflow_tasks (escalation_level DESC, priority DESC, created_at, task_id) WHERE status = 'OPEN';

DROP INDEX flowable.idx_workflow_tasks_overdue;
CREATE INDEX idx_workflow_tasks_overdue
    ON flowable.workflow_tasks (due_date)
    WHERE status IN ('OPEN', 'CLAIMED', 'DELEGATED') AND due_date IS NOT NULL;

DROP FUNCTION flowable.escalate_overdue_tasks(INTEGER);
DROP FUNCTION flowable.claim_next_task(VARCHAR, TEXT[], JSONB);

CREATE FUNCTION flowable.claim_next_task(
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
    WITH user_roles AS (
        SELECT coalesce(array_agg(g.role_code::text), '{}') AS codes
        FROM entitlements.v_active_role_grants g
        WHERE g.user_id = p_user_id
    ),
    user_is_enabled AS (
        -- a user the bridge knows and has deactivated takes no work, not even offered directly
        SELECT NOT EXISTS (SELECT 1 FROM entitlements.users u
                           WHERE u.user_id = p_user_id AND NOT u.is_active) AS ok
    ),
    user_queues AS (
        SELECT coalesce(array_agg(DISTINCT q.queue_name::text), '{}') AS names
        FROM flowable.queue_assignments qa
        JOIN flowable.workflow_queues q ON q.queue_id = qa.queue_id
        JOIN entitlements.v_active_role_grants g ON g.role_id = qa.role_id AND g.user_id = p_user_id
        WHERE qa.is_active
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

COMMENT ON FUNCTION flowable.claim_next_task(VARCHAR, TEXT[]) IS
    'Picks and locks (FOR UPDATE SKIP LOCKED) the best OPEN task the user may take: escalated first, then '
    'priority, age, id; skips queues where the user holds max_tasks_per_user. Writes nothing: the claim is '
    'an event applied by the bridge''s mirror in the same transaction. No row when there is none.';

-- The seed's view counted escalated tasks by the ESCALATED status; an escalated task is now a live task
-- with a level. (The same columns, so CREATE OR REPLACE keeps every reader working.)
CREATE OR REPLACE VIEW flowable.v_active_tasks_by_queue AS
SELECT q.queue_name,
       q.department_id,
       d.department_name,
       COUNT(*) FILTER (WHERE t.status = 'OPEN')      AS open_tasks,
       COUNT(*) FILTER (WHERE t.status = 'CLAIMED')   AS claimed_tasks,
       COUNT(*) FILTER (WHERE t.status IN ('OPEN', 'CLAIMED', 'DELEGATED') AND t.escalation_level > 0)
                                                      AS escalated_tasks,
       AVG(EXTRACT(EPOCH FROM (t.completed_at - t.created_at)) / 3600)
           FILTER (WHERE t.status = 'COMPLETED')      AS avg_completion_hours
FROM flowable.workflow_queues q
LEFT JOIN entitlements.departments d ON d.department_id = q.department_id
LEFT JOIN flowable.workflow_tasks t ON t.queue_name = q.queue_name
WHERE q.is_active
GROUP BY q.queue_name, q.department_id, d.department_name;
