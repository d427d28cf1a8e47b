-- 0022: departments, queues and roles belong to the process key that defined them.
--
-- A small unrelated process whose task named flowable:candidateGroups="INTAKE_CLERK" rewrote the OneCMS
-- role INTAKE_CLERK (type, department, home queue) on deploy. Now each row records its owner:
--   * owner_process_key: the process key whose deploy created it (or an ENTITLEMENTS_ADMIN's adoption moved
--     it to); only that key's deploys change it (bridge/deploy.py). Another file may use it as it is (a
--     candidate group, a queue assignment); declaring it differently is refused, naming each.
--   * '(built-in)' for the roles the migrations make (no deploy changes them); NULL for a row older than
--     this migration that cannot be traced: the next deploy that writes it becomes its owner.
-- Rows older than this migration are traced through the file their metadata names (metadata.source) to the
-- process key of the definitions deployed from that file, when that is exactly one key.
ALTER TABLE entitlements.departments ADD COLUMN owner_process_key VARCHAR(255);
ALTER TABLE entitlements.workflow_roles ADD COLUMN owner_process_key VARCHAR(255);
ALTER TABLE flowable.workflow_queues ADD COLUMN owner_process_key VARCHAR(255);

UPDATE entitlements.workflow_roles SET owner_process_key = '(built-in)'
WHERE role_code IN ('WORKFLOW_DESIGNER', 'ENTITLEMENTS_ADMIN', 'OPS_VIEWER', 'QUEUE_ADMIN');

CREATE TEMPORARY TABLE file_keys ON COMMIT DROP AS
SELECT metadata ->> 'file' AS file, min(process_key) AS process_key
FROM flowable.workflow_definitions WHERE metadata ? 'file'
GROUP BY metadata ->> 'file' HAVING count(DISTINCT process_key) = 1;

UPDATE entitlements.departments t SET owner_process_key = f.process_key
FROM file_keys f WHERE t.owner_process_key IS NULL AND t.metadata ->> 'source' = f.file;
UPDATE entitlements.workflow_roles t SET owner_process_key = f.process_key
FROM file_keys f WHERE t.owner_process_key IS NULL AND t.metadata ->> 'source' = f.file;
UPDATE flowable.workflow_queues t SET owner_process_key = f.process_key
FROM file_keys f WHERE t.owner_process_key IS NULL AND t.metadata ->> 'source' = f.file;
