-- 0024: archiving. The seed's maintenance section asks for "daily archiving of completed tasks older than
-- the retention period"; it names no place to archive to and no way to keep history tables small. New:
--
-- 1. Schema `archive`: the same tables as the hot ones (process_instances, workflow_tasks, task_history,
--    workflow_variables, case_workflow_mapping), same columns in the same order (tests/test_archive.py checks
--    it: a column added to a hot table must be added here too), without their many indexes, triggers or
--    foreign keys. bridge/archive.py moves a completed instance past its retention (0023) with everything
--    that belongs to it, in one transaction per small batch, and records the instance in
--    archive.archived_instances with the row counts it found in the hot tables before the move; the same
--    transaction checks the archive holds exactly those counts afterwards. A crash rolls a batch back whole:
--    a rerun finds the same instances still hot.
-- 2. flowable.task_history is partitioned by month of action_at (declarative partitioning), and so is
--    archive.task_history. A month whose every row belongs to archived (or archivable) instances moves to the
--    archive by DETACH/ATTACH, not by deleting row by row; the service creates months ahead
--    (flowable.ensure_history_partition). A DEFAULT partition takes a row of a month not created yet (a
--    backfilled event from long ago): creating that month later moves such rows out of it first.
--    The primary key becomes (history_id, action_at): PostgreSQL requires the partition key in a partitioned
--    table's unique constraints. history_id keeps coming from one sequence, so it stays unique.
--    history_id was an identity column; it is now a plain default from flowable.task_history_id_seq (set
--    past the highest existing id), which works on every PostgreSQL that has declarative partitioning.
-- 3. Deleting archived tasks must not take them out of the hourly summaries (reports over archived ranges
--    answer from flowable.task_hourly_stats) nor out of queue load: the delete triggers on workflow_tasks do
--    not fire while bridge.archiving is 'on' (set for its transaction only by bridge/archive.py).

CREATE SCHEMA archive;

CREATE TABLE archive.archived_instances (
    process_instance_id       VARCHAR(64) PRIMARY KEY,
    process_key               VARCHAR(255) NOT NULL,
    case_id                   BIGINT,
    business_key              VARCHAR(255),
    completed_at              TIMESTAMPTZ NOT NULL,
    archived_at               TIMESTAMPTZ NOT NULL DEFAULT now(),
    archived_by               VARCHAR(50) NOT NULL,
    -- rows per table found in the hot tables (task_history: hot and already archived by month) before the
    -- move, e.g. {"workflow_tasks": 3, "task_history": 9, ...}; the archive held exactly these after it
    row_counts                JSONB NOT NULL,
    -- when the engine's own history of the instance was deleted (bridge/archive.py, after the move)
    engine_history_deleted_at TIMESTAMPTZ
);
CREATE INDEX idx_archived_instances_engine_pending ON archive.archived_instances (archived_at)
    WHERE engine_history_deleted_at IS NULL;
CREATE INDEX idx_archived_instances_case ON archive.archived_instances (case_id) WHERE case_id IS NOT NULL;

CREATE TABLE archive.process_instances (LIKE flowable.process_instances INCLUDING DEFAULTS INCLUDING CONSTRAINTS,
    PRIMARY KEY (process_instance_id));
CREATE TABLE archive.workflow_tasks (LIKE flowable.workflow_tasks INCLUDING DEFAULTS INCLUDING CONSTRAINTS,
    PRIMARY KEY (task_id));
CREATE INDEX idx_archive_tasks_process ON archive.workflow_tasks (process_instance_id);
CREATE TABLE archive.workflow_variables (LIKE flowable.workflow_variables INCLUDING DEFAULTS INCLUDING CONSTRAINTS,
    PRIMARY KEY (variable_id));
CREATE INDEX idx_archive_variables_process ON archive.workflow_variables (process_instance_id);
CREATE INDEX idx_archive_variables_task ON archive.workflow_variables (task_id) WHERE task_id IS NOT NULL;
CREATE TABLE archive.case_workflow_mapping (LIKE onecms.case_workflow_mapping INCLUDING DEFAULTS
    INCLUDING CONSTRAINTS, PRIMARY KEY (mapping_id));
