//! Phase 6, catch-up (self-started cluster only): after the time-travel postings are loaded,
//! wipes one follower's data directory, restarts it as the same member, and measures the time
//! until its applied index reaches the leader's committed index (it receives a snapshot and/or
//! the log). Node 1 is never the one wiped: with an empty directory it would initialize a new
//! cluster (the smallest id of `--peers` does).

use super::ctx::Ctx;
use super::failover::wait_applied;
use super::report::{at_scale, verdict_lower, Report};
use super::stats::thousands;
use serde_json::json;
use std::time::Duration;

/// Longest the wiped node may take; far above the 30 s bar so a slow result is still measured.
const CATCHUP_TIMEOUT: Duration = Duration::from_secs(600);

/// Runs the phase.
pub async fn run(ctx: &mut Ctx, rep: &mut Report) -> anyhow::Result<()> {
    let metric = "wiped node rejoins and catches up";
    if !ctx.owned() {
        rep.note("catch-up skipped: it wipes a node's data directory, which needs a self-started cluster");
        rep.row(
            metric,
            "skipped (--target)".into(),
            "30 s",
            "10 s",
            "n/a".into(),
        );
        return Ok(());
    }
    let loaded = super::timetravel::ensure_loaded(ctx).await?;
    ctx.wait_healthy().await?;
    let (leader, _) = ctx.leader().await?;
    let victim = (2..=ctx.urls.len() as u64)
        .find(|id| *id != leader)
        .ok_or_else(|| anyhow::anyhow!("no follower other than node 1 to wipe"))?;
    let cluster = ctx
        .cluster
        .as_mut()
        .ok_or_else(|| anyhow::anyhow!("catch-up needs an owned cluster"))?;
    cluster.wipe(victim)?;
    let target = ctx.leader_committed().await?;
    ctx.cluster.as_mut().map(|c| c.start(victim)).transpose()?;
    let took = wait_applied(ctx, victim, target, CATCHUP_TIMEOUT).await;
    let took = match took {
        Ok(d) => d,
        Err(e) => {
            rep.row(
                metric,
                format!("not caught up: {e}"),
                "30 s",
                "10 s",
                "ABOVE MUST".into(),
            );
            return Err(e);
        }
    };
    let s = ctx
        .http
        .status(&ctx.urls[(victim - 1) as usize])
        .await
        .unwrap_or_default();
    let secs = took.as_secs_f64();
    let postings = ctx.postings_total;
    println!(
        "  wiped node {victim}, restarted: applied >= leader committed {target} after {secs:.2} s \
         (snapshot index {}, {} postings in the cluster)",
        s["snapshot"],
        thousands(postings)
    );
    rep.phase(
        "catchup",
        json!({"node": victim, "target_index": target, "seconds": secs, "snapshot": s["snapshot"],
               "postings_in_cluster": postings, "time_travel_postings": loaded.postings}),
    );
    rep.row(
        metric,
        format!(
            "{secs:.2} s ({} postings in the cluster)",
            thousands(postings)
        ),
        "30 s",
        "10 s",
        at_scale(verdict_lower(secs, 30.0, 10.0), postings, 1_000_000),
    );
    Ok(())
}
