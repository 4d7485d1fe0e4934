//! SQL for one projection schema: load the rows a batch touches, and write a batch's rows and
//! the checkpoint in one transaction (UNNEST upserts, one statement per table). The checkpoint
//! update asserts contiguity: it only moves from exactly the seq the batch started after.

use crate::fold::{AccountRow, BatchWrite};
use std::collections::{HashMap, HashSet};
use tokio_postgres::GenericClient;

/// Channel the projector notifies after each commit, payload `<schema>:<last_seq>`.
pub const PROGRESS_CHANNEL: &str = "readmodel_progress";

/// Reads the checkpoint: (last_seq, last_event_ts_us).
pub async fn checkpoint(c: &impl GenericClient, schema: &str) -> anyhow::Result<(u64, i64)> {
    let row = c
        .query_one(
            &format!("SELECT last_seq, last_event_ts_us FROM {schema}.projection_checkpoint"),
            &[],
        )
        .await?;
    Ok((row.get::<_, i64>(0) as u64, row.get(1)))
}

/// Loads the rows of `accounts` and which of them are quarantined.
pub async fn load(
    c: &impl GenericClient,
    schema: &str,
    accounts: &[String],
) -> anyhow::Result<(HashMap<String, AccountRow>, HashSet<String>)> {
    let balances_sql = format!(
        "SELECT account, currency, balance, pending_debits, overdraft_limit, version, status,
                opened_seq, opened_at_us, updated_seq, updated_at_us
         FROM {schema}.balances WHERE account = ANY($1)"
    );
    let quarantined_sql =
        format!("SELECT account FROM {schema}.quarantined_accounts WHERE account = ANY($1)");
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&accounts];
    let (rows, q) = futures::try_join!(
        c.query(&balances_sql, &params),
        c.query(&quarantined_sql, &params),
    )?;
    let known = rows
        .into_iter()
        .map(|r| {
            let row = AccountRow {
                account: r.get(0),
                currency: r.get(1),
                balance: r.get(2),
                pending_debits: r.get(3),
                overdraft_limit: r.get(4),
                version: r.get(5),
                status: r.get(6),
                opened_seq: r.get(7),
                opened_at_us: r.get(8),
                updated_seq: r.get(9),
                updated_at_us: r.get(10),
            };
            (row.account.clone(), row)
        })
        .collect();
    Ok((known, q.into_iter().map(|r| r.get(0)).collect()))
}

/// Writes the batch and moves the checkpoint from `prev_seq` to `w.last_seq`, then notifies.
/// Call inside a transaction.
pub async fn write(
    c: &impl GenericClient,
    schema: &str,
    w: &BatchWrite,
    prev_seq: u64,
) -> anyhow::Result<()> {
    // Independent statements, pipelined on the one connection (tokio-postgres sends requests
    // polled together without waiting for each reply): one round trip instead of four.
    futures::try_join!(
        write_accounts(c, schema, w),
        write_history(c, schema, w),
        write_daily(c, schema, w),
        write_parked(c, schema, w),
    )?;
    let moved = c
        .execute(
            &format!(
                "UPDATE {schema}.projection_checkpoint
                 SET last_seq = $1, last_event_ts_us = $2, updated_at = now() WHERE last_seq = $3"
            ),
            &[&(w.last_seq as i64), &w.last_ts_us, &(prev_seq as i64)],
        )
        .await?;
    anyhow::ensure!(
        moved == 1,
        "checkpoint of {schema} is not at {prev_seq}: another writer or a gap"
    );
    c.execute(
        "SELECT pg_notify($1, $2)",
        &[&PROGRESS_CHANNEL, &format!("{schema}:{}", w.last_seq)],
    )
    .await?;
    Ok(())
}

async fn write_accounts(
    c: &impl GenericClient,
    schema: &str,
    w: &BatchWrite,
) -> anyhow::Result<()> {
    if w.accounts.is_empty() {
        return Ok(());
    }
    let rows: Vec<&AccountRow> = w.accounts.values().collect();
    let col = |f: fn(&AccountRow) -> i64| rows.iter().map(|r| f(r)).collect::<Vec<i64>>();
    let text = |f: fn(&AccountRow) -> &str| {
        rows.iter()
            .map(|r| f(r).to_owned())
            .collect::<Vec<String>>()
    };
    let (account, currency, status) = (
        text(|r| &r.account),
        text(|r| &r.currency),
        text(|r| &r.status),
    );
    let (balance, pending, overdraft, version) = (
        col(|r| r.balance),
        col(|r| r.pending_debits),
        col(|r| r.overdraft_limit),
        col(|r| r.version),
    );
    let (oseq, ots, useq, uts) = (
        col(|r| r.opened_seq),
        col(|r| r.opened_at_us),
        col(|r| r.updated_seq),
        col(|r| r.updated_at_us),
    );
    c.execute(
        &format!(
            "INSERT INTO {schema}.balances (account, currency, balance, pending_debits, overdraft_limit,
                 version, status, opened_seq, opened_at_us, updated_seq, updated_at_us)
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::int8[], $4::int8[], $5::int8[],
                 $6::int8[], $7::text[], $8::int8[], $9::int8[], $10::int8[], $11::int8[])
             ON CONFLICT (account) DO UPDATE SET balance = excluded.balance,
                 pending_debits = excluded.pending_debits, version = excluded.version,
                 status = excluded.status, updated_seq = excluded.updated_seq,
                 updated_at_us = excluded.updated_at_us"
        ),
        &[
            &account, &currency, &balance, &pending, &overdraft, &version, &status, &oseq, &ots,
            &useq, &uts,
        ],
    )
    .await?;
    Ok(())
}

