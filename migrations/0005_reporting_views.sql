-- 0005: the seed's three reporting views, in schema flowable.
--
-- Changes from the seed design:
--   * v_user_workload: the seed's WHERE was `u.is_active = TRUE AND uwr.valid_until IS NULL OR
--     uwr.valid_until > CURRENT_TIMESTAMP`. AND binds tighter than OR, so every grant with a future
--     valid_until came in whether or not the user was active, and grants that had not started yet
--     (valid_from in the future) always did. It now reads entitlements.v_active_role_grants, the one
--     definition of a current grant (active user, active role, valid_from <= now() < valid_until).
--   * v_user_workload.full_name: `first_name || ' ' || last_name` is NULL when either part is;
--     concat_ws keeps the part that is there.
--   * v_process_performance: the seed joined instances to the active definition row only. With
--     versioning only the newest version is active, so every instance of an older version vanished
--     from the numbers after each deployment. It now counts the instances of every version of each
--     key that has an active version, named by the active version.
--   * COUNT(CASE WHEN ... THEN 1 END) is written COUNT(*) FILTER (WHERE ...): same numbers, easier
--     to read.

CREATE VIEW flowable.v_active_tasks_by_queue AS
SELECT q.queue_name,
       q.department_id,
       d.department_name,
       COUNT(*) FILTER (WHERE t.status = 'OPEN')      AS open_tasks,
       COUNT(*) FILTER (WHERE t.status = 'CLAIMED')   AS claimed_tasks,
       COUNT(*) FILTER (WHERE t.status = 'ESCALATED') AS escalated_tasks,
       AVG(EXTRACT(EPOCH FROM (t.completed_at - t.created_at)) / 3600)
           FILTER (WHERE t.status = 'COMPLETED')      AS avg_completion_hours
FROM flowable.workflow_queues q
LEFT JOIN entitlements.departments d ON d.department_id = q.department_id
LEFT JOIN flowable.workflow_tasks t ON t.queue_name = q.queue_name
WHERE q.is_active
GROUP BY q.queue_name, q.department_id, d.department_name;

CREATE VIEW flowable.v_user_workload AS
SELECT u.user_id,
       u.username,
       concat_ws(' ', u.first_name, u.last_name) AS full_name,
       g.role_code,
       g.role_name,
       COUNT(*) FILTER (WHERE t.status = 'CLAIMED') AS claimed_tasks,
       COUNT(*) FILTER (WHERE t.status = 'COMPLETED'
                          AND t.completed_at > now() - INTERVAL '7 days') AS completed_last_week,
       AVG(EXTRACT(EPOCH FROM (t.completed_at - t.claimed_at)) / 3600)
           FILTER (WHERE t.status = 'COMPLETED') AS avg_task_duration_hours
FROM entitlements.users u
JOIN entitlements.v_active_role_grants g ON g.user_id = u.user_id
LEFT JOIN flowable.workflow_tasks t ON t.assignee_id = u.user_id
GROUP BY u.user_id, u.username, u.first_name, u.last_name, g.role_code, g.role_name;

CREATE VIEW flowable.v_process_performance AS
SELECT active.process_key,
       active.process_name,
       COUNT(pi.process_instance_id)                  AS total_instances,
       COUNT(*) FILTER (WHERE pi.status = 'ACTIVE')    AS active_instances,
       COUNT(*) FILTER (WHERE pi.status = 'COMPLETED') AS completed_instances,
       AVG(EXTRACT(EPOCH FROM (pi.completed_at - pi.started_at)) / 3600)
           FILTER (WHERE pi.status = 'COMPLETED')      AS avg_completion_hours,
       PERCENTILE_CONT(0.95) WITHIN GROUP (
           ORDER BY EXTRACT(EPOCH FROM (pi.completed_at - pi.started_at)) / 3600)
           FILTER (WHERE pi.status = 'COMPLETED')      AS p95_completion_hours
FROM flowable.workflow_definitions active
JOIN flowable.workflow_definitions version ON version.process_key = active.process_key
LEFT JOIN flowable.process_instances pi ON pi.workflow_id = version.workflow_id
WHERE active.is_active
GROUP BY active.process_key, active.process_name;
