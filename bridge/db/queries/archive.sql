-- Archiving (bridge/archive.py, migrations 0023 and 0024). An instance is due when it ended longer ago than
-- its process key's retention (flowable.retention_policies, else :default_days), counted back from :as_of.

-- name: due
-- Per process key: the instances due, and the oldest of their ends.
SELECT d.process_key, count(*) AS instances, min(p.completed_at) AS oldest_end
FROM flowable.process_instances p
JOIN flowable.workflow_definitions d ON d.workflow_id = p.workflow_id
LEFT JOIN flowable.retention_policies r ON r.process_key = d.process_key
WHERE p.completed_at IS NOT NULL AND p.status NOT IN ('ACTIVE', 'SUSPENDED')
  AND p.completed_at < CAST(:as_of AS timestamptz) - make_interval(days => coalesce(r.retention_days, :default_days))
GROUP BY d.process_key
ORDER BY d.process_key;

-- name: pick_batch
-- The oldest due instances no other archiver holds, locked for this transaction.
SELECT p.process_instance_id, d.process_key, p.case_id, p.business_key, p.completed_at
FROM flowable.process_instances p
JOIN flowable.workflow_definitions d ON d.workflow_id = p.workflow_id
LEFT JOIN flowable.retention_policies r ON r.process_key = d.process_key
WHERE p.completed_at IS NOT NULL AND p.status NOT IN ('ACTIVE', 'SUSPENDED')
  AND p.completed_at < CAST(:as_of AS timestamptz) - make_interval(days => coalesce(r.retention_days, :default_days))
ORDER BY p.completed_at, p.process_instance_id
LIMIT :limit
FOR UPDATE OF p SKIP LOCKED;

-- name: task_ids
SELECT task_id FROM flowable.workflow_tasks WHERE process_instance_id = ANY(CAST(:ids AS text[]));

-- name: history_months
-- The months the instances' hot history rows fall in: the archive's partitions for them are made first.
SELECT DISTINCT CAST(date_trunc('month', action_at AT TIME ZONE 'UTC') AS date) AS month
FROM flowable.task_history WHERE process_instance_id = ANY(CAST(:ids AS text[]));

-- name: ensure_partition
SELECT flowable.ensure_history_partition(CAST(:parent AS regclass), CAST(:month AS date)) AS created;

-- name: hot_counts
-- Rows per table that belong to each instance, before the move. History counts hot and archived rows: a
-- month of history may have moved to the archive whole before its instances did. A variable belongs to the
-- instance it names, or (task scope, no instance) to its task's instance. Set-based and by index: a count
-- per instance per table would cost a batch a scan of each table.
WITH ids AS (
    SELECT DISTINCT id FROM unnest(CAST(:ids AS text[])) AS id
), tasks AS (
    SELECT task_id, process_instance_id FROM flowable.workflow_tasks WHERE process_instance_id = ANY(CAST(:ids AS text[]))
), variables AS (
    SELECT process_instance_id AS id FROM flowable.workflow_variables
    WHERE process_instance_id = ANY(CAST(:ids AS text[]))
    UNION ALL
    SELECT t.process_instance_id FROM flowable.workflow_variables v JOIN tasks t USING (task_id)
    WHERE v.process_instance_id IS NULL
), history AS (
    SELECT process_instance_id AS id FROM flowable.task_history WHERE process_instance_id = ANY(CAST(:ids AS text[]))
    UNION ALL
    SELECT process_instance_id FROM archive.task_history WHERE process_instance_id = ANY(CAST(:ids AS text[]))
)
SELECT i.id AS process_instance_id, coalesce(p.n, 0) AS process_instances, coalesce(t.n, 0) AS workflow_tasks,
       coalesce(h.n, 0) AS task_history, coalesce(v.n, 0) AS workflow_variables,
       coalesce(m.n, 0) AS case_workflow_mapping
FROM ids i
LEFT JOIN (SELECT process_instance_id AS id, count(*) AS n FROM flowable.process_instances
           WHERE process_instance_id = ANY(CAST(:ids AS text[])) GROUP BY 1) p USING (id)
LEFT JOIN (SELECT process_instance_id AS id, count(*) AS n FROM tasks GROUP BY 1) t USING (id)
LEFT JOIN (SELECT id, count(*) AS n FROM history GROUP BY 1) h USING (id)
LEFT JOIN (SELECT id, count(*) AS n FROM variables GROUP BY 1) v USING (id)
LEFT JOIN (SELECT process_instance_id AS id, count(*) AS n FROM onecms.case_workflow_mapping
           WHERE process_instance_id = ANY(CAST(:ids AS text[])) GROUP BY 1) m USING (id);

-- name: archived_counts
-- The same counts in the archive, after the move.
WITH ids AS (
    SELECT DISTINCT id FROM unnest(CAST(:ids AS text[])) AS id
), tasks AS (
    SELECT task_id, process_instance_id FROM archive.workflow_tasks WHERE process_instance_id = ANY(CAST(:ids AS text[]))
), variables AS (
    SELECT process_instance_id AS id FROM archive.workflow_variables
    WHERE process_instance_id = ANY(CAST(:ids AS text[]))
    UNION ALL
    SELECT t.process_instance_id FROM archive.workflow_variables v JOIN tasks t USING (task_id)
    WHERE v.process_instance_id IS NULL
), history AS (
    SELECT process_instance_id AS id FROM archive.task_history WHERE process_instance_id = ANY(CAST(:ids AS text[]))
)
SELECT i.id AS process_instance_id, coalesce(p.n, 0) AS process_instances, coalesce(t.n, 0) AS workflow_tasks,
       coalesce(h.n, 0) AS task_history, coalesce(v.n, 0) AS workflow_variables,
       coalesce(m.n, 0) AS case_workflow_mapping