CREATE INDEX idx_archive_mapping_case ON archive.case_workflow_mapping (case_id);
CREATE INDEX idx_archive_mapping_process ON archive.case_workflow_mapping (process_instance_id);

-- A month partition of a history table partitioned by action_at, created if missing. Rows of that month
-- waiting in the table's DEFAULT partition move into it first (attaching would fail while they are there).
-- Months are UTC calendar months, named <table>_pYYYY_MM beside their parent.
CREATE FUNCTION flowable.ensure_history_partition(parent REGCLASS, month DATE) RETURNS BOOLEAN
LANGUAGE plpgsql AS $$
DECLARE
    lower_bound TIMESTAMPTZ := date_trunc('month', month)::timestamp AT TIME ZONE 'UTC';
    upper_bound TIMESTAMPTZ := (date_trunc('month', month) + interval '1 month')::timestamp AT TIME ZONE 'UTC';
    parent_schema TEXT;
    parent_name TEXT;
    part TEXT;
    default_part REGCLASS;
BEGIN
    SELECT n.nspname, c.relname INTO parent_schema, parent_name
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = parent;
    part := format('%s_p%s', parent_name, to_char(date_trunc('month', month), 'YYYY_MM'));
    IF to_regclass(format('%I.%I', parent_schema, part)) IS NOT NULL THEN
        RETURN false;
    END IF;
    -- two sessions creating the same month: the second waits, then finds it
    PERFORM pg_advisory_xact_lock(hashtext('bridge.history_partitions'), hashtext(parent::text));
    IF to_regclass(format('%I.%I', parent_schema, part)) IS NOT NULL THEN
        RETURN false;
    END IF;
    SELECT i.inhrelid::regclass INTO default_part
    FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
    WHERE i.inhparent = parent AND pg_get_expr(c.relpartbound, c.oid) = 'DEFAULT';
    EXECUTE format('CREATE TABLE %I.%I (LIKE %s INCLUDING DEFAULTS INCLUDING CONSTRAINTS)',
                   parent_schema, part, parent);
    IF default_part IS NOT NULL THEN
        EXECUTE format('WITH moved AS (DELETE FROM %s WHERE action_at >= $1 AND action_at < $2 RETURNING *) '
                       'INSERT INTO %I.%I SELECT * FROM moved', default_part, parent_schema, part)
            USING lower_bound, upper_bound;
    END IF;
    EXECUTE format('ALTER TABLE %s ATTACH PARTITION %I.%I FOR VALUES FROM (%L) TO (%L)',
                   parent, parent_schema, part, lower_bound, upper_bound);
    RETURN true;
END;
$$;

-- task_history, partitioned: the old table's rows move into month partitions (every month they span, and
-- the next three), then it goes.
ALTER TABLE flowable.task_history RENAME TO task_history_unpartitioned;
CREATE SEQUENCE flowable.task_history_id_seq AS BIGINT;
SELECT setval('flowable.task_history_id_seq', greatest(max(history_id), 1), max(history_id) IS NOT NULL)
FROM flowable.task_history_unpartitioned;

CREATE TABLE flowable.task_history (LIKE flowable.task_history_unpartitioned INCLUDING DEFAULTS
    INCLUDING CONSTRAINTS) PARTITION BY RANGE (action_at);
ALTER TABLE flowable.task_history ALTER COLUMN history_id SET DEFAULT nextval('flowable.task_history_id_seq');
ALTER SEQUENCE flowable.task_history_id_seq OWNED BY flowable.task_history.history_id;
CREATE TABLE flowable.task_history_default PARTITION OF flowable.task_history DEFAULT;

CREATE TABLE archive.task_history (LIKE flowable.task_history_unpartitioned INCLUDING DEFAULTS
    INCLUDING CONSTRAINTS) PARTITION BY RANGE (action_at);
ALTER TABLE archive.task_history ALTER COLUMN history_id DROP DEFAULT;
CREATE TABLE archive.task_history_default PARTITION OF archive.task_history DEFAULT;

