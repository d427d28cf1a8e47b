-- 0027: cases imported from the system OneCMS replaces (bridge/case_import.py, `bridge cases import`; the seed
-- design's migration strategy: "import existing workflow data from legacy systems"). New:
--
-- flowable.legacy_case_imports: one row per legacy case imported, keyed by process key and legacy case id, so a
-- rerun of the same file (or a file that repeats a case) imports nothing twice. It keeps where the case came
-- from (file and line), who imported it, the process instance it became, and the legacy created and due dates.
-- Written in the transaction that records the instance's import in the mirror (a bridge event through the one
-- apply path: the instance's started_at becomes the legacy created date, its SLA due date the legacy due date).
-- The engine instance's id is derived from the same key, so an import that died between the engine and this
-- row finds its instance on the rerun instead of starting a second one.

CREATE TABLE flowable.legacy_case_imports (
    process_key         VARCHAR(255) NOT NULL,
    legacy_id           VARCHAR(255) NOT NULL,
    process_instance_id VARCHAR(64)  NOT NULL UNIQUE,
    activity_id         VARCHAR(255) NOT NULL,
    source              VARCHAR(500) NOT NULL,  -- the file and line it was read from
    legacy_created_at   TIMESTAMPTZ,
    legacy_due_date     TIMESTAMPTZ,
    imported_by         VARCHAR(100) NOT NULL,
    imported_at         TIMESTAMPTZ  NOT NULL DEFAULT now(),
    PRIMARY KEY (process_key, legacy_id)
);
