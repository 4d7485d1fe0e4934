//! Between measurements: wait until every node's background history moves are done. A bulk
//! load leaves each node holding more finished history in memory than `--history-in-memory-max`;
//! moving it to disk takes CPU for seconds after the load (on a 2-core host running three nodes,
//! all of it). A phase measures its own workload, so it starts once every node holds no more
//! than its bound again; the wait is printed and reported, so the cost stays visible.

use super::ctx::Ctx;
use super::report::Report;
use super::stats::thousands;
use std::time::{Duration, Instant};

/// Longest wait for the moves; past it the phase runs anyway and the report says so.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(180);

/// How often the nodes are asked.
const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// Waits until every node reports `history_in_memory <= history_in_memory_max`; prints and
/// notes how long that took when it had to wait. `what` names the work that left the moves.
pub async fn wait_history_moved(ctx: &Ctx, rep: &mut Report, what: &str) {
    let t = Instant::now();
    let mut held_max = 0;
    loop {
        let mut over = 0;
        for url in &ctx.urls {
            let status = ctx.http.status(url).await;
            let held = status
                .as_ref()
                .and_then(|s| s["history_in_memory"].as_u64());
            let max = status
                .as_ref()
                .and_then(|s| s["history_in_memory_max"].as_u64());
            if let (Some(held), Some(max)) = (held, max) {
                held_max = held_max.max(held);
                if held > max {
                    over += 1;
                }
            }
        }
        if over == 0 {
            break;
        }
        if t.elapsed() > SETTLE_TIMEOUT {
            let note = format!(
                "{what}: history moves not done after {} s ({over} node(s) over their bound); \
                 measured anyway",
                SETTLE_TIMEOUT.as_secs()
            );
            rep.note(note);
            return;
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
    if t.elapsed() >= POLL_INTERVAL {
        rep.note(format!(
            "{what}: the history moves it left ({} records held at most) took {:.1} s before \
             the next measurement",
            thousands(held_max),
            t.elapsed().as_secs_f64()
        ));
    }
}
