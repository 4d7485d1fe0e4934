//! The read-side nemeses, each applied, held and healed with evidence that it took effect:
//! the server was listening before, a kill of a running process was delivered, and its port
//! refused connections during the hold. `nats-kill` SIGKILLs nats-server (JetStream may lose
//! its unsynced tail; the relay republishes from the log) and restarts it on the same store;
//! `postgres-kill` stops PostgreSQL immediately (SIGQUIT: no checkpoint, crash recovery on
//! restart — a SIGKILL of the postmaster would leave its backends holding shared memory);
//! `readmodel-kill` SIGKILLs the processor and restarts it on the same port.

use super::{listening, ReadSide};
use crate::schedule::NemesisKind;
use std::time::Duration;

/// Applies `kind` to the read side, holds it `hold_ms`, heals; returns (took effect, evidence).
pub async fn apply(
    rs: &mut ReadSide,
    kind: NemesisKind,
    hold_ms: u64,
    http: &reqwest::Client,
) -> (bool, String) {
    let hold = Duration::from_millis(hold_ms);
    match kind {
        NemesisKind::NatsKill => {
            let port = rs.nats.port;
            let before = listening(port);
            tokio::task::block_in_place(|| rs.nats.kill());
            let refused = !listening(port);
            tokio::time::sleep(hold).await;
            let restarted = tokio::task::block_in_place(|| rs.nats.restart());
            (
                before && refused,
                format!(
                    "nats-server listening before={before} refused after sigkill={refused} restarted={}",
                    result(&restarted)
                ),
            )
        }
        NemesisKind::PostgresKill => {
            let port = rs.postgres.port;
            let before = listening(port);
            tokio::task::block_in_place(|| rs.postgres.stop());
            let refused = !listening(port);
            tokio::time::sleep(hold).await;
            let restarted = tokio::task::block_in_place(|| rs.postgres.restart());
            (
                before && refused,
                format!(
                    "postgres listening before={before} refused after immediate stop={refused} restarted={}",
                    result(&restarted)
                ),
            )
        }
        NemesisKind::ReadmodelKill => {
            let port = rs.processor.port;
            let killed = rs.processor.kill();
            let refused = !listening(port);
            tokio::time::sleep(hold).await;
            let ready = rs.processor.start_ready(http).await;
            let back = match &ready {
                Ok(ms) => format!("api back after {ms} ms"),
                Err(e) => format!("restart failed: {e:#}"),
            };
            (
                killed && refused,
                format!("sigkill delivered={killed} api refused={refused} {back}"),
            )
        }
        other => (false, format!("{} is not a read-side fault", other.name())),
    }
}

fn result(r: &anyhow::Result<()>) -> String {
    match r {
        Ok(()) => "true".into(),
        Err(e) => format!("false ({e:#})"),
    }
}
