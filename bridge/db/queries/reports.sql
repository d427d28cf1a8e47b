-- The reporting API (bridge/reports.py): every statement takes the same filter, the queues chosen by
-- :department (a department code) and :queue (a queue name), either NULL for all (flowable.report_queues,
-- migration 0018), and the time range
-- [:since, :until). Live tasks are OPEN, CLAIMED, DELEGATED or ESCALATED (migration 0018's partial index
-- idx_workflow_tasks_live_due holds just those); completed figures come from flowable.v_task_hourly_stats.
-- Ended work in a range comes from summaries that archiving (bridge/archive.py) leaves alone, so a range keeps
-- its figures after its work moves out of the hot tables: flowable.v_task_hourly_stats per queue and hour
-- (0018, 0028), flowable.task_work_between() per user and activity and flowable.process_work_between() per
-- process version (0028), each over the range widened to whole hours. Escalations made in a range are few and
-- read archive.all_task_history (0025: the hot tables and the archive together). Live figures read the
-- hot tables only: archived work is always ended.

-- name: queues
WITH chosen AS (
    SELECT q.queue_name, q.department_id, q.max_capacity, q.sla_minutes
    FROM flowable.workflow_queues q
    LEFT JOIN entitlements.departments d ON d.department_id = q.department_id
    WHERE q.is_active
      AND (CAST(:department AS text) IS NULL OR d.department_code = :department)
      AND (CAST(:queue AS text) IS NULL OR q.queue_name = :queue)
), live AS (
    SELECT t.queue_name,
           count(*) FILTER (WHERE t.status = 'OPEN')      AS open_tasks,
           count(*) FILTER (WHERE t.status = 'CLAIMED')   AS claimed_tasks,
           count(*) FILTER (WHERE t.status = 'DELEGATED') AS delegated_tasks,
           count(*) FILTER (WHERE t.escalation_level > 0) AS escalated_tasks,
           count(*) FILTER (WHERE t.due_date < now())     AS breached_tasks,
           count(*) FILTER (WHERE t.due_date >= now()
                              AND t.due_date < now() + make_interval(mins => :at_risk_minutes)) AS at_risk_tasks,
           min(t.created_at) AS oldest_created_at
    FROM flowable.workflow_tasks t
    WHERE t.queue_name IN (SELECT queue_name FROM chosen)
      AND t.status IN ('OPEN', 'CLAIMED', 'DELEGATED', 'ESCALATED')
    GROUP BY t.queue_name
), done AS (
    SELECT s.queue_name, sum(s.completed) AS completed, sum(s.completed_late) AS completed_late,
           sum(s.completion_seconds) AS completion_seconds
    FROM flowable.v_task_hourly_stats s
    WHERE s.queue_name IN (SELECT queue_name FROM chosen)
      AND s.hour >= date_bin('1 hour', CAST(:since AS timestamptz), timestamptz 'epoch') AND s.hour < :until
    GROUP BY s.queue_name
)
SELECT c.queue_name, d.department_code, d.department_name, c.max_capacity, c.sla_minutes,
       coalesce(l.open_tasks, 0) AS open_tasks, coalesce(l.claimed_tasks, 0) AS claimed_tasks,
       coalesce(l.delegated_tasks, 0) AS delegated_tasks, coalesce(l.escalated_tasks, 0) AS escalated_tasks,
       coalesce(l.breached_tasks, 0) AS breached_tasks, coalesce(l.at_risk_tasks, 0) AS at_risk_tasks,
       l.oldest_created_at,
       coalesce(x.completed, 0) AS completed_in_range, coalesce(x.completed_late, 0) AS completed_late_in_range,
       round(x.completion_seconds / nullif(x.completed, 0) / 3600, 4) AS avg_completion_hours
FROM chosen c
LEFT JOIN entitlements.departments d ON d.department_id = c.department_id
LEFT JOIN live l ON l.queue_name = c.queue_name
LEFT JOIN done x ON x.queue_name = c.queue_name
ORDER BY d.department_code NULLS LAST, c.queue_name;

