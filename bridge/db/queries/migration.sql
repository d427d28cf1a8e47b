-- Moving running instances to another version of their process (bridge/migration.py, migration 0026).

-- name: definition_version
-- A version as the bridge recorded it at deploy (its queues come from sla_config).
SELECT workflow_id, process_key, process_version, bpmn_xml IS NOT NULL AS deployed_by_bridge
FROM flowable.workflow_definitions
WHERE process_key = :process_key AND process_version = :process_version;

-- name: live_activities
-- Where each chosen instance stands in the mirror: the activities of its live tasks.
SELECT process_instance_id, array_agg(DISTINCT task_definition_key ORDER BY task_definition_key) AS activities
FROM flowable.workflow_tasks
WHERE process_instance_id = ANY(CAST(:ids AS text[])) AND status IN ('OPEN', 'CLAIMED', 'DELEGATED')
GROUP BY process_instance_id;

-- name: start_run
INSERT INTO flowable.instance_migrations (process_key, from_version, to_version, activities, business_keys,
                                          mappings, dry_run, requested_by)
VALUES (:process_key, :from_version, :to_version, CAST(:activities AS text[]), CAST(:business_keys AS text[]),
        CAST(:mappings AS jsonb), :dry_run, :requested_by)
RETURNING migration_id, started_at;

-- name: run
SELECT migration_id, process_key, from_version, to_version, activities, business_keys, mappings, dry_run,
       requested_by, started_at, finished_at, counts
FROM flowable.instance_migrations
WHERE migration_id = :migration_id;

-- name: reopen_run
UPDATE flowable.instance_migrations SET finished_at = NULL WHERE migration_id = :migration_id;

-- name: record_result
-- The newest word on an instance in this run wins (a resumed run revalidates what it meets again).
INSERT INTO flowable.instance_migration_results (migration_id, process_instance_id, business_key, activities,
                                                 outcome, messages)
VALUES (:migration_id, :process_instance_id, :business_key, CAST(:activities AS text[]), :outcome,
        CAST(:messages AS text[]))
ON CONFLICT (migration_id, process_instance_id) DO UPDATE
SET business_key = EXCLUDED.business_key, activities = EXCLUDED.activities, outcome = EXCLUDED.outcome,
    messages = EXCLUDED.messages, decided_at = now();

-- name: finish_run
UPDATE flowable.instance_migrations m
SET finished_at = now(),
    counts = (SELECT coalesce(jsonb_object_agg(outcome, n), '{}')
              FROM (SELECT outcome, count(*) AS n FROM flowable.instance_migration_results
                    WHERE migration_id = m.migration_id GROUP BY outcome) c)
WHERE migration_id = :migration_id
RETURNING finished_at, counts;

-- name: results
SELECT process_instance_id, business_key, activities, outcome, messages, decided_at
FROM flowable.instance_migration_results
WHERE migration_id = :migration_id
ORDER BY decided_at, process_instance_id;

-- name: recent_runs
SELECT migration_id, process_key, from_version, to_version, activities, business_keys, mappings, dry_run,
       requested_by, started_at, finished_at, counts
FROM flowable.instance_migrations
ORDER BY migration_id DESC
LIMIT :limit;
