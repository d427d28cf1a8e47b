-- 0018: what the reporting API (/api/reports/..., bridge/reports.py) and the dashboard read.
--
-- The seed's views aggregate every task ever mirrored at each call. At 1,000,000 tasks the completed ones
-- dominate and each call scans them all; the reports must answer in under 200 ms. So:
--   * flowable.task_hourly_stats: per queue and hour, tasks created, completed, completed after their due
--     date, and the summed completion time. Kept like the queue load (0013): statement triggers only
--     append changes to flowable.task_stat_changes (insert-only, nothing shared to wait on) and
--     flowable.fold_task_stats() adds them in, from the service's one-second fold. The view
--     flowable.v_task_hourly_stats adds what is not folded yet, so reports read exact figures. A row's
--     contribution is taken out and put back whenever it changes (a reopened or re-queued task moves
--     with it) and taken out when a task is deleted: the summary always equals a recount of the table
--     (tests/test_reports.py checks this after random writes).
--   * Hours are cut with date_bin from the Unix epoch, not date_trunc: date_trunc cuts in the session's
--     time zone, and sessions in +05:30 and UTC would file the same task in different hours.
--   * Partial indexes for the small sets reports walk: live tasks (OPEN, CLAIMED, DELEGATED, ESCALATED)
--     by queue and due date and in attention order (due date, age), tasks completed by completion time, escalation history by time, completed
--     instances by completion time, and pushed events by arrival (mirror health).
--   * OPS_VIEWER: the built-in role a token needs for /api/reports/... and /dashboard. The reports show
--     every queue's numbers, so they run as the owner, not under the caseworkers' row-level security.

CREATE TABLE flowable.task_hourly_stats (
    hour               TIMESTAMPTZ  NOT NULL,
    queue_name         VARCHAR(100) NOT NULL,
    created            BIGINT       NOT NULL DEFAULT 0,
    completed          BIGINT       NOT NULL DEFAULT 0,
    completed_late     BIGINT       NOT NULL DEFAULT 0,
    completion_seconds NUMERIC      NOT NULL DEFAULT 0,
    PRIMARY KEY (hour, queue_name)
);

CREATE TABLE flowable.task_stat_changes (
    change_id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    hour               TIMESTAMPTZ  NOT NULL,
    queue_name         VARCHAR(100) NOT NULL,
    created            BIGINT       NOT NULL,
    completed          BIGINT       NOT NULL,
    completed_late     BIGINT       NOT NULL,
    completion_seconds NUMERIC      NOT NULL
);

-- What one task adds to the hourly figures (sign -1 takes it out again).
CREATE FUNCTION flowable.task_stat_rows(p_queue_name text, p_status text, p_created_at timestamptz,
                                        p_completed_at timestamptz, p_due_date timestamptz, p_sign integer)
RETURNS TABLE (hour timestamptz, queue_name text, created integer, completed integer, completed_late integer,
               completion_seconds numeric)
LANGUAGE sql IMMUTABLE AS $$
    SELECT date_bin('1 hour', p_created_at, timestamptz 'epoch'), p_queue_name, p_sign, 0, 0, 0::numeric
    UNION ALL
    SELECT date_bin('1 hour', p_completed_at, timestamptz 'epoch'), p_queue_name, 0, p_sign,
           p_sign * (p_due_date IS NOT NULL AND p_completed_at > p_due_date)::integer,
           p_sign * extract(epoch FROM p_completed_at - p_created_at)
    WHERE p_status = 'COMPLETED' AND p_completed_at IS NOT NULL
$$;

CREATE FUNCTION flowable.track_task_stats() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO flowable.task_stat_changes (hour, queue_name, created, completed, completed_late, completion_seconds)
        SELECT s.hour, s.queue_name, sum(s.created), sum(s.completed), sum(s.completed_late), sum(s.completion_seconds)
        FROM new_tasks t,
             LATERAL flowable.task_stat_rows(t.queue_name, t.status, t.created_at, t.completed_at, t.due_date, 1) s
        GROUP BY s.hour, s.queue_name;
    ELSIF TG_OP = 'UPDATE' THEN
        INSERT INTO flowable.task_stat_changes (hour, queue_name, created, completed, completed_late, completion_seconds)
        SELECT s.hour, s.queue_name, sum(s.created), sum(s.completed), sum(s.completed_late), sum(s.completion_seconds)
        FROM (SELECT x.* FROM new_tasks t, LATERAL flowable.task_stat_rows(
                  t.queue_name, t.status, t.created_at, t.completed_at, t.due_date, 1) x
              UNION ALL
              SELECT x.* FROM old_tasks t, LATERAL flowable.task_stat_rows(
                  t.queue_name, t.status, t.created_at, t.completed_at, t.due_date, -1) x) s
        GROUP BY s.hour, s.queue_name
        HAVING sum(s.created) <> 0 OR sum(s.completed) <> 0 OR sum(s.completed_late) <> 0
            OR sum(s.completion_seconds) <> 0;
    ELSE
        INSERT INTO flowable.task_stat_changes (hour, queue_name, created, completed, completed_late, completion_seconds)
        SELECT s.hour, s.queue_name, sum(s.created), sum(s.completed), sum(s.completed_late), sum(s.completion_seconds)
        FROM old_tasks t,
             LATERAL flowable.task_stat_rows(t.queue_name, t.status, t.created_at, t.completed_at, t.due_date, -1) s
        GROUP BY s.hour, s.queue_name;
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER trg_workflow_tasks_stats_insert AFTER INSERT ON flowable.workflow_tasks
    REFERENCING NEW TABLE AS new_tasks FOR EACH STATEMENT EXECUTE FUNCTION flowable.track_task_stats();
