-- 0029: the activities report's live part from a summary. It counted every live task of the chosen versions
-- joined to its instance (a task names its instance, the instance its version): at 10,000,000 tasks, 300,000
-- of them live, that took 563 ms (bench/archive.py); the target is 200 ms.
--
-- flowable.activity_live_load: live tasks (OPEN, CLAIMED, DELEGATED, ESCALATED) per process version, activity
-- (key and name), state, whether escalated, and the hour they are due in (NULL: no due date). Kept as the
-- other summaries are (0018, 0028): statement triggers log signed changes, flowable.fold_activity_live_load()
-- adds them in from the apply path's fold and drops rows that reach zero, flowable.v_activity_live_load adds
-- what is not folded yet. A migrated instance's live tasks move with its workflow_id. The reconciler's full
-- sweep recounts it (flowable.recount_activity_live_load), as it recounts queue load (0013).
--
-- Breached and at risk are against now(): the summary answers the whole hours, the live tasks due in the two
-- hours that now and now + at_risk_minutes fall in are counted from their rows (the attention index, 0018).
-- The oldest live task of an activity is the first in idx_workflow_tasks_live_activity's order whose instance
-- is of the version asked for.
--
-- Filled from the live tasks already there, under a lock, as 0028 is.

LOCK TABLE flowable.workflow_tasks, flowable.process_instances IN SHARE ROW EXCLUSIVE MODE;

CREATE TABLE flowable.activity_live_load (
    workflow_id   BIGINT       NOT NULL,
    activity_id   VARCHAR(255) NOT NULL,
    activity_name VARCHAR(500) NOT NULL,
    status        VARCHAR(50)  NOT NULL,
    escalated     BOOLEAN      NOT NULL,
    due_hour      TIMESTAMPTZ,
    tasks         BIGINT       NOT NULL
);
CREATE UNIQUE INDEX activity_live_load_key ON flowable.activity_live_load
    (workflow_id, activity_id, activity_name, status, escalated, due_hour) NULLS NOT DISTINCT;

CREATE TABLE flowable.activity_live_changes (
    change_id     BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    workflow_id   BIGINT       NOT NULL,
    activity_id   VARCHAR(255) NOT NULL,
    activity_name VARCHAR(500) NOT NULL,
    status        VARCHAR(50)  NOT NULL,
    escalated     BOOLEAN      NOT NULL,
    due_hour      TIMESTAMPTZ,
    tasks         BIGINT       NOT NULL
);

-- Three branches: a statement trigger's query may name only the transition tables its event has.
CREATE FUNCTION flowable.track_activity_live_load() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO flowable.activity_live_changes (workflow_id, activity_id, activity_name, status, escalated,
                                                    due_hour, tasks)
        SELECT p.workflow_id, t.task_definition_key, t.task_name, t.status, t.escalation_level > 0,
               date_bin('1 hour', t.due_date, timestamptz 'epoch'), count(*)
        FROM new_tasks t
        JOIN flowable.process_instances p ON p.process_instance_id = t.process_instance_id
        WHERE t.status IN ('OPEN', 'CLAIMED', 'DELEGATED', 'ESCALATED')
        GROUP BY 1, 2, 3, 4, 5, 6;
    ELSIF TG_OP = 'UPDATE' THEN
        INSERT INTO flowable.activity_live_changes (workflow_id, activity_id, activity_name, status, escalated,
                                                    due_hour, tasks)
        SELECT p.workflow_id, t.task_definition_key, t.task_name, t.status, t.escalation_level > 0,
               date_bin('1 hour', t.due_date, timestamptz 'epoch'), sum(t.sign)
        FROM (SELECT n.*, 1 AS sign FROM new_tasks n WHERE n.status IN ('OPEN', 'CLAIMED', 'DELEGATED', 'ESCALATED')
              UNION ALL
              SELECT o.*, -1 FROM old_tasks o WHERE o.status IN ('OPEN', 'CLAIMED', 'DELEGATED', 'ESCALATED')) t
        JOIN flowable.process_instances p ON p.process_instance_id = t.process_instance_id
        GROUP BY 1, 2, 3, 4, 5, 6
        HAVING sum(t.sign) <> 0;
    ELSE
        INSERT INTO flowable.activity_live_changes (workflow_id, activity_id, activity_name, status, escalated,
                                                    due_hour, tasks)
        SELECT p.workflow_id, t.task_definition_key, t.task_name, t.status, t.escalation_level > 0,
               date_bin('1 hour', t.due_date, timestamptz 'epoch'), -count(*)
        FROM old_tasks t
        JOIN flowable.process_instances p ON p.process_instance_id = t.process_instance_id
        WHERE t.status IN ('OPEN', 'CLAIMED', 'DELEGATED', 'ESCALATED')
        GROUP BY 1, 2, 3, 4, 5, 6;
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER trg_workflow_tasks_activity_live_insert AFTER INSERT ON flowable.workflow_tasks
    REFERENCING NEW TABLE AS new_tasks FOR EACH STATEMENT EXECUTE FUNCTION flowable.track_activity_live_load();
CREATE TRIGGER trg_workflow_tasks_activity_live_update AFTER UPDATE ON flowable.workflow_tasks
    REFERENCING OLD TABLE AS old_tasks NEW TABLE AS new_tasks
    FOR EACH STATEMENT EXECUTE FUNCTION flowable.track_activity_live_load();
CREATE TRIGGER trg_workflow_tasks_activity_live_delete AFTER DELETE ON flowable.workflow_tasks
    REFERENCING OLD TABLE AS old_tasks FOR EACH STATEMENT EXECUTE FUNCTION flowable.track_activity_live_load();

