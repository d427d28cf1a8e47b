-- 0026: moving running instances to another version of their process (bridge/migration.py, issue 18). The seed
-- design has no such thing: an instance stays on the version it started on. Flowable migrates it (its
-- ProcessMigrationService, through the engine's /bridge-migration resource); the mirror follows as a bridge
-- event through the one apply path (bridge/mirror/bridge_events.py), like every other bridge action. New:
--
-- 1. task_history.action_type 'MIGRATED': one row per live task moved, by the acting user, with the activity
--    and version it came from and went to in action_data. On the partitioned table and its archive copy (0024);
--    partitions take the constraint from their parent.
-- 2. flowable.instance_migrations: one row per migration run (a dry run too): what was asked (process key,
--    versions, the activities and business keys chosen, the explicit mappings), who asked, when it began and
--    ended, and its tallies. flowable.instance_migration_results: per instance and run, MIGRATABLE or REFUSED
--    (the engine's validation, with its messages), MIGRATED or FAILED (the engine's answer). A result is written
--    in the transaction that records the instance's migration in the mirror, so a run killed midway leaves
--    exactly the instances it finished marked, and a rerun (the same command, or `--resume ID`) picks the
--    instances the engine still has on the old version.

ALTER TABLE flowable.task_history DROP CONSTRAINT chk_action_type;
ALTER TABLE flowable.task_history ADD CONSTRAINT chk_action_type
    CHECK (action_type IN ('CREATE', 'CLAIM', 'UNCLAIM', 'COMPLETE', 'DELEGATE', 'RESOLVE', 'ESCALATE', 'UPDATE',
                           'CANCEL', 'REASSIGN', 'COMMENT', 'MIGRATED'));
ALTER TABLE archive.task_history DROP CONSTRAINT chk_action_type;
ALTER TABLE archive.task_history ADD CONSTRAINT chk_action_type
    CHECK (action_type IN ('CREATE', 'CLAIM', 'UNCLAIM', 'COMPLETE', 'DELEGATE', 'RESOLVE', 'ESCALATE', 'UPDATE',
                           'CANCEL', 'REASSIGN', 'COMMENT', 'MIGRATED'));

CREATE TABLE flowable.instance_migrations (
    migration_id  BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    process_key   VARCHAR(255) NOT NULL,
    from_version  INTEGER      NOT NULL,
    to_version    INTEGER      NOT NULL,
    activities    TEXT[]       NOT NULL DEFAULT '{}',  -- chosen current activities (none: every one)
    business_keys TEXT[]       NOT NULL DEFAULT '{}',  -- chosen business keys (none: every one)
    mappings      JSONB        NOT NULL DEFAULT '{}',  -- explicit {old activity id: new activity id}
    dry_run       BOOLEAN      NOT NULL,
    requested_by  VARCHAR(100) NOT NULL,
    started_at    TIMESTAMPTZ  NOT NULL DEFAULT now(),
    finished_at   TIMESTAMPTZ,
    counts        JSONB        NOT NULL DEFAULT '{}',  -- outcome -> instances, when the run ended
    CHECK (from_version >= 1 AND to_version >= 1 AND from_version <> to_version)
);

CREATE TABLE flowable.instance_migration_results (
    migration_id        BIGINT      NOT NULL REFERENCES flowable.instance_migrations ON DELETE CASCADE,
    process_instance_id VARCHAR(64) NOT NULL,
    business_key        VARCHAR(255),
    activities          TEXT[]      NOT NULL DEFAULT '{}',  -- where the instance stood when it was chosen
    outcome             VARCHAR(20) NOT NULL CHECK (outcome IN ('MIGRATABLE', 'REFUSED', 'MIGRATED', 'FAILED')),
    messages            TEXT[]      NOT NULL DEFAULT '{}',  -- the engine's validation messages or error
    decided_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (migration_id, process_instance_id)
);
CREATE INDEX idx_instance_migration_results_instance ON flowable.instance_migration_results (process_instance_id);