-- name: throughput
WITH chosen AS (
    SELECT queue_name FROM flowable.report_queues(:department, :queue)
), hours AS (
    SELECT generate_series(date_bin('1 hour', CAST(:since AS timestamptz), timestamptz 'epoch'),
                           CAST(:until AS timestamptz) - interval '1 microsecond', interval '1 hour') AS hour
), figures AS (
    SELECT s.hour, sum(s.created) AS created, sum(s.completed) AS completed, sum(s.completed_late) AS completed_late
    FROM flowable.v_task_hourly_stats s
    WHERE s.queue_name IN (SELECT queue_name FROM chosen)
      AND s.hour >= date_bin('1 hour', CAST(:since AS timestamptz), timestamptz 'epoch') AND s.hour < :until
    GROUP BY s.hour
)
SELECT h.hour, coalesce(f.created, 0) AS created, coalesce(f.completed, 0) AS completed,
       coalesce(f.completed_late, 0) AS completed_late
FROM hours h LEFT JOIN figures f USING (hour)
ORDER BY h.hour;

-- name: age
-- Open work by how long it has waited; bucket bounds in hours, the last one open-ended.
WITH chosen AS (
    SELECT queue_name FROM flowable.report_queues(:department, :queue)
), buckets (bucket, label, from_hours, to_hours) AS (
    VALUES (1, 'under 1 h', 0, 1), (2, '1-4 h', 1, 4), (3, '4-24 h', 4, 24), (4, '1-3 days', 24, 72),
           (5, '3-7 days', 72, 168), (6, 'over 7 days', 168, NULL)
), counted AS (
    SELECT t.queue_name,
           CASE WHEN t.created_at > now() - interval '1 hour'  THEN 1
                WHEN t.created_at > now() - interval '4 hours' THEN 2
                WHEN t.created_at > now() - interval '1 day'   THEN 3
                WHEN t.created_at > now() - interval '3 days'  THEN 4
                WHEN t.created_at > now() - interval '7 days'  THEN 5
                ELSE 6 END AS bucket,
           count(*) AS tasks
    FROM flowable.workflow_tasks t
    WHERE t.queue_name IN (SELECT queue_name FROM chosen)
      AND t.status IN ('OPEN', 'CLAIMED', 'DELEGATED', 'ESCALATED')
    GROUP BY 1, 2
)
SELECT b.bucket, b.label, b.from_hours, b.to_hours, c.queue_name, coalesce(c.tasks, 0) AS tasks
FROM buckets b LEFT JOIN counted c USING (bucket)
ORDER BY b.bucket, c.queue_name;

-- name: escalations
-- Live tasks by the escalation level they are at now, and escalations made in the range by the level
-- they reached (task_history keeps each one, whoever made it; archived ones too).
WITH chosen AS (
    SELECT queue_name FROM flowable.report_queues(:department, :queue)
), live AS (
    SELECT t.escalation_level AS level, count(*) AS live_tasks
    FROM flowable.workflow_tasks t
    WHERE t.queue_name IN (SELECT queue_name FROM chosen)
      AND t.status IN ('OPEN', 'CLAIMED', 'DELEGATED', 'ESCALATED') AND t.escalation_level > 0
    GROUP BY 1
), made AS (
    SELECT coalesce((h.action_data ->> 'escalation_level')::int, 0) AS level, count(*) AS escalations
    FROM archive.all_task_history h
    JOIN archive.all_workflow_tasks t ON t.task_id = h.task_id
    WHERE h.action_type = 'ESCALATE' AND h.action_at >= :since AND h.action_at < :until
      AND t.queue_name IN (SELECT queue_name FROM chosen)
    GROUP BY 1
)
SELECT level, coalesce(l.live_tasks, 0) AS live_tasks, coalesce(m.escalations, 0) AS escalations_in_range
FROM live l FULL JOIN made m USING (level)
ORDER BY level;

