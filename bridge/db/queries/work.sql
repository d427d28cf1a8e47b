-- The queue work API (bridge/work/). Reads marked (RLS) run as bridge_reader with app.current_user_id set
-- (bridge/work/reads.py): PostgreSQL decides what the user sees.

-- name: act_as_user
SELECT set_config('app.current_user_id', :user_id, true), set_config('role', 'bridge_reader', true);

-- name: act_as_bridge
SELECT set_config('role', 'none', true);

-- name: list_tasks
-- (RLS) Ordered as claim_next_task offers them: priority, then age, then id; keyset-paged on that order.
SELECT task_id, process_instance_id, task_definition_key, task_name, queue_name, status, assignee_id,
       candidate_groups, candidate_users, priority, created_at, claimed_at, due_date, completed_at,
       completed_by, escalation_level, outcome, form_key
FROM flowable.workflow_tasks
WHERE (CAST(:queue AS text) IS NULL OR queue_name = :queue)
  AND (CAST(:status AS text) IS NULL OR status = :status)
  AND (CAST(:assignee AS text) IS NULL OR assignee_id = :assignee)
  AND (CAST(:due_before AS timestamptz) IS NULL OR due_date < CAST(:due_before AS timestamptz))
  AND (CAST(:after_priority AS integer) IS NULL
       OR priority < CAST(:after_priority AS integer)
       OR (priority = CAST(:after_priority AS integer)
           AND (created_at, task_id) > (CAST(:after_created AS timestamptz), CAST(:after_task AS text))))
ORDER BY priority DESC, created_at, task_id
LIMIT :limit;

-- name: visible_task
-- (RLS)
SELECT task_id, process_instance_id, task_definition_key, task_name, queue_name, status, assignee_id,
       candidate_groups, candidate_users, priority, created_at, claimed_at, claimed_by, due_date,
       completed_at, completed_by, escalation_level, escalated_at, outcome, outcome_reason, form_key
FROM flowable.workflow_tasks WHERE task_id = :task_id;

-- name: task_history
-- (RLS)
SELECT history_id, action_type, action_by, action_at, old_status, new_status, old_assignee, new_assignee,
       delegate_to, escalate_to, comments
FROM flowable.task_history WHERE task_id = :task_id ORDER BY action_at, history_id;

-- name: archived_task
-- (RLS) A task of an archived instance (bridge/archive.py), under the same rules as a live one.
SELECT t.task_id, t.process_instance_id, t.task_definition_key, t.task_name, t.queue_name, t.status, t.assignee_id,
       t.candidate_groups, t.candidate_users, t.priority, t.created_at, t.claimed_at, t.claimed_by, t.due_date,
       t.completed_at, t.completed_by, t.escalation_level, t.escalated_at, t.outcome, t.outcome_reason, t.form_key
FROM archive.workflow_tasks t WHERE t.task_id = :task_id;

-- name: archived_task_history
-- (RLS)
SELECT history_id, action_type, action_by, action_at, old_status, new_status, old_assignee, new_assignee,
       delegate_to, escalate_to, comments
FROM archive.task_history WHERE task_id = :task_id ORDER BY action_at, history_id;

-- name: archived_at
SELECT archived_at FROM archive.archived_instances WHERE process_instance_id = :process_instance_id;

-- name: lock_task
SELECT task_id, process_instance_id, queue_name, status, assignee_id, escalation_level, priority, due_date,
       candidate_groups, completed_by
FROM flowable.workflow_tasks WHERE task_id = :task_id FOR UPDATE;

-- name: claim_next
-- Picks and locks only (migration 0019); the claim is a bridge event applied in the same transaction.
SELECT task_id, task_name, priority, queue_name, process_instance_id, escalation_level
FROM flowable.claim_next_task(:user_id, CAST(:queues AS text[]));

-- name: remembered_answer
SELECT request_hash, response_status, response_body FROM flowable.api_idempotency
WHERE user_id = :user_id AND idempotency_key = :key;

-- name: remember_answer
INSERT INTO flowable.api_idempotency (user_id, idempotency_key, request_hash, response_status, response_body)
VALUES (:user_id, :key, :request_hash, :status, CAST(:body AS jsonb))
ON CONFLICT (user_id, idempotency_key) DO NOTHING;

-- name: lock_idempotency_key
SELECT pg_advisory_lock(hashtext('bridge.idempotency'), hashtext(:user_id || ':' || :key));

-- name: unlock_idempotency_key
SELECT pg_advisory_unlock(hashtext('bridge.idempotency'), hashtext(:user_id || ':' || :key));

-- name: try_lock_escalation
SELECT pg_try_advisory_lock(hashtext('bridge.escalation')) AS locked;

-- name: unlock_escalation
SELECT pg_advisory_unlock(hashtext('bridge.escalation'));

-- name: escalation_due
-- Live tasks due for their next escalation level: overdue, and a further SLA interval of their queue past
-- the due date per level already reached, below the queue's max_level (default 3). Read without locks: the
-- job locks each task and asks again for that task alone before escalating it.
SELECT t.task_id, t.process_instance_id
FROM flowable.workflow_tasks t
JOIN flowable.workflow_queues q ON q.queue_name = t.queue_name
WHERE t.status IN ('OPEN', 'CLAIMED', 'DELEGATED') AND t.due_date IS NOT NULL
  AND (CAST(:task_id AS text) IS NULL OR t.task_id = CAST(:task_id AS text))
  AND t.due_date + make_interval(mins => t.escalation_level * q.sla_minutes) < now()
  AND t.escalation_level < CASE WHEN jsonb_typeof(q.escalation_config -> 'max_level') = 'number'
                                THEN CAST(q.escalation_config ->> 'max_level' AS numeric) ELSE 3 END
