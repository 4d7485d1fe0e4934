//! Background work of the state machine (snapshot builds, history moves): each runs on a thread
//! of its own at a lower CPU priority, so on a busy host it takes the CPU apply and replication
//! leave over instead of competing with them (commit latency during a build is a bar).

use std::io;

/// CPU priority of a background thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Priority {
    /// A nice value (0 is normal, 19 the lowest).
    Nice(i32),
    /// `SCHED_IDLE`: the thread runs on CPU time nothing else wants, and any normal thread
    /// that wakes takes the CPU from it at once. At nice 19 a waking request handler still
    /// waited for the background thread's time slice: time-travel reads during history moves
    /// had a p99 of 4–5 ms instead of 1–2 ms.
    Idle,
}

/// Runs `work` on a new thread named `name` at CPU priority `priority` and waits for its
/// result without blocking the async runtime.
pub async fn run_at_low_priority<T: Send + 'static>(
    name: &str,
    priority: Priority,
    work: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            lower_thread_priority(priority);
            let _ = done_tx.send(work());
        })?;
    done_rx
        .await
        .map_err(|_| io::Error::other(format!("{name} thread ended without a result")))?
}

/// Lowers the calling thread's CPU priority. Linux applies `setpriority` and
/// `sched_setscheduler` on a thread id (0: the caller) to that thread only; the work runs on a
/// thread of its own, so nothing else inherits it. A refusal is logged and the work runs at
/// normal priority.
fn lower_thread_priority(priority: Priority) {
    let refused = match priority {
        Priority::Nice(nice) => {
            let tid = rustix::thread::gettid();
            rustix::process::setpriority_process(Some(tid), nice)
                .err()
                .map(io::Error::from)
        }
        Priority::Idle => set_sched_idle().err(),
    };
    if let Some(e) = refused {
        tracing::warn!(error = %e, ?priority, "could not lower a background thread's priority");
    }
}

/// Puts the calling thread under `SCHED_IDLE`. The one `unsafe` call of the node: neither std
/// nor rustix offers `sched_setscheduler`.
#[allow(unsafe_code)]
fn set_sched_idle() -> io::Result<()> {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: `param` is a valid `sched_param` that outlives the call; pid 0 names the calling
    // thread; the call reads `param` only.
    let rc = unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The calling thread's scheduling policy (tests only).
#[cfg(test)]
#[allow(unsafe_code)]
fn policy_of_this_thread() -> i32 {
    // SAFETY: a plain query of the calling thread's policy; no pointers involved.
    unsafe { libc::sched_getscheduler(0) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn idle_work_runs_under_sched_idle_and_nice_work_does_not() {
        let idle = run_at_low_priority("t-idle", Priority::Idle, || Ok(policy_of_this_thread()));
        assert_eq!(idle.await.unwrap(), libc::SCHED_IDLE);
        let nice = run_at_low_priority("t-nice", Priority::Nice(5), || {
            let tid = rustix::thread::gettid();
            Ok((
                policy_of_this_thread(),
                rustix::process::getpriority_process(Some(tid))?,
            ))
        });
        assert_eq!(nice.await.unwrap(), (libc::SCHED_OTHER, 5));
        // The caller's own thread is untouched.
        assert_eq!(policy_of_this_thread(), libc::SCHED_OTHER);
    }
}
