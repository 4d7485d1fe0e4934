//! Restart of one follower, as the growth phase times it: stop it gracefully (SIGTERM, SIGKILL
//! only after `STOP_TIMEOUT`) or with SIGKILL, start it again on the same data directory, and
//! time the new process until it answers a stale time-travel read with 200 ("serving reads"),
//! then until its applied index reaches the leader's committed index ("caught up").

use super::ctx::Ctx;
use super::failover::wait_applied;
use super::timetravel::Loaded;
use std::time::{Duration, Instant};

/// Longest a SIGTERMed node may take to exit before it is SIGKILLed.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// Timeout of one read attempt against the restarting node.
const PROBE_TIMEOUT: Duration = Duration::from_millis(500);

/// One restart of a follower.
pub struct Restart {
    /// The node restarted.
    pub node: u64,
    /// Time to stop it.
    pub stop_s: f64,
    /// It exited by itself after SIGTERM (false after SIGKILL).
    pub exited_by_itself: bool,
    /// From the new process's start to its first answered read.
    pub serving_s: f64,
    /// From the new process's start to caught up.
    pub caught_up_s: f64,
}

/// Stops follower number `follower` (0: the highest id that is not the leader, 1: the next)
/// (SIGTERM, or SIGKILL when `!graceful`), starts it again, and times the new
/// process until it answers a stale read at a past index of `l` with 200, then until it caught
/// up; each wait is bounded by `timeout`.
pub async fn restart_follower(
    ctx: &mut Ctx,
    l: &Loaded,
    graceful: bool,
    follower: usize,
    timeout: Duration,
) -> anyhow::Result<Restart> {
    ctx.wait_healthy().await?;
    let (leader, _) = ctx.leader().await?;
    let node = (1..=ctx.urls.len() as u64)
        .rev()
        .filter(|id| *id != leader)
        .nth(follower)
        .ok_or_else(|| anyhow::anyhow!("no follower {follower} to restart"))?;
    let cluster = ctx
        .cluster
        .as_mut()
        .ok_or_else(|| anyhow::anyhow!("restarting a node needs an owned cluster"))?;
    let t = Instant::now();
    let exited_by_itself = if graceful {
        cluster.terminate(node, STOP_TIMEOUT).await?
    } else {
        cluster.kill(node);
        false
    };
    let stop_s = t.elapsed().as_secs_f64();
    cluster.start(node)?;
    let started = Instant::now();
    let (account, index) = (&l.accounts[0], l.samples[l.samples.len() / 2].1);
    let probe = format!(
        "{}/v1/accounts/{account}/balance?at_index={index}&consistency=stale",
        ctx.urls[(node - 1) as usize]
    );
    loop {
        if let Ok((h, _)) = ctx.http.get_json(&probe, PROBE_TIMEOUT).await {
            if h.status == 200 {
                break;
            }
        }
        anyhow::ensure!(
            started.elapsed() < timeout,
            "node {node} answered no read within {} s of its restart",
            timeout.as_secs()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let serving_s = started.elapsed().as_secs_f64();
    let target = ctx.leader_committed().await?;
    wait_applied(ctx, node, target, timeout).await?;
    Ok(Restart {
        node,
        stop_s,
        exited_by_itself,
        serving_s,
        caught_up_s: started.elapsed().as_secs_f64(),
    })
}
