//! The wall clock a node stamps commands with and judges pending-transfer deadlines by. Only
//! the leader reads it (replicas apply the stamps in the log). A real node reads the system
//! clock; a deterministic simulation reads the time of its tokio runtime (paused: it advances
//! only when every task waits), so that a seed decides every stamp.

use std::time::{SystemTime, UNIX_EPOCH};

/// Where a node's wall-clock time comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Clock {
    /// The system clock.
    #[default]
    System,
    /// `epoch_us` plus the runtime time elapsed since `start` (`tokio::time::Instant`, which a
    /// paused runtime advances only when every task waits).
    Runtime {
        /// Wall-clock time at `start`, in µs since the Unix epoch.
        epoch_us: u64,
        /// The runtime instant that corresponds to `epoch_us`.
        start: tokio::time::Instant,
    },
}

impl Clock {
    /// A runtime clock that reads `epoch_us` now (call inside the runtime).
    pub fn runtime_from(epoch_us: u64) -> Clock {
        Clock::Runtime {
            epoch_us,
            start: tokio::time::Instant::now(),
        }
    }

    /// Now, in µs since the Unix epoch.
    pub fn now_us(&self) -> u64 {
        match self {
            Clock::System => SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_micros() as u64)
                .unwrap_or(0),
            Clock::Runtime { epoch_us, start } => {
                epoch_us.saturating_add(start.elapsed().as_micros() as u64)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_system_clock_is_the_system_time() {
        let before = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        let now = Duration::from_micros(Clock::System.now_us());
        let after = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        assert!(
            before <= now && now <= after,
            "{before:?} {now:?} {after:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_runtime_clock_moves_only_with_runtime_time() {
        let clock = Clock::runtime_from(1_700_000_000_000_000);
        assert_eq!(clock.now_us(), 1_700_000_000_000_000);
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(
            clock.now_us(),
            1_700_000_000_000_000,
            "real time does not count"
        );
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(clock.now_us(), 1_700_000_001_500_000);
    }
}
