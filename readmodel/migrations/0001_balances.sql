-- One row per account: the current projection of its posted balance, reservations and status.
CREATE TABLE balances (
    account          text    PRIMARY KEY,
    currency         text    NOT NULL,
    balance          bigint  NOT NULL,
    pending_debits   bigint  NOT NULL,
    overdraft_limit  bigint  NOT NULL,
    version          bigint  NOT NULL,   -- postings applied to the account
    status           text    NOT NULL,   -- open | frozen | closed
    opened_seq       bigint  NOT NULL,
    opened_at_us     bigint  NOT NULL,
    updated_seq      bigint  NOT NULL,
    updated_at_us    bigint  NOT NULL
);