SELECT flowable.ensure_history_partition('flowable.task_history', CAST(m AS date))
FROM (SELECT DISTINCT date_trunc('month', action_at AT TIME ZONE 'UTC') AS m
      FROM flowable.task_history_unpartitioned
      UNION
      SELECT date_trunc('month', now() AT TIME ZONE 'UTC') + make_interval(months => ahead)
      FROM generate_series(0, 3) AS ahead) AS months
ORDER BY m;

INSERT INTO flowable.task_history SELECT * FROM flowable.task_history_unpartitioned;
DROP TABLE flowable.task_history_unpartitioned;

ALTER TABLE flowable.task_history ADD PRIMARY KEY (history_id, action_at);
CREATE INDEX idx_task_history_action_at ON flowable.task_history (action_at);
CREATE INDEX idx_task_history_action_by ON flowable.task_history (action_by);
CREATE INDEX idx_task_history_escalations ON flowable.task_history (action_at) WHERE action_type = 'ESCALATE';
CREATE INDEX idx_task_history_process ON flowable.task_history (process_instance_id);
CREATE INDEX idx_task_history_task_action_at ON flowable.task_history (task_id, action_at DESC);
ALTER TABLE archive.task_history ADD PRIMARY KEY (history_id, action_at);
CREATE INDEX idx_archive_history_process ON archive.task_history (process_instance_id);
CREATE INDEX idx_archive_history_task ON archive.task_history (task_id, action_at DESC);

-- Row-level security as 0007 gave the unpartitioned table (it went with it).
GRANT SELECT ON flowable.task_history TO bridge_reader;
ALTER TABLE flowable.task_history ENABLE ROW LEVEL SECURITY;
CREATE POLICY task_history_access_policy ON flowable.task_history
    FOR SELECT TO bridge_reader
    USING (EXISTS (SELECT 1 FROM flowable.workflow_tasks t WHERE t.task_id = task_history.task_id));

-- Archived work is read under the same rules as live work (GET /api/tasks/{id} of an archived task).
GRANT USAGE ON SCHEMA archive TO bridge_reader;
GRANT SELECT ON archive.workflow_tasks, archive.task_history TO bridge_reader;
ALTER TABLE archive.workflow_tasks ENABLE ROW LEVEL SECURITY;
CREATE POLICY archived_task_access_policy ON archive.workflow_tasks
    FOR SELECT TO bridge_reader
    USING (
        assignee_id = (SELECT entitlements.app_user_id())
        OR queue_name::text = ANY ((SELECT entitlements.user_queue_names(entitlements.app_user_id()))::text[])
        OR candidate_users @> ARRAY[(SELECT entitlements.app_user_id())::text]
        OR candidate_groups && (SELECT entitlements.user_role_codes(entitlements.app_user_id()))
    );
ALTER TABLE archive.task_history ENABLE ROW LEVEL SECURITY;
CREATE POLICY archived_task_history_access_policy ON archive.task_history
    FOR SELECT TO bridge_reader
    USING (EXISTS (SELECT 1 FROM archive.workflow_tasks t WHERE t.task_id = task_history.task_id));

-- 3: archiving's deletes leave the hourly summaries and queue load alone.
DROP TRIGGER trg_workflow_tasks_stats_delete ON flowable.workflow_tasks;
CREATE TRIGGER trg_workflow_tasks_stats_delete AFTER DELETE ON flowable.workflow_tasks
    REFERENCING OLD TABLE AS old_tasks FOR EACH STATEMENT
    WHEN (current_setting('bridge.archiving', true) IS DISTINCT FROM 'on')
    EXECUTE FUNCTION flowable.track_task_stats();
DROP TRIGGER trg_workflow_tasks_load_delete ON flowable.workflow_tasks;
CREATE TRIGGER trg_workflow_tasks_load_delete AFTER DELETE ON flowable.workflow_tasks
    REFERENCING OLD TABLE AS old_tasks FOR EACH STATEMENT
    WHEN (current_setting('bridge.archiving', true) IS DISTINCT FROM 'on')
    EXECUTE FUNCTION flowable.track_queue_load();

-- The inbox is pruned oldest first (bridge/archive.py: applied batches older than BRIDGE_INBOX_RETENTION_DAYS).
CREATE INDEX idx_webhook_batches_received_at ON flowable.webhook_batches (received_at);
