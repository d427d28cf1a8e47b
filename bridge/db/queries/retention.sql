-- Retention policies (bridge/retention.py, migration 0023).

-- name: policies
-- Every process key the bridge knows (deployed, or with a policy), its policy if it has one, and its completed
-- instances: how many, and how many ended longer ago than the retention that applies (:default_days without
-- a policy), the ones archiving takes.
WITH keys AS (
    SELECT process_key FROM flowable.workflow_definitions
    UNION SELECT process_key FROM flowable.retention_policies
), effective AS (
    SELECT k.process_key, p.retention_days, p.source, p.set_by, p.set_at,
           coalesce(p.retention_days, :default_days) AS days
    FROM keys k LEFT JOIN flowable.retention_policies p USING (process_key)
)
SELECT e.process_key, e.days, e.retention_days, e.source, e.set_by, e.set_at,
       count(pi.process_instance_id) AS completed,
       count(pi.process_instance_id) FILTER (WHERE pi.completed_at < now() - make_interval(days => e.days))
           AS past_retention
FROM effective e
LEFT JOIN flowable.workflow_definitions d ON d.process_key = e.process_key
LEFT JOIN flowable.process_instances pi ON pi.workflow_id = d.workflow_id AND pi.completed_at IS NOT NULL
GROUP BY e.process_key, e.days, e.retention_days, e.source, e.set_by, e.set_at
ORDER BY e.process_key;

-- name: known_key
SELECT EXISTS (SELECT 1 FROM flowable.workflow_definitions WHERE process_key = :process_key);

-- name: upsert_policy
INSERT INTO flowable.retention_policies (process_key, retention_days, source, set_by)
VALUES (:process_key, :retention_days, :source, :set_by)
ON CONFLICT (process_key) DO UPDATE
SET retention_days = EXCLUDED.retention_days, source = EXCLUDED.source, set_by = EXCLUDED.set_by, set_at = now();

-- name: delete_policy
DELETE FROM flowable.retention_policies WHERE process_key = :process_key;

-- name: delete_bpmn_policy
-- A new version of a file that no longer declares retentionDays: its earlier declaration goes, an
-- operator's setting stays.
DELETE FROM flowable.retention_policies WHERE process_key = :process_key AND source = 'bpmn';
