//! Phase 9, growth (self-started cluster only): the measurement behind "Long life II: bounded
//! memory". **Not run by default** — only with `--only growth` — because the default steps
//! (`--growth-steps 1000000,5000000,10000000`) take many minutes on the 2-core host.
//!
//! Loads postings through the batch API (the time-travel loader, its own 1000 accounts) up to
//! each step's total, then, per step:
//! 1. commit latency (single transfers, 4 clients, at the leader) for 5 s, then while the
//!    leader builds snapshots, until 1000 commits landed during builds (`commit_probe`);
//! 2. waits until every node applied the load, and has each node in turn build a snapshot
//!    (`POST /cluster/snapshot`); size and build time come from `snapshot_build` in that node's
//!    `/cluster/status`;
//! 3. each node's RSS (steady: after its snapshot and once no history move is running,
//!    `settle`) and bytes on disk per posting;
//! 4. time-travel p99 (`at` / `at_index`, stale / linearizable) and a conservation check;
//! 5. p99 of replaying the very first transfer of the load (same body, to the leader): every
//!    reply must be a 200 with `Idempotent-Replayed: true` and the same body at every step;
//! 6. restart of one follower gracefully (SIGTERM) and of the other after SIGKILL: time from
//!    the new process's start to its first stale time-travel read answered 200 (and to caught
//!    up).
//!
//! At the end, the RSS slope: least squares of the largest node RSS over the steps. Bars (must
//! and aim alike): RSS ≤ 512 MB per node at 10M postings (MB = 10^6 bytes), slope ≤ 16 bytes
//! per posting, disk ≤ 250 bytes per posting, restart to serving reads ≤ 5 s, time travel and
//! replay p99 ≤ 2 ms, commit p99 during a snapshot build ≤ 2 × without. Below 10M postings the
//! verdicts are marked indicative.

use super::commit_probe;
use super::ctx::Ctx;
use super::failover::wait_all_applied;
use super::http::{error_kind, TransferReq};
use super::report::{at_scale, verdict_lower, Report};
use super::resources::{breakdown, dir_bytes, rss_kb};
use super::restart::{restart_follower, Restart};
use super::snapshot::snapshot_node;
use super::stats::{thousands, Errors, Lat};
use super::timetravel::{self, Loaded, ACCOUNTS};
use futures::StreamExt;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// Postings at which the bars are defined.
const BAR_POSTINGS: u64 = 10_000_000;
/// Largest RSS of a node at [`BAR_POSTINGS`].
const RSS_BAR_MB: f64 = 512.0;
/// Largest RSS growth per posting.
const SLOPE_BAR_BYTES_PER_POSTING: f64 = 16.0;
/// Largest disk use per posting (total bytes under a node's data directory).
const DISK_BAR_BYTES_PER_POSTING: f64 = 250.0;
/// Longest time from a node's restart to its first answered read.
const RESTART_BAR_S: f64 = 5.0;
/// Largest p99 of time-travel queries and of idempotent replays.
const P99_BAR_MS: f64 = 2.0;
/// Longest the nodes may take to apply a step's load, and a restarted node to catch up.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(600);
/// Timeout of one request (reads, replays, snapshot requests).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest ratio of commit p99 during a snapshot build to commit p99 without one.
const COMMIT_RATIO_BAR: f64 = 2.0;
/// Replays of the first transfer per step.
const REPLAYS: usize = 1000;
/// Concurrent replays: low, so the percentiles measure the request, not queueing.
const REPLAY_CLIENTS: usize = 4;

/// Checks `--growth-steps`: non-empty, strictly increasing, the first above the accounts' own
/// deposits (so every step loads transfers).
pub fn check_steps(steps: &[u64]) -> anyhow::Result<()> {
    anyhow::ensure!(!steps.is_empty(), "--growth-steps needs at least one step");
    anyhow::ensure!(
        steps[0] > ACCOUNTS as u64,
        "--growth-steps: the first step must exceed {ACCOUNTS} postings (the deposits)"
    );
    anyhow::ensure!(
        steps.windows(2).all(|w| w[0] < w[1]),
        "--growth-steps must be strictly increasing"
    );
    Ok(())
}

/// Least-squares slope of `y` over `x` (bytes per posting); `None` without two distinct `x`.
pub fn slope(points: &[(u64, u64)]) -> Option<f64> {
    let n = points.len() as f64;
    let mean = |f: fn(&(u64, u64)) -> f64| points.iter().map(f).sum::<f64>() / n;
    let (mx, my) = (mean(|p| p.0 as f64), mean(|p| p.1 as f64));
    let sxx: f64 = points.iter().map(|p| (p.0 as f64 - mx).powi(2)).sum();
    let sxy: f64 = points
        .iter()
        .map(|p| (p.0 as f64 - mx) * (p.1 as f64 - my))
        .sum();
    (points.len() >= 2 && sxx > 0.0).then(|| sxy / sxx)
}

