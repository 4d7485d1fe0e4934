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

fn rss_kb(pid: u32) -> Option<u64> {
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
    let (mut rss_max, mut disk_max) = (0u64, 0u64);
    for n in &cluster.nodes {
        let rss = n.pid().and_then(rss_kb).map(|kb| kb * 1024);
        let disk = dir_bytes(&n.data_dir, 0);
        rss_max = rss_max.max(rss.unwrap_or(0));
        disk_max = disk_max.max(disk);
        println!(
            "  node {}: RSS {}, disk {}",
            n.id,
            rss.map(|b| mb(b as f64))
                .unwrap_or_else(|| "not running".into()),
            mb(disk as f64)
        );
        nodes.push(json!({"id": n.id, "rss_bytes": rss, "disk_bytes": disk}));
    }
    let per_m = |b: u64| {
        if millions > 0.0 {
            Some(b as f64 / millions)
        } else {
            None
        }
    };
    println!("  {} postings committed by this run", thousands(postings));
    rep.phase(
        "resources",
        json!({"nodes": nodes, "postings": postings, "rss_bytes_max": rss_max, "disk_bytes_max": disk_max,
               "rss_bytes_per_million_postings": per_m(rss_max), "disk_bytes_per_million_postings": per_m(disk_max)}),
    );
    let result = match (per_m(rss_max), per_m(disk_max)) {
        (Some(r), Some(d)) => format!(
            "max RSS {} ({} per M), max disk {} ({} per M); {} postings",
            mb(rss_max as f64),
            mb(r),
            mb(disk_max as f64),
            mb(d),
            thousands(postings)
        ),
        _ => format!(
            "max RSS {}, max disk {}; no postings committed",
            mb(rss_max as f64),
            mb(disk_max as f64)
        ),
    };
    let verdict = match per_m(disk_max) {
        Some(d) if d <= 500e6 => "reported; disk meets aim".to_owned(),
        Some(_) => "reported; disk above aim".to_owned(),
        None => "reported".to_owned(),
    };
    rep.row(metric, result, "reported", "disk <= 500 MB", verdict);
    Ok(())
}
