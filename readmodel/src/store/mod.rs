//! SQL for one projection schema. A projector session prepares its statements once
//! ([`Store::prepare`]); then each batch is written by one statement — history rows, account
//! upserts, daily total upserts, the checkpoint move and its `NOTIFY`, as data-modifying CTEs —
//! which, sent on its own, is its own transaction: one round trip and one commit per batch.
//! Big batches (history by binary COPY) and batches with poison (parked rows) wrap that
//! statement, the COPY and the parked rows in an explicit `BEGIN`/`COMMIT`, pipelined on the
//! session's connection. The checkpoint move asserts contiguity in the same transaction: it
//! fails unless the checkpoint is exactly where the batch started, so nothing of a
//! non-contiguous batch commits. Any error ends the session and drops the connection, which
//! rolls back whatever was open.
//!
//! Rows to fold from come from the session's account cache (`crate::cache`), or, when that is
//! off, from [`Store::load`].
//!
//! - `write` — the batch's writes and the commit.
//! - `sql`   — the statement texts.
//! - `copy`  — binary COPY encoding of history rows.

mod copy;
mod sql;
mod write;

use crate::cache::AccountCache;
use crate::fold::AccountRow;
use std::collections::{HashMap, HashSet};
use tokio_postgres::{GenericClient, Statement};

/// Channel the projector notifies after each commit, payload `<schema>:<last_seq>`.
pub const PROGRESS_CHANNEL: &str = "readmodel_progress";

/// History batches with at least this many rows are written with binary COPY (an explicit
/// transaction and a round trip more, but cheaper per row in PostgreSQL); smaller ones by
/// UNNEST inside the batch statement.
pub const COPY_HISTORY_ROWS_MIN: usize = 256;

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

/// The prepared statements of one schema, valid on the connection that prepared them.
pub struct Store {
    schema: String,
    load_balances: Statement,
    load_quarantined: Statement,
    count_balances: Statement,
    all_balances: Statement,
    all_quarantined: Statement,
    copy_history: Statement,
    insert_parked: Statement,
    insert_quarantined: Statement,
    write_batch: Statement,
}

impl Store {
    /// The schema the statements write.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// Prepares every statement for `schema` on `c` (pipelined: one round trip).
    pub async fn prepare(c: &tokio_postgres::Client, schema: &str) -> anyhow::Result<Self> {
        let s = schema;
        let sql: [String; 9] = [
            sql::load_balances(s),
            sql::load_quarantined(s),
            sql::count_balances(s),
            sql::all_balances(s),
            sql::all_quarantined(s),
            sql::copy_history(s),
            sql::insert_parked(s),
            sql::insert_quarantined(s),
            sql::write_batch(s),
        ];
        let prepared = futures::future::try_join_all(sql.iter().map(|q| c.prepare(q))).await?;
        let [load_balances, load_quarantined, count_balances, all_balances, all_quarantined, copy_history, insert_parked, insert_quarantined, write_batch]: [Statement; 9] =
            prepared
                .try_into()
                .map_err(|_| anyhow::anyhow!("prepared statement count"))?;
        Ok(Self {
            schema: schema.to_owned(),
            load_balances,
            load_quarantined,
            count_balances,
            all_balances,
            all_quarantined,
            copy_history,
            insert_parked,
            insert_quarantined,
            write_batch,
        })
    }

    /// Loads the rows of `accounts` and which of them are quarantined (when the account cache
    /// is off). Outside the write's transaction: the checkpoint move in the write fails if
    /// anyone else wrote the schema in between.
    pub async fn load(
        &self,
        c: &tokio_postgres::Client,
        accounts: &[String],
    ) -> anyhow::Result<(HashMap<String, AccountRow>, HashSet<String>)> {
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&accounts];
        let (rows, q) = futures::try_join!(
            c.query(&self.load_balances, &params),
            c.query(&self.load_quarantined, &params),
        )?;
        let known = rows
            .iter()
            .map(|r| {
                let row = account_row(r);
                (row.account.clone(), row)
            })
            .collect();
        Ok((known, q.into_iter().map(|r| r.get(0)).collect()))
    }

    /// The account cache for a new session: every row and quarantine of the schema, unless
    /// there are more than `accounts_max` accounts.
    pub async fn load_cache(
        &self,
        c: &tokio_postgres::Client,
        accounts_max: usize,
    ) -> anyhow::Result<AccountCache> {
        let n: i64 = c.query_one(&self.count_balances, &[]).await?.get(0);
        if n as usize > accounts_max {
            return Ok(AccountCache::disabled());
        }
        let (rows, q) = futures::try_join!(
            c.query(&self.all_balances, &[]),
            c.query(&self.all_quarantined, &[]),
        )?;
        Ok(AccountCache::complete(
            rows.iter().map(account_row).collect(),
            q.into_iter().map(|r| r.get(0)).collect(),
            accounts_max,
        ))
    }
}

fn account_row(r: &tokio_postgres::Row) -> AccountRow {
    AccountRow {
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
    }
}
