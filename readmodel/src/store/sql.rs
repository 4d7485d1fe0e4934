//! The statement texts of one projection schema, prepared once per projector session.

use super::{copy, PROGRESS_CHANNEL};

/// The `balances` columns, in [`crate::fold::AccountRow`] order.
pub const ACCOUNT_COLUMNS: &str = "account, currency, balance, pending_debits, overdraft_limit, \
     version, status, opened_seq, opened_at_us, updated_seq, updated_at_us";

/// Rows of the accounts in `$1`.
pub fn load_balances(s: &str) -> String {
    format!("SELECT {ACCOUNT_COLUMNS} FROM {s}.balances WHERE account = ANY($1)")
}

/// Which accounts of `$1` are quarantined.
pub fn load_quarantined(s: &str) -> String {
    format!("SELECT account FROM {s}.quarantined_accounts WHERE account = ANY($1)")
}

/// Number of accounts.
pub fn count_balances(s: &str) -> String {
    format!("SELECT count(*) FROM {s}.balances")
}

/// Every account row.
pub fn all_balances(s: &str) -> String {
    format!("SELECT {ACCOUNT_COLUMNS} FROM {s}.balances")
}

/// Every quarantined account.
pub fn all_quarantined(s: &str) -> String {
    format!("SELECT account FROM {s}.quarantined_accounts")
}

/// Binary COPY of history rows.
pub fn copy_history(s: &str) -> String {
    format!(
        "COPY {s}.account_history ({}) FROM STDIN (FORMAT binary)",
        copy::HISTORY_COLUMNS
    )
}

/// One parked event.
pub fn insert_parked(s: &str) -> String {
    format!(
        "INSERT INTO {s}.parked_events (seq, subject, payload, reason, accounts)
         VALUES ($1, $2, $3, $4, $5)"
    )
}

/// One quarantined account.
pub fn insert_quarantined(s: &str) -> String {
    format!(
        "INSERT INTO {s}.quarantined_accounts (account, first_parked_seq, reason)
         VALUES ($1, $2, $3) ON CONFLICT (account) DO NOTHING"
    )
}

/// A whole batch in one statement (so, outside an explicit transaction, in one transaction
/// of its own): history rows ($1–$7, UNNEST), account rows ($8–$18, upsert), daily total
/// increments ($19–$26, upsert), and the checkpoint move from $29 to $27 (timestamp $28) with
/// the progress notification (payload $30), delivered at commit.
///
/// Contiguity is asserted by the database: unless the checkpoint is exactly at $29 the new
/// value is NULL, which the NOT NULL column refuses, failing the whole statement. The CTEs
/// run to completion whether or not the outer statement reads them; each touches another
/// table, and each batch's accounts and (day, currency) keys are distinct.
pub fn write_batch(s: &str) -> String {
    format!(
        "WITH history AS (
             INSERT INTO {s}.account_history
                 (account, seq, ts_us, transfer_id, counterparty, amount, balance_after)
             SELECT * FROM UNNEST($1::text[], $2::int8[], $3::int8[], $4::text[], $5::text[],
                 $6::int8[], $7::int8[])
         ), accounts AS (
             INSERT INTO {s}.balances ({ACCOUNT_COLUMNS})
             SELECT * FROM UNNEST($8::text[], $9::text[], $10::int8[], $11::int8[], $12::int8[],
                 $13::int8[], $14::text[], $15::int8[], $16::int8[], $17::int8[], $18::int8[])
             ON CONFLICT (account) DO UPDATE SET balance = excluded.balance,
                 pending_debits = excluded.pending_debits, version = excluded.version,
                 status = excluded.status, updated_seq = excluded.updated_seq,
                 updated_at_us = excluded.updated_at_us
         ), daily AS (
             INSERT INTO {s}.daily_totals AS t (day, currency, transfer_count, volume_minor,
                 deposit_count, deposits_minor, withdrawal_count, withdrawals_minor)
             SELECT d::date, c, tc, v::numeric, dc, dm::numeric, wc, wm::numeric
             FROM UNNEST($19::text[], $20::text[], $21::int8[], $22::text[], $23::int8[],
                 $24::text[], $25::int8[], $26::text[]) AS u(d, c, tc, v, dc, dm, wc, wm)
             ON CONFLICT (day, currency) DO UPDATE SET
                 transfer_count = t.transfer_count + excluded.transfer_count,
                 volume_minor = t.volume_minor + excluded.volume_minor,
                 deposit_count = t.deposit_count + excluded.deposit_count,
                 deposits_minor = t.deposits_minor + excluded.deposits_minor,
                 withdrawal_count = t.withdrawal_count + excluded.withdrawal_count,
                 withdrawals_minor = t.withdrawals_minor + excluded.withdrawals_minor
         )
         UPDATE {s}.projection_checkpoint
         SET last_seq = CASE WHEN last_seq = $29 THEN $27::int8 END,
             last_event_ts_us = $28, updated_at = now()
         RETURNING pg_notify('{PROGRESS_CHANNEL}', $30::text)"
    )
}
