//! Keeps the history held in memory bounded: when more than `--history-in-memory-max`
//! finished transfers and idempotency entries have accumulated since they last left memory,
//! this task moves them to the cold history file (`LedgerReader::migrate_history`: one
//! sequential append, on a thread of its own at the lowest CPU priority), without waiting for
//! a snapshot build (which also moves them, every `--snapshot-every-entries`).

use crate::sm::LedgerReader;
use std::time::Duration;
use tokio::sync::watch;

/// Default of `--history-in-memory-max`: records (a finished transfer or an idempotency
/// entry, about 350 bytes each in memory) held before they move to disk.
pub const HISTORY_IN_MEMORY_MAX_DEFAULT: u64 = 200_000;

/// How often the bound is checked.
const CHECK_INTERVAL_MS: u64 = 250;

/// Nice value of the moving thread: the lowest priority. While the node is saturated the move
/// waits for spare CPU (the history in memory may then exceed the bound until the load eases);
/// at nice 10 it took about a fifth of the batch API's throughput.
const MOVE_NICE: i32 = 19;

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
        let moved = crate::sm::run_at_low_priority("history-move", MOVE_NICE, move || {
            moving.migrate_history()
        });
        match moved.await {
            Ok(appended) => tracing::debug!(held, appended, "history moved to disk"),
            Err(e) => tracing::error!(error = %e, "history move failed"),
        }
    }
}
