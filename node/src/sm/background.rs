//! Background work of the state machine (snapshot builds, history moves): each runs on a thread
//! of its own at a lower CPU priority, so on a busy host it takes the CPU apply and replication
//! leave over instead of competing with them (commit latency during a build is a bar).

use std::io;

/// Runs `work` on a new thread named `name` at CPU priority `nice` (0 is normal, 19 the
/// lowest) and waits for its result without blocking the async runtime.
pub async fn run_at_low_priority<T: Send + 'static>(
    name: &str,
    nice: i32,
    work: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            lower_thread_priority(nice);
            let _ = done_tx.send(work());
        })?;
    done_rx
        .await
        .map_err(|_| io::Error::other(format!("{name} thread ended without a result")))?
}

/// Lowers the calling thread's CPU priority to `nice`. Linux applies `setpriority` on a thread
/// id to that thread only; the work runs on a thread of its own, so nothing else inherits it.
/// A refusal is logged and the work runs at normal priority.
fn lower_thread_priority(nice: i32) {
    let tid = rustix::thread::gettid();
    if let Err(e) = rustix::process::setpriority_process(Some(tid), nice) {
        tracing::warn!(error = %e, "could not lower a background thread's priority");
    }
}
