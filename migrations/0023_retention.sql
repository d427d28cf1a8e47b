-- 0023: retention policies, the seed design's maintenance item "archive completed tasks older than the
-- retention period" made per process key.
--
-- How long the mirror keeps a completed instance (with its tasks, history, variables and case routing) in the
-- hot tables after it ended, per process key: from the BPMN (<onecms:workflow retentionDays="...">, applied
-- when a version is recorded), or set by an operator (`bridge retention set`), which stands until the next
-- version of the file says otherwise. A key with no row keeps the service's default
-- (BRIDGE_RETENTION_DAYS, 365). The seed names no table for this: it is new.
CREATE TABLE flowable.retention_policies (
    process_key    VARCHAR(255) PRIMARY KEY,
    retention_days INTEGER NOT NULL CHECK (retention_days BETWEEN 1 AND 36500),
    source         VARCHAR(10) NOT NULL CHECK (source IN ('bpmn', 'cli', 'api')),
    set_by         VARCHAR(50) NOT NULL,
    set_at         TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- What archiving selects: completed instances by process and completion time (bridge/retention.py).
CREATE INDEX idx_process_instances_completed ON flowable.process_instances (completed_at)
    WHERE completed_at IS NOT NULL;
