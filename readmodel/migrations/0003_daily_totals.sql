-- Per currency and UTC day (of the leader timestamp): postings between accounts, deposits
-- (debit is the system account) and withdrawals (credit is the system account).
CREATE TABLE daily_totals (
    day                date     NOT NULL,
    currency           text     NOT NULL,
    transfer_count     bigint   NOT NULL,
    volume_minor       numeric  NOT NULL,
    deposit_count      bigint   NOT NULL,
    deposits_minor     numeric  NOT NULL,
    withdrawal_count   bigint   NOT NULL,
    withdrawals_minor  numeric  NOT NULL,
    PRIMARY KEY (day, currency)
);
