-- 0009: the mirror's inbox: every batch the engine pushed (POST /webhooks/flowable) and every event in it,
-- stored once. webhook_id (the Standard Webhooks message id, the engine's batch id) and event_id are the
-- dedupe keys: a redelivered batch or event is recognised by INSERT ... ON CONFLICT DO NOTHING. Applying
-- events to the mirror tables marks them applied_at; until then they wait here, so nothing received is lost.

CREATE TABLE flowable.webhook_batches (
    webhook_id         VARCHAR(100) PRIMARY KEY,
    engine             VARCHAR(100),
    engine_instance_id VARCHAR(100),
    batch_seq          BIGINT,
    committed_at       TIMESTAMPTZ,
    event_count        INTEGER      NOT NULL CHECK (event_count >= 0),
    received_at        TIMESTAMPTZ  NOT NULL DEFAULT now()
);

CREATE TABLE flowable.engine_events (
    event_id            VARCHAR(100) PRIMARY KEY,
    webhook_id          VARCHAR(100) NOT NULL REFERENCES flowable.webhook_batches (webhook_id) ON DELETE CASCADE,
    seq                 INTEGER      NOT NULL,
    event_type          VARCHAR(100) NOT NULL,
    entity_type         VARCHAR(50),
    process_instance_id VARCHAR(64),
    occurred_at         TIMESTAMPTZ,
    payload             JSONB        NOT NULL,
    received_at         TIMESTAMPTZ  NOT NULL DEFAULT now(),
    applied_at          TIMESTAMPTZ
);

CREATE INDEX idx_engine_events_webhook ON flowable.engine_events (webhook_id, seq);
CREATE INDEX idx_engine_events_process ON flowable.engine_events (process_instance_id);
CREATE INDEX idx_engine_events_pending ON flowable.engine_events (received_at) WHERE applied_at IS NULL;
