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

-- name: lock_task
SELECT task_id, process_instance_id, queue_name, status, assignee_id, escalation_level
FROM flowable.workflow_tasks WHERE task_id = :task_id FOR UPDATE;

-- name: claim_next
SELECT task_id, task_name, priority, queue_name, process_instance_id
FROM flowable.claim_next_task(:user_id, CAST(:queues AS text[]), CAST(:client_info AS jsonb));

-- name: set_task
-- The mirror side of an action the engine has just accepted. lastEventAt: the engine's own event for it
-- (pushed later) then changes nothing, and an older push cannot undo it.
WITH x AS (
    SELECT CAST(:status AS text) AS status, CAST(:assignee AS text) AS assignee, CAST(:claimed AS boolean) AS claimed,
           CAST(:user_id AS text) AS user_id, CAST(:outcome AS text) AS outcome, CAST(:event_at AS text) AS event_at
)
UPDATE flowable.workflow_tasks t
SET status = x.status, assignee_id = x.assignee,
    claimed_at = CASE WHEN x.claimed THEN now() ELSE t.claimed_at END,
    claimed_by = CASE WHEN x.claimed THEN x.assignee ELSE t.claimed_by END,
    completed_at = CASE WHEN x.status = 'COMPLETED' THEN now() ELSE t.completed_at END,
    completed_by = CASE WHEN x.status = 'COMPLETED' THEN x.user_id ELSE t.completed_by END,
    outcome = coalesce(x.outcome, t.outcome),
    escalation_level = t.escalation_level + CASE WHEN x.status = 'ESCALATED' THEN 1 ELSE 0 END,
    escalated_at = CASE WHEN x.status = 'ESCALATED' THEN now() ELSE t.escalated_at END,
    metadata = t.metadata || jsonb_build_object('lastEventAt', x.event_at)
FROM x
WHERE t.task_id = :task_id;

-- name: touch_task
UPDATE flowable.workflow_tasks SET metadata = metadata || jsonb_build_object('lastEventAt', CAST(:event_at AS text))
WHERE task_id = :task_id;

-- name: add_history
INSERT INTO flowable.task_history
    (task_id, process_instance_id, action_type, action_by, old_status, new_status, old_assignee, new_assignee,
     delegate_to, comments, client_info)
VALUES (:task_id, :process_instance_id, :action, :user_id, :old_status, :new_status, :old_assignee,
        :new_assignee, :delegate_to, :comments, CAST(:client_info AS jsonb));

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

-- name: escalate_overdue
SELECT e.task_id, e.process_instance_id, e.queue_name, e.old_status, e.escalation_level, e.assignee_id,
       e.escalation_config, t.priority
FROM flowable.escalate_overdue_tasks() e JOIN flowable.workflow_tasks t USING (task_id);

-- name: set_priority
UPDATE flowable.workflow_tasks
SET priority = :priority, metadata = metadata || jsonb_build_object('lastEventAt', CAST(:event_at AS text))
WHERE task_id = :task_id;

-- name: move_to_queue
UPDATE flowable.workflow_tasks SET queue_name = :queue
WHERE task_id = :task_id AND EXISTS (SELECT 1 FROM flowable.workflow_queues WHERE queue_name = :queue);

-- name: active_definition
SELECT workflow_id, process_key, process_version FROM flowable.workflow_definitions
WHERE process_key = :process_key AND is_active;

-- name: record_initiator
WITH m AS (
    UPDATE onecms.case_workflow_mapping SET initiated_by = :user_id
    WHERE process_instance_id = :process_instance_id RETURNING process_instance_id
)
UPDATE flowable.process_instances SET started_by = :user_id
WHERE process_instance_id = :process_instance_id;

-- name: case_workflows
SELECT m.case_id, m.process_instance_id, m.workflow_type, m.initiated_by, m.initiated_at, m.current_department,
       m.current_phase, m.expected_completion, m.actual_completion, m.routing_history, p.status, p.business_key
FROM onecms.case_workflow_mapping m
JOIN flowable.process_instances p USING (process_instance_id)
WHERE m.case_id = :case_id
ORDER BY m.initiated_at, m.mapping_id;

-- name: try_lock_assignment
SELECT pg_try_advisory_xact_lock(hashtext('bridge.auto_assignment')) AS locked;

-- name: tasks_to_auto_assign
-- Open tasks of queues where some active assignment says auto_assign, best first, with the queue's
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
ORDER BY t.priority DESC, t.created_at, t.task_id
LIMIT :limit
FOR UPDATE OF t SKIP LOCKED;

-- name: assignable_users
-- Users holding a valid role that auto-assigns in the queue, with how many of its tasks they hold and how
-- many they may (the most generous of their roles' max_tasks_per_user); only those below it.
SELECT g.user_id, max(qa.max_tasks_per_user) AS allowed,
       (SELECT count(*) FROM flowable.workflow_tasks h
        WHERE h.queue_name = :queue AND h.assignee_id = g.user_id
          AND h.status IN ('CLAIMED', 'DELEGATED', 'ESCALATED')) AS held
FROM flowable.queue_assignments qa
JOIN flowable.workflow_queues q ON q.queue_id = qa.queue_id
JOIN entitlements.v_active_role_grants g ON g.role_id = qa.role_id
WHERE q.queue_name = :queue AND qa.is_active AND qa.auto_assign
GROUP BY g.user_id
HAVING (SELECT count(*) FROM flowable.workflow_tasks h
        WHERE h.queue_name = :queue AND h.assignee_id = g.user_id
          AND h.status IN ('CLAIMED', 'DELEGATED', 'ESCALATED')) < max(qa.max_tasks_per_user)
ORDER BY g.user_id;

-- name: remember_auto_assigned
UPDATE flowable.workflow_queues SET metadata = metadata || jsonb_build_object('lastAutoAssigned', CAST(:user_id AS text))
WHERE queue_name = :queue;

-- name: add_candidate_group
-- The engine's push of the new identity link arrives later and finds it there already; the candidate's
-- entry in the mirror's per-candidate clock (bridge/mirror/fold.py) says since when.
UPDATE flowable.workflow_tasks
SET candidate_groups = CASE WHEN CAST(:group AS text) = ANY(coalesce(candidate_groups, '{}')) THEN candidate_groups
                            ELSE array_append(coalesce(candidate_groups, '{}'), CAST(:group AS text)) END,
    metadata = CASE WHEN metadata ? 'candidateClock'
                    THEN jsonb_set(metadata, ARRAY['candidateClock', 'group:' || CAST(:group AS text)],
                                   jsonb_build_array(true, CAST(:event_at AS text)))
                    ELSE metadata END
WHERE task_id = :task_id;
