-- Poison events: recorded here (never dropped) and their accounts quarantined; every later
-- event touching a quarantined account is parked too, so other accounts keep flowing.
CREATE TABLE parked_events (
    seq        bigint       PRIMARY KEY,
    subject    text         NOT NULL,
    payload    text         NOT NULL,
    reason     text         NOT NULL,
    accounts   text[]       NOT NULL,
    parked_at  timestamptz  NOT NULL DEFAULT now()
);
CREATE TABLE quarantined_accounts (
    account           text    PRIMARY KEY,
    first_parked_seq  bigint  NOT NULL,
    reason            text    NOT NULL
);
