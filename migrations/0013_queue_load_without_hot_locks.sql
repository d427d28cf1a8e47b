-- 0013: queue load without locking queue rows in the write path.
--
-- 0011 moved workflow_queues.current_load inside every task write. Measured, that was wrong twice: any
-- transaction writing tasks of two queues in two statements could deadlock with another doing the same
-- in the other order (the ingest benchmark's baseline did at once), and every batch held its queues'
-- rows locked until commit, serialising all writers of a busy queue.
--
-- Now the task triggers only append the change to flowable.queue_load_changes (insert-only: no row is
-- shared, nothing to wait for), and flowable.fold_queue_load() adds the pending changes into
-- current_load, locking the queues once, in name order. The service folds every second and the
-- reconciler after each pass, so current_load trails by at most about a second; flowable.v_queue_load
-- gives the exact figure (folded + pending) to whoever needs it now. flowable.recount_queue_load() counts
-- from workflow_tasks again (self-healing; the reconciler's sweep runs it).

CREATE TABLE flowable.queue_load_changes (
    change_id  BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    queue_name VARCHAR(100) NOT NULL,
    delta      INTEGER      NOT NULL
);

CREATE OR REPLACE FUNCTION flowable.track_queue_load() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO flowable.queue_load_changes (queue_name, delta)
        SELECT queue_name, count(*) FROM new_tasks
        WHERE status IN ('OPEN', 'CLAIMED', 'DELEGATED', 'ESCALATED') GROUP BY queue_name;
    ELSIF TG_OP = 'UPDATE' THEN
        INSERT INTO flowable.queue_load_changes (queue_name, delta)
        SELECT queue_name, sum(d) FROM (
            SELECT queue_name, 1 AS d FROM new_tasks WHERE status IN ('OPEN', 'CLAIMED', 'DELEGATED', 'ESCALATED')
            UNION ALL
            SELECT queue_name, -1 FROM old_tasks WHERE status IN ('OPEN', 'CLAIMED', 'DELEGATED', 'ESCALATED')
        ) moves GROUP BY queue_name HAVING sum(d) <> 0;
    ELSE
        INSERT INTO flowable.queue_load_changes (queue_name, delta)
        SELECT queue_name, -count(*) FROM old_tasks
        WHERE status IN ('OPEN', 'CLAIMED', 'DELEGATED', 'ESCALATED') GROUP BY queue_name;
    END IF;
    RETURN NULL;
END;
$$;

DROP FUNCTION flowable.add_queue_load(jsonb);

-- Returns how many queues changed; a second caller while one folds returns 0 at once.
CREATE FUNCTION flowable.fold_queue_load() RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    changed integer;
BEGIN
    IF NOT pg_try_advisory_xact_lock(hashtext('flowable.fold_queue_load')) THEN
        RETURN 0;
    END IF;
    WITH taken AS (
        DELETE FROM flowable.queue_load_changes RETURNING queue_name, delta
    ), sums AS (
        SELECT queue_name, sum(delta) AS delta FROM taken GROUP BY queue_name HAVING sum(delta) <> 0
    ), locked AS (
        SELECT q.queue_name, s.delta FROM flowable.workflow_queues q JOIN sums s USING (queue_name)
        ORDER BY q.queue_name FOR UPDATE OF q
    )
    UPDATE flowable.workflow_queues q SET current_load = greatest(q.current_load + locked.delta, 0)
    FROM locked WHERE q.queue_name = locked.queue_name;
    GET DIAGNOSTICS changed = ROW_COUNT;
    RETURN changed;
END;
$$;

CREATE FUNCTION flowable.recount_queue_load() RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    changed integer;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('flowable.fold_queue_load'));
    DELETE FROM flowable.queue_load_changes;
    WITH counts AS (
        SELECT q.queue_name, count(t.task_id) AS n
        FROM flowable.workflow_queues q
        LEFT JOIN flowable.workflow_tasks t
               ON t.queue_name = q.queue_name AND t.status IN ('OPEN', 'CLAIMED', 'DELEGATED', 'ESCALATED')
        GROUP BY q.queue_name
    ), locked AS (
        SELECT q.queue_name, c.n FROM flowable.workflow_queues q JOIN counts c USING (queue_name)
        WHERE q.current_load <> c.n ORDER BY q.queue_name FOR UPDATE OF q
    )
    UPDATE flowable.workflow_queues q SET current_load = locked.n FROM locked WHERE q.queue_name = locked.queue_name;
    GET DIAGNOSTICS changed = ROW_COUNT;
    RETURN changed;
END;
$$;

CREATE VIEW flowable.v_queue_load AS
SELECT q.queue_id, q.queue_name, q.max_capacity,
       q.current_load + coalesce(p.pending, 0) AS current_load,
       coalesce(p.pending, 0) AS pending_changes
FROM flowable.workflow_queues q
LEFT JOIN (SELECT queue_name, sum(delta) AS pending FROM flowable.queue_load_changes GROUP BY queue_name) p
       USING (queue_name);

GRANT SELECT ON flowable.v_queue_load TO bridge_reader;