/// Bytes per posting (no postings count as one).
fn per_posting(bytes: u64, postings: u64) -> f64 {
    bytes as f64 / postings.max(1) as f64
}

/// Adds a row whose must and aim are the same bar.
fn bar_row(rep: &mut Report, metric: &str, result: String, bar: &str, verdict: String) {
    rep.row(metric, result, bar, bar, verdict);
}

fn mb(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

/// Replays the load's first transfer [`REPLAYS`] times at the leader. Every reply must be a
/// 200 with `Idempotent-Replayed: true` and the body of `reference` (set by the first step).
async fn replay_first(
    ctx: &Ctx,
    l: &Loaded,
    reference: &mut Option<bytes::Bytes>,
) -> anyhow::Result<(Lat, Errors)> {
    let first = timetravel::first_transfer(l)?;
    let body = TransferReq {
        id: &first.id,
        from: first.from,
        to: first.to,
        amount: first.amount,
    };
    let url = format!("{}/v1/transfers", ctx.leader().await?.1);
    let (http, body, url) = (&ctx.http, &body, &url);
    let replies: Vec<_> = futures::stream::iter(0..REPLAYS)
        .map(|_| async move {
            let t = Instant::now();
            let r = http.post_reply(url, body, REQUEST_TIMEOUT).await;
            (t.elapsed(), r)
        })
        .buffer_unordered(REPLAY_CLIENTS)
        .collect()
        .await;
    let (mut lat, mut errors) = (Lat::new(), Errors::default());
    for (took, r) in replies {
        match r {
            Ok((h, true, b)) if h.status == 200 => {
                if reference.get_or_insert_with(|| b.clone()) == &b {
                    lat.record(took);
                } else {
                    errors.add("different body");
                }
            }
            Ok((h, replayed, _)) => errors.add(format!("{} replayed={replayed}", h.status)),
            Err(e) => errors.add(error_kind(&e)),
        }
    }
    Ok((lat, errors))
}

/// Measures one step (the load is in) and adds its rows; returns its JSON and the largest RSS.
async fn step(
    ctx: &mut Ctx,
    rep: &mut Report,
    l: &Loaded,
    reference: &mut Option<bytes::Bytes>,
) -> anyhow::Result<(Value, u64)> {
    let (postings, label) = (ctx.postings_total, thousands(l.postings));
    let verdict = |v: f64, bar: f64| at_scale(verdict_lower(v, bar, bar), postings, BAR_POSTINGS);
    wait_all_applied(ctx, SETTLE_TIMEOUT).await?;
    let probe = commit_probe::run(ctx, l, &label).await?;
    println!(
        "  commit latency: {} without a snapshot; {} while the leader built {} ({} ms in all; last {})",
        probe.without,
        probe.during,
        probe.builds.len(),
        probe.build_ms(),
        probe.builds.last().unwrap_or(&Value::Null)
    );
    wait_all_applied(ctx, SETTLE_TIMEOUT).await?;
    let rss_of = |c: &crate::local_cluster::LocalCluster| -> Vec<u64> {
        c.nodes
            .iter()
            .map(|n| n.pid().and_then(rss_kb).map_or(0, |kb| kb * 1024))
            .collect()
    };
    let rss_before = ctx.cluster.as_ref().map(rss_of).unwrap_or_default();
    let mut snaps = Vec::new();
    for id in 1..=ctx.urls.len() as u64 {
        let s = snapshot_node(ctx, id).await?;
        println!("  node {id}: snapshot {s}");
        snaps.push(s);
    }
    // Steady state: no move of the load's history still running (its records count as held
    // until freed).
    super::settle::wait_history_moved(ctx, rep, &format!("the load to {label} postings")).await;
    let (mut rss, mut disk, mut parts) = (Vec::new(), Vec::new(), Vec::new());
    if let Some(c) = ctx.cluster.as_ref() {
        rss = rss_of(c);
        for n in &c.nodes {
            disk.push(dir_bytes(&n.data_dir, 0));
            let entries = breakdown(&n.data_dir)
                .into_iter()
                .map(|(k, b)| (k, json!(b)));
            parts.push(Value::Object(entries.collect()));
        }
    }
    let grown = |pos: usize| {
        disk[pos].saturating_sub(ctx.disk_baseline_bytes.get(pos).copied().unwrap_or(0))
    };
    let (rss_max, disk_max) = (
        rss.iter().copied().max().unwrap_or(0),
        disk.iter().copied().max().unwrap_or(0),
    );
    let grown_max = (0..disk.len()).map(grown).max().unwrap_or(0);
    let listed = |v: &[u64]| v.iter().map(|b| mb(*b)).collect::<Vec<_>>().join(" / ");
    println!(
        "  RSS {} (before the snapshots {}); disk {} ({} postings in the cluster); node 1 disk by entry {}",
        listed(&rss),
        listed(&rss_before),
        listed(&disk),
        thousands(postings),
        parts.first().unwrap_or(&Value::Null)
    );
    let modes = timetravel::query_modes(ctx, l, ctx.args.queries).await;
    let points = timetravel::check_conservation(ctx, l, l.postings).await?;
    let (replay_lat, replay_errors) = replay_first(ctx, l, reference).await?;
    let replay = replay_lat.summary();
    println!("  replay of the first transfer: {replay}; errors: {replay_errors}");
    // Two different followers, so that each restart follows the whole run (sled replays its
    // log since the last open at every open: a second restart of one node would hide that).
    let graceful = restart_follower(ctx, l, true, 0, SETTLE_TIMEOUT).await?;
    let killed = restart_follower(ctx, l, false, 1, SETTLE_TIMEOUT).await?;
    for (r, how) in [(&graceful, "SIGTERM"), (&killed, "SIGKILL")] {
        println!(
            "  node {} {how} (stopped in {:.2} s, by itself: {}): serving reads {:.2} s, caught up {:.2} s after start",
            r.node, r.stop_s, r.exited_by_itself, r.serving_s, r.caught_up_s
        );
    }
    let at = format!("growth {label}:");
    bar_row(
        rep,
        &format!("{at} RSS per node after a snapshot"),
        format!(
            "max {} (nodes {}; before the snapshots {})",
            mb(rss_max),
            listed(&rss),
            listed(&rss_before)
        ),
        "512 MB at 10M",
        verdict(rss_max as f64 / 1e6, RSS_BAR_MB),
    );
    let disk_pp = per_posting(disk_max, postings);
    bar_row(
        rep,
        &format!("{at} disk per posting"),
        format!(
            "{disk_pp:.0} B/posting (max {}; grown {:.0} B/posting since start)",
            mb(disk_max),
            per_posting(grown_max, postings)
        ),
        "250 B",
        verdict(disk_pp, DISK_BAR_BYTES_PER_POSTING),
    );
    let field =
        |k: &str| -> Vec<u64> { snaps.iter().map(|s| s[k].as_u64().unwrap_or(0)).collect() };
    let (snap_bytes, snap_ms) = (field("bytes"), field("build_ms"));
    bar_row(
        rep,
        &format!("{at} snapshot size, build time"),
        format!(
            "{} ({:.0} B/posting); built in {} ms",
            listed(&snap_bytes),
            per_posting(snap_bytes.iter().copied().max().unwrap_or(0), postings),
            snap_ms
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(" / ")
        ),
        "reported",
        "reported".into(),
    );
    let ratio = probe.during.p99_ms / probe.without.p99_ms.max(f64::MIN_POSITIVE);
    bar_row(
        rep,
        &format!("{at} commit p99 during a snapshot build"),
        format!(
            "{:.2} ms during ({} commits, {} builds, {} ms) vs {:.2} ms without ({} commits): {ratio:.2}x",
            probe.during.p99_ms,
            probe.during.count,
            probe.builds.len(),
            probe.build_ms(),
            probe.without.p99_ms,
            probe.without.count
        ),
        "2x without",
        if probe.errors.total() > 0 {
            format!("errors: {}", probe.errors)
        } else {
            verdict_lower(ratio, COMMIT_RATIO_BAR, COMMIT_RATIO_BAR)
        },
    );
    let worst = graceful.serving_s.max(killed.serving_s);
    bar_row(
        rep,
        &format!("{at} restart of a follower to serving reads"),
        format!(
            "SIGTERM {:.2} s, SIGKILL {:.2} s (caught up {:.2} / {:.2} s)",
            graceful.serving_s, killed.serving_s, graceful.caught_up_s, killed.caught_up_s
        ),
        "5 s",
        verdict(worst, RESTART_BAR_S),
    );
    let tt_errors: u64 = modes.iter().map(|m| m.errors.total()).sum();
    let tt_worst = modes.iter().map(|m| m.summary.p99_ms).fold(0.0, f64::max);
    let p99s: Vec<String> = modes
        .iter()
        .map(|m| format!("{} {:.2}", m.key, m.summary.p99_ms))
        .collect();
    bar_row(
        rep,
        &format!("{at} time travel p99 (ms)"),
        p99s.join(", "),
        "2 ms",
        if tt_errors > 0 {
            format!("{tt_errors} errors")
        } else {
            verdict(tt_worst, P99_BAR_MS)
        },
    );
    bar_row(
        rep,
        &format!("{at} idempotent replay of the first transfer p99"),
        format!(
            "p99 {:.2} ms (p50 {:.2}), {} replays, same body",
            replay.p99_ms, replay.p50_ms, replay.count
        ),
        "2 ms",
        if replay_errors.total() > 0 {
            format!("errors: {replay_errors}")
        } else {
            verdict(replay.p99_ms, P99_BAR_MS)
        },
    );
    let modes_json: serde_json::Map<String, Value> = modes
        .into_iter()
        .map(|m| (m.key, json!({"latency": m.summary, "errors": m.errors})))
        .collect();
    let restart_json = |r: &Restart| {
        json!({"node": r.node, "stop_s": r.stop_s, "exited_by_itself": r.exited_by_itself,
               "serving_s": r.serving_s, "caught_up_s": r.caught_up_s})
    };
    let v = json!({"postings": postings, "growth_postings": l.postings, "rss_bytes": rss, "rss_bytes_before_snapshot": rss_before,
        "disk_bytes_by_entry": parts,
        "disk_bytes": disk, "snapshots": snaps, "time_travel": modes_json,
        "conservation_at": points, "replay": {"latency": replay, "errors": replay_errors},
        "restart_sigterm": restart_json(&graceful), "restart_sigkill": restart_json(&killed),
        "commit_without_snapshot": probe.without, "commit_during_snapshot": probe.during,
        "commit_probe_builds": probe.builds, "commit_probe_errors": probe.errors});
    Ok((v, rss_max))
}

/// Runs the phase.
pub async fn run(ctx: &mut Ctx, rep: &mut Report) -> anyhow::Result<()> {
    if !ctx.owned() {
        rep.note("growth skipped: it reads node RSS and data directories and restarts nodes, which needs a self-started cluster");
        rep.row("growth", "skipped (--target)".into(), "", "", "n/a".into());
        return Ok(());
    }
    let steps = ctx.args.growth_steps.clone();
    let mut l = timetravel::start_load(ctx, "g").await?;
    let (mut reference, mut points, mut out) = (None, Vec::new(), Vec::new());
    for target in steps {
        println!("  step: {} postings", thousands(target));
        let t = Instant::now();
        let transfers = target.saturating_sub(l.postings);
        timetravel::extend(ctx, &mut l, transfers).await?;
        let load_s = t.elapsed().as_secs_f64();
        let (mut v, rss_max) = step(ctx, rep, &l, &mut reference).await?;
        v["load_s"] = json!(load_s);
        points.push((ctx.postings_total, rss_max));
        out.push(v);
    }
    let text = points
        .iter()
        .map(|(p, r)| format!("{} @ {}", mb(*r), thousands(*p)))
        .collect::<Vec<_>>()
        .join(", ");
    let s = slope(&points);
    bar_row(
        rep,
        "growth: RSS slope (least squares of the largest node RSS)",
        match s {
            Some(b) => format!("{b:.1} B/posting ({text})"),
            None => format!("needs two steps ({text})"),
        },
        "16 B/posting",
        match s {
            Some(b) => at_scale(
                verdict_lower(b, SLOPE_BAR_BYTES_PER_POSTING, SLOPE_BAR_BYTES_PER_POSTING),
                ctx.postings_total,
                BAR_POSTINGS,
            ),
            None => "n/a".into(),
        },
    );
    rep.phase(
        "growth",
        json!({"steps": out, "rss_slope_bytes_per_posting": s, "replays_per_step": REPLAYS}),
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_must_grow_past_the_deposits() {
        assert!(check_steps(&[1_000_000, 5_000_000, 10_000_000]).is_ok());
        assert!(check_steps(&[]).is_err());
        assert!(check_steps(&[1000]).is_err());
        assert!(check_steps(&[5000, 5000]).is_err());
        assert!(check_steps(&[5000, 4000]).is_err());
    }

    #[test]
    fn slope_is_least_squares() {
        assert_eq!(slope(&[(100, 5)]), None);
        assert_eq!(slope(&[(100, 5), (100, 9)]), None);
        let s = slope(&[(0, 100), (10, 120), (20, 140)]).unwrap_or(f64::NAN);
        assert!((s - 2.0).abs() < 1e-9, "{s}");
        // Noisy points: the fit, not the last difference.
        let s = slope(&[(0, 0), (1, 2), (2, 2), (3, 6)]).unwrap_or(f64::NAN);
        assert!((s - 1.8).abs() < 1e-9, "{s}");
        assert_eq!(per_posting(500, 0), 500.0);
        assert_eq!(per_posting(500, 2), 250.0);
    }
}
