-- Applying a batch of engine events to the mirror tables (bridge/mirror/apply.py): a fixed number of
-- statements per batch, whatever its size. Rows travel as JSON arrays unpacked by jsonb_to_recordset.
-- The state machines themselves are in bridge/mirror/fold.py.

-- name: register_definitions
-- Processes started from definitions the bridge did not deploy: recorded so their instances can be
-- mirrored; a later `bridge deploy` of that version fills in the rest.
INSERT INTO flowable.workflow_definitions (process_key, process_name, process_version, business_app, metadata)
SELECT DISTINCT ON (x.process_key, x.process_version)
       x.process_key, x.process_name, x.process_version, 'UNREGISTERED', '{"registeredBy": "mirror"}'
FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS x (process_key text, process_name text, process_version int)
ON CONFLICT (process_key, process_version) DO NOTHING;

-- name: insert_process_instances
INSERT INTO flowable.process_instances
    (process_instance_id, workflow_id, case_id, business_key, super_process_id, started_by, started_at, status,
     sla_due_date, metadata)
SELECT x.id, d.workflow_id, x.case_id, x.business_key, x.super_process_id, x.started_by, x.started_at, 'ACTIVE',
       x.started_at + make_interval(mins => CAST(d.sla_config ->> 'processSlaMinutes' AS integer)),
       jsonb_build_object('processDefinitionId', x.process_definition_id)
FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS x (
         id text, process_key text, process_version int, case_id bigint, business_key text, super_process_id text,
         started_by text, started_at timestamptz, process_definition_id text)
JOIN flowable.workflow_definitions d ON d.process_key = x.process_key AND d.process_version = x.process_version
ON CONFLICT (process_instance_id) DO NOTHING;

-- name: lock_processes
SELECT process_instance_id, status, current_activity, end_activity_id, completed_at, suspended_at,
       metadata ->> 'endCause' AS end_cause
FROM flowable.process_instances
WHERE process_instance_id = ANY(CAST(:ids AS text[]))
FOR UPDATE;

-- name: update_processes
-- A migrated instance (BRIDGE_MIGRATE) names its new definition by key and version: its workflow_id follows. An
-- imported one (BRIDGE_IMPORT) takes its legacy created and due dates.
UPDATE flowable.process_instances p
SET status = x.status, current_activity = x.current_activity, end_activity_id = x.end_activity_id,
    completed_at = x.completed_at, suspended_at = x.suspended_at,
    workflow_id = coalesce(d.workflow_id, p.workflow_id),
    started_at = coalesce(x.legacy_created_at, p.started_at), sla_due_date = coalesce(x.legacy_due_date, p.sla_due_date),
    metadata = p.metadata
               || CASE WHEN x.end_cause IS NULL THEN '{}' ELSE jsonb_build_object('endCause', x.end_cause) END
               || CASE WHEN x.process_definition_id IS NULL THEN '{}'
                       ELSE jsonb_build_object('processDefinitionId', x.process_definition_id) END
               || CASE WHEN x.legacy IS NULL THEN '{}' ELSE jsonb_build_object('legacy', x.legacy) END
FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS x (
         process_instance_id text, status text, current_activity text, end_activity_id text,
         completed_at timestamptz, suspended_at timestamptz, end_cause text, process_key text,
         process_version int, process_definition_id text, legacy_created_at timestamptz,
         legacy_due_date timestamptz, legacy jsonb)
LEFT JOIN flowable.workflow_definitions d ON d.process_key = x.process_key AND d.process_version = x.process_version
WHERE p.process_instance_id = x.process_instance_id;