-- name: workload
-- Per user: what they hold now, and what they completed in the range (handling time from claim).
WITH chosen AS (
    SELECT queue_name FROM flowable.report_queues(:department, :queue)
), held AS (
    SELECT t.assignee_id AS user_id, count(*) AS held_tasks,
           count(*) FILTER (WHERE t.due_date < now()) AS held_overdue
    FROM flowable.workflow_tasks t
    WHERE t.queue_name IN (SELECT queue_name FROM chosen)
      AND t.status IN ('CLAIMED', 'DELEGATED', 'ESCALATED') AND t.assignee_id IS NOT NULL
    GROUP BY 1
), done AS (
    SELECT w.user_id, sum(w.completed) AS completed_in_range,
           sum(w.handling_seconds) / nullif(sum(w.completed), 0) / 3600 AS avg_hours
    FROM flowable.task_work_between(:since, :until) w
    WHERE w.queue_name IN (SELECT queue_name FROM chosen) AND w.user_id IS NOT NULL
    GROUP BY 1
    HAVING sum(w.completed) <> 0
), people AS (
    SELECT user_id FROM held UNION SELECT user_id FROM done
)
SELECT p.user_id, u.username, nullif(concat_ws(' ', u.first_name, u.last_name), '') AS full_name,
       (SELECT array_agg(g.role_code ORDER BY g.role_code) FROM entitlements.v_active_role_grants g
        WHERE g.user_id = p.user_id) AS roles,
       coalesce(h.held_tasks, 0) AS held_tasks, coalesce(h.held_overdue, 0) AS held_overdue,
       coalesce(d.completed_in_range, 0) AS completed_in_range, round(d.avg_hours, 4) AS avg_handling_hours
FROM people p
LEFT JOIN entitlements.users u ON u.user_id = p.user_id
LEFT JOIN held h ON h.user_id = p.user_id
LEFT JOIN done d ON d.user_id = p.user_id
ORDER BY coalesce(h.held_tasks, 0) DESC, coalesce(d.completed_in_range, 0) DESC, p.user_id
LIMIT :limit;