FROM ids i
LEFT JOIN (SELECT process_instance_id AS id, count(*) AS n FROM archive.process_instances
           WHERE process_instance_id = ANY(CAST(:ids AS text[])) GROUP BY 1) p USING (id)
LEFT JOIN (SELECT process_instance_id AS id, count(*) AS n FROM tasks GROUP BY 1) t USING (id)
LEFT JOIN (SELECT id, count(*) AS n FROM history GROUP BY 1) h USING (id)
LEFT JOIN (SELECT id, count(*) AS n FROM variables GROUP BY 1) v USING (id)
LEFT JOIN (SELECT process_instance_id AS id, count(*) AS n FROM archive.case_workflow_mapping
           WHERE process_instance_id = ANY(CAST(:ids AS text[])) GROUP BY 1) m USING (id);

-- name: archiving_on
-- The delete triggers on workflow_tasks leave the hourly summaries and queue load alone (migration 0024).
SELECT set_config('bridge.archiving', 'on', true);

-- name: move_variables
-- Two statements, each by its index: the instances' variables, then their tasks' task-scope ones.
WITH moved AS (DELETE FROM flowable.workflow_variables WHERE process_instance_id = ANY(CAST(:ids AS text[])) RETURNING *)
INSERT INTO archive.workflow_variables SELECT * FROM moved;

-- name: move_task_variables
WITH moved AS (
    DELETE FROM flowable.workflow_variables v
    WHERE v.process_instance_id IS NULL
      AND v.task_id IN (SELECT t.task_id FROM flowable.workflow_tasks t
                        WHERE t.process_instance_id = ANY(CAST(:ids AS text[])))
    RETURNING v.*)
INSERT INTO archive.workflow_variables SELECT * FROM moved;

-- name: move_history
WITH moved AS (DELETE FROM flowable.task_history WHERE process_instance_id = ANY(CAST(:ids AS text[])) RETURNING *)
INSERT INTO archive.task_history SELECT * FROM moved;

-- name: move_tasks
WITH moved AS (DELETE FROM flowable.workflow_tasks WHERE process_instance_id = ANY(CAST(:ids AS text[])) RETURNING *)
INSERT INTO archive.workflow_tasks SELECT * FROM moved;

-- name: move_case_mappings
WITH moved AS (
    DELETE FROM onecms.case_workflow_mapping WHERE process_instance_id = ANY(CAST(:ids AS text[])) RETURNING *)
INSERT INTO archive.case_workflow_mapping SELECT * FROM moved;

-- name: move_instances
WITH moved AS (
    DELETE FROM flowable.process_instances WHERE process_instance_id = ANY(CAST(:ids AS text[])) RETURNING *)
INSERT INTO archive.process_instances SELECT * FROM moved;

-- name: record_archived
INSERT INTO archive.archived_instances (process_instance_id, process_key, case_id, business_key, completed_at,
                                        archived_by, row_counts)
SELECT x.process_instance_id, x.process_key, x.case_id, x.business_key, x.completed_at, :by, x.row_counts
FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS x (
         process_instance_id text, process_key text, case_id bigint, business_key text, completed_at timestamptz,
         row_counts jsonb);

-- name: hot_months
-- The month partitions of the hot history (not its DEFAULT partition), oldest first.
SELECT c.relname AS partition
FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
WHERE i.inhparent = CAST('flowable.task_history' AS regclass) AND c.relname ~ '^task_history_p[0-9]{4}_[0-9]{2}$'
ORDER BY c.relname;

-- name: shortest_retention
SELECT least(CAST(:default_days AS integer), min(retention_days)) FROM flowable.retention_policies;

-- name: engine_pending
-- Archived instances whose engine history is still to delete, oldest archived first.
SELECT process_instance_id FROM archive.archived_instances
WHERE engine_history_deleted_at IS NULL
ORDER BY archived_at, process_instance_id
LIMIT :limit;

-- name: engine_deleted
UPDATE archive.archived_instances SET engine_history_deleted_at = now()
WHERE process_instance_id = ANY(CAST(:ids AS text[])) AND engine_history_deleted_at IS NULL;

-- name: engine_pending_count
SELECT count(*) FROM archive.archived_instances WHERE engine_history_deleted_at IS NULL;

-- name: prune_inbox
-- The oldest applied webhook batches received before :before, with their events. A batch with an event
-- still waiting (not applied, parked with its error) stays, and so do its events.
WITH doomed AS (
    SELECT b.webhook_id FROM flowable.webhook_batches b
    WHERE b.received_at < :before
      AND NOT EXISTS (SELECT 1 FROM flowable.engine_events e WHERE e.webhook_id = b.webhook_id AND e.applied_at IS NULL)
    ORDER BY b.received_at
    LIMIT :limit
    FOR UPDATE SKIP LOCKED
), events AS (
    DELETE FROM flowable.engine_events e USING doomed d WHERE e.webhook_id = d.webhook_id RETURNING 1
), batches AS (
    DELETE FROM flowable.webhook_batches b USING doomed d WHERE b.webhook_id = d.webhook_id RETURNING 1
)
SELECT (SELECT count(*) FROM batches) AS batches, (SELECT count(*) FROM events) AS events;

-- name: prunable_inbox
SELECT count(*) FROM flowable.webhook_batches b
WHERE b.received_at < :before
  AND NOT EXISTS (SELECT 1 FROM flowable.engine_events e WHERE e.webhook_id = b.webhook_id AND e.applied_at IS NULL);

-- name: try_lock_archiver
-- One archiver at a time across every replica (a session lock: held for the whole run).
SELECT pg_try_advisory_lock(hashtext('bridge.archiver')) AS locked;

-- name: unlock_archiver
SELECT pg_advisory_unlock(hashtext('bridge.archiver'));
