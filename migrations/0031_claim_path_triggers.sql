-- 0031: a task update pays only for the summaries it changes.
--
-- Four summaries follow workflow_tasks updates: queue load (0013), the hourly stats (0018), completed work
-- (0028) and live work per activity (0029). Each was a statement trigger that read the update's transition
-- tables and, for most updates, found nothing to log: a claim (OPEN -> CLAIMED in the same queue) changes
-- neither the queue's live count, nor the hourly created/completed figures, nor completed work. The four
-- together took about a fifth of claim_next_task's rate at 16 clients (bench/archive.py, triggers disabled
-- one by one), and the three that log nothing for a claim ran their whole query anyway.
--
-- Changed: the UPDATE triggers are row triggers whose WHEN names exactly the values their summary reads, so
-- PostgreSQL skips them without calling a function when those values did not change (a claim now runs one of
-- the four: live work per activity, whose status key moved). Each row function logs the old row's
-- contribution with -1 and the new one's with +1, as the statement functions did for a whole statement.
-- INSERT and DELETE stay statement triggers (an import inserts thousands of rows in one statement; archiving's
-- deletes skip them); the statement functions' UPDATE branches are no longer called.
--
-- Also: the live-work DELETE trigger skips archiving's deletes (bridge.archiving = 'on'), as the other
-- summaries' do (0024, 0028): archiving moves only ended instances, whose tasks are not live, and it ran a
-- query per batch to find that out. Should a stale mirror row be live, the reconciler's sweep recounts
-- (flowable.recount_activity_live_load, flowable.recount_queue_load).

CREATE FUNCTION flowable.track_queue_load_row() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO flowable.queue_load_changes (queue_name, delta)
    SELECT q, sum(d) FROM (VALUES (OLD.queue_name, -1), (NEW.queue_name, 1)) c (q, d)
    WHERE (d < 0 AND OLD.status IN ('OPEN', 'CLAIMED', 'DELEGATED', 'ESCALATED'))
       OR (d > 0 AND NEW.status IN ('OPEN', 'CLAIMED', 'DELEGATED', 'ESCALATED'))
    GROUP BY q HAVING sum(d) <> 0;
    RETURN NULL;
END;
$$;

CREATE FUNCTION flowable.track_task_stats_row() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO flowable.task_stat_changes (hour, queue_name, created, completed, completed_late,
                                            completion_seconds, cancelled)
    SELECT s.hour, s.queue_name, sum(s.created), sum(s.completed), sum(s.completed_late),
           sum(s.completion_seconds), sum(s.cancelled)
    FROM (SELECT * FROM flowable.task_stat_rows(OLD.queue_name, OLD.status, OLD.created_at, OLD.completed_at,
                                                OLD.due_date, -1)
          UNION ALL
          SELECT * FROM flowable.task_stat_rows(NEW.queue_name, NEW.status, NEW.created_at, NEW.completed_at,
                                                NEW.due_date, 1)) s
    GROUP BY s.hour, s.queue_name
    HAVING sum(s.created) <> 0 OR sum(s.completed) <> 0 OR sum(s.completed_late) <> 0
        OR sum(s.completion_seconds) <> 0 OR sum(s.cancelled) <> 0;
    RETURN NULL;
END;
$$;

CREATE FUNCTION flowable.track_task_work_row() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO flowable.task_work_changes (hour, queue_name, workflow_id, activity_id, activity_name, user_id,
                                            completed, completed_late, completion_seconds, handling_seconds)
    SELECT s.hour, t.queue_name, p.workflow_id, t.task_definition_key, t.task_name, t.completed_by,
           sum(s.completed), sum(s.completed_late), sum(s.completion_seconds), sum(s.handling_seconds)
    FROM (SELECT OLD.*, -1 AS sign UNION ALL SELECT NEW.*, 1) t
    JOIN flowable.process_instances p ON p.process_instance_id = t.process_instance_id
    CROSS JOIN LATERAL flowable.task_work_row(t.status, t.created_at, t.claimed_at, t.completed_at, t.due_date,
                                              t.sign) s
    GROUP BY 1, 2, 3, 4, 5, 6
    HAVING sum(s.completed) <> 0 OR sum(s.completed_late) <> 0 OR sum(s.completion_seconds) <> 0
        OR sum(s.handling_seconds) <> 0;
    RETURN NULL;
END;
$$;

