-- 0028: the reports that count ended work over a range (workload's completions per user, activities' per
-- activity, processes' starts, completions and durations, capacity's cancellations) answer from summaries, as
-- the queues' completions do (0018). They counted the rows of the range, hot and archived (0025): at 10,000,000
-- tasks a 30-day range of archived work took 0.6 to 15 s (bench/archive.py); the target is 200 ms.
--
-- 1. Cancellations join the queues' hourly summary: flowable.task_hourly_stats.cancelled, by the hour the
--    task was cancelled (its completed_at, as capacity counted them). Capacity is per queue and day, so the
--    hourly grain is small enough (queues x hours).
-- 2. flowable.task_work_stats: completed tasks per queue, process version (workflow_id), activity (task
--    definition key and name) and user (completed_by, NULL when the engine named nobody), with the time from
--    creation (activities) and from the claim, else creation (workload), and how many were late.
-- 3. flowable.process_work_stats: instances started, and completed with their durations in buckets 1% wide
--    (duration_bucket = floor(100 * ln(seconds)); NULL on the rows counting starts), per process version.
--    The processes report's 95th percentile comes from the buckets, each standing at the mean of its
--    durations: exact when the durations in a bucket are equal, else within 1% of percentile_cont's.
--
-- Both new summaries have two grains in one table, hours and UTC days (grain 'hour' | 'day'): users x
-- activities x hours is too many rows for a month's report (bench/archive.py: 700 per hour), but a range is
-- whole days in its middle, so flowable.summary_span() cuts [since, until), widened to whole hours as the
-- queues report is, into whole days and the hours at either end. Kept as the queues' summary is: statement
-- triggers only append signed changes to a log (nothing shared to wait on), flowable.fold_work_stats() adds
-- them into both grains from the apply path's fold, the *_between() functions add what is not folded yet, so
-- the figures are exact. A row's contribution is taken out and put back whenever it changes (and when a
-- migrated instance's workflow_id changes, its tasks' contributions move with it): the summaries always equal
-- a recount of the hot and archived rows (tests/test_work_summaries.py). Archiving's deletes leave them alone
-- (bridge.archiving, as 0024 does for the queues' summary).
--
-- The tables are locked while the summaries are filled from the rows already there: a write committed between
-- the fill's snapshot and this migration's commit would run the old triggers and be missed.

LOCK TABLE flowable.workflow_tasks, flowable.process_instances, archive.workflow_tasks, archive.process_instances
    IN SHARE ROW EXCLUSIVE MODE;

-- 1: cancellations per queue and hour.

SELECT flowable.fold_task_stats();
ALTER TABLE flowable.task_hourly_stats ADD COLUMN cancelled BIGINT NOT NULL DEFAULT 0;
ALTER TABLE flowable.task_stat_changes ADD COLUMN cancelled BIGINT NOT NULL DEFAULT 0;

DROP FUNCTION flowable.task_stat_rows(text, text, timestamptz, timestamptz, timestamptz, integer);
CREATE FUNCTION flowable.task_stat_rows(p_queue_name text, p_status text, p_created_at timestamptz,
                                        p_completed_at timestamptz, p_due_date timestamptz, p_sign integer)
RETURNS TABLE (hour timestamptz, queue_name text, created integer, completed integer, completed_late integer,
               completion_seconds numeric, cancelled integer)
LANGUAGE sql IMMUTABLE AS $$
    SELECT date_bin('1 hour', p_created_at, timestamptz 'epoch'), p_queue_name, p_sign, 0, 0, 0::numeric, 0
    UNION ALL
    SELECT date_bin('1 hour', p_completed_at, timestamptz 'epoch'), p_queue_name, 0, p_sign,
           p_sign * (p_due_date IS NOT NULL AND p_completed_at > p_due_date)::integer,
           p_sign * extract(epoch FROM p_completed_at - p_created_at), 0
    WHERE p_status = 'COMPLETED' AND p_completed_at IS NOT NULL
    UNION ALL
    SELECT date_bin('1 hour', p_completed_at, timestamptz 'epoch'), p_queue_name, 0, 0, 0, 0::numeric, p_sign
    WHERE p_status = 'CANCELLED' AND p_completed_at IS NOT NULL
$$;

CREATE OR REPLACE FUNCTION flowable.track_task_stats() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO flowable.task_stat_changes (hour, queue_name, created, completed, completed_late,
                                                completion_seconds, cancelled)
        SELECT s.hour, s.queue_name, sum(s.created), sum(s.completed), sum(s.completed_late),
               sum(s.completion_seconds), sum(s.cancelled)
        FROM new_tasks t,
             LATERAL flowable.task_stat_rows(t.queue_name, t.status, t.created_at, t.completed_at, t.due_date, 1) s
        GROUP BY s.hour, s.queue_name;
    ELSIF TG_OP = 'UPDATE' THEN
        INSERT INTO flowable.task_stat_changes (hour, queue_name, created, completed, completed_late,
                                                completion_seconds, cancelled)
        SELECT s.hour, s.queue_name, sum(s.created), sum(s.completed), sum(s.completed_late),
               sum(s.completion_seconds), sum(s.cancelled)
        FROM (SELECT x.* FROM new_tasks t, LATERAL flowable.task_stat_rows(
                  t.queue_name, t.status, t.created_at, t.completed_at, t.due_date, 1) x
              UNION ALL
              SELECT x.* FROM old_tasks t, LATERAL flowable.task_stat_rows(
                  t.queue_name, t.status, t.created_at, t.completed_at, t.due_date, -1) x) s
        GROUP BY s.hour, s.queue_name
        HAVING sum(s.created) <> 0 OR sum(s.completed) <> 0 OR sum(s.completed_late) <> 0
            OR sum(s.completion_seconds) <> 0 OR sum(s.cancelled) <> 0;
    ELSE
        INSERT INTO flowable.task_stat_changes (hour, queue_name, created, completed, completed_late,
                                                completion_seconds, cancelled)
        SELECT s.hour, s.queue_name, sum(s.created), sum(s.completed), sum(s.completed_late),
               sum(s.completion_seconds), sum(s.cancelled)
        FROM old_tasks t,
             LATERAL flowable.task_stat_rows(t.queue_name, t.status, t.created_at, t.completed_at, t.due_date, -1) s
        GROUP BY s.hour, s.queue_name;
    END IF;
    RETURN NULL;
END;
$$;

CREATE OR REPLACE FUNCTION flowable.fold_task_stats() RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    changed integer;
BEGIN
    IF NOT pg_try_advisory_xact_lock(hashtext('flowable.fold_task_stats')) THEN
        RETURN 0;
    END IF;
    WITH taken AS (
        DELETE FROM flowable.task_stat_changes
        RETURNING hour, queue_name, created, completed, completed_late, completion_seconds, cancelled
    )
    INSERT INTO flowable.task_hourly_stats AS h (hour, queue_name, created, completed, completed_late,
                                                 completion_seconds, cancelled)
    SELECT hour, queue_name, sum(created), sum(completed), sum(completed_late), sum(completion_seconds),
           sum(cancelled)
    FROM taken GROUP BY hour, queue_name
    ON CONFLICT (hour, queue_name) DO UPDATE
    SET created            = h.created + excluded.created,
        completed          = h.completed + excluded.completed,
        completed_late     = h.completed_late + excluded.completed_late,
        completion_seconds = h.completion_seconds + excluded.completion_seconds,
        cancelled          = h.cancelled + excluded.cancelled;
    GET DIAGNOSTICS changed = ROW_COUNT;
    RETURN changed;
END;
$$;

CREATE OR REPLACE VIEW flowable.v_task_hourly_stats AS
SELECT hour, queue_name, sum(created) AS created, sum(completed) AS completed,
       sum(completed_late) AS completed_late, sum(completion_seconds) AS completion_seconds,
       sum(cancelled) AS cancelled
FROM (SELECT hour, queue_name, created, completed, completed_late, completion_seconds, cancelled
      FROM flowable.task_hourly_stats
      UNION ALL
      SELECT hour, queue_name, created, completed, completed_late, completion_seconds, cancelled
      FROM flowable.task_stat_changes) s
GROUP BY hour, queue_name;

-- Cancelled tasks already mirrored, hot and archived (archived ones stay in the summary: 0024).
INSERT INTO flowable.task_hourly_stats AS h (hour, queue_name, cancelled)
SELECT date_bin('1 hour', t.completed_at, timestamptz 'epoch'), t.queue_name, count(*)
FROM archive.all_workflow_tasks t
WHERE t.status = 'CANCELLED' AND t.completed_at IS NOT NULL
GROUP BY 1, 2
ON CONFLICT (hour, queue_name) DO UPDATE SET cancelled = excluded.cancelled;

-- 2 and 3: the two grains, and a range cut into them.

-- [since, until) widened to whole hours (those starting before until): whole UTC days [day_from, day_to) where
-- it spans them, hours [hour_from, day_from) and [day_to, hour_to) at either end; without a whole day,
-- day_from = day_to = hour_to and the hours are all of it. Three plain ranges, so that each reads its grain by
-- the summary's key (a join to a set of periods let the planner guess a third of the table per period and
-- read all of it).
CREATE FUNCTION flowable.summary_span(p_since timestamptz, p_until timestamptz,
                                      OUT hour_from timestamptz, OUT day_from timestamptz,
                                      OUT day_to timestamptz, OUT hour_to timestamptz)
