-- 0025: reports over archived ranges. Archiving (0024) moves a completed instance past its retention, with its
-- tasks and history, out of the hot tables into schema `archive`. The reports built on the hourly summaries
-- (flowable.v_task_hourly_stats: queues' completions, throughput, capacity's arrivals and completions) kept
-- their figures, since archiving does not take archived tasks out of them; those that count ended work in the
-- range from the rows themselves (escalations made, tasks completed per user, instances started and completed
-- and their durations, tasks completed per activity, capacity's cancellations) lost it. New:
--
-- 1. Views over each hot table and its archive, UNION ALL: archive.all_process_instances,
--    archive.all_workflow_tasks, archive.all_task_history. The range-based parts of those reports
--    (bridge/db/queries/reports.sql) read them, so a report gives the same figures before and after archiving;
--    the live parts (open tasks now, their age, the oldest, active instances) keep reading the hot tables:
--    archived work is always ended. A row is in exactly one of the two tables in any snapshot (archiving moves
--    it, and a whole month of history, inside one transaction), so nothing counts twice. The views are plain
--    UNION ALL of columns of the same types (tests/test_archive.py checks the archive has the hot tables'):
--    the planner flattens them into one Append and pushes each report's predicates into every branch, so each
--    branch uses its own index.
--    They name just the columns the reports read, not *: a view pins the type of every column it names (ALTER
--    COLUMN ... TYPE fails while a view uses the column), and the other columns stay free to change. A report
--    that needs another column adds it here with CREATE OR REPLACE VIEW (columns may be appended); changing the
--    type of a column named here means dropping the view first.
--    The views read as their owner (as the reports do, 0018): bridge_reader gets no grant on them, since they
--    would bypass the row-level security of the tables underneath.
-- 2. Indexes on the archive for those ranges (0024 gave the archive only what archiving and a task's own page
--    need): tasks by completion time (completed and cancelled: nearly every archived task is one of the two),
--    instances by start and by completion, and escalation history by time, as the hot tables have (0018).
--    A history month that moves to the archive whole brings its own copy of that last one, which ATTACH
--    takes as its partition of the new index.

CREATE VIEW archive.all_process_instances AS
    SELECT process_instance_id, workflow_id, status, started_at, completed_at
    FROM flowable.process_instances
    UNION ALL
    SELECT process_instance_id, workflow_id, status, started_at, completed_at
    FROM archive.process_instances;

CREATE VIEW archive.all_workflow_tasks AS
    SELECT task_id, process_instance_id, task_definition_key, task_name, queue_name, status, created_at, claimed_at,
           completed_at, completed_by, due_date
    FROM flowable.workflow_tasks
    UNION ALL
    SELECT task_id, process_instance_id, task_definition_key, task_name, queue_name, status, created_at, claimed_at,
           completed_at, completed_by, due_date
    FROM archive.workflow_tasks;

CREATE VIEW archive.all_task_history AS
    SELECT history_id, task_id, process_instance_id, action_type, action_by, action_at, action_data
    FROM flowable.task_history
    UNION ALL
    SELECT history_id, task_id, process_instance_id, action_type, action_by, action_at, action_data
    FROM archive.task_history;

CREATE INDEX idx_archive_tasks_completed_at ON archive.workflow_tasks (completed_at);
CREATE INDEX idx_archive_instances_started ON archive.process_instances (started_at);
CREATE INDEX idx_archive_instances_completed_at ON archive.process_instances (completed_at);
CREATE INDEX idx_archive_history_escalations ON archive.task_history (action_at) WHERE action_type = 'ESCALATE';