CREATE FUNCTION flowable.track_activity_live_load_row() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO flowable.activity_live_changes (workflow_id, activity_id, activity_name, status, escalated,
                                                due_hour, tasks)
    SELECT p.workflow_id, t.task_definition_key, t.task_name, t.status, t.escalation_level > 0,
           date_bin('1 hour', t.due_date, timestamptz 'epoch'), sum(t.sign)
    FROM (SELECT OLD.*, -1 AS sign UNION ALL SELECT NEW.*, 1) t
    JOIN flowable.process_instances p ON p.process_instance_id = t.process_instance_id
    WHERE t.status IN ('OPEN', 'CLAIMED', 'DELEGATED', 'ESCALATED')
    GROUP BY 1, 2, 3, 4, 5, 6
    HAVING sum(t.sign) <> 0;
    RETURN NULL;
END;
$$;

DROP TRIGGER trg_workflow_tasks_load_update ON flowable.workflow_tasks;
DROP TRIGGER trg_workflow_tasks_stats_update ON flowable.workflow_tasks;
DROP TRIGGER trg_workflow_tasks_work_update ON flowable.workflow_tasks;
DROP TRIGGER trg_workflow_tasks_activity_live_update ON flowable.workflow_tasks;
DROP TRIGGER trg_workflow_tasks_activity_live_delete ON flowable.workflow_tasks;

-- live or not, and the queue: what queue load counts
CREATE TRIGGER trg_workflow_tasks_load_update AFTER UPDATE ON flowable.workflow_tasks FOR EACH ROW
    WHEN ((OLD.status IN ('OPEN', 'CLAIMED', 'DELEGATED', 'ESCALATED'), OLD.queue_name)
          IS DISTINCT FROM (NEW.status IN ('OPEN', 'CLAIMED', 'DELEGATED', 'ESCALATED'), NEW.queue_name))
    EXECUTE FUNCTION flowable.track_queue_load_row();

-- task_stat_rows' arguments, its status only as completed, cancelled or neither
CREATE TRIGGER trg_workflow_tasks_stats_update AFTER UPDATE ON flowable.workflow_tasks FOR EACH ROW
    WHEN ((OLD.queue_name, OLD.status = 'COMPLETED', OLD.status = 'CANCELLED', OLD.created_at, OLD.completed_at,
           OLD.due_date)
          IS DISTINCT FROM (NEW.queue_name, NEW.status = 'COMPLETED', NEW.status = 'CANCELLED', NEW.created_at,
                            NEW.completed_at, NEW.due_date))
    EXECUTE FUNCTION flowable.track_task_stats_row();

-- completed work only: a completed row before or after, and a value its summary reads changed
CREATE TRIGGER trg_workflow_tasks_work_update AFTER UPDATE ON flowable.workflow_tasks FOR EACH ROW
    WHEN ((OLD.status = 'COMPLETED' OR NEW.status = 'COMPLETED')
          AND (OLD.status, OLD.queue_name, OLD.process_instance_id, OLD.task_definition_key, OLD.task_name,
               OLD.completed_by, OLD.created_at, OLD.claimed_at, OLD.completed_at, OLD.due_date)
              IS DISTINCT FROM (NEW.status, NEW.queue_name, NEW.process_instance_id, NEW.task_definition_key,
                                NEW.task_name, NEW.completed_by, NEW.created_at, NEW.claimed_at, NEW.completed_at,
                                NEW.due_date))
    EXECUTE FUNCTION flowable.track_task_work_row();

-- live work only: a live row before or after, and a value of its key changed
CREATE TRIGGER trg_workflow_tasks_activity_live_update AFTER UPDATE ON flowable.workflow_tasks FOR EACH ROW
    WHEN ((OLD.status IN ('OPEN', 'CLAIMED', 'DELEGATED', 'ESCALATED')
           OR NEW.status IN ('OPEN', 'CLAIMED', 'DELEGATED', 'ESCALATED'))
          AND (OLD.status, OLD.process_instance_id, OLD.task_definition_key, OLD.task_name,
               OLD.escalation_level > 0, OLD.due_date)
              IS DISTINCT FROM (NEW.status, NEW.process_instance_id, NEW.task_definition_key, NEW.task_name,
                                NEW.escalation_level > 0, NEW.due_date))
    EXECUTE FUNCTION flowable.track_activity_live_load_row();

CREATE TRIGGER trg_workflow_tasks_activity_live_delete AFTER DELETE ON flowable.workflow_tasks
    REFERENCING OLD TABLE AS old_tasks FOR EACH STATEMENT
    WHEN (current_setting('bridge.archiving', true) IS DISTINCT FROM 'on')
    EXECUTE FUNCTION flowable.track_activity_live_load();
