-- Queue settings (bridge/work/queues.py): read, changed, and each change recorded.

-- name: queue_names
SELECT queue_name FROM flowable.workflow_queues ORDER BY queue_name;

-- name: lock_queue
-- One change of a queue's settings at a time: a second waits and then reads what the first wrote.
SELECT queue_name FROM flowable.workflow_queues WHERE queue_name = :queue FOR UPDATE;

-- name: queue_settings
-- The settings as they take effect: auto-assignment is on when any active assignment of the queue says so
-- (tasks_to_auto_assign), its strategy that of the highest-priority such assignment, and a user's cap the
-- most generous of their roles' (assignable_users, claim_next_task).
SELECT q.queue_name, q.queue_type, d.department_code, q.is_active, q.sla_minutes, q.max_capacity,
       q.escalation_config, q.routing_rules ->> 'overflowQueue' AS overflow_queue,
       coalesce(bool_or(qa.auto_assign) FILTER (WHERE qa.is_active), FALSE) AS auto_assign,
       (array_agg(qa.assignment_strategy ORDER BY qa.auto_assign DESC, qa.priority_level DESC, qa.assignment_id)
            FILTER (WHERE qa.is_active))[1] AS assignment_strategy,
       max(qa.max_tasks_per_user) FILTER (WHERE qa.is_active) AS max_tasks_per_user,
       coalesce(jsonb_agg(jsonb_build_object('role', r.role_code, 'autoAssign', qa.auto_assign,
                                             'assignmentStrategy', qa.assignment_strategy,
                                             'maxTasksPerUser', qa.max_tasks_per_user)
                          ORDER BY r.role_code) FILTER (WHERE qa.is_active), '[]') AS roles
FROM flowable.workflow_queues q
LEFT JOIN entitlements.departments d USING (department_id)
LEFT JOIN flowable.queue_assignments qa ON qa.queue_id = q.queue_id
LEFT JOIN entitlements.workflow_roles r ON r.role_id = qa.role_id
WHERE q.queue_name = :queue
GROUP BY q.queue_id, d.department_code;

-- name: set_queue_columns
UPDATE flowable.workflow_queues
SET sla_minutes = :sla_minutes, max_capacity = :max_capacity, escalation_config = CAST(:escalation AS jsonb),
    routing_rules = CASE WHEN CAST(:overflow_queue AS text) IS NULL THEN routing_rules - 'overflowQueue'
                         ELSE routing_rules || jsonb_build_object('overflowQueue', CAST(:overflow_queue AS text)) END,
    updated_at = now()
WHERE queue_name = :queue;

-- name: set_queue_assignments
UPDATE flowable.queue_assignments
SET auto_assign = :auto_assign, assignment_strategy = :assignment_strategy, max_tasks_per_user = :max_tasks_per_user
WHERE queue_id = (SELECT queue_id FROM flowable.workflow_queues WHERE queue_name = :queue) AND is_active;

-- name: role_exists
SELECT EXISTS (SELECT 1 FROM entitlements.workflow_roles WHERE role_code = :role AND is_active);

-- name: queue_exists
SELECT EXISTS (SELECT 1 FROM flowable.workflow_queues WHERE queue_name = :queue);

-- name: record_change
INSERT INTO flowable.queue_setting_changes (queue_name, changed_by, source, before, after)
VALUES (:queue, :changed_by, :source, CAST(:before AS jsonb), CAST(:after AS jsonb));

-- name: recent_changes
SELECT changed_at, changed_by, source, before, after FROM flowable.queue_setting_changes
WHERE queue_name = :queue ORDER BY changed_at DESC, change_id DESC LIMIT :limit;