LANGUAGE sql IMMUTABLE AS $$
    SELECT h0, CASE WHEN d0 < d1 THEN d0 ELSE h1 END, CASE WHEN d0 < d1 THEN d1 ELSE h1 END, h1
    FROM (SELECT h0, h1,
                 date_bin('1 day', h0 - interval '1 microsecond', timestamptz 'epoch') + interval '24 hours' AS d0,
                 date_bin('1 day', h1, timestamptz 'epoch') AS d1
          FROM (SELECT date_bin('1 hour', p_since, timestamptz 'epoch') AS h0,
                       date_bin('1 hour', p_until - interval '1 microsecond', timestamptz 'epoch')
                           + interval '1 hour' AS h1) hours) days
$$;

CREATE TABLE flowable.task_work_stats (
    grain              TEXT         NOT NULL CHECK (grain IN ('hour', 'day')),
    period             TIMESTAMPTZ  NOT NULL,
    queue_name         VARCHAR(100) NOT NULL,
    workflow_id        BIGINT       NOT NULL,
    activity_id        VARCHAR(255) NOT NULL,
    activity_name      VARCHAR(500) NOT NULL,
    user_id            VARCHAR(50),
    completed          BIGINT       NOT NULL DEFAULT 0,
    completed_late     BIGINT       NOT NULL DEFAULT 0,
    completion_seconds NUMERIC      NOT NULL DEFAULT 0,
    handling_seconds   NUMERIC      NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX task_work_stats_key ON flowable.task_work_stats
    (grain, period, queue_name, workflow_id, activity_id, activity_name, user_id) NULLS NOT DISTINCT;

CREATE TABLE flowable.task_work_changes (
    change_id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    hour               TIMESTAMPTZ  NOT NULL,
    queue_name         VARCHAR(100) NOT NULL,
    workflow_id        BIGINT       NOT NULL,
    activity_id        VARCHAR(255) NOT NULL,
    activity_name      VARCHAR(500) NOT NULL,
    user_id            VARCHAR(50),
    completed          BIGINT       NOT NULL,
    completed_late     BIGINT       NOT NULL,
    completion_seconds NUMERIC      NOT NULL,
    handling_seconds   NUMERIC      NOT NULL
);

CREATE TABLE flowable.process_work_stats (
    grain              TEXT        NOT NULL CHECK (grain IN ('hour', 'day')),
    period             TIMESTAMPTZ NOT NULL,
    workflow_id        BIGINT      NOT NULL,
    duration_bucket    INTEGER,
    started            BIGINT      NOT NULL DEFAULT 0,
    completed          BIGINT      NOT NULL DEFAULT 0,
    completion_seconds NUMERIC     NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX process_work_stats_key ON flowable.process_work_stats
    (grain, period, workflow_id, duration_bucket) NULLS NOT DISTINCT;

CREATE TABLE flowable.process_work_changes (
    change_id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    hour               TIMESTAMPTZ NOT NULL,
    workflow_id        BIGINT      NOT NULL,
    duration_bucket    INTEGER,
    started            BIGINT      NOT NULL,
    completed          BIGINT      NOT NULL,
    completion_seconds NUMERIC     NOT NULL
);

-- What one completed task adds (sign -1 takes it out again); nothing for a task not completed.
CREATE FUNCTION flowable.task_work_row(p_status text, p_created_at timestamptz, p_claimed_at timestamptz,
                                       p_completed_at timestamptz, p_due_date timestamptz, p_sign integer)
RETURNS TABLE (hour timestamptz, completed integer, completed_late integer, completion_seconds numeric,
               handling_seconds numeric)
LANGUAGE sql IMMUTABLE AS $$
    SELECT date_bin('1 hour', p_completed_at, timestamptz 'epoch'), p_sign,
           p_sign * (p_due_date IS NOT NULL AND p_completed_at > p_due_date)::integer,
           p_sign * extract(epoch FROM p_completed_at - p_created_at),
           p_sign * extract(epoch FROM p_completed_at - coalesce(p_claimed_at, p_created_at))
    WHERE p_status = 'COMPLETED' AND p_completed_at IS NOT NULL
$$;

-- What one instance adds: its start, and its completion with the duration's bucket.
CREATE FUNCTION flowable.process_work_rows(p_status text, p_started_at timestamptz, p_completed_at timestamptz,
                                           p_sign integer)
RETURNS TABLE (hour timestamptz, duration_bucket integer, started integer, completed integer,
               completion_seconds numeric)
LANGUAGE sql IMMUTABLE AS $$
    SELECT date_bin('1 hour', p_started_at, timestamptz 'epoch'), NULL::integer, p_sign, 0, 0::numeric
    UNION ALL
    SELECT date_bin('1 hour', p_completed_at, timestamptz 'epoch'),
           floor(100 * ln(greatest(extract(epoch FROM p_completed_at - p_started_at), 1)))::integer,
           0, p_sign, p_sign * extract(epoch FROM p_completed_at - p_started_at)
    WHERE p_status = 'COMPLETED' AND p_completed_at IS NOT NULL
$$;

-- Tasks name their instance; its workflow_id is read where the change is logged. Only completed tasks count,
-- so the instance is looked up for those alone. A statement trigger's query may name only the transition
-- tables its event has (the whole query is planned, whatever TG_OP is), hence the three branches.
CREATE FUNCTION flowable.track_task_work() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO flowable.task_work_changes (hour, queue_name, workflow_id, activity_id, activity_name, user_id,
                                                completed, completed_late, completion_seconds, handling_seconds)
        SELECT s.hour, t.queue_name, p.workflow_id, t.task_definition_key, t.task_name, t.completed_by,
               sum(s.completed), sum(s.completed_late), sum(s.completion_seconds), sum(s.handling_seconds)
        FROM new_tasks t
        JOIN flowable.process_instances p ON p.process_instance_id = t.process_instance_id
        CROSS JOIN LATERAL flowable.task_work_row(t.status, t.created_at, t.claimed_at, t.completed_at,
                                                  t.due_date, 1) s
        WHERE t.status = 'COMPLETED'
        GROUP BY 1, 2, 3, 4, 5, 6;
    ELSIF TG_OP = 'UPDATE' THEN
        INSERT INTO flowable.task_work_changes (hour, queue_name, workflow_id, activity_id, activity_name, user_id,
                                                completed, completed_late, completion_seconds, handling_seconds)
        SELECT s.hour, t.queue_name, p.workflow_id, t.task_definition_key, t.task_name, t.completed_by,
               sum(s.completed), sum(s.completed_late), sum(s.completion_seconds), sum(s.handling_seconds)
        FROM (SELECT n.*, 1 AS sign FROM new_tasks n WHERE n.status = 'COMPLETED'
              UNION ALL
              SELECT o.*, -1 FROM old_tasks o WHERE o.status = 'COMPLETED') t
        JOIN flowable.process_instances p ON p.process_instance_id = t.process_instance_id
        CROSS JOIN LATERAL flowable.task_work_row(t.status, t.created_at, t.claimed_at, t.completed_at,
                                                  t.due_date, t.sign) s
        GROUP BY 1, 2, 3, 4, 5, 6
        HAVING sum(s.completed) <> 0 OR sum(s.completed_late) <> 0 OR sum(s.completion_seconds) <> 0
            OR sum(s.handling_seconds) <> 0;
    ELSE
        INSERT INTO flowable.task_work_changes (hour, queue_name, workflow_id, activity_id, activity_name, user_id,
                                                completed, completed_late, completion_seconds, handling_seconds)
        SELECT s.hour, t.queue_name, p.workflow_id, t.task_definition_key, t.task_name, t.completed_by,
               sum(s.completed), sum(s.completed_late), sum(s.completion_seconds), sum(s.handling_seconds)
        FROM old_tasks t
        JOIN flowable.process_instances p ON p.process_instance_id = t.process_instance_id
        CROSS JOIN LATERAL flowable.task_work_row(t.status, t.created_at, t.claimed_at, t.completed_at,
                                                  t.due_date, -1) s
        WHERE t.status = 'COMPLETED'
        GROUP BY 1, 2, 3, 4, 5, 6;
    END IF;
    RETURN NULL;
END;
$$;

CREATE FUNCTION flowable.track_process_work() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO flowable.process_work_changes (hour, workflow_id, duration_bucket, started, completed,
                                                   completion_seconds)
        SELECT s.hour, p.workflow_id, s.duration_bucket, sum(s.started), sum(s.completed), sum(s.completion_seconds)
        FROM new_instances p
        CROSS JOIN LATERAL flowable.process_work_rows(p.status, p.started_at, p.completed_at, 1) s
        GROUP BY 1, 2, 3;
    ELSIF TG_OP = 'UPDATE' THEN
        INSERT INTO flowable.process_work_changes (hour, workflow_id, duration_bucket, started, completed,
                                                   completion_seconds)
        SELECT s.hour, p.workflow_id, s.duration_bucket, sum(s.started), sum(s.completed), sum(s.completion_seconds)
        FROM (SELECT n.workflow_id, n.status, n.started_at, n.completed_at, 1 AS sign FROM new_instances n
              UNION ALL
              SELECT o.workflow_id, o.status, o.started_at, o.completed_at, -1 FROM old_instances o) p
        CROSS JOIN LATERAL flowable.process_work_rows(p.status, p.started_at, p.completed_at, p.sign) s
        GROUP BY 1, 2, 3
        HAVING sum(s.started) <> 0 OR sum(s.completed) <> 0 OR sum(s.completion_seconds) <> 0;

        -- A migrated instance (BRIDGE_MIGRATE) changes its workflow_id: its completed tasks' contributions move
        -- from the old version to the new, as a recount joining the instance would now count them.
        INSERT INTO flowable.task_work_changes (hour, queue_name, workflow_id, activity_id, activity_name, user_id,
                                                completed, completed_late, completion_seconds, handling_seconds)
        SELECT s.hour, t.queue_name, m.workflow_id, t.task_definition_key, t.task_name, t.completed_by,
               sum(s.completed), sum(s.completed_late), sum(s.completion_seconds), sum(s.handling_seconds)
        FROM (SELECT n.process_instance_id, n.workflow_id AS new_workflow_id, o.workflow_id AS old_workflow_id
              FROM new_instances n JOIN old_instances o USING (process_instance_id)
              WHERE n.workflow_id <> o.workflow_id) moved
        CROSS JOIN LATERAL (VALUES (moved.new_workflow_id, 1), (moved.old_workflow_id, -1)) m (workflow_id, sign)
        JOIN flowable.workflow_tasks t ON t.process_instance_id = moved.process_instance_id
                                      AND t.status = 'COMPLETED'
        CROSS JOIN LATERAL flowable.task_work_row(t.status, t.created_at, t.claimed_at, t.completed_at,
                                                  t.due_date, m.sign) s
        GROUP BY 1, 2, 3, 4, 5, 6;
    ELSE
        INSERT INTO flowable.process_work_changes (hour, workflow_id, duration_bucket, started, completed,
                                                   completion_seconds)
        SELECT s.hour, p.workflow_id, s.duration_bucket, sum(s.started), sum(s.completed), sum(s.completion_seconds)
        FROM old_instances p
        CROSS JOIN LATERAL flowable.process_work_rows(p.status, p.started_at, p.completed_at, -1) s
        GROUP BY 1, 2, 3;
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER trg_workflow_tasks_work_insert AFTER INSERT ON flowable.workflow_tasks
    REFERENCING NEW TABLE AS new_tasks FOR EACH STATEMENT EXECUTE FUNCTION flowable.track_task_work();
CREATE TRIGGER trg_workflow_tasks_work_update AFTER UPDATE ON flowable.workflow_tasks
    REFERENCING OLD TABLE AS old_tasks NEW TABLE AS new_tasks
    FOR EACH STATEMENT EXECUTE FUNCTION flowable.track_task_work();
CREATE TRIGGER trg_workflow_tasks_work_delete AFTER DELETE ON flowable.workflow_tasks
    REFERENCING OLD TABLE AS old_tasks FOR EACH STATEMENT
    WHEN (current_setting('bridge.archiving', true) IS DISTINCT FROM 'on')
    EXECUTE FUNCTION flowable.track_task_work();
CREATE TRIGGER trg_process_instances_work_insert AFTER INSERT ON flowable.process_instances
    REFERENCING NEW TABLE AS new_instances FOR EACH STATEMENT EXECUTE FUNCTION flowable.track_process_work();
CREATE TRIGGER trg_process_instances_work_update AFTER UPDATE ON flowable.process_instances
    REFERENCING OLD TABLE AS old_instances NEW TABLE AS new_instances
    FOR EACH STATEMENT EXECUTE FUNCTION flowable.track_process_work();
CREATE TRIGGER trg_process_instances_work_delete AFTER DELETE ON flowable.process_instances
    REFERENCING OLD TABLE AS old_instances FOR EACH STATEMENT
    WHEN (current_setting('bridge.archiving', true) IS DISTINCT FROM 'on')
    EXECUTE FUNCTION flowable.track_process_work();

-- Both logs into both grains; returns the summary rows changed, 0 at once while another caller folds.
CREATE FUNCTION flowable.fold_work_stats() RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    tasks integer;
    processes integer;
BEGIN
    IF NOT pg_try_advisory_xact_lock(hashtext('flowable.fold_work_stats')) THEN
        RETURN 0;
    END IF;
    WITH taken AS (
        DELETE FROM flowable.task_work_changes
        RETURNING hour, queue_name, workflow_id, activity_id, activity_name, user_id, completed, completed_late,
                  completion_seconds, handling_seconds
    ), grains AS (
        SELECT 'hour' AS grain, hour AS period, * FROM taken
        UNION ALL
        SELECT 'day', date_bin('1 day', hour, timestamptz 'epoch'), * FROM taken
    )
    INSERT INTO flowable.task_work_stats AS w (grain, period, queue_name, workflow_id, activity_id, activity_name,
                                               user_id, completed, completed_late, completion_seconds,
                                               handling_seconds)
    SELECT grain, period, queue_name, workflow_id, activity_id, activity_name, user_id, sum(completed),
           sum(completed_late), sum(completion_seconds), sum(handling_seconds)
    FROM grains GROUP BY 1, 2, 3, 4, 5, 6, 7
    ON CONFLICT (grain, period, queue_name, workflow_id, activity_id, activity_name, user_id) DO UPDATE
    SET completed          = w.completed + excluded.completed,
        completed_late     = w.completed_late + excluded.completed_late,
        completion_seconds = w.completion_seconds + excluded.completion_seconds,
        handling_seconds   = w.handling_seconds + excluded.handling_seconds;
    GET DIAGNOSTICS tasks = ROW_COUNT;
    WITH taken AS (
        DELETE FROM flowable.process_work_changes
        RETURNING hour, workflow_id, duration_bucket, started, completed, completion_seconds
    ), grains AS (
        SELECT 'hour' AS grain, hour AS period, * FROM taken
        UNION ALL
        SELECT 'day', date_bin('1 day', hour, timestamptz 'epoch'), * FROM taken
    )
    INSERT INTO flowable.process_work_stats AS w (grain, period, workflow_id, duration_bucket, started, completed,
                                                  completion_seconds)
    SELECT grain, period, workflow_id, duration_bucket, sum(started), sum(completed), sum(completion_seconds)
    FROM grains GROUP BY 1, 2, 3, 4
    ON CONFLICT (grain, period, workflow_id, duration_bucket) DO UPDATE
    SET started            = w.started + excluded.started,
        completed          = w.completed + excluded.completed,
        completion_seconds = w.completion_seconds + excluded.completion_seconds;
    GET DIAGNOSTICS processes = ROW_COUNT;
    RETURN tasks + processes;
END;
$$;

-- The summaries over a range, folded and not yet folded, one row per summary row (the reports group them
-- as they need). Plain SQL functions: the planner inlines them into a report's query and pushes its filters
-- into each part.
CREATE FUNCTION flowable.task_work_between(p_since timestamptz, p_until timestamptz)
RETURNS TABLE (queue_name text, workflow_id bigint, activity_id text, activity_name text, user_id text,
               completed bigint, completed_late bigint, completion_seconds numeric, handling_seconds numeric)
LANGUAGE sql STABLE AS $$
    SELECT w.queue_name, w.workflow_id, w.activity_id, w.activity_name, w.user_id, w.completed, w.completed_late,
           w.completion_seconds, w.handling_seconds
    FROM flowable.task_work_stats w
    WHERE w.grain = 'day' AND w.period >= (flowable.summary_span(p_since, p_until)).day_from
      AND w.period < (flowable.summary_span(p_since, p_until)).day_to
    UNION ALL
    SELECT w.queue_name, w.workflow_id, w.activity_id, w.activity_name, w.user_id, w.completed, w.completed_late,
           w.completion_seconds, w.handling_seconds
    FROM flowable.task_work_stats w
    WHERE w.grain = 'hour' AND w.period >= (flowable.summary_span(p_since, p_until)).hour_from
      AND w.period < (flowable.summary_span(p_since, p_until)).day_from
    UNION ALL
    SELECT w.queue_name, w.workflow_id, w.activity_id, w.activity_name, w.user_id, w.completed, w.completed_late,
           w.completion_seconds, w.handling_seconds
    FROM flowable.task_work_stats w
    WHERE w.grain = 'hour' AND w.period >= (flowable.summary_span(p_since, p_until)).day_to
      AND w.period < (flowable.summary_span(p_since, p_until)).hour_to
    UNION ALL
    SELECT c.queue_name, c.workflow_id, c.activity_id, c.activity_name, c.user_id, c.completed, c.completed_late,
           c.completion_seconds, c.handling_seconds
    FROM flowable.task_work_changes c
    WHERE c.hour >= (flowable.summary_span(p_since, p_until)).hour_from
      AND c.hour < (flowable.summary_span(p_since, p_until)).hour_to
$$;

CREATE FUNCTION flowable.process_work_between(p_since timestamptz, p_until timestamptz)
RETURNS TABLE (workflow_id bigint, duration_bucket integer, started bigint, completed bigint,
               completion_seconds numeric)
LANGUAGE sql STABLE AS $$
    SELECT w.workflow_id, w.duration_bucket, w.started, w.completed, w.completion_seconds
    FROM flowable.process_work_stats w
    WHERE w.grain = 'day' AND w.period >= (flowable.summary_span(p_since, p_until)).day_from
      AND w.period < (flowable.summary_span(p_since, p_until)).day_to
    UNION ALL
    SELECT w.workflow_id, w.duration_bucket, w.started, w.completed, w.completion_seconds
    FROM flowable.process_work_stats w
    WHERE w.grain = 'hour' AND w.period >= (flowable.summary_span(p_since, p_until)).hour_from
      AND w.period < (flowable.summary_span(p_since, p_until)).day_from
    UNION ALL
    SELECT w.workflow_id, w.duration_bucket, w.started, w.completed, w.completion_seconds
    FROM flowable.process_work_stats w
    WHERE w.grain = 'hour' AND w.period >= (flowable.summary_span(p_since, p_until)).day_to
      AND w.period < (flowable.summary_span(p_since, p_until)).hour_to
    UNION ALL
    SELECT c.workflow_id, c.duration_bucket, c.started, c.completed, c.completion_seconds
    FROM flowable.process_work_changes c
    WHERE c.hour >= (flowable.summary_span(p_since, p_until)).hour_from
      AND c.hour < (flowable.summary_span(p_since, p_until)).hour_to
$$;

-- The work already mirrored, hot and archived, into the logs and folded into both grains.
INSERT INTO flowable.task_work_changes (hour, queue_name, workflow_id, activity_id, activity_name, user_id,
                                        completed, completed_late, completion_seconds, handling_seconds)
SELECT s.hour, t.queue_name, p.workflow_id, t.task_definition_key, t.task_name, t.completed_by,
       sum(s.completed), sum(s.completed_late), sum(s.completion_seconds), sum(s.handling_seconds)
FROM archive.all_workflow_tasks t
JOIN archive.all_process_instances p ON p.process_instance_id = t.process_instance_id
CROSS JOIN LATERAL flowable.task_work_row(t.status, t.created_at, t.claimed_at, t.completed_at, t.due_date, 1) s
WHERE t.status = 'COMPLETED'
GROUP BY 1, 2, 3, 4, 5, 6;

INSERT INTO flowable.process_work_changes (hour, workflow_id, duration_bucket, started, completed,
                                           completion_seconds)
SELECT s.hour, p.workflow_id, s.duration_bucket, sum(s.started), sum(s.completed), sum(s.completion_seconds)
FROM archive.all_process_instances p
CROSS JOIN LATERAL flowable.process_work_rows(p.status, p.started_at, p.completed_at, 1) s
GROUP BY 1, 2, 3;

SELECT flowable.fold_work_stats();
-- The fold deleted every row of the logs; truncated, they start without the dead ones (a report reads them).
TRUNCATE flowable.task_work_changes, flowable.process_work_changes;
