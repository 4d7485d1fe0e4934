//! Keeps the history held in memory bounded: when more than `--history-in-memory-max`
//! finished transfers and idempotency entries have accumulated since they last left memory,
//! this task moves them to the cold history file (`LedgerReader::migrate_history`: one
//! sequential append, on a thread of its own at the lowest CPU priority, or at normal priority
//! once twice the bound is held), without waiting for a snapshot build (which also moves
//! them, every `--snapshot-every-entries`).

use crate::sm::LedgerReader;
use std::time::Duration;
use tokio::sync::watch;

/// Default of `--history-in-memory-max`: records (a finished transfer or an idempotency
/// entry, about 350 bytes each in memory) held before they move to disk.
pub const HISTORY_IN_MEMORY_MAX_DEFAULT: u64 = 200_000;

/// How often the bound is checked.
const CHECK_INTERVAL_MS: u64 = 250;

/// Nice value of the moving thread while the history held is within twice the bound: the
/// lowest priority, so a move waits for spare CPU (at nice 10 it took about a fifth of the
/// batch API's throughput). Not `SCHED_IDLE`: a thread cannot raise its priority again without
/// privileges, so a move started idle is not sped up when the load grows, and the bound waits
/// for it; under a sustained load an idle move was starved while the history held grew to
/// 2.7 GB.
const MOVE_NICE: i32 = 19;

/// Nice value of the moving thread beyond twice the bound: normal priority. A node saturated
/// for minutes leaves a nice-19 thread almost no CPU, and the history held would grow without
/// bound (a batch load of 4M transfers reached 4.4 GB); at normal priority moving takes its
/// share of the CPU from apply, which slows intake instead.
const MOVE_NICE_OVER_BOUND: i32 = 0;

/// Runs until `stop` turns true.
pub async fn run(reader: LedgerReader, max: u64, mut stop: watch::Receiver<bool>) {
    let mut check = tokio::time::interval(Duration::from_millis(CHECK_INTERVAL_MS));
    loop {
        tokio::select! {
            _ = check.tick() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        let held = reader.history_in_memory() as u64;
        if held <= max {
            continue;
        }
        let moving = reader.clone();
        let nice = if held > max.saturating_mul(2) {
            MOVE_NICE_OVER_BOUND
        } else {
            MOVE_NICE
        };
        let moved =
            crate::sm::run_at_low_priority("history-move", nice, move || moving.migrate_history());
        match moved.await {
            Ok(appended) => tracing::debug!(held, appended, "history moved to disk"),
            Err(e) => tracing::error!(error = %e, "history move failed"),
        }
    }
}