-- A migrated instance's live tasks move to its new version.
CREATE FUNCTION flowable.move_activity_live_load() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO flowable.activity_live_changes (workflow_id, activity_id, activity_name, status, escalated, due_hour,
                                                tasks)
    SELECT m.workflow_id, t.task_definition_key, t.task_name, t.status, t.escalation_level > 0,
           date_bin('1 hour', t.due_date, timestamptz 'epoch'), sum(m.sign)
    FROM (SELECT n.process_instance_id, n.workflow_id AS new_workflow_id, o.workflow_id AS old_workflow_id
          FROM new_instances n JOIN old_instances o USING (process_instance_id)
          WHERE n.workflow_id <> o.workflow_id) moved
    CROSS JOIN LATERAL (VALUES (moved.new_workflow_id, 1), (moved.old_workflow_id, -1)) m (workflow_id, sign)
    JOIN flowable.workflow_tasks t ON t.process_instance_id = moved.process_instance_id
                                  AND t.status IN ('OPEN', 'CLAIMED', 'DELEGATED', 'ESCALATED')
    GROUP BY 1, 2, 3, 4, 5, 6;
    RETURN NULL;
END;
$$;

CREATE TRIGGER trg_process_instances_activity_live_update AFTER UPDATE ON flowable.process_instances
    REFERENCING OLD TABLE AS old_instances NEW TABLE AS new_instances
    FOR EACH STATEMENT EXECUTE FUNCTION flowable.move_activity_live_load();

-- Returns the summary rows changed; 0 at once while another caller folds.
CREATE FUNCTION flowable.fold_activity_live_load() RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    changed integer;
BEGIN
    IF NOT pg_try_advisory_xact_lock(hashtext('flowable.fold_activity_live_load')) THEN
        RETURN 0;
    END IF;
    WITH taken AS (
        DELETE FROM flowable.activity_live_changes
        RETURNING workflow_id, activity_id, activity_name, status, escalated, due_hour, tasks
    )
    INSERT INTO flowable.activity_live_load AS l (workflow_id, activity_id, activity_name, status, escalated, due_hour,
                                                  tasks)
    SELECT workflow_id, activity_id, activity_name, status, escalated, due_hour, sum(tasks)
    FROM taken GROUP BY 1, 2, 3, 4, 5, 6
    ON CONFLICT (workflow_id, activity_id, activity_name, status, escalated, due_hour) DO UPDATE
    SET tasks = l.tasks + excluded.tasks;
    GET DIAGNOSTICS changed = ROW_COUNT;
    -- due hours pass and tasks end: rows that reached zero go, so the summary stays as small as the live work
    DELETE FROM flowable.activity_live_load WHERE tasks = 0;
    RETURN changed;
END;
$$;

-- The live tasks counted again (what the summary should hold), and the summary set to it when it differs.
CREATE FUNCTION flowable.activity_live_recount()
RETURNS TABLE (workflow_id bigint, activity_id text, activity_name text, status text, escalated boolean,
               due_hour timestamptz, tasks bigint)
LANGUAGE sql STABLE AS $$
    SELECT p.workflow_id, t.task_definition_key, t.task_name, t.status, t.escalation_level > 0,
           date_bin('1 hour', t.due_date, timestamptz 'epoch'), count(*)
    FROM flowable.workflow_tasks t
    JOIN flowable.process_instances p ON p.process_instance_id = t.process_instance_id
    WHERE t.status IN ('OPEN', 'CLAIMED', 'DELEGATED', 'ESCALATED')
    GROUP BY 1, 2, 3, 4, 5, 6
$$;

-- Returns how many summary rows were wrong (0: nothing changed).
CREATE FUNCTION flowable.recount_activity_live_load() RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    wrong integer;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('flowable.fold_activity_live_load'));
    PERFORM flowable.fold_activity_live_load();
    SELECT count(*) INTO wrong FROM (
        (SELECT * FROM flowable.activity_live_recount()
         EXCEPT ALL
         SELECT workflow_id, activity_id, activity_name, status, escalated, due_hour, tasks
         FROM flowable.activity_live_load)
        UNION ALL
        (SELECT workflow_id, activity_id, activity_name, status, escalated, due_hour, tasks
         FROM flowable.activity_live_load
         EXCEPT ALL
         SELECT * FROM flowable.activity_live_recount())) d;
    IF wrong > 0 THEN
        DELETE FROM flowable.activity_live_load;
        INSERT INTO flowable.activity_live_load (workflow_id, activity_id, activity_name, status, escalated,
                                                 due_hour, tasks)
        SELECT * FROM flowable.activity_live_recount();
    END IF;
    RETURN wrong;
END;
$$;

CREATE VIEW flowable.v_activity_live_load AS
SELECT workflow_id, activity_id, activity_name, status, escalated, due_hour, tasks FROM flowable.activity_live_load
UNION ALL
SELECT workflow_id, activity_id, activity_name, status, escalated, due_hour, tasks FROM flowable.activity_live_changes;

CREATE INDEX idx_workflow_tasks_live_activity
    ON flowable.workflow_tasks (task_definition_key, created_at) INCLUDE (process_instance_id)
    WHERE status IN ('OPEN', 'CLAIMED', 'DELEGATED', 'ESCALATED');

INSERT INTO flowable.activity_live_load (workflow_id, activity_id, activity_name, status, escalated, due_hour, tasks)
SELECT * FROM flowable.activity_live_recount();
