-- The only record of progress: the last event_seq applied, committed with the rows.
CREATE TABLE projection_checkpoint (
    id                boolean      PRIMARY KEY DEFAULT true CHECK (id),
    last_seq          bigint       NOT NULL,
    last_event_ts_us  bigint       NOT NULL,
    updated_at        timestamptz  NOT NULL DEFAULT now()
);
INSERT INTO projection_checkpoint (id, last_seq, last_event_ts_us) VALUES (true, 0, 0);