async fn write_history(c: &impl GenericClient, schema: &str, w: &BatchWrite) -> anyhow::Result<()> {
    if w.history.is_empty() {
        return Ok(());
    }
    let h = &w.history;
    let account: Vec<&str> = h.iter().map(|r| r.account.as_str()).collect();
    let seq: Vec<i64> = h.iter().map(|r| r.seq).collect();
    let ts: Vec<i64> = h.iter().map(|r| r.ts_us).collect();
    let tid: Vec<&str> = h.iter().map(|r| r.transfer_id.as_str()).collect();
    let other: Vec<&str> = h.iter().map(|r| r.counterparty.as_str()).collect();
    let amount: Vec<i64> = h.iter().map(|r| r.amount).collect();
    let after: Vec<i64> = h.iter().map(|r| r.balance_after).collect();
    c.execute(
        &format!(
            "INSERT INTO {schema}.account_history
                 (account, seq, ts_us, transfer_id, counterparty, amount, balance_after)
             SELECT * FROM UNNEST($1::text[], $2::int8[], $3::int8[], $4::text[], $5::text[],
                 $6::int8[], $7::int8[])"
        ),
        &[&account, &seq, &ts, &tid, &other, &amount, &after],
    )
    .await?;
    Ok(())
}

async fn write_daily(c: &impl GenericClient, schema: &str, w: &BatchWrite) -> anyhow::Result<()> {
    if w.daily.is_empty() {
        return Ok(());
    }
    let keys: Vec<&(String, String)> = w.daily.keys().collect();
    let vals: Vec<_> = w.daily.values().collect();
    let day: Vec<&str> = keys.iter().map(|k| k.0.as_str()).collect();
    let cur: Vec<&str> = keys.iter().map(|k| k.1.as_str()).collect();
    let n =
        |f: fn(&crate::fold::DailyDelta) -> i64| vals.iter().map(|v| f(v)).collect::<Vec<i64>>();
    let s = |f: fn(&crate::fold::DailyDelta) -> i128| {
        vals.iter()
            .map(|v| f(v).to_string())
            .collect::<Vec<String>>()
    };
    c.execute(
        &format!(
            "INSERT INTO {schema}.daily_totals AS t (day, currency, transfer_count, volume_minor,
                 deposit_count, deposits_minor, withdrawal_count, withdrawals_minor)
             SELECT d::date, c, tc, v::numeric, dc, dm::numeric, wc, wm::numeric
             FROM UNNEST($1::text[], $2::text[], $3::int8[], $4::text[], $5::int8[], $6::text[],
                 $7::int8[], $8::text[]) AS u(d, c, tc, v, dc, dm, wc, wm)
             ON CONFLICT (day, currency) DO UPDATE SET
                 transfer_count = t.transfer_count + excluded.transfer_count,
                 volume_minor = t.volume_minor + excluded.volume_minor,
                 deposit_count = t.deposit_count + excluded.deposit_count,
                 deposits_minor = t.deposits_minor + excluded.deposits_minor,
                 withdrawal_count = t.withdrawal_count + excluded.withdrawal_count,
                 withdrawals_minor = t.withdrawals_minor + excluded.withdrawals_minor"
        ),
        &[
            &day,
            &cur,
            &n(|v| v.transfer_count),
            &s(|v| v.volume_minor),
            &n(|v| v.deposit_count),
            &s(|v| v.deposits_minor),
            &n(|v| v.withdrawal_count),
            &s(|v| v.withdrawals_minor),
        ],
    )
    .await?;
    Ok(())
}

async fn write_parked(c: &impl GenericClient, schema: &str, w: &BatchWrite) -> anyhow::Result<()> {
    for p in &w.parked {
        c.execute(
            &format!(
                "INSERT INTO {schema}.parked_events (seq, subject, payload, reason, accounts)
                 VALUES ($1, $2, $3, $4, $5)"
            ),
            &[&p.seq, &p.subject, &p.payload, &p.reason, &p.accounts],
        )
        .await?;
    }
    for (account, seq, reason) in &w.quarantined {
        c.execute(
            &format!(
                "INSERT INTO {schema}.quarantined_accounts (account, first_parked_seq, reason)
                 VALUES ($1, $2, $3) ON CONFLICT (account) DO NOTHING"
            ),
            &[account, seq, reason],
        )
        .await?;
    }
    Ok(())
}