-- name: processes
-- v_process_performance's figures for the range (widened to whole hours): instances of every version of each
-- process key started in the range, active now, completed in the range with their mean and 95th percentile
-- duration. Starts and completions come from flowable.process_work_stats (migration 0028), completions by
-- duration bucket: the percentile is percentile_cont's, interpolated between the two durations around its
-- rank, each taken as the mean of its bucket (exact when a bucket's durations are equal, else within 1%).
WITH keys AS (
    SELECT active.process_key, active.process_name, version.workflow_id
    FROM flowable.workflow_definitions active
    JOIN flowable.workflow_definitions version ON version.process_key = active.process_key
    WHERE active.is_active
), summed AS (
    SELECT k.process_key, w.duration_bucket, sum(w.started) AS started, sum(w.completed) AS completed,
           sum(w.completion_seconds) AS seconds
    FROM flowable.process_work_between(:since, :until) w
    JOIN keys k ON k.workflow_id = w.workflow_id
    GROUP BY 1, 2
), buckets AS (
    SELECT process_key, seconds / completed AS mean_seconds,
           sum(completed) OVER (PARTITION BY process_key ORDER BY duration_bucket) - completed AS rank_from,
           sum(completed) OVER (PARTITION BY process_key ORDER BY duration_bucket) AS rank_to,
           0.95 * (sum(completed) OVER (PARTITION BY process_key) - 1) AS p95_rank
    FROM summed
    WHERE duration_bucket IS NOT NULL AND completed > 0
), p95 AS (
    SELECT process_key,
           max(mean_seconds) FILTER (WHERE floor(p95_rank) >= rank_from AND floor(p95_rank) < rank_to)
           + (max(p95_rank) - floor(max(p95_rank)))
             * (max(mean_seconds) FILTER (WHERE ceil(p95_rank) >= rank_from AND ceil(p95_rank) < rank_to)
                - max(mean_seconds) FILTER (WHERE floor(p95_rank) >= rank_from AND floor(p95_rank) < rank_to))
               AS seconds
    FROM buckets GROUP BY 1
), totals AS (
    SELECT process_key, sum(started) AS started, sum(completed) AS completed,
           sum(seconds) FILTER (WHERE duration_bucket IS NOT NULL) AS seconds
    FROM summed GROUP BY 1
)
SELECT k.process_key, k.process_name, coalesce(t.started, 0) AS started_in_range,
       (SELECT count(*) FROM flowable.process_instances pi
        WHERE pi.workflow_id = ANY (k.workflow_ids) AND pi.status = 'ACTIVE') AS active_instances,
       coalesce(t.completed, 0) AS completed_in_range,
       round(t.seconds / nullif(t.completed, 0) / 3600, 4) AS avg_completion_hours,
       round(p.seconds / 3600, 4) AS p95_completion_hours
FROM (SELECT process_key, process_name, array_agg(workflow_id) AS workflow_ids
      FROM keys GROUP BY 1, 2) k
LEFT JOIN totals t ON t.process_key = k.process_key
LEFT JOIN p95 p ON p.process_key = k.process_key
ORDER BY k.process_key;

-- name: activities
-- Per activity (task definition key) of one version of a process, or of every process key's active (else
-- newest) version when :process is NULL (:version needs :process): live tasks there now by state,
-- breached and at risk as the queues report counts them, the oldest waiting, and the tasks completed
-- there in the range with the mean time they spent there (created to completed, as the queues report's
-- completion time). Every user task the deployed file declares is listed, with zeros when nothing is there.
-- Department and queue do not apply. Live figures come from flowable.v_activity_live_load (migration 0029), by
-- the hour tasks are due in; the live tasks due in the two hours that now and the end of the at-risk window fall
-- in are read from their rows (idx_workflow_tasks_attention), and each activity's oldest from
-- idx_workflow_tasks_live_activity. Completions from flowable.task_work_between (0028).
WITH chosen AS (
    SELECT DISTINCT ON (d.process_key) d.workflow_id, d.process_key, d.process_version, d.metadata
    FROM flowable.workflow_definitions d
    WHERE (CAST(:process AS text) IS NULL OR d.process_key = :process)
      AND (CAST(:version AS integer) IS NULL OR d.process_version = :version)
    ORDER BY d.process_key, d.is_active DESC, d.process_version DESC
), hours AS (
    -- the hour now is in and the hour the at-risk window ends in: their live tasks are counted from the rows
    SELECT date_bin('1 hour', now(), timestamptz 'epoch') AS now_hour,
           date_bin('1 hour', now() + make_interval(mins => :at_risk_minutes), timestamptz 'epoch') AS risk_hour
), summed AS (
    SELECT l.workflow_id, l.activity_id, max(l.activity_name) FILTER (WHERE l.tasks > 0) AS activity_name,
           sum(l.tasks) AS live_tasks,
           sum(l.tasks) FILTER (WHERE l.status = 'OPEN')      AS open_tasks,
           sum(l.tasks) FILTER (WHERE l.status = 'CLAIMED')   AS claimed_tasks,
           sum(l.tasks) FILTER (WHERE l.status = 'DELEGATED') AS delegated_tasks,
           sum(l.tasks) FILTER (WHERE l.escalated)            AS escalated_tasks,
           sum(l.tasks) FILTER (WHERE l.due_hour < h.now_hour) AS breached_tasks,
           sum(l.tasks) FILTER (WHERE l.due_hour > h.now_hour AND l.due_hour < h.risk_hour) AS at_risk_tasks
    FROM flowable.v_activity_live_load l CROSS JOIN hours h
    WHERE l.workflow_id IN (SELECT workflow_id FROM chosen)
    GROUP BY l.workflow_id, l.activity_id
    HAVING sum(l.tasks) <> 0
), edge_tasks AS MATERIALIZED (
    -- the few live tasks due in those two hours, by the attention index; their instances looked up one by one
    -- (a hash join read every instance)
    SELECT t.task_definition_key AS activity_id, t.due_date,
           (SELECT p.workflow_id FROM flowable.process_instances p
            WHERE p.process_instance_id = t.process_instance_id) AS workflow_id
    FROM hours h
    JOIN flowable.workflow_tasks t
      ON (t.due_date >= h.now_hour AND t.due_date < h.now_hour + interval '1 hour')
      OR (t.due_date >= h.risk_hour AND t.due_date < h.risk_hour + interval '1 hour')
    WHERE t.status IN ('OPEN', 'CLAIMED', 'DELEGATED', 'ESCALATED')
), edge AS (
    SELECT workflow_id, activity_id,
           count(*) FILTER (WHERE due_date < now()) AS breached_tasks,
           count(*) FILTER (WHERE due_date >= now()
                              AND due_date < now() + make_interval(mins => :at_risk_minutes)) AS at_risk_tasks
    FROM edge_tasks
    WHERE workflow_id IN (SELECT workflow_id FROM chosen)
    GROUP BY 1, 2
), live AS (
    SELECT s.workflow_id, s.activity_id, s.activity_name, s.live_tasks, s.open_tasks, s.claimed_tasks,
           s.delegated_tasks, s.escalated_tasks,
           coalesce(s.breached_tasks, 0) + coalesce(e.breached_tasks, 0) AS breached_tasks,
           coalesce(s.at_risk_tasks, 0) + coalesce(e.at_risk_tasks, 0) AS at_risk_tasks,
           (SELECT t.created_at
            FROM flowable.workflow_tasks t
            JOIN flowable.process_instances p ON p.process_instance_id = t.process_instance_id
            WHERE t.task_definition_key = s.activity_id AND p.workflow_id = s.workflow_id
              AND t.status IN ('OPEN', 'CLAIMED', 'DELEGATED', 'ESCALATED')
            ORDER BY t.created_at LIMIT 1) AS oldest_created_at
    FROM summed s
    LEFT JOIN edge e ON e.workflow_id = s.workflow_id AND e.activity_id = s.activity_id
), done AS (
    SELECT w.workflow_id, w.activity_id, max(w.activity_name) FILTER (WHERE w.completed > 0) AS activity_name,
           sum(w.completed) AS completed_in_range, sum(w.completed_late) AS completed_late_in_range,
           sum(w.completion_seconds) / nullif(sum(w.completed), 0) AS completion_seconds
    FROM flowable.task_work_between(:since, :until) w
    WHERE w.workflow_id IN (SELECT workflow_id FROM chosen)
    GROUP BY 1, 2
    HAVING sum(w.completed) <> 0
), declared AS (
    SELECT c.workflow_id, u.activity_id
    FROM chosen c
    CROSS JOIN LATERAL jsonb_array_elements_text(
        CASE WHEN jsonb_typeof(c.metadata -> 'userTasks') = 'array' THEN c.metadata -> 'userTasks'
             ELSE CAST('[]' AS jsonb) END) AS u (activity_id)
), activity AS (
    SELECT workflow_id, activity_id FROM declared
    UNION SELECT workflow_id, activity_id FROM live
    UNION SELECT workflow_id, activity_id FROM done
)
SELECT c.process_key, c.process_version, a.activity_id, coalesce(l.activity_name, x.activity_name) AS activity_name,
       coalesce(l.live_tasks, 0) AS live_tasks, coalesce(l.open_tasks, 0) AS open_tasks,
       coalesce(l.claimed_tasks, 0) AS claimed_tasks, coalesce(l.delegated_tasks, 0) AS delegated_tasks,
       coalesce(l.escalated_tasks, 0) AS escalated_tasks, coalesce(l.breached_tasks, 0) AS breached_tasks,
       coalesce(l.at_risk_tasks, 0) AS at_risk_tasks, l.oldest_created_at,
       coalesce(x.completed_in_range, 0) AS completed_in_range,
       coalesce(x.completed_late_in_range, 0) AS completed_late_in_range,
       round(x.completion_seconds / 3600, 4) AS avg_completion_hours
