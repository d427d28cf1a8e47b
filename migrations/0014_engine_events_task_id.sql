-- 0014: the inbox knows which task an event is about.
--
-- A batch that creates a task looks up the events that arrived for that task before it (apply.sql,
-- waiting_events). Found through the instance, that meant reading and unpacking every stored event of the
-- instance for every new task; a stored generated column and a partial index make it one index lookup.
ALTER TABLE flowable.engine_events
    ADD COLUMN task_id VARCHAR(64)
        GENERATED ALWAYS AS (coalesce(payload -> 'task' ->> 'id', payload -> 'identityLink' ->> 'taskId')) STORED;

CREATE INDEX idx_engine_events_task ON flowable.engine_events (task_id) WHERE task_id IS NOT NULL;
