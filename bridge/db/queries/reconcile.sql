-- The reconciler (bridge/mirror/reconcile.py) and `bridge drift` (bridge/mirror/drift.py).

-- name: mirror_processes
SELECT p.process_instance_id, p.status, p.business_key, p.completed_at, p.end_activity_id, d.process_key,
       d.process_version
FROM flowable.process_instances p
LEFT JOIN flowable.workflow_definitions d ON d.workflow_id = p.workflow_id
WHERE CAST(:all AS boolean) OR p.process_instance_id = ANY(CAST(:ids AS text[]));

-- name: mirror_tasks
SELECT task_id, process_instance_id, status, assignee_id, priority, task_name, task_definition_key, due_date,
       completed_at, candidate_groups, candidate_users, metadata ->> 'lastEventAt' AS last_event_at
FROM flowable.workflow_tasks
WHERE CAST(:all AS boolean) OR process_instance_id = ANY(CAST(:ids AS text[]));

-- name: open_process_ids
SELECT process_instance_id FROM flowable.process_instances WHERE status IN ('ACTIVE', 'SUSPENDED')
UNION
SELECT process_instance_id FROM flowable.workflow_tasks WHERE status IN ('OPEN', 'CLAIMED', 'DELEGATED', 'ESCALATED');

-- name: processes_differing
-- Of the given engine instances (id, status from history), those the mirror lacks or holds in another
-- state. History knows no suspension (a SUSPENDED mirror row reads as ACTIVE here: the sweep checks it)
-- and cannot tell an error end from a normal one.
SELECT x.id
FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS x (id text, status text)
LEFT JOIN flowable.process_instances p ON p.process_instance_id = x.id
WHERE (p.process_instance_id IS NULL
       AND NOT EXISTS (SELECT 1 FROM archive.archived_instances a WHERE a.process_instance_id = x.id))
   OR (CASE p.status WHEN 'ERROR' THEN 'COMPLETED' WHEN 'SUSPENDED' THEN 'ACTIVE' ELSE p.status END) <> x.status;

-- name: try_lock
SELECT pg_try_advisory_lock(hashtext('bridge.reconciler'), hashtext(:name)) AS locked;

-- name: unlock
SELECT pg_advisory_unlock(hashtext('bridge.reconciler'), hashtext(:name));

-- name: ensure_state
INSERT INTO flowable.reconciler_state (name) VALUES (:name) ON CONFLICT (name) DO NOTHING;

-- name: read_state
SELECT name, task_log_number, task_log_seen, process_time, newest_change_at, last_pass_at, last_full_sweep_at,
       passes, repairs, last_error, last_error_at
FROM flowable.reconciler_state WHERE name = :name;

-- name: save_state
UPDATE flowable.reconciler_state
SET task_log_number = :task_log_number, task_log_seen = CAST(:task_log_seen AS bigint[]),
    process_time = :process_time,
    newest_change_at = GREATEST(newest_change_at, CAST(:newest_change_at AS timestamptz)),
    last_pass_at = now(), passes = passes + 1, repairs = repairs + :repairs,
    last_full_sweep_at = CASE WHEN :full_sweep THEN now() ELSE last_full_sweep_at END,
    last_error = NULL
WHERE name = :name;

-- name: record_error
UPDATE flowable.reconciler_state SET last_error = :error, last_error_at = now() WHERE name = :name;

-- name: record_repairs
INSERT INTO flowable.mirror_repairs (pass_kind, entity_type, entity_id, field, mirror_value, engine_value, repaired)
SELECT x.pass_kind, x.entity_type, x.entity_id, x.field, x.mirror_value, x.engine_value, x.repaired
FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS x (
         pass_kind text, entity_type text, entity_id text, field text, mirror_value text, engine_value text,
         repaired boolean);

-- name: mirror_variables
SELECT process_instance_id, variable_name, variable_type, variable_value,
       greatest(changed_at, updated_at) AS changed_at
FROM flowable.workflow_variables
WHERE task_id IS NULL AND process_instance_id IS NOT NULL
  AND (CAST(:all AS boolean) OR process_instance_id = ANY(CAST(:ids AS text[])));

-- name: fold_live_counts
SELECT flowable.fold_queue_load(), flowable.fold_activity_live_load();

-- name: recount_live_counts
-- A sweep counts the live tasks again per queue (0013) and per activity (0029): self-healing, should a summary
-- ever drift from the rows.
SELECT flowable.recount_queue_load(), flowable.recount_activity_live_load();

-- name: archived_processes
-- Archived instances (bridge/archive.py) among these ids, or (:all) every one whose engine history is not
-- deleted yet (the only ones the engine can still report): archived, not missing.
SELECT process_instance_id FROM archive.archived_instances
WHERE (CAST(:all AS boolean) AND engine_history_deleted_at IS NULL)
   OR process_instance_id = ANY(CAST(:ids AS text[]));