ORDER BY t.due_date, t.task_id
LIMIT :limit;

-- name: queue_escalation
SELECT escalation_config FROM flowable.workflow_queues WHERE queue_name = :queue;

-- name: queue_exists
SELECT EXISTS (SELECT 1 FROM flowable.workflow_queues WHERE queue_name = :queue);

-- name: active_definition
SELECT workflow_id, process_key, process_version, entry_criteria FROM flowable.workflow_definitions
WHERE process_key = :process_key AND is_active;

-- name: lock_case_start
-- Starts of one case's workflow, one at a time (session lock: held across the engine call).
SELECT pg_advisory_lock(hashtext('bridge.case_start'), hashtext(:key));

-- name: unlock_case_start
SELECT pg_advisory_unlock(hashtext('bridge.case_start'), hashtext(:key));

-- name: record_initiator
WITH m AS (
    UPDATE onecms.case_workflow_mapping SET initiated_by = :user_id
    WHERE process_instance_id = :process_instance_id RETURNING process_instance_id
)
UPDATE flowable.process_instances SET started_by = :user_id
WHERE process_instance_id = :process_instance_id;

-- name: case_workflows
SELECT m.case_id, m.process_instance_id, m.workflow_type, m.initiated_by, m.initiated_at, m.current_department,
       m.current_phase, m.expected_completion, m.actual_completion, m.routing_history, p.status, p.business_key,
       d.process_version, p.end_activity_id,
       d.metadata -> 'endEvents' ->> p.end_activity_id AS end_activity_name, p.metadata ->> 'endCause' AS end_cause
FROM onecms.case_workflow_mapping m
JOIN flowable.process_instances p USING (process_instance_id)
JOIN flowable.workflow_definitions d ON d.workflow_id = p.workflow_id
WHERE m.case_id = :case_id
ORDER BY m.initiated_at, m.mapping_id;

-- name: archived_case_workflows
-- A case's workflows that were archived (bridge/archive.py): where they ended, as case_workflows says it.
SELECT m.case_id, m.process_instance_id, m.workflow_type, m.initiated_by, m.initiated_at, m.current_department,
       m.current_phase, m.expected_completion, m.actual_completion, m.routing_history, p.status, p.business_key,
       d.process_version, p.end_activity_id,
       d.metadata -> 'endEvents' ->> p.end_activity_id AS end_activity_name, p.metadata ->> 'endCause' AS end_cause,
       a.archived_at
FROM archive.case_workflow_mapping m
JOIN archive.process_instances p USING (process_instance_id)
JOIN flowable.workflow_definitions d ON d.workflow_id = p.workflow_id
JOIN archive.archived_instances a USING (process_instance_id)
WHERE m.case_id = :case_id
ORDER BY m.initiated_at, m.mapping_id;

-- name: try_lock_assignment
SELECT pg_try_advisory_xact_lock(hashtext('bridge.auto_assignment')) AS locked;

-- name: tasks_to_auto_assign
-- Open tasks of queues where some active assignment says auto_assign, best first (escalated first), with the queue's
-- strategy (of its highest-priority auto-assigning assignment), capacity, load and overflow queue.
SELECT t.task_id, t.process_instance_id, t.queue_name, q.max_capacity, v.current_load,
       q.routing_rules ->> 'overflowQueue' AS overflow_queue, q.metadata ->> 'lastAutoAssigned' AS last_assigned,
       (SELECT qa.assignment_strategy FROM flowable.queue_assignments qa
        WHERE qa.queue_id = q.queue_id AND qa.auto_assign AND qa.is_active
        ORDER BY qa.priority_level DESC, qa.assignment_id LIMIT 1) AS strategy
FROM flowable.workflow_tasks t
JOIN flowable.workflow_queues q ON q.queue_name = t.queue_name
JOIN flowable.v_queue_load v ON v.queue_name = t.queue_name
WHERE t.status = 'OPEN' AND t.assignee_id IS NULL
  AND EXISTS (SELECT 1 FROM flowable.queue_assignments qa
              WHERE qa.queue_id = q.queue_id AND qa.auto_assign AND qa.is_active)
ORDER BY t.escalation_level DESC, t.priority DESC, t.created_at, t.task_id
LIMIT :limit
FOR UPDATE OF t SKIP LOCKED;

-- name: assignable_users
-- Users holding a valid role that auto-assigns in the queue, with how many of its tasks they hold and how
-- many they may (the most generous of their roles' max_tasks_per_user); only those below it.
SELECT g.user_id, max(qa.max_tasks_per_user) AS allowed,
       (SELECT count(*) FROM flowable.workflow_tasks h
        WHERE h.queue_name = :queue AND h.assignee_id = g.user_id
          AND h.status IN ('CLAIMED', 'DELEGATED')) AS held
FROM flowable.queue_assignments qa
JOIN flowable.workflow_queues q ON q.queue_id = qa.queue_id
JOIN entitlements.v_active_role_grants g ON g.role_id = qa.role_id
WHERE q.queue_name = :queue AND qa.is_active AND qa.auto_assign
GROUP BY g.user_id
HAVING (SELECT count(*) FROM flowable.workflow_tasks h
        WHERE h.queue_name = :queue AND h.assignee_id = g.user_id
          AND h.status IN ('CLAIMED', 'DELEGATED')) < max(qa.max_tasks_per_user)
ORDER BY g.user_id;

-- name: remember_auto_assigned
UPDATE flowable.workflow_queues SET metadata = metadata || jsonb_build_object('lastAutoAssigned', CAST(:user_id AS text))
WHERE queue_name = :queue;

