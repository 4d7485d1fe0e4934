//! Where a node's blocking and background work runs. A real node uses threads: the WAL's
//! flusher, tokio's blocking pool for apply chunks, snapshot installs and reads of evicted log
//! entries, low-priority threads for snapshot builds and expansions. A deterministic simulation
//! runs every step on the one thread of its runtime instead, so that one seed orders them all
//! (with `SimFs`, whose I/O never blocks); on a real disk that would stall the runtime.

use std::io;

/// Where blocking and background work runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Execution {
    /// On threads: tokio's blocking pool, and threads of their own for the WAL's flusher and
    /// for background work.
    #[default]
    Threads,
    /// Inline, on the thread of the tokio runtime that runs the node (the WAL's flusher as a
    /// task of that runtime).
    RuntimeOnly,
}

impl Execution {
    /// Runs blocking `work` (named `what` in errors): on tokio's blocking pool, or inline.
    pub async fn blocking<T: Send + 'static>(
        self,
        what: &str,
        work: impl FnOnce() -> io::Result<T> + Send + 'static,
    ) -> io::Result<T> {
        match self {
            Execution::Threads => tokio::task::spawn_blocking(work)
                .await
                .map_err(|e| io::Error::other(format!("{what} task failed: {e}")))?,
            Execution::RuntimeOnly => work(),
        }
    }

    /// Runs background `work` on a new thread named `name` at CPU priority `nice`, or inline.
    pub async fn background<T: Send + 'static>(
        self,
        name: &str,
        nice: i32,
        work: impl FnOnce() -> io::Result<T> + Send + 'static,
    ) -> io::Result<T> {
        match self {
            Execution::Threads => crate::sm::run_at_low_priority(name, nice, work).await,
            Execution::RuntimeOnly => work(),
        }
    }
}