-- name: queues_of_new_tasks
-- The queue the deployed metadata names for each new task, with its SLA; tasks of instances the mirror
-- does not know are absent (a lost PROCESS_STARTED is the reconciler's to repair).
SELECT x.task_id, p.process_instance_id IS NOT NULL AS instance_known, q.queue_name, q.sla_minutes
FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS x (task_id text, process_instance_id text, task_key text)
LEFT JOIN flowable.process_instances p ON p.process_instance_id = x.process_instance_id
LEFT JOIN flowable.workflow_definitions d ON d.workflow_id = p.workflow_id
LEFT JOIN flowable.workflow_queues q ON q.queue_name = d.sla_config -> 'tasks' -> x.task_key ->> 'queue';

-- name: ensure_queues
INSERT INTO flowable.workflow_queues (queue_name, metadata)
SELECT name, '{"createdBy": "mirror"}' FROM unnest(CAST(:names AS text[])) AS name
ON CONFLICT (queue_name) DO NOTHING;

-- name: lock_tasks
SELECT task_id, process_instance_id, status, assignee_id, claimed_at, claimed_by, completed_at, completed_by,
       priority, due_date, task_name, outcome_reason, outcome, candidate_groups, candidate_users,
       metadata ->> 'lastEventAt' AS last_event_at, metadata -> 'candidateClock' AS candidate_clock,
       queue_name, escalation_level, escalated_at, metadata ->> 'queueMovedAt' AS queue_moved_at,
       task_definition_key
FROM flowable.workflow_tasks
WHERE task_id = ANY(CAST(:ids AS text[]))
FOR UPDATE;

-- name: insert_tasks
INSERT INTO flowable.workflow_tasks
    (task_id, process_instance_id, task_definition_key, task_name, queue_name, assignee_id, candidate_groups,
     candidate_users, priority, status, form_key, created_at, claimed_at, claimed_by, completed_at, completed_by,
     outcome_reason, outcome, due_date, metadata)
SELECT x.task_id, x.process_instance_id, x.task_key, x.task_name, x.queue_name, x.assignee_id,
       ARRAY(SELECT jsonb_array_elements_text(x.candidate_groups)),
       ARRAY(SELECT jsonb_array_elements_text(x.candidate_users)),
       x.priority, x.status, x.form_key, x.created_at, x.claimed_at, x.claimed_by, x.completed_at, x.completed_by,
       x.outcome_reason, x.outcome, x.due_date,
       jsonb_build_object('lastEventAt', x.last_event_at, 'candidateClock', x.candidate_clock)
FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS x (
         task_id text, process_instance_id text, task_key text, task_name text, queue_name text, assignee_id text,
         candidate_groups jsonb, candidate_users jsonb, priority int, status text, form_key text,
         created_at timestamptz, claimed_at timestamptz, claimed_by text, completed_at timestamptz,
         completed_by text, outcome_reason text, outcome text, due_date timestamptz, last_event_at text,
         candidate_clock jsonb)
ON CONFLICT (task_id) DO NOTHING;

-- name: update_tasks
UPDATE flowable.workflow_tasks t
SET status = x.status, assignee_id = x.assignee_id, claimed_at = x.claimed_at, claimed_by = x.claimed_by,
    completed_at = x.completed_at, completed_by = x.completed_by, priority = x.priority, due_date = x.due_date,
    task_name = x.task_name, outcome_reason = x.outcome_reason, outcome = x.outcome,
    candidate_groups = ARRAY(SELECT jsonb_array_elements_text(x.candidate_groups)),
    candidate_users = ARRAY(SELECT jsonb_array_elements_text(x.candidate_users)),
    queue_name = x.queue_name, escalation_level = x.escalation_level, escalated_at = x.escalated_at,
    task_definition_key = coalesce(x.task_definition_key, t.task_definition_key),
    metadata = t.metadata || jsonb_strip_nulls(jsonb_build_object(
        'lastEventAt', x.last_event_at, 'candidateClock', x.candidate_clock, 'queueMovedAt', x.queue_moved_at))
FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS x (
         task_id text, status text, assignee_id text, claimed_at timestamptz, claimed_by text,
         completed_at timestamptz, completed_by text, priority int, due_date timestamptz, task_name text,
         outcome_reason text, outcome text, candidate_groups jsonb, candidate_users jsonb, last_event_at text,
         candidate_clock jsonb, queue_name text, escalation_level int, escalated_at timestamptz,
         queue_moved_at text, task_definition_key text)
WHERE t.task_id = x.task_id;

-- name: insert_history
-- One row per action, engine's or bridge's; a bridge action's row carries the acting client's info.
INSERT INTO flowable.task_history
    (task_id, process_instance_id, action_type, action_by, action_at, old_status, new_status, old_assignee,
     new_assignee, delegate_to, escalate_to, comments, action_data, client_info)
SELECT x.task_id, x.process_instance_id, x.action_type, x.action_by, x.action_at, x.old_status, x.new_status,
       x.old_assignee, x.new_assignee, x.delegate_to, x.escalate_to, x.comments,
       coalesce(x.data, '{}') || jsonb_build_object('eventId', x.event_id), coalesce(x.client_info, '{}')
FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS x (
         ord int, task_id text, process_instance_id text, action_type text, action_by text, action_at timestamptz,
         old_status text, new_status text, old_assignee text, new_assignee text, delegate_to text,
         escalate_to text, comments text, event_id text, data jsonb, client_info jsonb)
ORDER BY x.ord;

-- name: upsert_variables
-- The newest change per variable; a row holding a newer change (changed_at) is left alone. Variables of
-- instances the mirror does not know are skipped (the reconciler brings the instance with its variables).
INSERT INTO flowable.workflow_variables
    (process_instance_id, task_id, variable_name, variable_type, variable_value, variable_json, updated_by,
     changed_at)
SELECT x.process_instance_id, x.task_id, x.name, x.type, x.value, x.json, 'engine', x.at
FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS x (
         process_instance_id text, task_id text, name text, type text, value text, json jsonb, at timestamptz)
JOIN flowable.process_instances p ON p.process_instance_id = x.process_instance_id
ON CONFLICT (process_instance_id, task_id, variable_name) DO UPDATE
SET variable_type = EXCLUDED.variable_type, variable_value = EXCLUDED.variable_value,
    variable_json = EXCLUDED.variable_json, updated_by = EXCLUDED.updated_by, changed_at = EXCLUDED.changed_at
WHERE flowable.workflow_variables.changed_at IS NULL OR flowable.workflow_variables.changed_at <= EXCLUDED.changed_at;

-- name: delete_variables
DELETE FROM flowable.workflow_variables v
USING jsonb_to_recordset(CAST(:rows AS jsonb)) AS x (process_instance_id text, task_id text, name text, at timestamptz)
WHERE v.process_instance_id = x.process_instance_id AND v.task_id IS NOT DISTINCT FROM x.task_id
  AND v.variable_name = x.name AND (v.changed_at IS NULL OR v.changed_at <= x.at);

-- name: refresh_process_variables
-- process_instances.variables is the process-scope variables as one JSON object, typed; case_id comes from
-- the business key at start, else from a caseId variable; priority from a whole-number priority variable.
UPDATE flowable.process_instances p
SET variables = v.variables,
    case_id = COALESCE(p.case_id, CASE WHEN v.variables ->> 'caseId' ~ '^[0-9]{1,18}$'
                                       THEN CAST(v.variables ->> 'caseId' AS bigint) END),
    priority = COALESCE(CASE WHEN v.variables ->> 'priority' ~ '^[0-9]{1,9}$'
                             THEN CAST(v.variables ->> 'priority' AS integer) END, p.priority)
FROM (
    SELECT i.id, COALESCE(jsonb_object_agg(w.variable_name, CASE w.variable_type
               WHEN 'INTEGER' THEN to_jsonb(CAST(w.variable_value AS numeric))
               WHEN 'BOOLEAN' THEN to_jsonb(CAST(w.variable_value AS boolean))
               WHEN 'JSON' THEN w.variable_json
               ELSE to_jsonb(w.variable_value) END) FILTER (WHERE w.variable_name IS NOT NULL), '{}') AS variables
    FROM unnest(CAST(:ids AS text[])) AS i (id)
    LEFT JOIN flowable.workflow_variables w ON w.process_instance_id = i.id AND w.task_id IS NULL
    GROUP BY i.id
) v
WHERE p.process_instance_id = v.id AND p.variables IS DISTINCT FROM v.variables;

-- name: open_case_mappings
-- A case's row in case_workflow_mapping, once the instance has a case id.
INSERT INTO onecms.case_workflow_mapping
    (case_id, process_instance_id, workflow_type, initiated_by, initiated_at, expected_completion)
SELECT p.case_id, p.process_instance_id, d.process_key, p.started_by, p.started_at, p.sla_due_date
FROM flowable.process_instances p
JOIN flowable.workflow_definitions d ON d.workflow_id = p.workflow_id
WHERE p.process_instance_id = ANY(CAST(:ids AS text[])) AND p.case_id IS NOT NULL
ON CONFLICT (case_id, process_instance_id) DO NOTHING;

-- name: lock_case_routes
SELECT m.mapping_id, m.process_instance_id, m.current_department, m.current_phase, m.routing_history
FROM onecms.case_workflow_mapping m
WHERE m.process_instance_id = ANY(CAST(:ids AS text[]))
ORDER BY m.mapping_id
FOR UPDATE;

-- name: queue_departments
SELECT q.queue_name, d.department_code
FROM flowable.workflow_queues q JOIN entitlements.departments d ON d.department_id = q.department_id
WHERE q.queue_name = ANY(CAST(:names AS text[]));

-- name: update_case_routes
UPDATE onecms.case_workflow_mapping m
SET current_department = x.current_department, current_phase = x.current_phase, routing_history = x.routing_history
FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS x (
         mapping_id bigint, current_department text, current_phase text, routing_history jsonb)
WHERE m.mapping_id = x.mapping_id;

-- name: close_case_mappings
UPDATE onecms.case_workflow_mapping m
SET actual_completion = p.completed_at, current_phase = p.status
FROM flowable.process_instances p
WHERE p.process_instance_id = m.process_instance_id AND p.process_instance_id = ANY(CAST(:ids AS text[]))
  AND p.completed_at IS NOT NULL;

-- name: waiting_events
-- Events stored earlier for a process instance or a task this batch creates: they arrived before their
-- PROCESS_STARTED / TASK_CREATED (pushes can overtake each other), so nothing could take them then. None of
-- them was applied (their row did not exist), so folding them in now, in engine order, applies each once.
-- Two index lookups (by instance, by task: migration 0014), not one OR that the planner cannot index.
WITH new_processes AS (
    SELECT id FROM unnest(CAST(:process_ids AS text[])) AS id
    WHERE NOT EXISTS (SELECT 1 FROM flowable.process_instances p WHERE p.process_instance_id = id)
), new_tasks AS (
    SELECT x.task_id, x.process_instance_id
    FROM jsonb_to_recordset(CAST(:tasks AS jsonb)) AS x (task_id text, process_instance_id text)
    WHERE NOT EXISTS (SELECT 1 FROM flowable.workflow_tasks t WHERE t.task_id = x.task_id)
      AND x.process_instance_id NOT IN (SELECT id FROM new_processes)  -- those come with their instance
), waiting AS (
    SELECT e.event_id, e.occurred_at, e.received_at, e.seq
    FROM flowable.engine_events e JOIN new_processes n ON e.process_instance_id = n.id
    WHERE NOT (e.event_id = ANY(CAST(:batch_ids AS text[])))
    UNION
    SELECT e.event_id, e.occurred_at, e.received_at, e.seq
    FROM flowable.engine_events e JOIN new_tasks n ON e.task_id = n.task_id
    WHERE NOT (e.event_id = ANY(CAST(:batch_ids AS text[])))
)
SELECT e.payload FROM waiting w JOIN flowable.engine_events e USING (event_id)
ORDER BY w.occurred_at, w.received_at, w.seq;

-- name: lock_entities
-- Batches touching the same instance or task apply one after the other (transaction-level advisory
-- locks, taken in key order so that two batches cannot deadlock). Without it, a TASK_COMPLETED applied
-- while the batch creating its task is still uncommitted would see no row, and the creating batch would
-- not see the completion waiting: the completion would be lost. Whichever goes second sees the other.
SELECT count(pg_advisory_xact_lock(key))
FROM (SELECT DISTINCT hashtextextended(id, 0) AS key FROM unnest(CAST(:ids AS text[])) AS id ORDER BY 1) AS keys;

-- name: fold_pending_counts
-- The triggers' logged changes, added into workflow_queues.current_load (0013), task_hourly_stats (0018),
-- task_work_stats and process_work_stats (0028) and activity_live_load (0029); each fold returns at once
-- when another caller is folding.
SELECT flowable.fold_queue_load(), flowable.fold_task_stats(), flowable.fold_work_stats(),
       flowable.fold_activity_live_load();

-- name: try_lock_entities
-- The same locks without waiting, for a caller that already holds a task's row lock (claim-next, picked with
-- SKIP LOCKED): waiting there could deadlock with a batch that holds the advisory lock and waits for the row.
SELECT coalesce(bool_and(pg_try_advisory_xact_lock(key)), true) AS locked
FROM (SELECT DISTINCT hashtextextended(id, 0) AS key FROM unnest(CAST(:ids AS text[])) AS id ORDER BY 1) AS keys;

-- name: archived_keys
-- Of these instance and task ids, those of archived work (bridge/archive.py): a late event for it is dropped,
-- not applied to a row that is no longer hot (which would bring the instance back half-made).
SELECT process_instance_id AS id FROM archive.archived_instances WHERE process_instance_id = ANY(CAST(:ids AS text[]))
UNION
SELECT task_id FROM archive.workflow_tasks WHERE task_id = ANY(CAST(:ids AS text[]));