FROM activity a
JOIN chosen c ON c.workflow_id = a.workflow_id
LEFT JOIN live l ON l.workflow_id = a.workflow_id AND l.activity_id = a.activity_id
LEFT JOIN done x ON x.workflow_id = a.workflow_id AND x.activity_id = a.activity_id
ORDER BY c.process_key, c.process_version, a.activity_id;

-- name: process_versions
-- Every recorded version of a process key, newest first: the map's version selector, and which one the
-- activities report shows when no version is given (the active one, else the newest).
SELECT workflow_id, process_key, process_name, process_version, is_active, deployed_at, deployment_id,
       bpmn_xml IS NOT NULL AS has_bpmn
FROM flowable.workflow_definitions
WHERE process_key = :process
ORDER BY process_version DESC;

-- name: definition_bpmn
SELECT bpmn_xml FROM flowable.workflow_definitions WHERE workflow_id = :workflow_id;

-- name: oldest
-- The live tasks most in need of attention: overdue first (longest overdue first), then those due
-- soonest, then the oldest without a due date. The inner query walks idx_workflow_tasks_attention in this
-- order and stops at :limit; only those few are joined to their instances.
WITH chosen AS (
    SELECT queue_name FROM flowable.report_queues(:department, :queue)
)
SELECT t.task_id, t.task_name, t.queue_name, t.status, t.assignee_id, t.priority, t.created_at, t.due_date,
       t.escalation_level, p.business_key,
       CASE WHEN t.due_date < now() THEN 'BREACHED'
            WHEN t.due_date < now() + make_interval(mins => :at_risk_minutes) THEN 'AT_RISK'
            ELSE 'ON_TIME' END AS sla_state