CREATE TRIGGER trg_workflow_tasks_stats_update AFTER UPDATE ON flowable.workflow_tasks
    REFERENCING OLD TABLE AS old_tasks NEW TABLE AS new_tasks
    FOR EACH STATEMENT EXECUTE FUNCTION flowable.track_task_stats();
CREATE TRIGGER trg_workflow_tasks_stats_delete AFTER DELETE ON flowable.workflow_tasks
    REFERENCING OLD TABLE AS old_tasks FOR EACH STATEMENT EXECUTE FUNCTION flowable.track_task_stats();

-- Returns how many hourly rows changed; a second caller while one folds returns 0 at once.
CREATE FUNCTION flowable.fold_task_stats() RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    changed integer;
BEGIN
    IF NOT pg_try_advisory_xact_lock(hashtext('flowable.fold_task_stats')) THEN
        RETURN 0;
    END IF;
    WITH taken AS (
        DELETE FROM flowable.task_stat_changes
        RETURNING hour, queue_name, created, completed, completed_late, completion_seconds
    )
    INSERT INTO flowable.task_hourly_stats AS h (hour, queue_name, created, completed, completed_late, completion_seconds)
    SELECT hour, queue_name, sum(created), sum(completed), sum(completed_late), sum(completion_seconds)
    FROM taken GROUP BY hour, queue_name
    ON CONFLICT (hour, queue_name) DO UPDATE
    SET created            = h.created + excluded.created,
        completed          = h.completed + excluded.completed,
        completed_late     = h.completed_late + excluded.completed_late,
        completion_seconds = h.completion_seconds + excluded.completion_seconds;
    GET DIAGNOSTICS changed = ROW_COUNT;
    RETURN changed;
END;
$$;

CREATE VIEW flowable.v_task_hourly_stats AS
SELECT hour, queue_name, sum(created) AS created, sum(completed) AS completed,
       sum(completed_late) AS completed_late, sum(completion_seconds) AS completion_seconds
FROM (SELECT hour, queue_name, created, completed, completed_late, completion_seconds
      FROM flowable.task_hourly_stats
      UNION ALL
      SELECT hour, queue_name, created, completed, completed_late, completion_seconds
      FROM flowable.task_stat_changes) s
GROUP BY hour, queue_name;

-- The tasks already mirrored.
INSERT INTO flowable.task_hourly_stats (hour, queue_name, created, completed, completed_late, completion_seconds)
SELECT s.hour, s.queue_name, sum(s.created), sum(s.completed), sum(s.completed_late), sum(s.completion_seconds)
FROM flowable.workflow_tasks t,
     LATERAL flowable.task_stat_rows(t.queue_name, t.status, t.created_at, t.completed_at, t.due_date, 1) s
GROUP BY s.hour, s.queue_name;

CREATE INDEX idx_workflow_tasks_live_due
    ON flowable.workflow_tasks (queue_name, due_date)
    INCLUDE (status, created_at, escalation_level, assignee_id)
    WHERE status IN ('OPEN', 'CLAIMED', 'DELEGATED', 'ESCALATED');
CREATE INDEX idx_workflow_tasks_attention
    ON flowable.workflow_tasks (due_date, created_at, task_id)
    WHERE status IN ('OPEN', 'CLAIMED', 'DELEGATED', 'ESCALATED');
CREATE INDEX idx_workflow_tasks_completed_at
    ON flowable.workflow_tasks (completed_at)
    INCLUDE (completed_by, claimed_at, created_at, queue_name)
    WHERE status = 'COMPLETED';
CREATE INDEX idx_task_history_escalations
    ON flowable.task_history (action_at) WHERE action_type = 'ESCALATE';
CREATE INDEX idx_process_instances_completed_at
    ON flowable.process_instances (completed_at) INCLUDE (workflow_id, started_at)
    WHERE status = 'COMPLETED';
CREATE INDEX idx_engine_events_received_at ON flowable.engine_events (received_at);

-- The queues a report's filter chooses: of a department (by code), one queue, or all (NULL, NULL). A plain
-- SQL function, so the planner inlines it into each report's query and plans it as if written there.
CREATE FUNCTION flowable.report_queues(p_department text, p_queue text) RETURNS TABLE (queue_name text)
LANGUAGE sql STABLE AS $$
    SELECT q.queue_name
    FROM flowable.workflow_queues q
    LEFT JOIN entitlements.departments d ON d.department_id = q.department_id
    WHERE (p_department IS NULL OR d.department_code = p_department)
      AND (p_queue IS NULL OR q.queue_name = p_queue)
$$;

INSERT INTO entitlements.workflow_roles (role_code, role_name, role_type, permissions)
VALUES ('OPS_VIEWER', 'Operations viewer', 'SYSTEM', '{"reports": true, "dashboard": true}')
ON CONFLICT (role_code) DO NOTHING;
