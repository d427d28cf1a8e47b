-- Deploying BPMN: the definition row and the entitlement/queue metadata it brings.
-- All run in one transaction (bridge/deploy.py); every statement is an idempotent upsert.

-- name: lock_process_key
-- Held until the deploy's transaction ends (bridge/deploy.py explains why).
SELECT pg_advisory_xact_lock(:lock_id);

-- name: definition_by_key_version
SELECT workflow_id, deployment_id, is_active
FROM flowable.workflow_definitions
WHERE process_key = :process_key AND process_version = :process_version;

-- name: deactivate_other_versions
-- Before the upsert below: at most one active version per key (uq_workflow_definitions_active).
UPDATE flowable.workflow_definitions
SET is_active = FALSE
WHERE process_key = :process_key AND process_version <> :process_version AND is_active;

-- name: upsert_workflow_definition
INSERT INTO flowable.workflow_definitions
    (process_key, process_name, process_version, business_app, deployment_id, bpmn_xml, deployed_at,
     deployed_by, is_active, entry_criteria, routing_rules, sla_config, metadata)
VALUES (:process_key, :process_name, :process_version, :business_app, :deployment_id, :bpmn_xml, :deployed_at,
        :deployed_by, TRUE, CAST(:entry_criteria AS jsonb), CAST(:routing_rules AS jsonb),
        CAST(:sla_config AS jsonb), CAST(:metadata AS jsonb))
ON CONFLICT (process_key, process_version) DO UPDATE
SET process_name   = EXCLUDED.process_name,
    business_app   = EXCLUDED.business_app,
    deployment_id  = EXCLUDED.deployment_id,
    bpmn_xml       = EXCLUDED.bpmn_xml,
    deployed_at    = EXCLUDED.deployed_at,
    deployed_by    = EXCLUDED.deployed_by,
    is_active      = TRUE,
    entry_criteria = EXCLUDED.entry_criteria,
    routing_rules  = EXCLUDED.routing_rules,
    sla_config     = EXCLUDED.sla_config,
    metadata       = EXCLUDED.metadata
RETURNING workflow_id;

-- name: upsert_department
INSERT INTO entitlements.departments (department_code, department_name, metadata, owner_process_key)
VALUES (:code, :name, CAST(:metadata AS jsonb), :owner)
ON CONFLICT (department_code) DO UPDATE
SET department_name = EXCLUDED.department_name,
    owner_process_key = EXCLUDED.owner_process_key,
    is_active       = TRUE,
    metadata        = entitlements.departments.metadata || EXCLUDED.metadata;

-- name: upsert_queue
-- A new queue starts with the file's SLA and capacity; an existing queue's settings change only through
-- bridge/work/queues.py (recorded), and current_load belongs to the mirror.
INSERT INTO flowable.workflow_queues (queue_name, queue_type, department_id, sla_minutes, max_capacity, metadata,
                                     owner_process_key)
VALUES (:name, :type,
        (SELECT department_id FROM entitlements.departments WHERE department_code = :department),
        :sla_minutes, :max_capacity, CAST(:metadata AS jsonb), :owner)
ON CONFLICT (queue_name) DO UPDATE
SET queue_type    = EXCLUDED.queue_type,
    owner_process_key = EXCLUDED.owner_process_key,
    department_id = EXCLUDED.department_id,
    is_active     = TRUE,
    metadata      = flowable.workflow_queues.metadata || EXCLUDED.metadata;

-- name: upsert_role
INSERT INTO entitlements.workflow_roles (role_code, role_name, role_type, department_id, queue_name, metadata,
                                         owner_process_key)
VALUES (:code, :name, :type,
        (SELECT department_id FROM entitlements.departments WHERE department_code = :department),
        :home_queue, CAST(:metadata AS jsonb), :owner)
ON CONFLICT (role_code) DO UPDATE
SET role_name     = EXCLUDED.role_name,
    owner_process_key = EXCLUDED.owner_process_key,
    role_type     = EXCLUDED.role_type,
    department_id = EXCLUDED.department_id,
    queue_name    = EXCLUDED.queue_name,
    is_active     = TRUE,
    metadata      = entitlements.workflow_roles.metadata || EXCLUDED.metadata;

-- name: upsert_queue_assignment
INSERT INTO flowable.queue_assignments (queue_id, role_id)
SELECT q.queue_id, r.role_id
FROM flowable.workflow_queues q, entitlements.workflow_roles r
WHERE q.queue_name = :queue AND r.role_code = :role
ON CONFLICT (queue_id, role_id) DO UPDATE SET is_active = TRUE;

-- name: current_departments
SELECT department_code AS code, department_name AS name FROM entitlements.departments;

-- name: current_queues
SELECT q.queue_name AS name, q.queue_type AS type, d.department_code AS department, q.sla_minutes,
       q.max_capacity
FROM flowable.workflow_queues q LEFT JOIN entitlements.departments d USING (department_id);

-- name: current_roles
SELECT r.role_code AS code, r.role_name AS name, r.role_type AS type, d.department_code AS department,
       r.queue_name AS home_queue
FROM entitlements.workflow_roles r LEFT JOIN entitlements.departments d USING (department_id);

-- name: current_assignments
SELECT r.role_code AS role, q.queue_name AS queue
FROM flowable.queue_assignments a
JOIN entitlements.workflow_roles r USING (role_id)
JOIN flowable.workflow_queues q USING (queue_id)
WHERE a.is_active;

-- name: entitlement_owners
-- Who owns each department, queue and role a deploy may write (migration 0022).
SELECT 'department' AS kind, department_code AS name, owner_process_key AS owner FROM entitlements.departments
UNION ALL
SELECT 'queue', queue_name, owner_process_key FROM flowable.workflow_queues
UNION ALL
SELECT 'role', role_code, owner_process_key FROM entitlements.workflow_roles;