FROM (SELECT t.task_id, t.task_name, t.queue_name, t.status, t.assignee_id, t.priority, t.created_at, t.due_date,
             t.escalation_level, t.process_instance_id
      FROM flowable.workflow_tasks t
      WHERE t.status IN ('OPEN', 'CLAIMED', 'DELEGATED', 'ESCALATED')
        AND t.queue_name IN (SELECT queue_name FROM chosen)
      ORDER BY t.due_date, t.created_at, t.task_id
      LIMIT :limit) t
LEFT JOIN flowable.process_instances p ON p.process_instance_id = t.process_instance_id
ORDER BY t.due_date, t.created_at, t.task_id;

-- name: mirror_events
-- How soon pushed engine changes are readable here: engine time of the change to the mirror's apply,
-- over the newest 10,000 events received in the range (a busy day holds hundreds of thousands; their
-- percentiles would cost a sort of all of them, and the newest say how the mirror is doing now).
WITH newest AS (
    SELECT occurred_at, applied_at, received_at FROM flowable.engine_events
    WHERE received_at >= :since AND received_at < :until
    ORDER BY received_at DESC
    LIMIT 10000
)
SELECT (SELECT count(*) FROM flowable.engine_events
        WHERE received_at >= :since AND received_at < :until) AS events,
       count(*) FILTER (WHERE applied_at IS NOT NULL) AS latency_sample,
       round((percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM applied_at - occurred_at)))::numeric * 1000)
           AS availability_p50_ms,
       round((percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM applied_at - occurred_at)))::numeric * 1000)
           AS availability_p95_ms,
       round(max(extract(epoch FROM applied_at - occurred_at)) * 1000) AS availability_max_ms,
       max(received_at) AS last_received_at
FROM newest;

-- name: mirror_parked_total
SELECT count(*) AS parked FROM flowable.engine_events WHERE applied_at IS NULL;

-- name: mirror_reconciler
SELECT name, last_pass_at, last_full_sweep_at, newest_change_at, passes, repairs, last_error, last_error_at
FROM flowable.reconciler_state ORDER BY name;

-- name: mirror_repairs
-- Differences the reconciler found and repaired in the range. Those an incremental pass or a sweep
-- found are changes a push should have brought: dropped pushes (a backfill fills a fresh mirror).
SELECT pass_kind, entity_type, count(*) AS repairs, count(DISTINCT entity_id) AS entities
FROM flowable.mirror_repairs
WHERE found_at >= :since AND found_at < :until
GROUP BY pass_kind, entity_type
ORDER BY pass_kind, entity_type;

