//! Smoke drills on the normal node binary: short seeded schedules covering every nemesis kind
//! must come out `valid` (exit 0), with every requested fault having taken effect. Seeds that
//! once exposed core bugs are kept here as regression cases.

mod common;

use common::{drill, node_bin, Drill};

fn must_be_valid(name: &str, nemesis: &str, seed: &str, duration: &str, extra: &[&str]) -> Drill {
    let bin = node_bin();
    let bin_s = bin.to_string_lossy().into_owned();
    let mut args = vec![
        "--nodes",
        "3",
        "--duration",
        duration,
        "--nemesis",
        nemesis,
        "--seed",
        seed,
        "--node-bin",
        &bin_s,
    ];
    args.extend_from_slice(extra);
    let mut d = drill(name, &args);
    let ok = d.code == 0 && d.verdict() == "valid" && d.verdict_of("coverage") == "valid";
    if !ok {
        let why = d.keep();
        panic!(
            "{name}: expected valid, got exit {} verdict {}\n{why}",
            d.code,
            d.verdict()
        );
    }
    for f in [
        "run.json",
        "history.jsonl",
        "nemesis.jsonl",
        "results.json",
        "report.html",
        "node-1.log",
    ] {
        assert!(d.dir.join(f).exists(), "{f} missing from the run dir");
    }
    let html = std::fs::read_to_string(d.dir.join("report.html")).expect("report");
    assert!(
        html.contains("reproduce with: <code"),
        "report lacks the reproduce command"
    );
    assert!(
        d.output.contains(&format!("--seed {seed}")),
        "no reproduce line printed"
    );
    d
}

/// Also the whole cluster killed at once, on nodes that compact aggressively (64 KiB WAL
/// segments, frequent snapshots): restarts find WALs cut down by many segment-deleting purges.
#[test]
fn processes_partitions_and_whole_cluster_kills_under_aggressive_compaction() {
    let mut d = must_be_valid(
        "smoke-procs-partitions",
        "kill,kill-all,pause,partition",
        "1",
        "60s",
        &["--compaction", "aggressive"],
    );
    let mut wrong = Vec::new();
    if d.verdict_of("compaction") != "valid" {
        wrong.push(format!("compaction verdict {}", d.verdict_of("compaction")));
    }
    let c = &d.results["compaction"];
    if c["mode"] != "aggressive" {
        wrong.push(format!("results.json compaction mode {}", c["mode"]));
    }
    let evidence = c["evidence"].as_object().cloned().unwrap_or_default();
    if evidence.len() != 3 {
        wrong.push(format!("WAL evidence of {} nodes, not 3", evidence.len()));
    }
    for (id, e) in &evidence {
        let n = e["deletion_events"].as_u64().unwrap_or(0);
        if n < 2 {
            wrong.push(format!("node {id}: {n} WAL segment-deletion events"));
        }
    }
    let kill_all = d.results["coverage"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["kind"] == "kill-all" && r["took_effect"] == true)
        .count();
    if kill_all == 0 {
        wrong.push("kill-all never took effect".into());
    }
    if !d.output.contains("--compaction aggressive") {
        wrong.push("the printed reproduce line lacks --compaction aggressive".into());
    }
    let run: serde_json::Value = std::fs::read(d.dir.join("run.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    if run["compaction"]["mode"] != "aggressive"
        || !run["reproduce"]
            .as_str()
            .is_some_and(|r| r.contains("--compaction aggressive"))
    {
        wrong.push("run.json does not record --compaction aggressive".into());
    }
    if !wrong.is_empty() {
        panic!("{}\n{}", wrong.join("\n"), d.keep());
    }
}

#[test]
fn membership_wipe_storm_and_slow_links() {
    must_be_valid(
        "smoke-membership",
        "membership,wipe,transfer-storm,delay,drop",
        "2",
        "60s",
        &[],
    );
}
