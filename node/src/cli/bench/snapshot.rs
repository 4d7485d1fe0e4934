//! Has one node build a snapshot now (`POST /cluster/snapshot`) and waits until the
//! `snapshot_build` of its `/cluster/status` reaches the index it had applied when asked; that
//! entry carries the file size and the node-measured build time.

use super::ctx::Ctx;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// Longest a node may take to build its snapshot.
const SNAPSHOT_TIMEOUT: Duration = Duration::from_secs(600);
/// A snapshot request is repeated after this long without a build (a request made while a
/// policy snapshot was being built may be dropped).
const SNAPSHOT_RETRY_AFTER: Duration = Duration::from_secs(15);
/// Timeout of the request itself.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Has node `id` build a snapshot now and waits for it; returns the node's
/// `snapshot_build` (`index`, `bytes`, `build_ms`) plus the bench-side wait.
pub async fn snapshot_node(ctx: &Ctx, id: u64) -> anyhow::Result<Value> {
    let url = &ctx.urls[(id - 1) as usize];
    let t = Instant::now();
    let mut want = None;
    let mut asked: Option<Instant> = None;
    loop {
        if asked.is_none_or(|a| a.elapsed() >= SNAPSHOT_RETRY_AFTER) {
            let (h, _, body) = ctx
                .http
                .post_reply(
                    &format!("{url}/cluster/snapshot"),
                    &json!({}),
                    REQUEST_TIMEOUT,
                )
                .await?;
            anyhow::ensure!(
                h.status == 202,
                "node {id}: POST /cluster/snapshot: {}",
                h.status
            );
            let v: Value = serde_json::from_slice(&body).unwrap_or_default();
            want = want.or(v["snapshot_requested_at_applied"].as_u64());
            asked = Some(Instant::now());
        }
        let build = ctx
            .http
            .status(url)
            .await
            .map(|s| s["snapshot_build"].clone());
        if let (Some(b), Some(w)) = (build, want) {
            if b["index"].as_u64().is_some_and(|i| i >= w) {
                let mut b = b;
                b["waited_s"] = json!(t.elapsed().as_secs_f64());
                return Ok(b);
            }
        }
        anyhow::ensure!(
            t.elapsed() < SNAPSHOT_TIMEOUT,
            "node {id}: no snapshot at index >= {want:?} within {} s",
            SNAPSHOT_TIMEOUT.as_secs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