-- name: capacity
-- The capacity review (the seed's monthly "review queue capacity against workload"): per active queue the
-- filter chooses and per UTC day of the range (widened to whole hours, as the throughput report's; the first
-- and last day may be partial, day_start and day_end say), tasks created (arrivals), completed and cancelled
-- that day; every day is listed, empty ones with zeros. They come from flowable.v_task_hourly_stats (hot and
-- archived work), so a long range costs hours x queues, not tasks. Beside them, per queue: the live tasks now and backlog_end, the backlog when the range ends: the live tasks now, less what arrived
-- after the range, plus what was completed or cancelled after it. bridge/reports.py walks the backlog back
-- from there day by day, so it needs no count of all the tasks ever created. Days step by '24 hours', not
-- '1 day': a timestamptz plus '1 day' keeps the session time zone's wall clock, and across a change to or
-- from summer time would leave UTC midnight (and every day's figures after it).
WITH chosen AS (
    SELECT q.queue_name, q.department_id, q.max_capacity, q.sla_minutes
    FROM flowable.workflow_queues q
    LEFT JOIN entitlements.departments d ON d.department_id = q.department_id
    WHERE q.is_active
      AND (CAST(:department AS text) IS NULL OR d.department_code = :department)
      AND (CAST(:queue AS text) IS NULL OR q.queue_name = :queue)
), days AS (
    SELECT day,
           greatest(day, date_bin('1 hour', CAST(:since AS timestamptz), timestamptz 'epoch')) AS day_start,
           least(day + interval '24 hours',
                 date_bin('1 hour', CAST(:until AS timestamptz) - interval '1 microsecond', timestamptz 'epoch')
                     + interval '1 hour') AS day_end
    FROM generate_series(date_bin('1 day', CAST(:since AS timestamptz), timestamptz 'epoch'),
                         CAST(:until AS timestamptz) - interval '1 microsecond', interval '24 hours') AS day
), flow AS (
    SELECT s.queue_name, date_bin('1 day', s.hour, timestamptz 'epoch') AS day, sum(s.created) AS arrivals,
           sum(s.completed) AS completions, sum(s.completion_seconds) AS completion_seconds,
           sum(s.cancelled) AS cancellations
    FROM flowable.v_task_hourly_stats s
    WHERE s.queue_name IN (SELECT queue_name FROM chosen)
      AND s.hour >= date_bin('1 hour', CAST(:since AS timestamptz), timestamptz 'epoch') AND s.hour < :until
    GROUP BY 1, 2
), flow_after AS (
    SELECT s.queue_name, sum(s.created) AS arrivals, sum(s.completed) AS completions,
           sum(s.cancelled) AS cancellations
    FROM flowable.v_task_hourly_stats s
    WHERE s.queue_name IN (SELECT queue_name FROM chosen) AND s.hour >= :until
    GROUP BY 1
), live AS (
    SELECT t.queue_name, count(*) AS open_now
    FROM flowable.workflow_tasks t
    WHERE t.queue_name IN (SELECT queue_name FROM chosen)
      AND t.status IN ('OPEN', 'CLAIMED', 'DELEGATED', 'ESCALATED')
    GROUP BY 1
)
SELECT c.queue_name, d.department_code, d.department_name, c.max_capacity, c.sla_minutes,
       coalesce(l.open_now, 0) AS open_now,
       coalesce(l.open_now, 0) - coalesce(a.arrivals, 0) + coalesce(a.completions, 0) + coalesce(a.cancellations, 0)
           AS backlog_end,
       round(sum(f.completion_seconds) OVER queue / nullif(sum(f.completions) OVER queue, 0) / 3600, 4)
           AS mean_handling_hours,
       to_char(x.day AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS day, x.day_start, x.day_end,
       coalesce(f.arrivals, 0) AS arrivals, coalesce(f.completions, 0) AS completions,
       coalesce(f.cancellations, 0) AS cancellations
FROM chosen c
CROSS JOIN days x
LEFT JOIN entitlements.departments d ON d.department_id = c.department_id
LEFT JOIN live l ON l.queue_name = c.queue_name
LEFT JOIN flow_after a ON a.queue_name = c.queue_name
LEFT JOIN flow f ON f.queue_name = c.queue_name AND f.day = x.day
WINDOW queue AS (PARTITION BY c.queue_name)
ORDER BY d.department_code NULLS LAST, c.queue_name, x.day;

-- name: department_codes
SELECT department_code FROM entitlements.departments WHERE is_active ORDER BY department_code;

-- name: filter_names_known
SELECT (CAST(:department AS text) IS NULL
        OR EXISTS (SELECT 1 FROM entitlements.departments WHERE department_code = :department)) AS department_known,
       (CAST(:queue AS text) IS NULL
        OR EXISTS (SELECT 1 FROM flowable.workflow_queues WHERE queue_name = :queue)) AS queue_known;

-- name: primary_wal_position
SELECT CAST(pg_current_wal_lsn() AS text);

-- name: replica_position
-- On the read replica (DATABASE_READ_URL): what it has replayed, and when the last replayed transaction
-- committed on the primary.
SELECT pg_is_in_recovery() AS in_recovery, CAST(pg_last_wal_replay_lsn() AS text) AS replayed_lsn,
       extract(epoch FROM now() - pg_last_xact_replay_timestamp()) AS replay_age_s;
