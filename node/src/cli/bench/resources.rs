//! Phase 7, resources (self-started cluster only): each node's resident memory (`VmRSS` from
//! /proc/<pid>/status) and the bytes under its data directory, also per million postings this
//! run committed. Runs last, so the denominator covers every phase's writes.

use super::ctx::Ctx;
use super::report::{proc_kb, Report};
use super::stats::thousands;
use serde_json::json;
use std::path::Path;

/// Deepest directory level walked (a node's data directory is a few levels deep).
const WALK_DEPTH_MAX: usize = 16;

/// Bytes of regular files under `dir` (symlinks not followed).
pub fn dir_bytes(dir: &Path, depth: usize) -> u64 {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut total = 0;
    for e in rd.flatten() {
        let Ok(m) = e.path().symlink_metadata() else {
            continue;
        };
        if m.is_dir() && depth < WALK_DEPTH_MAX {
            total += dir_bytes(&e.path(), depth + 1);
        } else if m.is_file() {
            total += m.len();
        }
    }
    total
}

/// Bytes under each top-level entry of `dir` (e.g. `wal`, `sm`, `snapshots`), largest first.
pub fn breakdown(dir: &Path) -> Vec<(String, u64)> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut parts: Vec<(String, u64)> = rd
        .flatten()
        .map(|e| {
            let p = e.path();
            let bytes = if p.is_dir() {
                dir_bytes(&p, 1)
            } else {
                p.symlink_metadata().map(|m| m.len()).unwrap_or(0)
            };
            (e.file_name().to_string_lossy().into_owned(), bytes)
        })
        .collect();
    parts.sort_by_key(|p| std::cmp::Reverse(p.1));
    parts
}

/// `VmRSS` of process `pid` in kB (`None` when it is gone).
pub fn rss_kb(pid: u32) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| proc_kb(&s, "VmRSS:"))
}

fn mb(bytes: f64) -> String {
    format!("{:.1} MB", bytes / 1e6)
}

/// Runs the phase.
pub async fn run(ctx: &mut Ctx, rep: &mut Report) -> anyhow::Result<()> {
    let metric = "node RSS and disk per million postings";
    let Some(cluster) = ctx.cluster.as_ref() else {
        rep.note("resources skipped: node pids and data directories are only known for a self-started cluster");
        rep.row(
            metric,
            "skipped (--target)".into(),
            "reported",
            "disk <= 500 MB",
            "n/a".into(),
        );
        return Ok(());
    };
    let postings = ctx.postings_total;
    let millions = postings as f64 / 1e6;
    let mut nodes = Vec::new();
    let (mut rss_max, mut disk_max, mut growth_max) = (0u64, 0u64, 0u64);
    for (pos, n) in cluster.nodes.iter().enumerate() {
        let rss = n.pid().and_then(rss_kb).map(|kb| kb * 1024);
        let disk = dir_bytes(&n.data_dir, 0);
        let growth = disk.saturating_sub(ctx.disk_baseline_bytes.get(pos).copied().unwrap_or(0));
        rss_max = rss_max.max(rss.unwrap_or(0));
        disk_max = disk_max.max(disk);
        growth_max = growth_max.max(growth);
        let parts = breakdown(&n.data_dir);
        let parts_text: Vec<String> = parts
            .iter()
            .map(|(name, b)| format!("{name} {}", mb(*b as f64)))
            .collect();
        let rss_text = rss
            .map(|b| mb(b as f64))
            .unwrap_or_else(|| "not running".into());
        println!(
            "  node {}: RSS {rss_text}, disk {} ({}), grown {} since the cluster came up",
            n.id,
            mb(disk as f64),
            parts_text.join(", "),
            mb(growth as f64)
        );
        let parts: serde_json::Map<String, serde_json::Value> =
            parts.into_iter().map(|(k, v)| (k, json!(v))).collect();
        nodes.push(
            json!({"id": n.id, "rss_bytes": rss, "disk_bytes": disk, "disk_growth_bytes": growth,
                          "disk_bytes_by_entry": parts}),
        );
    }
    let per_m = |b: u64| (millions > 0.0).then(|| b as f64 / millions);
    println!("  {} postings committed by this run", thousands(postings));
    rep.phase(
        "resources",
        json!({"nodes": nodes, "postings": postings, "rss_bytes_max": rss_max, "disk_bytes_max": disk_max,
               "disk_growth_bytes_max": growth_max, "rss_bytes_per_million_postings": per_m(rss_max),
               "disk_bytes_per_million_postings": per_m(disk_max),
               "disk_growth_bytes_per_million_postings": per_m(growth_max)}),
    );
    let result = match (per_m(rss_max), per_m(disk_max), per_m(growth_max)) {
        (Some(r), Some(d), Some(g)) => format!(
            "max RSS {} ({} per M); max disk {} ({} per M; growth {} per M); {} postings",
            mb(rss_max as f64),
            mb(r),
            mb(disk_max as f64),
            mb(d),
            mb(g),
            thousands(postings)
        ),
        _ => format!(
            "max RSS {}, max disk {}; no postings committed",
            mb(rss_max as f64),
            mb(disk_max as f64)
        ),
    };
    // At 1M postings and above the aim is judged on total disk; below, fixed costs (the
    // preallocated WAL segment, sled's files) would dominate, so the growth since start is used.
    let (basis, label) = if postings >= 1_000_000 {
        (per_m(disk_max), "total")
    } else {
        (per_m(growth_max), "growth")
    };
    let verdict = match basis {
        Some(d) if d <= 500e6 => format!("reported; disk ({label}) meets aim"),
        Some(_) => format!("reported; disk ({label}) above aim"),
        None => "reported".to_owned(),
    };
    rep.row(metric, result, "reported", "disk <= 500 MB", verdict);
    Ok(())
}
