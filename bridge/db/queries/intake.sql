-- The webhook inbox (bridge/mirror/intake.py). A batch is two statements, whatever its size.

-- name: insert_batch
INSERT INTO flowable.webhook_batches (webhook_id, engine, engine_instance_id, batch_seq, committed_at, event_count)
VALUES (:webhook_id, :engine, :engine_instance_id, :batch_seq, CAST(:committed_at AS timestamptz), :event_count)
ON CONFLICT (webhook_id) DO NOTHING
RETURNING webhook_id;

-- name: insert_events
-- The batch's events travel as one JSON array and are unpacked by PostgreSQL: one round trip per batch.
WITH incoming AS (
    SELECT e AS payload, ordinality
    FROM jsonb_array_elements(CAST(:events AS jsonb)) WITH ORDINALITY AS x (e, ordinality)
)
INSERT INTO flowable.engine_events
    (event_id, webhook_id, seq, event_type, entity_type, process_instance_id, occurred_at, payload)
SELECT payload ->> 'eventId', :webhook_id, coalesce((payload ->> 'seq')::int, ordinality::int),
       payload ->> 'type', payload ->> 'entityType', payload ->> 'processInstanceId',
       (payload ->> 'timestamp')::timestamptz, payload
FROM incoming
ON CONFLICT (event_id) DO NOTHING
RETURNING event_id;

-- name: park_events
UPDATE flowable.engine_events SET apply_error = :error WHERE event_id = ANY(CAST(:event_ids AS text[]));
