-- One row per posting (an account side of a transfer_posted event) with the balance after it.
CREATE TABLE account_history (
    account        text    NOT NULL,
    seq            bigint  NOT NULL,
    ts_us          bigint  NOT NULL,   -- leader timestamp, µs since epoch
    transfer_id    text    NOT NULL,
    counterparty   text    NOT NULL,
    amount         bigint  NOT NULL,   -- signed: negative on the debit side
    balance_after  bigint  NOT NULL,
    PRIMARY KEY (account, seq)
);
-- "Balance at T": the last posting with ts_us <= T, one index probe.
CREATE INDEX account_history_at ON account_history (account, ts_us DESC, seq DESC);
