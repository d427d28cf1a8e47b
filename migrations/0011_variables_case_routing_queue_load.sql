-- 0011: what the mirror needs for variables, case routing and queue load (bridge/mirror/apply.py).
--
--   * workflow_variables.changed_at: the engine's time of the change a row holds. Variable events can
--     arrive late (a retried push, the reconciler); an event older than changed_at never overwrites the
--     row. updated_at stays the row's own write time (touch_updated_at).
--   * workflow_queues.current_load is kept by triggers on workflow_tasks: the number of the queue's tasks
--     that are open (OPEN, CLAIMED, DELEGATED, ESCALATED). Whatever changes a task (the mirror, the work
--     API, the reconciler, an operator's UPDATE) moves the count in the same transaction, in one place.
--     Statement-level triggers with transition tables: one UPDATE per queue touched per statement, the
--     queue rows locked in name order so that concurrent writers cannot deadlock on them.
--   * current_load is recounted once here for tasks mirrored before this migration.
--   * onecms.case_workflow_mapping gets a unique process_instance_id lookup it already had as an index
--     (idx_case_workflow_process); nothing to add.

ALTER TABLE flowable.workflow_variables ADD COLUMN changed_at TIMESTAMPTZ;

CREATE FUNCTION flowable.add_queue_load(deltas jsonb) RETURNS void
LANGUAGE sql AS $$
    WITH delta AS (
        SELECT key AS queue_name, CAST(value AS int) AS delta FROM jsonb_each_text(deltas) WHERE value <> '0'
    ), locked AS (
        SELECT q.queue_name, d.delta FROM flowable.workflow_queues q JOIN delta d USING (queue_name)
        ORDER BY q.queue_name FOR UPDATE OF q
    )
    UPDATE flowable.workflow_queues q SET current_load = greatest(q.current_load + locked.delta, 0)
    FROM locked WHERE q.queue_name = locked.queue_name;
$$;

-- Transition tables exist only for the trigger's own event, so each event has its branch.
CREATE FUNCTION flowable.track_queue_load() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    deltas jsonb;
BEGIN
    IF TG_OP = 'INSERT' THEN
        SELECT jsonb_object_agg(queue_name, n) INTO deltas FROM (
            SELECT queue_name, count(*) AS n FROM new_tasks
            WHERE status IN ('OPEN', 'CLAIMED', 'DELEGATED', 'ESCALATED') GROUP BY queue_name) x;
    ELSIF TG_OP = 'UPDATE' THEN
        SELECT jsonb_object_agg(queue_name, n) INTO deltas FROM (
            SELECT queue_name, sum(d) AS n FROM (
                SELECT queue_name, 1 AS d FROM new_tasks
                WHERE status IN ('OPEN', 'CLAIMED', 'DELEGATED', 'ESCALATED')
                UNION ALL
                SELECT queue_name, -1 FROM old_tasks
                WHERE status IN ('OPEN', 'CLAIMED', 'DELEGATED', 'ESCALATED')) moves
            GROUP BY queue_name) x;
    ELSE
        SELECT jsonb_object_agg(queue_name, -n) INTO deltas FROM (
            SELECT queue_name, count(*) AS n FROM old_tasks
            WHERE status IN ('OPEN', 'CLAIMED', 'DELEGATED', 'ESCALATED') GROUP BY queue_name) x;
    END IF;
    IF deltas IS NOT NULL THEN
        PERFORM flowable.add_queue_load(deltas);
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER trg_workflow_tasks_load_insert AFTER INSERT ON flowable.workflow_tasks
    REFERENCING NEW TABLE AS new_tasks FOR EACH STATEMENT EXECUTE FUNCTION flowable.track_queue_load();
CREATE TRIGGER trg_workflow_tasks_load_update AFTER UPDATE ON flowable.workflow_tasks
    REFERENCING OLD TABLE AS old_tasks NEW TABLE AS new_tasks
    FOR EACH STATEMENT EXECUTE FUNCTION flowable.track_queue_load();
CREATE TRIGGER trg_workflow_tasks_load_delete AFTER DELETE ON flowable.workflow_tasks
    REFERENCING OLD TABLE AS old_tasks FOR EACH STATEMENT EXECUTE FUNCTION flowable.track_queue_load();

UPDATE flowable.workflow_queues q
SET current_load = (SELECT count(*) FROM flowable.workflow_tasks t
                    WHERE t.queue_name = q.queue_name
                      AND t.status IN ('OPEN', 'CLAIMED', 'DELEGATED', 'ESCALATED'));
