-- 0012: events the mirror could not apply stay in the inbox, parked, with the reason.
--
-- The intake stores a batch and applies it in one transaction; the apply runs inside a savepoint. When
-- applying fails (a row the database refuses, a bug), the savepoint is rolled back, the batch's events
-- stay stored with applied_at NULL and apply_error set, and the engine gets its 200: the push is not
-- lost and is not retried forever. The reconciler repairs the mirror from the engine meanwhile;
-- idx_engine_events_pending lists what is parked.
ALTER TABLE flowable.engine_events ADD COLUMN apply_error TEXT;
