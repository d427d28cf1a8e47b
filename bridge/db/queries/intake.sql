-- The webhook inbox (bridge/mirror/intake.py). A batch is two statements, whatever its size.

-- name: insert_batch
INSERT INTO flowable.webhook_batches (webhook_id, engine, engine_instance_id, batch_seq, committed_at, event_count)
VALUES (:webhook_id, :engine, :engine_instance_id, :batch_seq, CAST(:committed_at AS timestamptz), :event_count)
ON CONFLICT (webhook_id) DO NOTHING
RETURNING webhook_id;

-- name: insert_events
-- The batch travels as the JSON it arrived as and PostgreSQL unpacks its events: one round trip per batch.
WITH incoming AS (
    SELECT e AS payload, ordinality
    FROM jsonb_array_elements(CAST(:batch AS jsonb) -> 'events') WITH ORDINALITY AS x (e, ordinality)
)
-- applied_at is set here: the batch is applied in the same transaction, and a failed apply parks the
-- events (park_events) instead; one UPDATE of every event per batch saved.
INSERT INTO flowable.engine_events
    (event_id, webhook_id, seq, event_type, entity_type, process_instance_id, occurred_at, payload, applied_at)
SELECT payload ->> 'eventId', :webhook_id, coalesce((payload ->> 'seq')::int, ordinality::int),
       payload ->> 'type', payload ->> 'entityType', payload ->> 'processInstanceId',
       (payload ->> 'timestamp')::timestamptz, payload, now()
FROM incoming
ON CONFLICT (event_id) DO NOTHING
RETURNING event_id;

-- name: park_events
UPDATE flowable.engine_events SET apply_error = :error, applied_at = NULL
WHERE event_id = ANY(CAST(:event_ids AS text[]));
