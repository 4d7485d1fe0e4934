//! Sabotage switches for the chaos harness's negative controls: deliberately broken behaviour
//! that the checkers must report. Compiled only with cargo feature `sabotage` (off by default,
//! never in release builds); one is chosen at start with `RAFTLEDGER_SABOTAGE`:
//! - `stale-linearizable` — linearizable and lease reads skip ReadIndex and serve local state (L5).
//! - `ack-before-commit`  — the leader answers a write before it is committed, with a guessed
//!   index (L4).
//! - `double-apply`       — a retried command is executed again instead of replayed (L3).
//!
//! "Skip the fsync before the append callback" is not offered: on this machine a SIGKILL keeps
//! the page cache, so it is only observable with a simulated power cut, which the WAL's own
//! `SimFs` tests already cover with a negative control.
//!
//! Without the feature `active` is a constant `false` and nothing else exists.

/// Environment variable naming the sabotage to switch on.
pub const SABOTAGE_ENV: &str = "RAFTLEDGER_SABOTAGE";

/// One deliberate defect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sabotage {
    /// Linearizable reads without ReadIndex.
    StaleLinearizable,
    /// Acknowledge writes before commit.
    AckBeforeCommit,
    /// Apply retried commands twice.
    DoubleApply,
}

#[cfg(feature = "sabotage")]
static ACTIVE: std::sync::OnceLock<Option<Sabotage>> = std::sync::OnceLock::new();

/// Reads `RAFTLEDGER_SABOTAGE` once and switches the ledger's hook on when needed.
#[cfg(feature = "sabotage")]
pub fn init() -> anyhow::Result<()> {
    let chosen = match std::env::var(SABOTAGE_ENV).ok().as_deref() {
        None | Some("") | Some("none") => None,
        Some("stale-linearizable") => Some(Sabotage::StaleLinearizable),
        Some("ack-before-commit") => Some(Sabotage::AckBeforeCommit),
        Some("double-apply") => Some(Sabotage::DoubleApply),
        Some(other) => anyhow::bail!("{SABOTAGE_ENV}={other}: unknown sabotage"),
    };
    ledger::sabotage::set_double_apply(chosen == Some(Sabotage::DoubleApply));
    if let Some(s) = chosen {
        tracing::warn!(sabotage = ?s, "node.sabotage: deliberately broken build for chaos tests");
    }
    let _ = ACTIVE.set(chosen);
    Ok(())
}

/// Without the feature there is nothing to switch on.
#[cfg(not(feature = "sabotage"))]
pub fn init() -> anyhow::Result<()> {
    Ok(())
}

/// True when sabotage `s` is switched on (always false without the feature).
#[inline]
pub fn active(s: Sabotage) -> bool {
    #[cfg(feature = "sabotage")]
    {
        ACTIVE.get().copied().flatten() == Some(s)
    }
    #[cfg(not(feature = "sabotage"))]
    {
        let _ = s;
        false
    }
}

/// `ack-before-commit`: proposes `commands` in the background and answers at once with the
/// index the entry would get if nothing else were in flight. The answer is a lie whenever the
/// entry lands elsewhere or never commits.
#[cfg(feature = "sabotage")]
pub fn ack_before_commit(
    raft: &crate::raft_types::Raft,
    commands: Vec<ledger::Command>,
) -> crate::proposer::Proposed {
    let index = crate::raft_types::metrics_of(raft)
        .last_log_index
        .unwrap_or(0)
        + 1;
    let results = commands
        .iter()
        .map(|c| ledger::CommandResult {
            command_id: c.id.as_str().into(),
            index,
            timestamp_us: c.timestamp_us,
            outcome: ledger::Outcome::Accepted {
                first_event_seq: 0,
                last_event_seq: 0,
                status: "posted".into(),
                inner: Vec::new(),
            },
            replayed: false,
        })
        .collect();
    let r = raft.clone();
    tokio::spawn(async move {
        let _ = r
            .client_write(crate::raft_types::LedgerRequest { commands })
            .await;
    });
    crate::proposer::Proposed { results, index }
}
