-- Cases imported from a legacy system (bridge/case_import.py, migration 0027).

-- name: active_versions
-- The version new cases of each key start on (the active one the bridge deployed), with its user tasks.
SELECT process_key, process_version, metadata -> 'userTasks' AS user_tasks
FROM flowable.workflow_definitions
WHERE process_key = ANY(CAST(:keys AS text[])) AND is_active AND bpmn_xml IS NOT NULL;

-- name: known_roles
SELECT role_code FROM entitlements.workflow_roles WHERE role_code = ANY(CAST(:codes AS text[])) AND is_active;

-- name: imported
SELECT process_key, legacy_id, process_instance_id
FROM flowable.legacy_case_imports
WHERE (process_key, legacy_id) IN (SELECT * FROM unnest(CAST(:keys AS text[]), CAST(:ids AS text[])));

-- name: record_import
INSERT INTO flowable.legacy_case_imports (process_key, legacy_id, process_instance_id, activity_id, source,
                                          legacy_created_at, legacy_due_date, imported_by)
VALUES (:process_key, :legacy_id, :process_instance_id, :activity_id, :source, :legacy_created_at,
        :legacy_due_date, :imported_by)
ON CONFLICT (process_key, legacy_id) DO NOTHING;
