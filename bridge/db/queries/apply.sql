-- Applying engine events to the mirror tables (bridge/mirror/apply.py). Every statement is guarded so
-- that an event the mirror has already moved past changes nothing: terminal states are never left, and
-- a task row records the time of the newest event applied to it (metadata.lastEventAt).

-- name: workflow_of_definition
SELECT workflow_id, sla_config
FROM flowable.workflow_definitions
WHERE process_key = :process_key AND process_version = :process_version;

-- name: register_definition
-- A process started from a definition the bridge did not deploy: recorded so the instance can be mirrored;
-- a later `bridge deploy` of that version fills in the rest.
INSERT INTO flowable.workflow_definitions (process_key, process_name, process_version, business_app, metadata)
VALUES (:process_key, :process_name, :process_version, 'UNREGISTERED', '{"registeredBy": "mirror"}')
ON CONFLICT (process_key, process_version) DO NOTHING;

-- name: insert_process_instance
INSERT INTO flowable.process_instances
    (process_instance_id, workflow_id, case_id, business_key, super_process_id, started_by, started_at,
     status, sla_due_date, metadata)
VALUES (:process_instance_id, :workflow_id, :case_id, :business_key, :super_process_id, :started_by,
        CAST(:started_at AS timestamptz), 'ACTIVE',
        CAST(:started_at AS timestamptz) + make_interval(mins => CAST(:sla_minutes AS integer)),
        jsonb_build_object('processDefinitionId', CAST(:process_definition_id AS text)))
ON CONFLICT (process_instance_id) DO NOTHING;

-- name: end_process_instance
UPDATE flowable.process_instances
SET status = :status,
    completed_at = CAST(:ended_at AS timestamptz),
    current_activity = NULL,
    metadata = metadata || jsonb_build_object('endCause', CAST(:cause AS text))
WHERE process_instance_id = :process_instance_id AND status IN ('ACTIVE', 'SUSPENDED');

-- name: suspend_process_instance
UPDATE flowable.process_instances
SET status = CASE WHEN :suspended THEN 'SUSPENDED' ELSE 'ACTIVE' END,
    suspended_at = CASE WHEN :suspended THEN CAST(:at AS timestamptz) END
WHERE process_instance_id = :process_instance_id AND status IN ('ACTIVE', 'SUSPENDED');

-- name: current_activity
UPDATE flowable.process_instances
SET current_activity = :activity_id
WHERE process_instance_id = :process_instance_id AND status IN ('ACTIVE', 'SUSPENDED');

-- name: task_queue
-- The queue the deployed metadata names for this task, with its SLA, for a task of this instance.
SELECT q.queue_name, q.sla_minutes
FROM flowable.process_instances p
JOIN flowable.workflow_definitions d USING (workflow_id)
JOIN flowable.workflow_queues q ON q.queue_name = d.sla_config -> 'tasks' -> CAST(:task_key AS text) ->> 'queue'
WHERE p.process_instance_id = :process_instance_id;

-- name: ensure_queue
INSERT INTO flowable.workflow_queues (queue_name, metadata)
VALUES (:queue_name, '{"createdBy": "mirror"}')
ON CONFLICT (queue_name) DO NOTHING;

