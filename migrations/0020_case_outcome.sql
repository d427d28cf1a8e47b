-- 0020: how a workflow ended.
--
--   * process_instances.end_activity_id: the end event the instance reached (Flowable's endActivityId), from
--     the emitter's end event or, on repair, the engine's history. A terminate end leaves a delete reason just
--     like a cancellation, so the status alone cannot tell a closed case from a rejected or withdrawn one.
--     NULL while running and for a cancellation (no end event was reached).
--   * Instances that ended before this migration keep NULL until the reconciler's sweep or `bridge drift
--     --repair` meets them; their metadata.endCause already names the terminate end event when there was one,
--     so it is copied here for those.
ALTER TABLE flowable.process_instances ADD COLUMN end_activity_id VARCHAR(255);

UPDATE flowable.process_instances p
SET end_activity_id = p.metadata ->> 'endCause'
FROM flowable.workflow_definitions d
WHERE d.workflow_id = p.workflow_id AND p.status = 'COMPLETED' AND p.metadata ? 'endCause'
  AND d.metadata -> 'endEvents' ? (p.metadata ->> 'endCause');
