//! Writing one batch: the batch statement alone (its own transaction) for small batches, or
//! `BEGIN`, parked rows, history by COPY, the batch statement and `COMMIT` for big batches and
//! batches with poison — pipelined on the session's connection (tokio-postgres sends the
//! requests of futures polled together in order, without waiting for each reply, and a COPY's
//! data before any request queued after it).

use super::{copy, Store, COPY_HISTORY_ROWS_MIN};
use crate::fold::{AccountRow, BatchWrite, DailyDelta};
use anyhow::Context as _;
use futures::SinkExt as _;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::Client;

impl Store {
    /// Writes the batch and moves the checkpoint from `prev_seq` to `w.last_seq` (failing
    /// unless it is exactly at `prev_seq`) with its notification, all in one transaction.
    pub async fn write_and_commit(
        &self,
        c: &Client,
        w: &BatchWrite,
        prev_seq: u64,
    ) -> anyhow::Result<()> {
        let by_copy = w.history.len() >= COPY_HISTORY_ROWS_MIN;
        let poison = !w.parked.is_empty() || !w.quarantined.is_empty();
        let moved = if !by_copy && !poison {
            self.write_batch(c, w, prev_seq, true).await?
        } else {
            futures::try_join!(
                async { c.batch_execute("BEGIN").await.context("begin") },
                self.write_parked(c, w),
            )?;
            let ((), moved, ()) = futures::try_join!(
                async {
                    match by_copy {
                        true => self.copy_history(c, w).await,
                        false => Ok(()),
                    }
                },
                self.write_batch(c, w, prev_seq, !by_copy),
                async { c.batch_execute("COMMIT").await.context("commit batch") },
            )?;
            moved
        };
        anyhow::ensure!(
            moved == 1,
            "checkpoint row of {} missing (moved {moved} rows)",
            self.schema
        );
        Ok(())
    }

    /// The batch statement; history rows only `with_history` (else they went by COPY).
    async fn write_batch(
        &self,
        c: &Client,
        w: &BatchWrite,
        prev_seq: u64,
        with_history: bool,
    ) -> anyhow::Result<u64> {
        let h: &[_] = if with_history { &w.history } else { &[] };
        let h_account: Vec<&str> = h.iter().map(|r| r.account.as_str()).collect();
        let h_seq: Vec<i64> = h.iter().map(|r| r.seq).collect();
        let h_ts: Vec<i64> = h.iter().map(|r| r.ts_us).collect();
        let h_tid: Vec<&str> = h.iter().map(|r| r.transfer_id.as_str()).collect();
        let h_other: Vec<&str> = h.iter().map(|r| r.counterparty.as_str()).collect();
        let h_amount: Vec<i64> = h.iter().map(|r| r.amount).collect();
        let h_after: Vec<i64> = h.iter().map(|r| r.balance_after).collect();

        let rows: Vec<&AccountRow> = w.accounts.values().collect();
        let int = |f: fn(&AccountRow) -> i64| rows.iter().map(|r| f(r)).collect::<Vec<i64>>();
        let text = |f: fn(&AccountRow) -> &str| rows.iter().map(|r| f(r)).collect::<Vec<&str>>();
        let (a_account, a_currency, a_status) = (
            text(|r| &r.account),
            text(|r| &r.currency),
            text(|r| &r.status),
        );
        let (a_balance, a_pending, a_overdraft, a_version) = (
            int(|r| r.balance),
            int(|r| r.pending_debits),
            int(|r| r.overdraft_limit),
            int(|r| r.version),
        );
        let (a_oseq, a_ots, a_useq, a_uts) = (
            int(|r| r.opened_seq),
            int(|r| r.opened_at_us),
            int(|r| r.updated_seq),
            int(|r| r.updated_at_us),
        );

        let keys: Vec<&(String, String)> = w.daily.keys().collect();
        let vals: Vec<&DailyDelta> = w.daily.values().collect();
        let d_day: Vec<&str> = keys.iter().map(|k| k.0.as_str()).collect();
        let d_cur: Vec<&str> = keys.iter().map(|k| k.1.as_str()).collect();
        let count = |f: fn(&DailyDelta) -> i64| vals.iter().map(|v| f(v)).collect::<Vec<i64>>();
        // i128 sums travel as text into `numeric`.
        let sum = |f: fn(&DailyDelta) -> i128| {
            vals.iter()
                .map(|v| f(v).to_string())
                .collect::<Vec<String>>()
        };
        let (d_transfers, d_volume) = (count(|v| v.transfer_count), sum(|v| v.volume_minor));
        let (d_deposits, d_deposited) = (count(|v| v.deposit_count), sum(|v| v.deposits_minor));
        let (d_withdrawals, d_withdrawn) =
            (count(|v| v.withdrawal_count), sum(|v| v.withdrawals_minor));

        let (last_seq, prev_seq_i) = (w.last_seq as i64, prev_seq as i64);
        let payload = format!("{}:{}", self.schema, w.last_seq);
        let params: [&(dyn ToSql + Sync); 30] = [
            &h_account,
            &h_seq,
            &h_ts,
            &h_tid,
            &h_other,
            &h_amount,
            &h_after,
            &a_account,
            &a_currency,
            &a_balance,
            &a_pending,
            &a_overdraft,
            &a_version,
            &a_status,
            &a_oseq,
            &a_ots,
            &a_useq,
            &a_uts,
            &d_day,
            &d_cur,
            &d_transfers,
            &d_volume,
            &d_deposits,
            &d_deposited,
            &d_withdrawals,
            &d_withdrawn,
            &last_seq,
            &w.last_ts_us,
            &prev_seq_i,
            &payload,
        ];
        c.execute(&self.write_batch, &params)
            .await
            .map_err(|e| self.not_contiguous(e, prev_seq))
    }

    fn not_contiguous(&self, e: tokio_postgres::Error, prev_seq: u64) -> anyhow::Error {
        if e.code() == Some(&SqlState::NOT_NULL_VIOLATION) {
            anyhow::anyhow!(
                "checkpoint of {} is not at {prev_seq}: another writer or a gap",
                self.schema
            )
        } else {
            anyhow::Error::new(e).context("write batch")
        }
    }

    async fn copy_history(&self, c: &Client, w: &BatchWrite) -> anyhow::Result<()> {
        let data = copy::encode_history(&w.history);
        let sink = c
            .copy_in(&self.copy_history)
            .await
            .context("copy history")?;
        futures::pin_mut!(sink);
        sink.send(data).await.context("copy history data")?;
        let n = sink.finish().await.context("copy history end")?;
        anyhow::ensure!(
            n == w.history.len() as u64,
            "copied {n} of {} history rows",
            w.history.len()
        );
        Ok(())
    }

    async fn write_parked(&self, c: &Client, w: &BatchWrite) -> anyhow::Result<()> {
        for p in &w.parked {
            c.execute(
                &self.insert_parked,
                &[&p.seq, &p.subject, &p.payload, &p.reason, &p.accounts],
            )
            .await
            .context("park event")?;
        }
        for (account, seq, reason) in &w.quarantined {
            c.execute(&self.insert_quarantined, &[account, seq, reason])
                .await
                .context("quarantine account")?;
        }
        Ok(())
    }
}