-- name: insert_task
-- Only for an instance the mirror knows (a lost PROCESS_STARTED is the reconciler's to repair).
INSERT INTO flowable.workflow_tasks
    (task_id, process_instance_id, task_definition_key, task_name, queue_name, assignee_id, candidate_groups,
     candidate_users, priority, status, form_key, created_at, claimed_at, claimed_by, due_date, metadata)
SELECT :task_id, CAST(:process_instance_id AS varchar), :task_key, :task_name, :queue_name, CAST(:assignee AS varchar),
       CAST(:candidate_groups AS text[]), CAST(:candidate_users AS text[]), :priority,
       CASE WHEN CAST(:assignee AS varchar) IS NULL THEN 'OPEN' ELSE 'CLAIMED' END, :form_key, CAST(:created_at AS timestamptz),
       CASE WHEN CAST(:assignee AS varchar) IS NOT NULL THEN coalesce(CAST(:claimed_at AS timestamptz), CAST(:created_at AS timestamptz)) END,
       CAST(:assignee AS varchar), CAST(:due_date AS timestamptz),
       jsonb_build_object('lastEventAt', CAST(:event_at AS text))
WHERE EXISTS (SELECT 1 FROM flowable.process_instances
              WHERE process_instance_id = CAST(:process_instance_id AS varchar))
ON CONFLICT (task_id) DO NOTHING
RETURNING task_id, status;

-- name: assign_task
WITH before AS (
    SELECT task_id, status, assignee_id FROM flowable.workflow_tasks
    WHERE task_id = :task_id AND status IN ('OPEN', 'CLAIMED', 'ESCALATED', 'DELEGATED')
      AND assignee_id IS DISTINCT FROM CAST(:assignee AS varchar)
      AND coalesce(CAST(metadata ->> 'lastEventAt' AS timestamptz), '-infinity') <= CAST(:event_at AS timestamptz)
    FOR UPDATE
)
UPDATE flowable.workflow_tasks t
SET assignee_id = CAST(:assignee AS varchar),
    status = CASE WHEN CAST(:assignee AS varchar) IS NULL THEN 'OPEN' ELSE 'CLAIMED' END,
    claimed_at = CASE WHEN CAST(:assignee AS varchar) IS NULL THEN NULL
                      ELSE coalesce(CAST(:claimed_at AS timestamptz), CAST(:event_at AS timestamptz)) END,
    claimed_by = CAST(:assignee AS varchar),
    metadata = t.metadata || jsonb_build_object('lastEventAt', CAST(:event_at AS text))
FROM before b
WHERE t.task_id = b.task_id
RETURNING t.process_instance_id, b.status AS old_status, t.status AS new_status, b.assignee_id AS old_assignee;

-- name: finish_task
-- Completion or cancellation: from any open state, once.
WITH before AS (
    SELECT task_id, status, assignee_id FROM flowable.workflow_tasks
    WHERE task_id = :task_id AND status NOT IN ('COMPLETED', 'CANCELLED')
    FOR UPDATE
)
UPDATE flowable.workflow_tasks t
SET status = :status,
    completed_at = CAST(:ended_at AS timestamptz),
    completed_by = CASE WHEN CAST(:status AS varchar) = 'COMPLETED' THEN coalesce(t.assignee_id, 'engine') END,
    outcome_reason = CAST(:reason AS text),
    metadata = t.metadata || jsonb_build_object('lastEventAt', CAST(:event_at AS text))
FROM before b
WHERE t.task_id = b.task_id
RETURNING t.process_instance_id, b.status AS old_status, b.assignee_id AS old_assignee;

-- name: update_task_fields
WITH before AS (
    SELECT task_id, status FROM flowable.workflow_tasks
    WHERE task_id = :task_id AND status NOT IN ('COMPLETED', 'CANCELLED')
      AND coalesce(CAST(metadata ->> 'lastEventAt' AS timestamptz), '-infinity') <= CAST(:event_at AS timestamptz)
    FOR UPDATE
)
UPDATE flowable.workflow_tasks t
SET priority = coalesce(CAST(:priority AS integer), t.priority),
    due_date = CASE WHEN :change_due_date THEN CAST(:due_date AS timestamptz) ELSE t.due_date END,
    task_name = coalesce(CAST(:task_name AS varchar), t.task_name),
    metadata = t.metadata || jsonb_build_object('lastEventAt', CAST(:event_at AS text))
FROM before b
WHERE t.task_id = b.task_id
RETURNING t.process_instance_id, b.status AS old_status;

-- name: candidates_changed
UPDATE flowable.workflow_tasks
SET candidate_groups = CASE WHEN CAST(:group_id AS text) IS NULL THEN candidate_groups
                            WHEN :added THEN array_append(array_remove(coalesce(candidate_groups, '{}'), CAST(:group_id AS text)), CAST(:group_id AS text))
                            ELSE array_remove(candidate_groups, CAST(:group_id AS text)) END,
    candidate_users = CASE WHEN CAST(:user_id AS text) IS NULL THEN candidate_users
                           WHEN :added THEN array_append(array_remove(coalesce(candidate_users, '{}'), CAST(:user_id AS text)), CAST(:user_id AS text))
                           ELSE array_remove(candidate_users, CAST(:user_id AS text)) END
WHERE task_id = :task_id AND status NOT IN ('COMPLETED', 'CANCELLED');

-- name: history
INSERT INTO flowable.task_history
    (task_id, process_instance_id, action_type, action_by, action_at, old_status, new_status, old_assignee,
     new_assignee, comments, action_data)
VALUES (:task_id, :process_instance_id, :action_type, :action_by, CAST(:action_at AS timestamptz), :old_status,
        :new_status, :old_assignee, :new_assignee, :comments, jsonb_build_object('eventId', CAST(:event_id AS text)));

-- name: mark_applied
UPDATE flowable.engine_events SET applied_at = now() WHERE event_id = ANY(CAST(:event_ids AS text[]));
